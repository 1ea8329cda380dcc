"""A generated tenant with Intune data resyncs to exactly the J1 graph the data model prescribes;
recorded Graph payloads keep their real values end to end; script bodies never leave Graph."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import structlog

from bench.kit.tenants import intune_of, intune_tenant
from bench.kit.truth import assert_same_keys, by_type, expected_graph
from syncd.model import schema as m
from syncd.sim.intune import intune_from_recordings
from syncd.sim.tenant import tenant_from_recording
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import intune_runtime
from tests.helpers.intune import INTUNE_ORIGINS, no_script_content
from tests.paths import FIXTURES

ENTITY_TYPES = [e.type for e in m.ENTITY_TYPES]
RELATIONSHIP_TYPES = [r.type for r in m.RELATIONSHIP_TYPES]


async def test_full_resync_gives_exactly_the_expected_graph(tmp_path: Path, j1_reading: str) -> None:
    tenant = intune_tenant()
    expected = expected_graph(tenant)
    # The tenant must exercise the whole model, else "exact" proves little.
    assert [t for t in ENTITY_TYPES if not expected.entities.get(t)] == []
    assert [t for t in RELATIONSHIP_TYPES if not expected.relationships.get(t)] == []

    async with running_harness(tenant, tmp_path, notifications=False) as h:
        with structlog.testing.capture_logs() as logs:
            async with intune_runtime(h) as rt:
                report = await rt.engine.resync()
                status = {o["origin"]: o for o in await rt.mirror.origin_status()}
        assert report.failed == {}
        assert report.push is not None and set(report.push.jobs) == {"DIFF"}
        for origin in INTUNE_ORIGINS:
            assert status[origin]["partial"] is False
            assert status[origin]["last_status"] == "ok"

        entities, relationships = h.j1_graph()
        assert_same_keys(expected.entities, by_type(entities), ENTITY_TYPES)
        assert_same_keys(expected.relationships, by_type(relationships), RELATIONSHIP_TYPES)
        known = set(ENTITY_TYPES) | set(RELATIONSHIP_TYPES)
        extra = {t for t in by_type(entities) | by_type(relationships) if t not in known}
        assert all("person" in t for t in extra), extra  # only the user -> Person mapping is extra

        # Spot values: a finding carries its state and device; a device its compliance.
        device = next(iter(intune_of(tenant).list("managedDevices")))
        assert entities[device["id"]]["complianceState"] == device["complianceState"]
        finding_key = next(iter(expected.entities[m.NONCOMPLIANCE_FINDING.type]))
        finding = entities[finding_key]
        assert finding["_class"] == "Finding" and finding["state"] in {
            "nonCompliant",
            "error",
            "conflict",
            "fail",
            "scriptError",
        }

        # Script bodies: not in J1 (stored graph and every uploaded payload), the mirror
        # (every table, raw included) nor the logs; their hash is.
        j1_text = json.dumps([entities, relationships], default=str)
        for job in h.sims.j1_state.jobs.values():
            j1_text += json.dumps([job.entities, job.relationships], default=str)
        assert no_script_content(j1_text, intune_of(tenant)) == []
        script = next(iter(intune_of(tenant).list("deviceManagementScripts")))
        assert isinstance(entities[script["id"]]["sha256"], str)
        assert "scriptContent" not in entities[script["id"]]
        db = sqlite3.connect(h.settings().mirror_path)
        try:
            mirror_text = "\n".join(db.iterdump())
        finally:
            db.close()
        assert script["id"] in mirror_text
        assert no_script_content(mirror_text, intune_of(tenant)) == []
        assert no_script_content(json.dumps(logs, default=str), intune_of(tenant)) == []


async def test_recorded_payloads_keep_their_real_values(tmp_path: Path) -> None:
    """The recordings served back by the simulator sync with their values intact."""
    tenant = tenant_from_recording(FIXTURES / "managed-devices-with-users.json")
    recordings = sorted(FIXTURES.glob("*.json"))
    tenant.intune = intune_from_recordings(recordings)
    raw_devices = {d["id"]: d for d in intune_of(tenant).list("managedDevices")}
    raw_configs = {c["id"]: c for c in intune_of(tenant).list("deviceConfigurations")}
    assert len(raw_devices) == 2 and intune_of(tenant).list("deviceCompliancePolicies")

    async with running_harness(tenant, tmp_path, notifications=False) as h:
        async with intune_runtime(h) as rt:
            report = await rt.engine.resync()
        assert report.failed == {}
        entities, relationships = h.j1_graph()

    for did, raw in raw_devices.items():
        e = entities[did]
        assert e["_type"] == m.MANAGED_DEVICE.type
        for prop in ("complianceState", "osVersion", "serialNumber", "operatingSystem", "deviceName"):
            assert e[prop] == raw[prop], prop
        assert e.get("compliant") is (None if raw["complianceState"] == "unknown" else False)
        assert e["lastSyncOn"] == int(
            datetime.fromisoformat(raw["lastSyncDateTime"].replace("Z", "+00:00")).timestamp() * 1000
        )
    for cid, raw in raw_configs.items():
        assert entities[cid]["displayName"] == raw["displayName"]
    # The recorded nonCompliant status is a finding on the recorded device, found by its policy.
    recorded = json.loads((FIXTURES / "compliance-policies-and-statuses.json").read_text())
    problem = [
        (ex["url"].split("/")[-2], st)
        for ex in recorded["exchanges"]
        if ex["url"].endswith("/deviceStatuses")
        for st in ex["body"]["value"]
        if st["status"] == "nonCompliant"
    ]
    assert problem
    for policy_id, st in problem:
        device_id = st["id"].rsplit("_", 1)[-1]
        assert entities[st["id"]]["state"] == "nonCompliant"
        assert f"{device_id}|has|{st['id']}" in relationships
        assert f"{policy_id}|identified|{st['id']}" in relationships
        assert f"{device_id}|assigned|{policy_id}" in relationships
    # The recorded user owns the recorded device (both from the same recording).
    owner = raw_devices["683dbff1-c8ff-4996-91ae-85484de46cfc"]["userId"]
    assert f"{owner}|owns|683dbff1-c8ff-4996-91ae-85484de46cfc" in relationships
