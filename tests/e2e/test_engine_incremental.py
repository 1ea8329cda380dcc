"""One incremental cycle after a resync pushes exactly what changed, with few Graph requests.

Mutations go through the simulator's Tenant; the cycle is what the daemon does on a wake-up:
one delta round per directory resource, then one drain (PATCH, then CROSS_SCOPE).
"""

from __future__ import annotations

from typing import Any

from syncd.model import schema
from syncd.runtime import open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness
from syncd.sim.tenant import Tenant
from tests.e2e.conftest import (
    Expected,
    HarnessFactory,
    JobRecorder,
    assert_graph_matches,
    assert_user_properties,
    expected_directory_graph,
    j1_directory_graph,
)

DELTA_ROUTES = {r: f"GET /v1.0/{r}/delta" for r in ("users", "groups", "devices")}


def _pick_groups(tenant: Tenant) -> dict[str, str]:
    """Groups for each mutation, chosen so the mutations do not overlap."""
    groups = [g["id"] for g in tenant.list("groups")]
    nested_in = {m for g in groups for m in tenant.member_ids(g) if tenant.store_of(m) == "groups"}

    def non_user_members(g: str) -> list[str]:
        return [m for m in tenant.member_ids(g) if tenant.store_of(m) in ("devices", "contacts")]

    # the deleted group: nested in another group and holding a non-user member only it holds
    sole = {
        g
        for g in groups
        for m in non_user_members(g)
        if sum(1 for other in groups if m in tenant.members.get(other, {})) == 1
    }
    deleted = next(g for g in groups[::-1] if g in nested_in and g in sole)
    rest = [g for g in groups[1:] if g != deleted and g not in nested_in and tenant.member_ids(g)]
    return {
        "deleted": deleted,
        "add_to": rest[0],
        "remove_from": rest[1],
        "nest_parent": rest[2],
        "nest_child": rest[3],
    }


def _mutate(tenant: Tenant, restored: str) -> dict[str, Any]:
    users = [u["id"] for u in tenant.list("users")]
    g = _pick_groups(tenant)
    disabled = next(u for u in users[10:] if tenant.get("users", u)["accountEnabled"])  # type: ignore[index]
    renamed, soft, hard = users[1], users[2], users[3]
    tenant.update("users", disabled, {"accountEnabled": False})
    tenant.update("users", renamed, {"displayName": "Renamed Person"})
    tenant.soft_delete("users", soft)
    tenant.hard_delete("users", hard)
    tenant.restore("users", restored)  # soft-deleted before the resync: comes back with its groups
    added = next(u for u in users[20:] if u not in tenant.members[g["add_to"]])
    tenant.add_member(g["add_to"], added)
    removed = next(m for m in tenant.member_ids(g["remove_from"]) if tenant.store_of(m) == "users")
    tenant.remove_member(g["remove_from"], removed)
    assert tenant.add_member(g["nest_parent"], g["nest_child"])
    tenant.soft_delete("groups", g["deleted"])
    return {"disabled": disabled, "renamed": renamed, "restored": restored}


def _job_keys(h: SimHarness, recorder: JobRecorder, first_job: int) -> dict[str, dict[str, set[str]]]:
    """Keys carried by the scope's jobs since `first_job`, per mode and upload field."""
    out: dict[str, dict[str, set[str]]] = {}
    for job in h.sims.j1_state.jobs_view()[first_job:]:
        if job["scope"] != h.scope:
            continue
        mode = job["mode"]
        assert job["status"] == "FINISHED", (mode, job["status"])
        assert mode not in out, f"two {mode} jobs in one cycle"
        keys = recorder.keys[job["id"]]
        out[mode] = {name: set(values) for name, values in keys.items()}
        # every upload field counted by the simulator holds distinct keys: nothing sent twice
        uploaded = {k: v for k, v in job["uploads"]["objects"].items() if v}
        assert uploaded == {k: len(v) for k, v in keys.items() if v}, (mode, uploaded)
        assert all(len(set(v)) == len(v) for v in keys.values()), mode
    return out


async def test_incremental_cycle_pushes_only_the_changes(make_harness: HarnessFactory) -> None:
    tenant = generate_tenant(seed=5, users=1500, groups=150, devices=60, with_intune=False)
    pre_deleted = list(tenant.list("users"))[4]["id"]
    tenant.soft_delete("users", pre_deleted)
    h = await make_harness(tenant)
    async with open_runtime(h.settings()) as rt:
        await rt.engine.resync()
        before = expected_directory_graph(tenant)
        assert_graph_matches(h, before)
        j1_before, _ = j1_directory_graph(h)

        changed = _mutate(tenant, pre_deleted)
        after = expected_directory_graph(tenant)
        h.sims.graph.counters.reset()
        first_job = len(h.sims.j1_state.jobs)
        recorder = JobRecorder(h)
        for origin in DELTA_ROUTES:
            await rt.engine.run_round(origin)
        push = await rt.engine.drain()
        assert await rt.mirror.outbox_depth() == 0

    # Graph: each delta resource answered from its deltaLink in one or two requests
    routes = h.sims.graph.counters.routes
    for resource, route in DELTA_ROUTES.items():
        assert 1 <= routes.get(route, {}).get("requests", 0) <= 2, (resource, routes.get(route))
    assert sum(c["requests"] for c in routes.values()) <= 6, routes

    # J1: the PATCH and CROSS_SCOPE jobs carry exactly the changed keys
    jobs = _job_keys(h, recorder, first_job)
    assert set(jobs) == {"PATCH", "CROSS_SCOPE"}
    patch, cross = jobs["PATCH"], jobs["CROSS_SCOPE"]
    want_upserts = (after.entity_keys() - before.entity_keys()) | {changed["disabled"], changed["renamed"]}
    assert changed["restored"] in want_upserts
    assert patch["entities"] == want_upserts
    assert patch["deleteEntities"] == before.entity_keys() - after.entity_keys()
    assert len(patch["deleteEntities"]) >= 4  # two users, a group, its sole non-user member
    assert not patch["relationships"] and not patch["deleteRelationships"]
    # removed relationships whose endpoints both survive; the others go with their entity
    want_rel_deletes = {
        k for k in before.relationship_keys() - after.relationship_keys() if after.endpoints_exist(k)
    }
    assert cross["relationships"] == after.relationship_keys() - before.relationship_keys()
    assert cross["deleteRelationships"] == want_rel_deletes
    assert len(want_rel_deletes) == 1  # the member removed
    assert not cross["entities"] and not cross["deleteEntities"]
    assert push.entity_upserts == len(want_upserts) and push.relationship_deletes == 1

    # and J1 holds the new graph exactly; unchanged entities were not touched
    assert_graph_matches(h, after)
    assert_user_properties(h, tenant, [changed["disabled"], changed["renamed"], changed["restored"]])
    j1_after, _ = j1_directory_graph(h)
    untouched = (before.entity_keys() & after.entity_keys()) - want_upserts
    assert all(j1_after[k] == j1_before[k] for k in untouched)
    _assert_nested(after, h)


def _assert_nested(after: Expected, h: SimHarness) -> None:
    _, rels = j1_directory_graph(h)
    assert after.relationships[schema.GROUP_HAS_GROUP.type] == {
        k for k, r in rels.items() if r["_type"] == schema.GROUP_HAS_GROUP.type
    }
