"""Intune without per-device requests: the report exports give exactly the graph the per-device
path gives, and every way the export can fail falls back safely, logged and counted."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from bench.kit.sim_admin import graph_requests
from bench.kit.tenants import intune_of, intune_tenant
from bench.kit.truth import assert_same_keys, by_type, expected_graph
from syncd import metrics
from syncd.model import schema as m
from syncd.sim.harness import SimHarness
from syncd.sim.intune_reports import ReportStore, report_store
from syncd.sim.tenant import Tenant
from syncd.sources.intune import IntuneCollectionSource
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import intune_runtime, source_of

WRITE_PERMISSIONS = [
    "DeviceManagementConfiguration.ReadWrite.All",
    "DeviceManagementApps.ReadWrite.All",
    "DeviceManagementManagedDevices.ReadWrite.All",
]
DETECTED = "detectedApps"


def copy(tenant: Tenant) -> Tenant:
    return Tenant.from_json(json.loads(json.dumps(tenant.to_json())))


def comparable(h: SimHarness) -> dict[str, dict[str, Any]]:
    """Every entity and relationship J1 holds, keyed by `_key`, without J1's own metadata."""
    entities, relationships = h.j1_graph()
    keep = ("_key", "_type", "_class", "_fromEntityKey", "_toEntityKey")
    return {
        k: {p: v for p, v in obj.items() if not p.startswith("_") or p in keep}
        for k, obj in {**entities, **relationships}.items()
    }


def per_device_requests(h: SimHarness) -> int:
    return sum(n for route, n in graph_requests(h).items() if route.endswith(f"/{{id}}/{DETECTED}"))


@asynccontextmanager
async def quick_reports(
    tenant: Tenant, state_dir: Path, **config: Any
) -> AsyncIterator[tuple[SimHarness, ReportStore]]:
    """Simulators whose report exports finish in 0.2 s; `config`: more report-store settings."""
    async with running_harness(tenant, state_dir, notifications=False) as h:
        store = report_store(h.sims.graph)
        store.config.job_seconds = 0.2
        for name, value in config.items():
            setattr(store.config, name, value)
        yield h, store


def assert_detected_apps_complete(h: SimHarness, tenant: Tenant, *, entities: bool = False) -> None:
    """J1 holds exactly the tenant's device → detected app relationships (and apps, if asked)."""
    found, relationships = h.j1_graph()
    expected = expected_graph(tenant)
    if entities:
        assert_same_keys(expected.entities, by_type(found), [m.DETECTED_APPLICATION.type])
    assert_same_keys(expected.relationships, by_type(relationships), [m.DEVICE_HAS_DETECTED_APP.type])


def fallbacks(report: str, reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "syncd_intune_bulk_fallbacks_total", {"report": report, "reason": reason}
    )
    return value or 0.0


async def test_bulk_export_and_per_device_path_give_the_same_graph(tmp_path: Path) -> None:
    tenant = intune_tenant(managed_devices=40)
    devices = len(intune_of(tenant).list("managedDevices"))
    async with quick_reports(copy(tenant), tmp_path / "bulk") as (h, store):
        async with intune_runtime(h) as rt:
            assert (await rt.engine.resync()).failed == {}
            assert source_of(rt, "intune:managedDevices", IntuneCollectionSource).last_bulk is True
        bulk = comparable(h)
        bulk_per_device = per_device_requests(h)
        exports = store.created
    before = fallbacks("AppInvRawData", "refused")
    # a tenant where the report cannot be exported
    async with quick_reports(copy(tenant), tmp_path / "per-device", unavailable=["AppInvRawData"]) as (h, _):
        with structlog.testing.capture_logs() as logs:
            async with intune_runtime(h) as rt:
                assert (await rt.engine.resync()).failed == {}
                assert source_of(rt, "intune:managedDevices", IntuneCollectionSource).last_bulk is False
        per_device = comparable(h)
        assert per_device_requests(h) == devices
    assert bulk_per_device <= 1  # the one-device id check, never one request per device
    assert exports >= 2  # the inventory, and the install statuses
    assert fallbacks("AppInvRawData", "refused") == before + 1
    assert [e for e in logs if e["event"].startswith("Intune report export unavailable")]

    detected = {k for k, v in bulk.items() if v["_type"] == m.DETECTED_APPLICATION.type}
    assert detected and {k for k, v in bulk.items() if v["_type"] == m.DEVICE_HAS_DETECTED_APP.type}
    # Same keys, same types, same properties: the two paths are indistinguishable in J1.
    assert bulk.keys() == per_device.keys()
    assert [k for k in bulk if bulk[k] != per_device[k]] == []
    sample = bulk[next(iter(detected))]
    assert sample["displayName"] and sample["version"] and sample["platform"] == sample["platform"].lower()


async def test_refused_exports_fall_back_and_keep_install_statuses(tmp_path: Path) -> None:
    tenant = intune_tenant(managed_devices=40)
    intune = intune_of(tenant)
    async with quick_reports(tenant, tmp_path) as (h, _):
        async with intune_runtime(h) as rt:
            assert (await rt.engine.resync()).failed == {}
        _, before = h.j1_graph()
        installs = {k for k, r in before.items() if r["_type"] == m.DEVICE_ASSIGNED_APPLICATION.type}
        assert installs

        # The app loses the write permission creating an export needs; meanwhile an app is
        # renamed and loses its install statuses.
        with structlog.testing.capture_logs() as logs:
            async with (
                aiohttp.ClientSession() as session,
                session.put(
                    f"{h.sims.graph_http_url}/_sim/permissions",
                    json={"denied_permissions": WRITE_PERMISSIONS},
                ) as resp,
            ):
                assert resp.status == 200
            app = next(
                a for a in intune.list("mobileApps") if intune.sub("mobileApps", a["id"], "deviceStatuses")
            )
            intune.update("mobileApps", app["id"], {"displayName": "Renamed app", "deviceStatuses": []})
            async with intune_runtime(h) as rt:
                report = await rt.engine.resync()
        assert report.failed == {}
        entities, after = h.j1_graph()
        assert entities[app["id"]]["displayName"] == "Renamed app"  # the app itself updated
        kept = {k for k, r in after.items() if r["_type"] == m.DEVICE_ASSIGNED_APPLICATION.type}
        assert kept == installs  # its install statuses could not be read: kept, not deleted
        reports = {e.get("report") for e in logs if e["event"].startswith("Intune report export unavailable")}
        assert reports == {"AppInvRawData", "DeviceInstallStatusByApp"}
        # Detected apps came from the per-device path: the graph is still complete.
        assert_detected_apps_complete(h, tenant)


async def test_report_keys_graph_does_not_know_fall_back_to_per_device(tmp_path: Path) -> None:
    tenant = intune_tenant(managed_devices=40)
    # the report's ApplicationKey is not the app id
    async with quick_reports(tenant, tmp_path, application_keys="ownKey") as (h, _):
        before = fallbacks("AppInvRawData", "failed")
        async with intune_runtime(h) as rt:
            assert (await rt.engine.resync()).failed == {}
            assert source_of(rt, "intune:managedDevices", IntuneCollectionSource).last_bulk is False
        assert fallbacks("AppInvRawData", "failed") == before + 1
        assert_detected_apps_complete(h, tenant, entities=True)


async def test_a_failed_job_or_download_falls_back_for_that_pass(tmp_path: Path) -> None:
    tenant = intune_tenant(managed_devices=40)
    # the inventory job ends "failed"
    async with quick_reports(tenant, tmp_path, fail_next=1) as (h, store):
        async with intune_runtime(h) as rt:
            assert (await rt.engine.resync()).failed == {}
            source = source_of(rt, "intune:managedDevices", IntuneCollectionSource)
            assert source.last_bulk is False
            store.config.download_error_next = 2  # storage busy twice: retried, then fine
            await rt.engine.run_round("intune:managedDevices", force_full=True)
            assert source.last_bulk is True
        assert_detected_apps_complete(h, tenant)
