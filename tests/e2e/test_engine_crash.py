"""kill -9 of `syncd run` at named moments, then a restart: nothing lost, nothing duplicated.

The simulators run in the test process and outlive the killed daemon. The daemon is started
with `SYNCD_PAUSE_AT=<point>` (syncd/pausepoints.py) and killed once it reports that it paused
there: during its first full sync (a page fetched, the first DIFF uploaded but not finalized,
finished but not acknowledged), then during incremental rounds and pushes after changes made
through the simulator (mirror commit, round committed, PATCH job created). A last start must
converge to exactly the graph the tenant implies, keys and property values, stop cleanly on
SIGTERM, and leave a mirror that opens with an empty outbox.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from bench.kit.crash_loop import kill_at
from bench.kit.daemon import DaemonProc, start_daemon
from bench.kit.truth import (
    assert_graph_matches,
    directory_truth,
    expected_directory,
    graph_mismatches,
    j1_directory,
)
from bench.kit.waiting import wait_for
from syncd.mirror import Mirror
from syncd.model import schema
from syncd.pausepoints import POINTS
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness
from syncd.sim.tenant import Tenant
from tests.helpers.harness import HarnessFactory, quiet_config

SYNC = {"safety_net_interval": 1.0, "devices_delta_interval": 1.0, "drain_interval": 0.5, "debounce": 0.2}


def _mutate(tenant: Tenant, rng: random.Random) -> None:
    """A few changes of every kind, so restarted daemons have deltas to catch up on."""
    users = [u["id"] for u in tenant.list("users")]
    groups = [g["id"] for g in tenant.list("groups")]
    u = rng.sample(users, 5)
    tenant.update("users", u[0], {"displayName": f"Renamed {rng.random():.6f}"})
    enabled = tenant.get("users", u[1])
    assert enabled is not None
    tenant.update("users", u[1], {"accountEnabled": not enabled["accountEnabled"]})
    tenant.soft_delete("users", u[2])
    tenant.hard_delete("users", u[3])
    g = rng.sample(groups, 3)
    if u[4] not in tenant.members.get(g[0], {}):
        tenant.add_member(g[0], u[4])
    members = tenant.member_ids(g[1])
    if members:
        tenant.remove_member(g[1], members[0])
    tenant.upsert("users", {"displayName": "New Hire", "accountEnabled": True, "userType": "Member"})
    tenant.update("groups", g[2], {"description": f"changed {rng.random():.6f}"})


async def _kill_cycle(h: SimHarness, config: Path, logs: Path, point: str) -> str:
    """Start the daemon, kill -9 it once it paused at `point`; returns the point it hit."""
    return (await kill_at(point, config, logs, h.state_dir / "paused-at")).point


async def _until_exact(h: SimHarness, tenant: Tenant, d: DaemonProc) -> None:
    expected = expected_directory(tenant)
    await wait_for(
        lambda: not graph_mismatches(h, expected),
        90,
        lambda: "\n".join(graph_mismatches(h, expected)) + "\n" + d.output()[-3000:],
        interval=0.25,
    )


async def _converge_and_check(h: SimHarness, tenant: Tenant, config: Path, logs: Path) -> None:
    expected = expected_directory(tenant)
    d = await start_daemon(config, logs)
    try:
        await _until_exact(h, tenant, d)
        await asyncio.sleep(1.5)  # a few more scheduler ticks: still exact (nothing re-added twice)
        assert_graph_matches(h, expected)
        # property values too (names, enabled flags, descriptions), over every scope syncd writes
        assert directory_truth(tenant).diff(j1_directory(h)) == {}
    finally:
        rc = await d.stop()
    assert rc == 0, d.output()[-3000:]
    async with await Mirror.open(h.state_dir / "syncd" / "mirror.sqlite") as mirror:
        assert await mirror.outbox_depth() == 0
        assert await mirror.count_entities(schema.USER.type) == len(expected.entities[schema.USER.type])
        assert await mirror.count_relationships(schema.GROUP_HAS_USER.type, live_only=True) == len(
            expected.relationships[schema.GROUP_HAS_USER.type]
        )
    # every job a finished daemon started was finished; killed ones never left half a graph
    assert_graph_matches(h, expected)


async def _crash_loop(make_harness: HarnessFactory, tmp_path: Path, users: int, points: list[str]) -> None:
    rng = random.Random(users)
    tenant = generate_tenant(seed=9, users=users, groups=users // 10, devices=users // 20, with_intune=False)
    h = await make_harness(tenant)
    config = quiet_config(h, SYNC)
    log = tmp_path / "logs"
    hits = []
    for i, point in enumerate(points):
        if i > 0:  # every restart has changes to catch up on (and so a push to be caught in)
            _mutate(tenant, rng)
        if point == SETTLE:
            await _settle(h, tenant, config, log)
            continue
        hits.append(await _kill_cycle(h, config, log, point))
    assert hits == [p for p in points if p != SETTLE]
    _mutate(tenant, rng)
    await _converge_and_check(h, tenant, config, log)


async def _settle(h: SimHarness, tenant: Tenant, config: Path, log: Path) -> None:
    """One start that finishes its (first) full sync, then a clean stop: later kills hit a daemon
    that catches up by delta and pushes incrementally."""
    d = await start_daemon(config, log)
    try:
        await _until_exact(h, tenant, d)
        await asyncio.sleep(1.0)  # the full push is recorded right after J1 finished it
    finally:
        assert await d.stop() == 0


SETTLE = "settle"
FIRST_SYNC_THEN_RUNNING = [
    "source.page",  # start-up: the first full rounds are fetching
    "j1.finalize",  # the first DIFF is uploaded, not yet finalized
    "j1.ack",  # again: J1 finished that DIFF, the mirror has not recorded it
    SETTLE,  # a start that completes the first sync, stopped with SIGTERM
    "mirror.commit",  # catching up: a delta round inside its transaction
    "engine.committed",  # a delta round committed, its push not yet started
    "j1.upload",  # an incremental PATCH job created, nothing uploaded
    "j1.ack",  # incremental jobs finished, the outbox rows not yet acknowledged
]


async def test_kill9_at_named_points_then_restart_converges(
    make_harness: HarnessFactory, tmp_path: Path
) -> None:
    assert set(FIRST_SYNC_THEN_RUNNING) == {*POINTS, SETTLE}
    await _crash_loop(make_harness, tmp_path, 600, FIRST_SYNC_THEN_RUNNING)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_kill9_loop_long(make_harness: HarnessFactory, tmp_path: Path) -> None:
    rng = random.Random(4)
    points = [rng.choice(POINTS) for _ in range(12)] + [SETTLE] + [rng.choice(POINTS) for _ in range(12)]
    await _crash_loop(make_harness, tmp_path, 2000, points)
