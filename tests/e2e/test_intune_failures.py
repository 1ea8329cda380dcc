"""Intune failure semantics: a failing collection (403, 5xx after retries) never turns into
deletions, is partial in the status and in the next DIFF's partialDatasets; a tenant without
Intune disables the Intune types quietly (one log line) while the account still syncs."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from bench.kit.sim_admin import syncd_jobs
from bench.kit.tenants import intune_of, intune_tenant
from bench.kit.truth import by_type
from syncd import metrics
from syncd.commands.status import status_command
from syncd.graph.errors import GraphError, PermissionDenied
from syncd.model import schema as m
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness
from syncd.sources.intune import INTUNE_ORIGIN_TYPES
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import intune_runtime
from tests.helpers.intune import INTUNE_ORIGINS

CONFIGS = "intune:deviceConfigurations"


async def put_faults(h: SimHarness, body: dict[str, list[str]]) -> dict[str, list[str]]:
    url = f"{h.sims.graph_http_url}/_sim/intune/faults"
    async with aiohttp.ClientSession() as session, session.put(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        answer: dict[str, list[str]] = await resp.json()
        return answer


async def test_forbidden_collection_keeps_its_data_and_is_partial(tmp_path: Path) -> None:
    tenant = intune_tenant()
    intune = intune_of(tenant)
    async with running_harness(tenant, tmp_path, notifications=False) as h:
        settings = h.settings({"sync": {"intune_requests_per_20s": 100_000}})
        async with intune_runtime(h) as rt:
            assert (await rt.engine.resync()).failed == {}
            before_entities, before_rels = h.j1_graph()
            configs = {c["id"] for c in intune.list("deviceConfigurations")}
            assert configs <= set(before_entities)

            # The app loses the configuration permission, and a configuration goes away meanwhile:
            # neither may read as "every configuration was deleted".
            assert await put_faults(h, {"forbidden": ["deviceConfigurations"]}) == {
                "forbidden": ["deviceConfigurations"],
                "unavailable": [],
                "flaky": [],
            }
            gone = next(iter(configs))
            intune.delete("deviceConfigurations", gone)
            with pytest.raises(PermissionDenied):
                await rt.engine.run_round(CONFIGS)
            await rt.engine.run_round("intune:deviceCompliancePolicies")  # others carry on
            await rt.engine.drain()
            entities, relationships = h.j1_graph()
            assert entities == before_entities and relationships == before_rels

            status = {o["origin"]: o for o in await rt.mirror.origin_status()}
            assert status[CONFIGS]["partial"] is True
            assert "PermissionDenied" in (status[CONFIGS]["reason"] or status[CONFIGS]["last_error"])
            assert status["intune:deviceCompliancePolicies"]["partial"] is False

            # The next full DIFF: the configuration types are partial datasets, nothing of them deleted.
            jobs_before = len(h.sims.j1_state.jobs_view())
            report = await rt.engine.resync()
            assert set(report.failed) == {CONFIGS}
            diff_jobs = [j for j in syncd_jobs(h, jobs_before) if j["mode"] == "DIFF"]
            assert diff_jobs  # one per partition, every one protecting the failed collection's types
            for job in diff_jobs:
                assert set(INTUNE_ORIGIN_TYPES[CONFIGS]) <= set(job["partialTypes"])
                assert m.COMPLIANCE_POLICY.type not in job["partialTypes"]
            entities, _ = h.j1_graph()
            assert gone in entities  # kept: its collection could not be read
            assert by_type(entities)[m.DEVICE_CONFIGURATION.type] == configs

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert await status_command(settings, as_json=False) == 0
        line = next(x for x in out.getvalue().splitlines() if x.startswith(CONFIGS))
        assert "partial" in line and "PermissionDenied" in line

        # Permission granted again: the next round reconciles (the deleted configuration goes).
        await put_faults(h, {"forbidden": []})
        async with intune_runtime(h) as rt:
            report = await rt.engine.resync()
            assert report.failed == {}
            status = {o["origin"]: o for o in await rt.mirror.origin_status()}
            assert status[CONFIGS]["partial"] is False
        entities, _ = h.j1_graph()
        assert gone not in entities
        assert by_type(entities)[m.DEVICE_CONFIGURATION.type] == configs - {gone}


async def test_collection_failing_with_5xx_after_retries_keeps_its_data(tmp_path: Path) -> None:
    tenant = intune_tenant()
    async with running_harness(tenant, tmp_path, notifications=False) as h, intune_runtime(h) as rt:
        assert (await rt.engine.resync()).failed == {}
        before = h.j1_graph()
        rt.graph.backoff_base = 0.001  # keep the retries, not their waits
        await put_faults(h, {"unavailable": ["managedDevices"]})
        intune_of(tenant).delete("managedDevices", next(iter(intune_of(tenant).items["managedDevices"])))
        with pytest.raises(GraphError):
            await rt.engine.run_round("intune:managedDevices", force_full=True)
        requests = h.sims.graph.counters.routes["GET /{ver}/deviceManagement/managedDevices"]
        assert requests["503"] == rt.graph.max_attempts  # retried, then given up
        await rt.engine.drain()
        assert h.j1_graph() == before
        own = set(INTUNE_ORIGIN_TYPES["intune:managedDevices"])
        # ... and every relationship type touching its entities (other sources cannot rebuild them)
        touching = {
            r.type
            for r in m.RELATIONSHIP_TYPES
            if {r.from_type.type, r.to_type.type} & {m.MANAGED_DEVICE.type, m.DETECTED_APPLICATION.type}
        }
        assert rt.engine.partial_types() == sorted(own | touching)


async def test_tenant_without_intune_disables_intune_quietly(tmp_path: Path) -> None:
    tenant = generate_tenant(seed=3, users=20, groups=3, devices=4, with_intune=False)
    async with running_harness(tenant, tmp_path, notifications=False) as h:
        with structlog.testing.capture_logs() as logs:
            async with intune_runtime(h) as rt:
                # Intune rounds before the account round (daemon start-up order is not fixed).
                for origin in INTUNE_ORIGINS:
                    report = await rt.engine.run_round(origin)
                    assert report.kind == "skipped"
                first = await rt.engine.resync()
                second = await rt.engine.resync()
                for origin in INTUNE_ORIGINS:  # scheduled polls later on
                    assert (await rt.engine.run_round(origin)).kind == "skipped"
                status = {o["origin"]: o for o in await rt.mirror.origin_status()}
        assert first.failed == {} and second.failed == {}
        diff = [j for j in h.sims.j1_state.jobs_view() if j["mode"] == "DIFF"][-1]
        every_intune_type = {t for o in INTUNE_ORIGINS for t in INTUNE_ORIGIN_TYPES[o]}
        assert every_intune_type <= set(diff["partialTypes"])  # nothing Intune is deleted in J1
        assert [e for e in logs if e.get("log_level") in ("warning", "error")] == [
            next(e for e in logs if "no Intune" in e["event"])
        ]
        assert len([e for e in logs if "Intune" in e["event"]]) == 1
        for origin in INTUNE_ORIGINS:  # switched off with one clear status line, not failing
            assert status[origin]["disabled"] and status[origin]["partial"]
            assert "no Intune" in str(status[origin]["reason"])
            assert status[origin]["last_status"] != "failed"
        # Graph was asked once per collection at most, not on every round.
        counts = h.sims.graph.counters.routes
        listed = {
            r: c["requests"]
            for r, c in counts.items()
            if any(r.endswith("/" + o.split(":")[1]) for o in INTUNE_ORIGINS)
        }
        assert sum(listed.values()) == 1, listed
        entities, _ = h.j1_graph()
        types = by_type(entities)
        assert types[m.ACCOUNT.type] == {f"{m.ACCOUNT.type}:{tenant.tenant_id}"}
        assert len(types[m.USER.type]) == 20
        assert not any(t in types for t in (m.MANAGED_DEVICE.type, m.COMPLIANCE_POLICY.type))
        assert json.dumps(logs).count("not applicable") <= 1


async def test_one_object_failing_after_retries_does_not_fail_its_collection(tmp_path: Path) -> None:
    """One policy whose statuses keep answering 503 (no Retry-After) after every retry: it keeps
    its last state, the round commits the other policies' changes, and the next poll reads it."""
    tenant = intune_tenant()
    intune = intune_of(tenant)
    origin = "intune:deviceCompliancePolicies"
    async with running_harness(tenant, tmp_path, notifications=False) as h, intune_runtime(h) as rt:
        assert (await rt.engine.resync()).failed == {}
        rt.graph.backoff_base = 0.001
        flaky, other = [p["id"] for p in intune.list("deviceCompliancePolicies")[:2]]
        _, before = h.j1_graph()
        flaky_rels = {k for k in before if flaky in k}
        for pid in (flaky, other):  # both lose their device statuses in Intune
            intune.update("deviceCompliancePolicies", pid, {"deviceStatuses": []})
        await put_faults(h, {"flaky": [flaky]})
        kept_before = metrics.REGISTRY.get_sample_value("syncd_intune_objects_kept_total", {"origin": origin})
        report = await rt.engine.run_round(origin, force_full=True)  # no exception: the round commits
        await rt.engine.drain()
        _, after = h.j1_graph()
        assert {k for k in after if flaky in k} == flaky_rels  # kept at its last state
        device_rel = m.DEVICE_ASSIGNED_COMPLIANCE_POLICY.type

        def assigned(rels: dict[str, Any], pid: str) -> list[str]:
            return [k for k, r in rels.items() if r["_type"] == device_rel and r["_toEntityKey"] == pid]

        assert assigned(before, other) and not assigned(after, other)  # the other one updated
        assert report.kind == "poll" and origin not in rt.engine.partial
        kept = metrics.REGISTRY.get_sample_value("syncd_intune_objects_kept_total", {"origin": origin})
        assert (kept or 0) - (kept_before or 0) == 1
        route = "GET /{ver}/deviceManagement/deviceCompliancePolicies/{id}/deviceStatuses"
        retries = h.sims.graph.counters.routes[route]
        assert retries["503"] >= rt.graph.max_attempts  # the item was retried, not given up at once

        await put_faults(h, {"flaky": []})
        await rt.engine.run_round(origin)  # an ordinary poll reads the kept policy again
        await rt.engine.drain()
        _, healed = h.j1_graph()
        assert assigned(before, flaky) and not assigned(healed, flaky)
