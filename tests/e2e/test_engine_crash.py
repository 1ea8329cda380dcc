"""kill -9 of `syncd run` at any moment, then a restart: nothing lost, nothing duplicated.

The simulators run in the test process and outlive the killed daemon. The daemon is killed
at several moments: during its first full sync, while a J1 job is in flight (J1 latency fault,
so pushes are slow enough to be caught), and during incremental rounds and pushes after
changes made through the simulator. A last start must converge to exactly the graph the
tenant implies, stop cleanly on SIGTERM, and leave a mirror that opens with an empty outbox.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.mirror import Mirror
from syncd.model import schema
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness
from syncd.sim.tenant import Tenant
from tests.e2e.conftest import (
    HarnessFactory,
    assert_graph_matches,
    expected_directory_graph,
    graph_mismatches,
    kill9,
    quiet_config,
    start_daemon,
    wait_for,
)

SYNC = {"safety_net_interval": 1.0, "devices_delta_interval": 1.0, "drain_interval": 0.5, "debounce": 0.2}


def _mutate(tenant: Tenant, rng: random.Random) -> None:
    """A few changes of every kind, so restarted daemons have deltas to catch up on."""
    users = [u["id"] for u in tenant.list("users")]
    groups = [g["id"] for g in tenant.list("groups")]
    u = rng.sample(users, 5)
    tenant.update("users", u[0], {"displayName": f"Renamed {rng.random():.6f}"})
    tenant.update("users", u[1], {"accountEnabled": not tenant.get("users", u[1])["accountEnabled"]})  # type: ignore[index]
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


def _jobs_in_flight(h: SimHarness, after: int) -> Callable[[], bool]:
    def check() -> bool:
        return any(j["status"] == "AWAITING_UPLOADS" for j in h.sims.j1_state.jobs_view()[after:])

    return check


async def _kill_cycle(h: SimHarness, config: Path, log: Path, moment: str, delay: float) -> str:
    """Start the daemon, kill -9 it at `moment`; returns what was happening when it died."""
    first_job = len(h.sims.j1_state.jobs_view())
    proc = await start_daemon(config, log)
    try:
        if moment == "push":
            h.sims.j1_state.faults.latency_ms = 150.0
            caught = await wait_for(_jobs_in_flight(h, first_job), timeout=60, interval=0.02)
            assert caught, "no J1 job was started"
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(delay)
        assert proc.returncode is None, f"the daemon exited on its own ({proc.returncode})"
    finally:
        await kill9(proc)
        h.sims.j1_state.faults.latency_ms = 0.0
    return moment


async def _converge_and_check(h: SimHarness, tenant: Tenant, config: Path, log: Path) -> None:
    expected = expected_directory_graph(tenant)
    proc = await start_daemon(config, log)
    try:
        converged = await wait_for(lambda: not graph_mismatches(h, expected), timeout=90, interval=0.25)
        assert converged, "\n".join(graph_mismatches(h, expected)) + "\n" + log.read_text()[-3000:]
        await asyncio.sleep(1.5)  # a few more scheduler ticks: still exact (nothing re-added twice)
        assert_graph_matches(h, expected)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 30)
    assert rc == 0, log.read_text()[-3000:]
    async with await Mirror.open(h.state_dir / "syncd" / "mirror.sqlite") as mirror:
        assert await mirror.outbox_depth() == 0
        assert await mirror.count_entities(schema.USER.type) == len(expected.entities[schema.USER.type])
        assert await mirror.count_relationships(schema.GROUP_HAS_USER.type, live_only=True) == len(
            expected.relationships[schema.GROUP_HAS_USER.type]
        )
    # every job a finished daemon started was finished; killed ones never left half a graph
    assert_graph_matches(h, expected)


async def _crash_loop(
    make_harness: HarnessFactory, tmp_path: Path, users: int, moments: list[tuple[str, float]]
) -> None:
    rng = random.Random(users)
    tenant = generate_tenant(seed=9, users=users, groups=users // 10, devices=users // 20, with_intune=False)
    h = await make_harness(tenant)
    config = quiet_config(h, **SYNC)
    log = tmp_path / "daemon.log"
    for i, (moment, delay) in enumerate(moments):
        if i > 0:  # every restart has changes to catch up on (and so a push to be caught in)
            _mutate(tenant, rng)
        await _kill_cycle(h, config, log, moment, delay)
    _mutate(tenant, rng)
    await _converge_and_check(h, tenant, config, log)


async def test_kill9_at_several_moments_then_restart_converges(
    make_harness: HarnessFactory, tmp_path: Path
) -> None:
    moments = [
        ("time", 2.0),  # start-up: first full rounds
        ("push", 0.3),  # the first DIFF job in flight
        ("push", 0.1),  # again: a restart that had not yet recorded its full push
        ("time", 4.0),  # running: safety-net rounds and incremental pushes
        ("push", 0.05),  # an incremental PATCH/CROSS_SCOPE in flight
    ]
    await _crash_loop(make_harness, tmp_path, 600, moments)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_kill9_loop_long(make_harness: HarnessFactory, tmp_path: Path) -> None:
    rng = random.Random(4)
    moments = [(rng.choice(("time", "push")), rng.uniform(0.0, 3.0) + 1.0) for _ in range(25)]
    await _crash_loop(make_harness, tmp_path, 2000, moments)
