"""Scopes: `[sync] sources` switches sources; a switched-off source is never fetched, keeps its J1
data as partial until `syncd resync --prune-disabled`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.kit.sim_admin import graph_requests, syncd_jobs
from bench.kit.tenants import feature_tenant
from syncd.commands.resync import resync_command
from syncd.commands.status import status_command
from syncd.model import schema as m
from syncd.runtime import open_runtime
from syncd.sim.harness import SimHarness
from syncd.sources.catalog import disabled_origins, origin_types
from tests.helpers.harness import permission_faults, running_harness

DEVICE_ROUTE_WORDS = ("/devices", "deviceManagement", "deviceAppManagement", "$batch")


def _main_jobs(h: SimHarness, since: int = 0) -> list[dict[str, Any]]:
    """syncd's DIFF jobs (one per partition of a full resync) since job number ``since``."""
    found = [j for j in syncd_jobs(h, since) if j["mode"] == "DIFF"]
    assert found
    return found


def _job_count(h: SimHarness) -> int:
    return len(h.sims.j1_state.jobs_view())


async def test_switched_off_sources_are_never_fetched(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(), tmp_path, notifications=False) as h:
        # even a denied permission does not matter for a source that is off
        permission_faults(h).denied = {"DeviceManagementManagedDevices.Read.All", "Device.Read.All"}
        settings = h.settings({"sync": {"sources": ["users", "groups"]}})
        h.sims.graph.counters.reset()
        before = _job_count(h)
        assert await resync_command(settings) == 0
        routes = graph_requests(h)
        assert any("/users" in r for r in routes) and any("/groups" in r for r in routes)
        fetched = [r for r in routes if any(w in r for w in DEVICE_ROUTE_WORDS)]
        # only the account's Intune id read (GET /deviceManagement) may touch device management
        assert all(r.endswith("/deviceManagement") for r in fetched), fetched
        entities, _ = h.j1_graph()
        assert {e["_type"] for e in entities.values()} == {
            m.ACCOUNT.type,
            m.USER.type,
            m.GROUP.type,
            m.GROUP_MEMBER.type,
        }
        for job in _main_jobs(h, before):
            assert m.MANAGED_DEVICE.type in job["partialTypes"]
            assert m.USER.type not in job["partialTypes"]


async def test_turning_a_source_off_keeps_its_data_until_pruned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_harness(feature_tenant(), tmp_path, notifications=False) as h:
        assert await resync_command(h.settings()) == 0
        entities, _ = h.j1_graph()
        devices = [e for e in entities.values() if e["_type"] == m.MANAGED_DEVICE.type]
        assert devices

        off = h.settings({"sync": {"sources": [s for s in m.ALL_SOURCES if s != m.SOURCE_DEVICES]}})
        h.sims.graph.counters.reset()
        before = _job_count(h)
        assert await resync_command(off) == 0
        assert not [r for r in graph_requests(h) if "managedDevices" in r]
        entities, _ = h.j1_graph()
        assert len([e for e in entities.values() if e["_type"] == m.MANAGED_DEVICE.type]) == len(devices)
        disabled_types = {t for o in disabled_origins(off) for t in origin_types().get(o, [])}
        assert m.MANAGED_DEVICE.type in disabled_types
        for job in _main_jobs(h, before):
            assert disabled_types <= set(job["partialTypes"])
        capsys.readouterr()
        assert await status_command(off, as_json=False) == 0
        status = capsys.readouterr().out
        managed = next(ln for ln in status.splitlines() if ln.startswith("intune:managedDevices"))
        assert " partial " in managed and "switched off" in managed

        before = _job_count(h)
        assert await resync_command(off, prune_disabled=True) == 0
        entities, _ = h.j1_graph()
        assert not [e for e in entities.values() if e["_type"] == m.MANAGED_DEVICE.type]
        assert [e for e in entities.values() if e["_type"] == m.USER.type]  # the rest is untouched
        jobs = _main_jobs(h, before)
        assert all(m.MANAGED_DEVICE.type not in job["partialTypes"] for job in jobs)
        assert sum(job["counters"]["numEntitiesDeleted"] for job in jobs) >= len(devices)

        # switching it back on brings the data back
        assert await resync_command(h.settings()) == 0
        entities, _ = h.j1_graph()
        assert len([e for e in entities.values() if e["_type"] == m.MANAGED_DEVICE.type]) == len(devices)


async def test_daemon_helper_marks_disabled_origins_partial(tmp_path: Path) -> None:
    from syncd.sources.catalog import mark_disabled

    async with running_harness(feature_tenant(), tmp_path, notifications=False) as h:
        settings = h.settings({"sync": {"sources": ["users"]}})
        async with open_runtime(settings) as rt:
            marked = await mark_disabled(rt.engine, settings)
            assert "groups" in marked and "users" not in marked
            assert m.GROUP.type in rt.engine.partial_types()
            flags = {o["origin"]: o for o in await rt.mirror.origin_status()}
            assert flags["groups"]["partial"] and flags["groups"]["disabled"]
