"""Incremental Intune polls: a no-change poll costs list requests only and pushes nothing; one
device's compliance change pushes exactly that device's changed entities and relationships; the
early re-fetch (an Entra device changed in /devices/delta) updates the managed device alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from bench.kit.sim_admin import graph_requests, syncd_jobs
from bench.kit.tenants import intune_of, intune_tenant
from bench.kit.truth import NULL_GUID, assert_same_keys, by_type, expected_graph
from syncd.mirror.keyhash import key_hash
from syncd.model import schema as m
from syncd.sim.harness import SimHarness
from syncd.sources.intune import IntuneCollectionSource
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import intune_runtime, source_of
from tests.helpers.intune import INTUNE_ORIGINS


async def set_compliance(h: SimHarness, device_id: str, state: str) -> dict[str, Any]:
    url = f"{h.sims.graph_http_url}/_sim/intune/managedDevices/{device_id}/compliance"
    async with aiohttp.ClientSession() as session, session.post(url, json={"complianceState": state}) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


def policy_statuses_of(tenant: Any, device_id: str) -> dict[tuple[str, str], str]:
    """(policy id, status id) -> status, for the compliance statuses naming the device."""
    out = {}
    for pid in [p["id"] for p in intune_of(tenant).list("deviceCompliancePolicies")]:
        for st in intune_of(tenant).sub("deviceCompliancePolicies", pid, "deviceStatuses"):
            if st["id"].rsplit("_", 1)[-1] == device_id:
                out[(pid, st["id"])] = st["status"]
    return out


def uploads(jobs: list[dict[str, Any]]) -> dict[str, int]:
    """What the jobs uploaded, summed per upload field."""
    total: dict[str, int] = {}
    for job in jobs:
        for name, n in job["uploads"]["objects"].items():
            total[name] = total.get(name, 0) + n
    return total


def sub_resource_requests(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """New requests below an Intune object (`.../{id}/...`) and `$batch` calls."""
    out = {}
    for route, n in after.items():
        delta = n - before.get(route, 0)
        if delta and ("{id}" in route or "$batch" in route):
            out[route] = delta
    return out


async def test_no_change_poll_then_one_compliance_change(tmp_path: Path, j1_reading: str) -> None:
    tenant = intune_tenant()
    intune = intune_of(tenant)
    async with (
        running_harness(tenant, tmp_path, notifications=False) as h,
        intune_runtime(h, intune_full_pass_every=100) as rt,
    ):
        assert (await rt.engine.resync()).failed == {}

        # 1. Nothing changed: list requests only, nothing pushed.
        jobs_before = len(h.sims.j1_state.jobs_view())
        before = graph_requests(h)
        for origin in INTUNE_ORIGINS:
            await rt.engine.run_round(origin)
        after = graph_requests(h)
        assert sub_resource_requests(before, after) == {}
        listed = sum(after[r] - before.get(r, 0) for r in after)
        assert listed == len(INTUNE_ORIGINS)  # one page each at this size
        for origin in INTUNE_ORIGINS:
            source = rt.engine.sources[origin]
            assert isinstance(source, IntuneCollectionSource) and source.last_fetched == 0
        push = await rt.engine.drain()
        assert push.objects == 0
        assert syncd_jobs(h, jobs_before) == []

        # 2. One device turns noncompliant: a device whose policy statuses are all compliant.
        device = next(
            d
            for d in intune.list("managedDevices")
            if d["complianceState"] == "compliant"
            and policy_statuses_of(tenant, d["id"])
            and set(policy_statuses_of(tenant, d["id"]).values()) == {"compliant"}
        )
        did = device["id"]
        old_graph = expected_graph(tenant)
        old_statuses = policy_statuses_of(tenant, did)
        await set_compliance(h, did, "noncompliant")
        new_graph = expected_graph(tenant)
        changed = {k for k, v in policy_statuses_of(tenant, did).items() if old_statuses.get(k) != v}
        assert changed and all(policy_statuses_of(tenant, did)[k] == "nonCompliant" for k in changed)

        j1_before_entities, j1_before_rels = h.j1_graph()
        jobs_before = len(h.sims.j1_state.jobs_view())
        req_before = graph_requests(h)
        for origin in INTUNE_ORIGINS:  # every collection polls; only the affected ones fetch
            await rt.engine.run_round(origin)
        req_after = graph_requests(h)
        fetched = {o: source_of(rt, o, IntuneCollectionSource).last_fetched for o in INTUNE_ORIGINS}
        assert fetched["intune:managedDevices"] == 1
        # Policies naming the device are re-fetched (their lastModifiedDateTime did not move).
        assert fetched["intune:deviceCompliancePolicies"] == len({p for p, _ in old_statuses})
        assert fetched["intune:mobileAppCategories"] == fetched["intune:deviceCategories"] == 0
        assert sum(sub_resource_requests(req_before, req_after).values()) < 60
        await rt.engine.drain()

        # What was pushed: exactly the changed entities and relationships, computed independently.
        new_entities = {t: keys - old_graph.entities.get(t, set()) for t, keys in new_graph.entities.items()}
        new_rels = {
            t: keys - old_graph.relationships.get(t, set()) for t, keys in new_graph.relationships.items()
        }
        assert sum(map(len, new_entities.values())) == len(changed)  # one finding per status
        updated_rels = {f"{did}|assigned|{pid}" for pid, _ in changed}  # #11 carries the status
        n_entities = 1 + len(changed)  # the device + the findings
        changed_rels = updated_rels | set().union(*new_rels.values())
        layout = await rt.engine.writer.layout()
        assert layout is not None
        rel_scopes = {layout.partition_of("r", key_hash(k)).scope(layout.base) for k in changed_rels}
        jobs = syncd_jobs(h, jobs_before)
        # entity upserts alone: PATCH jobs of exactly the changed entities
        patches = [j for j in jobs if j["mode"] == "PATCH"]
        assert uploads(patches) == {"entities": n_entities}, uploads(patches)
        # relationship changes: a DIFF of each partition holding one, and of nothing else
        diffs = [j for j in jobs if j["mode"] == "DIFF"]
        assert {j["scope"] for j in diffs} == rel_scopes
        assert all(sum(j["uploads"]["objects"].values()) <= 200 for j in diffs)
        assert uploads(diffs).get("entities", 0) == 0
        assert not uploads(jobs).get("deleteEntities") and not uploads(jobs).get("deleteRelationships")

        entities, relationships = h.j1_graph()
        assert entities[did]["complianceState"] == "noncompliant"
        assert entities[did]["compliant"] is False
        for pid, status_id in changed:
            assert entities[status_id]["state"] == "nonCompliant"
            assert f"{did}|has|{status_id}" in relationships
            assert f"{pid}|identified|{status_id}" in relationships
            assert relationships[f"{did}|assigned|{pid}"]["status"] == "nonCompliant"
        # Nothing else moved; the whole graph is still exactly the expected one.
        untouched = set(j1_before_entities) - {did}
        assert all(entities[k] == j1_before_entities[k] for k in untouched)
        assert_same_keys(new_graph.entities, by_type(entities), [e.type for e in m.ENTITY_TYPES])
        assert_same_keys(
            new_graph.relationships, by_type(relationships), [r.type for r in m.RELATIONSHIP_TYPES]
        )
        moved = {k for k in j1_before_rels if k in relationships and relationships[k] != j1_before_rels[k]}
        assert moved == updated_rels


async def test_entra_device_change_refetches_the_managed_device_early(tmp_path: Path) -> None:
    tenant = intune_tenant()
    intune = intune_of(tenant)
    async with running_harness(tenant, tmp_path, notifications=False) as h, intune_runtime(h) as rt:
        assert (await rt.engine.resync()).failed == {}
        device = next(
            d
            for d in intune.list("managedDevices")
            if d["azureADDeviceId"] != NULL_GUID and d["complianceState"] == "compliant"
        )
        answer = await set_compliance(h, device["id"], "noncompliant")
        assert answer["entraDeviceObjectId"]  # the Entra device's isCompliant moved too

        before = graph_requests(h)
        report = await rt.engine.run_round("devices")  # the /devices/delta round
        assert device["azureADDeviceId"] in report.changed_ids
        source = rt.engine.sources["intune:managedDevices"]
        assert isinstance(source, IntuneCollectionSource)
        await source.refetch_for_entra_devices(rt.engine, report.changed_ids)
        after = graph_requests(h)
        new = {r: n - before.get(r, 0) for r, n in after.items() if n != before.get(r, 0)}
        # No list of the managed devices: one GET of that device (+ its detected apps).
        assert not any(r.endswith("/deviceManagement/managedDevices") for r in new), new
        assert new.get("GET /{ver}/deviceManagement/managedDevices/{id}") == 1, new
        assert source.last_fetched == 1

        await rt.engine.drain()
        entities, _ = h.j1_graph()
        assert entities[device["id"]]["complianceState"] == "noncompliant"
        status = {o["origin"]: o for o in await rt.mirror.origin_status()}
        assert status["intune:managedDevices"]["partial"] is False
