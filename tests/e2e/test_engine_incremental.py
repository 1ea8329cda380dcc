"""One incremental cycle after a resync pushes only what changed, with few Graph requests.

Mutations go through the simulator's Tenant; the cycle is what the daemon does on a wake-up:
one delta round per directory resource, then one drain: a job only for the J1 partitions that
hold a change (PATCH for entity upserts alone, else a DIFF of that one small partition).
"""

from __future__ import annotations

from typing import Any

from bench.kit.sim_admin import syncd_jobs
from bench.kit.truth import (
    Expected,
    assert_graph_matches,
    assert_user_properties,
    expected_directory,
    j1_graph,
)
from syncd.j1.partitions import PartKind
from syncd.mirror.keyhash import key_hash
from syncd.model import schema
from syncd.runtime import open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness
from tests.e2e.directory_changes import mutate_directory
from tests.helpers.harness import HarnessFactory
from tests.helpers.j1 import JobRecorder

DELTA_ROUTES = {r: f"GET /v1.0/{r}/delta" for r in ("users", "groups", "devices")}


Job = tuple[dict[str, Any], dict[str, set[str]]]


def _jobs(h: SimHarness, recorder: JobRecorder, first_job: int) -> list[Job]:
    """(job, keys per upload field) of syncd's jobs since `first_job`."""
    out = []
    for job in syncd_jobs(h, first_job):
        assert job["status"] == "FINISHED", (job["mode"], job["status"])
        keys = recorder.keys[job["id"]]
        # every upload field counted by the simulator holds distinct keys: nothing sent twice
        uploaded = {k: v for k, v in job["uploads"]["objects"].items() if v}
        assert uploaded == {k: len(v) for k, v in keys.items() if v}, (job["mode"], uploaded)
        assert all(len(set(v)) == len(v) for v in keys.values()), job["mode"]
        out.append((job, {name: set(values) for name, values in keys.items()}))
    return out


async def test_incremental_cycle_pushes_only_the_changes(
    make_harness: HarnessFactory, j1_reading: str
) -> None:
    tenant = generate_tenant(seed=5, users=1500, groups=150, devices=60, with_intune=False)
    pre_deleted = list(tenant.list("users"))[4]["id"]
    tenant.soft_delete("users", pre_deleted)
    h = await make_harness(tenant)
    async with open_runtime(h.settings()) as rt:
        await rt.engine.resync()
        before = expected_directory(tenant)
        assert_graph_matches(h, before)
        j1_before, _ = j1_graph(h)

        changed = mutate_directory(tenant, pre_deleted)
        after = expected_directory(tenant)
        h.sims.graph.counters.reset()
        first_job = len(h.sims.j1_state.jobs)
        recorder = JobRecorder(h)
        for origin in DELTA_ROUTES:
            await rt.engine.run_round(origin)
        push = await rt.engine.drain()
        assert await rt.mirror.outbox_depth() == 0
        layout = await rt.engine.writer.layout()
    assert layout is not None

    # Graph: each delta resource answered from its deltaLink in one or two requests
    routes = h.sims.graph.counters.routes
    for resource, route in DELTA_ROUTES.items():
        assert 1 <= routes.get(route, {}).get("requests", 0) <= 2, (resource, routes.get(route))
    assert sum(c["requests"] for c in routes.values()) <= 6, routes

    # J1: a job only on partitions that hold a change
    want_upserts = (after.entity_keys() - before.entity_keys()) | {changed["disabled"], changed["renamed"]}
    assert changed["restored"] in want_upserts
    want_deletes = before.entity_keys() - after.entity_keys()
    assert len(want_deletes) >= 4  # two users, a group, its sole non-user member
    rel_changes = before.relationship_keys() ^ after.relationship_keys()
    removed_rels = before.relationship_keys() - after.relationship_keys()
    assert sum(1 for k in removed_rels if after.endpoints_exist(k)) == 1  # the member removed
    # mapped user → Person relationships live with their user: users that came or went
    users = before.entities[schema.USER.type] | after.entities[schema.USER.type]
    mapped_sources = (after.entity_keys() ^ before.entity_keys()) & users

    def scope(kind: PartKind, key: str) -> str:
        return layout.partition_of(kind, key_hash(key)).scope(layout.base)

    entity_scopes = {scope("e", k) for k in want_upserts | want_deletes | mapped_sources}
    relationship_scopes = {scope("r", k) for k in rel_changes}
    jobs = _jobs(h, recorder, first_job)
    assert jobs and len(jobs) <= len(entity_scopes) + len(relationship_scopes)
    carried: set[str] = set()
    for job, keys in jobs:
        assert job["scope"] in entity_scopes | relationship_scopes, job["scope"]
        carried |= keys["entities"]
        if job["mode"] == "PATCH":
            # upserts only: exactly changed entities, no delete (none is proven on this account)
            assert keys["entities"] <= want_upserts and not keys["deleteEntities"], keys
        else:
            assert job["mode"] == "DIFF", job["mode"]
            assert len(keys["entities"]) + len(keys["relationships"]) <= 200
        assert not keys["deleteEntities"] and not keys["deleteRelationships"]
    assert want_upserts <= carried
    assert push.verification_failures == 0 and push.failed_partitions == 0

    # and J1 holds the new graph exactly; unchanged entities were not touched
    assert_graph_matches(h, after)
    assert_user_properties(h, tenant, [changed["disabled"], changed["renamed"], changed["restored"]])
    j1_after, _ = j1_graph(h)
    untouched = (before.entity_keys() & after.entity_keys()) - want_upserts
    assert all(j1_after[k] == j1_before[k] for k in untouched)
    _assert_nested(after, h)


def _assert_nested(after: Expected, h: SimHarness) -> None:
    _, rels = j1_graph(h)
    assert after.relationships[schema.GROUP_HAS_GROUP.type] == {
        k for k, r in rels.items() if r["_type"] == schema.GROUP_HAS_GROUP.type
    }
