"""A tenant without Intune: Graph's definitive answer is remembered; `syncd resync` removes the
tenant's Intune data from J1 at once, the daemon after a day. A 403 or a 5xx removes nothing."""

from __future__ import annotations

import time
from pathlib import Path

from bench.kit.tenants import intune_tenant
from bench.kit.truth import by_type
from syncd.commands.resync import resync_command
from syncd.engine import ABSENT_KEY
from syncd.model import schema as m
from syncd.sim.harness import SimHarness
from syncd.sources.intune import INTUNE_ORIGIN_TYPES
from tests.helpers.harness import permission_faults, running_harness
from tests.helpers.inprocess import intune_runtime
from tests.helpers.intune import INTUNE_ORIGINS

INTUNE_TYPES = {t for o in INTUNE_ORIGINS for t in INTUNE_ORIGIN_TYPES[o]}
FAST = {"sync": {"intune_requests_per_20s": 100_000}}


def _intune_in_j1(h: SimHarness) -> set[str]:
    entities, relationships = h.j1_graph()
    return {o["_type"] for o in [*entities.values(), *relationships.values()]} & INTUNE_TYPES


async def test_resync_removes_intune_data_only_on_the_definitive_answer(tmp_path: Path) -> None:
    tenant = intune_tenant(managed_devices=12)
    async with running_harness(tenant, tmp_path, notifications=False) as h:
        assert await resync_command(h.settings(FAST)) == 0
        held = _intune_in_j1(h)
        assert m.MANAGED_DEVICE.type in held and m.COMPLIANCE_POLICY.type in held

        # a 403 (consent withdrawn) removes nothing ...
        permission_faults(h).denied = {
            "DeviceManagementManagedDevices.Read.All",
            "DeviceManagementConfiguration.Read.All",
            "DeviceManagementApps.Read.All",
        }
        assert await resync_command(h.settings(FAST)) == 1
        assert _intune_in_j1(h) == held
        permission_faults(h).denied = set()
        # ... nor an outage (every Graph call 503, retries exhausted)
        h.sims.graph.set_faults({"error_rate": 1.0, "error_statuses": [503], "error_retry_after": "0"})
        assert await resync_command(h.settings({"graph": {"request_timeout": 5}, **FAST})) == 1
        assert _intune_in_j1(h) == held
        h.sims.graph.set_faults({"error_rate": 0.0})

        # the tenant has no Intune any more: 400 "Request not applicable to target tenant."
        tenant.intune = None
        assert await resync_command(h.settings(FAST)) == 0
        assert _intune_in_j1(h) == set()
        entities, _ = h.j1_graph()
        assert len(by_type(entities)[m.USER.type]) == len(list(tenant.list("users")))  # the rest stays
        diff = [j for j in h.sims.j1_state.jobs_view() if j["mode"] == "DIFF"][-1]
        assert not INTUNE_TYPES & set(diff["partialTypes"])


async def test_the_daemon_keeps_it_a_day_then_removes_it(tmp_path: Path) -> None:
    tenant = intune_tenant(managed_devices=12)
    async with running_harness(tenant, tmp_path, notifications=False) as h:
        async with intune_runtime(h) as rt:
            assert (await rt.engine.resync()).failed == {}
        held = _intune_in_j1(h)
        assert held
        tenant.intune = None
        async with intune_runtime(h) as rt:  # the daemon's engine: a day of grace
            for origin in INTUNE_ORIGINS:
                assert (await rt.engine.run_round(origin)).kind == "skipped"
            assert set(rt.engine.partial_types()) >= INTUNE_TYPES
            await rt.engine.drain()
            await rt.engine.push_full()
            assert _intune_in_j1(h) == held  # kept (as partial) for now
            first_seen = await rt.mirror.get_value(ABSENT_KEY + INTUNE_ORIGINS[0])
            assert isinstance(first_seen, float) and time.time() - first_seen < 60
            for origin in INTUNE_ORIGINS:  # as if that answer came more than a day ago
                await rt.mirror.set_value(ABSENT_KEY + origin, time.time() - 86_500)
        async with intune_runtime(h) as rt:  # after a restart: the first answer's time was remembered
            for origin in INTUNE_ORIGINS:
                assert (await rt.engine.run_round(origin)).kind == "skipped"
            assert not INTUNE_TYPES & set(rt.engine.partial_types())
            await rt.engine.drain()  # the incremental push removes it
            assert _intune_in_j1(h) == set()
            status = {o["origin"]: o for o in await rt.mirror.origin_status()}
            assert all(status[o]["disabled"] and not status[o]["partial"] for o in INTUNE_ORIGINS)
