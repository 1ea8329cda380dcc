"""J1 holds the mirror's graph under every reading of J1's documentation (the J1 simulator's
switches), whatever the probe proved; jobs are verified, refused objects set aside, crashes and
layout changes leave no gap."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bench.kit.truth import assert_graph_matches, expected_directory
from syncd import metrics
from syncd.j1.capabilities import DOCUMENTED_BASELINE, KV_KEY, Behaviour
from syncd.j1.partitions import parse_scope
from syncd.j1.writer import LAYOUT_KEY, PENDING_LAYOUT_KEY
from syncd.runtime import open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sim.tenant import Tenant
from tests.e2e.directory_changes import mutate_directory
from tests.helpers.harness import HarnessFactory
from tests.helpers.j1 import (
    MIXED,
    ONE_SWITCH_EACH,
    PERMISSIVE,
    READINGS,
    STRICT,
    assert_j1_equals_mirror,
)

SOURCES = {"sync": {"sources": ["users", "groups", "devices"]}}


def _tenant(users: int = 200, seed: int = 31) -> Tenant:
    return generate_tenant(seed=seed, users=users, groups=users // 10, devices=users // 20, with_intune=False)


async def _cycle(rt: Any) -> Any:
    for origin in ("users", "groups", "devices"):
        await rt.engine.run_round(origin)
    return await rt.engine.drain()


@pytest.mark.parametrize("reading", sorted(READINGS) + sorted(ONE_SWITCH_EACH))
async def test_directory_changes_reach_j1_under_every_reading(
    make_harness: HarnessFactory, reading: str
) -> None:
    tenant = _tenant()
    pre_deleted = list(tenant.list("users"))[4]["id"]
    tenant.soft_delete("users", pre_deleted)
    h = await make_harness(tenant, j1_behaviour={**READINGS, **ONE_SWITCH_EACH}[reading])
    async with open_runtime(h.settings(SOURCES)) as rt:
        caps = await rt.probe_j1()
        assert caps.findings[DOCUMENTED_BASELINE].ok is True
        await rt.engine.resync()
        await assert_j1_equals_mirror(h, rt)
        mutate_directory(tenant, pre_deleted)
        report = await _cycle(rt)
        assert report.verification_failures == 0 and report.failed_partitions == 0, report
        assert await rt.mirror.outbox_depth() == 0
        await assert_j1_equals_mirror(h, rt)
        assert_graph_matches(h, expected_directory(tenant))
        if reading == "permissive":
            assert {"PATCH", "CROSS_SCOPE"} <= set(report.jobs), "the probed faster paths were used"


@pytest.mark.parametrize(
    ("reading", "proven"),
    [
        (STRICT, {DOCUMENTED_BASELINE, Behaviour.CASCADE_DELETES}),
        (
            PERMISSIVE,
            {
                DOCUMENTED_BASELINE,
                Behaviour.EXPLICIT_ENTITY_DELETES,
                Behaviour.CROSS_SCOPE_ADDITIVE,
                Behaviour.CROSS_SCOPE_DELETES,
                Behaviour.CROSS_SCOPE_SAME_SCOPE,
            },
        ),
        (MIXED, {DOCUMENTED_BASELINE, Behaviour.CROSS_SCOPE_ADDITIVE}),
    ],
)
async def test_the_probe_finds_what_the_account_does_and_cleans_up(
    make_harness: HarnessFactory, reading: dict[str, Any], proven: set[str]
) -> None:
    h = await make_harness(_tenant(20), j1_behaviour=reading)
    async with open_runtime(h.settings(SOURCES)) as rt:
        caps = await rt.probe_j1()
    assert {name for name, f in caps.findings.items() if f.ok} == proven
    if reading is STRICT:  # seen failing, not merely untested
        assert caps.findings[Behaviour.CROSS_SCOPE_ADDITIVE].ok is False
        assert caps.findings[Behaviour.EXPLICIT_ENTITY_DELETES].ok is False
    if reading is MIXED:
        assert caps.findings[Behaviour.CASCADE_DELETES].ok is False
        assert caps.findings[Behaviour.CROSS_SCOPE_SAME_SCOPE].ok is False
    # the throw-away scopes are empty again
    stored = h.sims.j1_state.query_graph(None, None, None)
    assert stored == {"entities": [], "relationships": []}


async def test_a_behaviour_the_account_stops_honouring_is_caught_and_abandoned(
    make_harness: HarnessFactory,
) -> None:
    tenant = _tenant()
    h = await make_harness(tenant, j1_behaviour=PERMISSIVE)
    metrics.reset()
    ops = {"alerts": {"targets": {"ops": {"kind": "webhook", "url": "http://127.0.0.1:9/alerts"}}}}
    async with open_runtime(h.settings({**SOURCES, **ops})) as rt:
        await rt.probe_j1()
        assert rt.engine.writer.capabilities.proven(Behaviour.CROSS_SCOPE_ADDITIVE)
        await rt.engine.resync()
        # J1 changes its mind: a CROSS_SCOPE job now replaces what its scope owned
        h.sims.j1_state.behaviour.update({"cross_scope_ownership": "replace"})
        group = next(g["id"] for g in tenant.list("groups") if 3 < len(tenant.member_ids(g["id"])) < 50)
        user = next(u["id"] for u in tenant.list("users") if u["id"] not in tenant.members[group])
        tenant.add_member(group, user)
        first = await _cycle(rt)
        assert first.verification_failures >= 1  # numRelationshipsDeleted > 0: never acknowledged
        assert await rt.mirror.outbox_depth() > 0
        assert not rt.engine.writer.capabilities.proven(Behaviour.CROSS_SCOPE_ADDITIVE)
        stored = await rt.mirror.get_value(KV_KEY)
        assert stored["findings"][Behaviour.CROSS_SCOPE_ADDITIVE]["ok"] is False  # revoked, remembered
        assert rt.engine.writer.health_problems()
        assert metrics.J1_VERIFICATION_FAILURES.labels(mode="CROSS_SCOPE")._value.get() >= 1
        alerts = await rt.mirror.read_with(
            "alerts", lambda c: c.execute("SELECT rule_id, target FROM alerts").fetchall()
        )
        assert ("syncd-j1-job-mismatch", "ops") in alerts
        second = await rt.engine.drain()  # the documented path: a DIFF of the partition
        assert second.verification_failures == 0 and set(second.jobs) == {"DIFF"}
        assert rt.engine.writer.health_problems() == []  # resolved once J1 holds it as sent
        assert await rt.mirror.outbox_depth() == 0
        await assert_j1_equals_mirror(h, rt)


async def test_refused_objects_are_set_aside_and_the_rest_goes_on(make_harness: HarnessFactory) -> None:
    tenant = _tenant()
    h = await make_harness(tenant)
    bad = list(tenant.list("users"))[7]["id"]
    h.sims.j1_state.faults.update({"reject_keys": [bad]})
    async with open_runtime(h.settings(SOURCES)) as rt:
        report = await rt.engine.resync()
        assert report.push is not None and report.push.refused >= 1
        refused = await rt.mirror.refused_objects()
        # the user, and its user → Person mapping (whose key names the user too)
        assert {r.key for r in refused if r.kind == "entity"} == {bad}
        assert {r.key.split("|")[0] for r in refused if r.kind == "relationship"} == {bad}
        entities, relationships = h.j1_graph()
        assert bad not in entities and len(entities) > 200
        assert not [k for k in relationships if bad in k]  # they wait for their endpoint
        await assert_j1_equals_mirror(h, rt)  # the set-aside objects aside, J1 equals the mirror
        # J1 accepts it again and it changes at the source: it goes through, its relationships too
        h.sims.j1_state.faults.update({"reject_keys": []})
        tenant.update("users", bad, {"jobTitle": "Fixed"})
        await _cycle(rt)
        assert {r.kind for r in await rt.mirror.refused_objects()} == {"relationship"}  # unchanged
        entities, relationships = h.j1_graph()
        assert entities[bad]["jobTitle"] == "Fixed"
        assert [k for k in relationships if k.endswith(bad)]
        await assert_j1_equals_mirror(h, rt)
        # a full resync tries every set-aside object again
        await rt.engine.resync()
        assert await rt.mirror.refused_count() == 0
        await assert_j1_equals_mirror(h, rt)


async def test_a_job_j1_keeps_failing_is_narrowed_to_the_bad_object(make_harness: HarnessFactory) -> None:
    tenant = _tenant(60)
    h = await make_harness(tenant)
    bad = list(tenant.list("users"))[3]["id"]
    async with open_runtime(h.settings(SOURCES)) as rt:
        rt.engine.writer.retry_base = 0.01
        await rt.engine.resync()
        h.sims.j1_state.faults.update({"bad_data_keys": [bad]})
        tenant.update("users", bad, {"jobTitle": "Poison"})
        for _ in range(6):
            await _cycle(rt)
            if await rt.mirror.refused_count():
                break
            await asyncio.sleep(0.1)
        assert [r.key for r in await rt.mirror.refused_objects()] == [bad]
        tenant.update("users", list(tenant.list("users"))[9]["id"], {"jobTitle": "Still flows"})
        report = await _cycle(rt)
        assert report.failed_partitions == 0
        assert await rt.mirror.outbox_depth() == 0
        # the isolation scope was emptied
        assert not h.sims.j1_state.query_graph(f"{h.scope}-isolate", None, None)["entities"]


async def test_a_job_left_open_by_a_crash_is_aborted_and_its_partition_resent(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(_tenant(30))
    async with open_runtime(h.settings(SOURCES)) as rt:
        await rt.engine.resync()
        layout = await rt.engine.writer.layout()
        assert layout is not None
        scope = next(iter(layout.partitions())).scope(layout.base)
        job = await rt.j1.create_job(scope=scope, sync_mode="PATCH")
        await rt.mirror.record_job(str(job["id"]), scope, "PATCH")
    async with open_runtime(h.settings(SOURCES)) as rt:  # the next start
        assert await rt.engine.writer.start() == 1
        assert await rt.mirror.jobs_in_flight() == []
        state = await rt.mirror.partition_state(scope)
        assert state is not None and state.needs_diff and state.uncertain
        assert (await rt.j1.get_job(str(job["id"])))["status"] == "ABORTED"
        report = await rt.engine.drain()
        assert report.jobs["DIFF"] == 1
        await assert_j1_equals_mirror(h, rt)


async def test_a_single_scope_deployment_moves_to_partitions_without_a_gap(
    make_harness: HarnessFactory,
) -> None:
    tenant = _tenant(80)
    h = await make_harness(tenant)
    async with open_runtime(h.settings(SOURCES)) as rt:
        for origin in ("account", "users", "groups", "devices"):
            await rt.engine.run_round(origin, force_full=True)
        # what syncd before partitions did: one DIFF of everything into the single scope
        entities, relationships = await rt.mirror.read_with("legacy", _legacy_graph)
        await rt.j1.run_job(h.scope, "DIFF", entities=entities, relationships=relationships)
        await rt.mirror.set_cursor("full_push", "1")
        legacy_count = len(h.sims.j1_state.query_graph(h.scope, None, None)["entities"])
        assert legacy_count == len(entities)
        jobs_before = len(h.sims.j1_state.jobs_view())
        await rt.engine.drain()
        assert await rt.mirror.get_value(PENDING_LAYOUT_KEY) is None
        assert await rt.mirror.get_value(LAYOUT_KEY) is not None
        await assert_j1_equals_mirror(h, rt)
    jobs = h.sims.j1_state.jobs_view()[jobs_before:]
    emptied = [i for i, j in enumerate(jobs) if j["scope"] == h.scope]
    assert len(emptied) == 1 and jobs[emptied[0]]["counters"]["numEntitiesDeleted"] == legacy_count
    # every partition was filled before the old scope was emptied
    assert all(parse_scope(j["scope"]) and j["status"] == "FINISHED" for j in jobs[: emptied[0]])
    assert not h.sims.j1_state.query_graph(h.scope, None, None)["entities"]


def _legacy_graph(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import json

    entities = [json.loads(d) for (d,) in conn.execute("SELECT data FROM entities WHERE deleted = 0")]
    relationships = [
        json.loads(d)
        for (d,) in conn.execute("SELECT data FROM relationships WHERE deleted = 0 AND ends_live = 1")
    ]
    return entities, relationships


async def test_a_grown_tenant_gets_more_partitions_without_a_gap(make_harness: HarnessFactory) -> None:
    tenant = _tenant(120)
    h = await make_harness(tenant)
    async with open_runtime(h.settings(SOURCES)) as rt:
        await rt.engine.resync()
        small = await rt.engine.writer.layout()
        assert small is not None
        for i in range(400):
            template = {k: v for k, v in next(iter(tenant.list("users"))).items() if k != "id"}
            tenant.upsert("users", {**template, "displayName": f"Hire {i}", "mail": f"hire{i}@example.com"})
        report = await rt.engine.resync()
        assert report.failed == {}
        big = await rt.engine.writer.layout()
        assert big is not None and big.entity_bits > small.entity_bits
        await assert_j1_equals_mirror(h, rt)
        old_scopes = set(small.scopes()) - set(big.scopes())
        assert old_scopes and not [
            e for e in h.sims.j1_state.query_graph(None, None, None)["entities"] if e["_scope"] in old_scopes
        ]
