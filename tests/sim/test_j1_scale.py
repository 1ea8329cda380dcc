"""Finalize work of a small scope must not grow with the account (many small DIFF partitions), and
the graph's indexes must always equal what a full scan would compute. Work is counted (objects a
job's finalize examined, `SimJob.visited`), never timed."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from syncd.sim.j1 import J1Behaviour, J1SimConfig, J1SimState, SimJob, object_id
from syncd.sim.j1.graph import AccountGraph, index_keys
from syncd.sim.j1.state import SyncMode
from tests.helpers.j1_objects import entity, mapped_to_person, relationship

ACCOUNT = "acct-scale"


def run_job(state: J1SimState, scope: str, mode: SyncMode = "DIFF", **staged: list[dict[str, Any]]) -> SimJob:
    """Finalize a job directly (the HTTP layer adds nothing to the work measured here)."""
    job = SimJob(id=str(uuid.uuid4()), account_id=ACCOUNT, source="api", scope=scope, sync_mode=mode)
    job.entities = {e["_key"]: e for e in staged.get("entities", [])}
    job.relationships = {r["_key"]: r for r in staged.get("relationships", [])}
    job.delete_entities = staged.get("deleteEntities", [])
    job.delete_relationships = staged.get("deleteRelationships", [])
    state.jobs[job.id] = job
    state.finalize_entities(job)
    state.finalize_relationships(job)
    return job


def ent(key: str, type_: str = "t_user", cls: str = "User", **props: Any) -> dict[str, Any]:
    return entity(key, type_, cls, **props)


def rel(frm: str, to: str, cls: str = "HAS", **extra: Any) -> dict[str, Any]:
    return relationship(frm, to, f"t_{cls.lower()}", cls, **extra)


def mapped(frm: str, email: str) -> dict[str, Any]:
    return mapped_to_person(
        f"{frm}|is|{email}", frm, email, type_="t_user_is_person", target_type="t_person", match_on="_class"
    )


def background(state: J1SimState, partitions: int) -> None:
    """`partitions` scopes of 100 objects (60 entities, 40 relationships), plus people to map to."""
    for p in range(partitions):
        scope = f"bg-{p:05d}"
        users = [ent(f"{scope}-u{i:03d}", email=f"{scope}-{i}@x.io") for i in range(30)]
        people = [
            ent(f"{scope}-p{i:03d}", "t_person", "Person", email=f"{scope}-{i}@x.io") for i in range(30)
        ]
        links = [rel(u["_key"], p["_key"], "IS") for u, p in zip(users[:40], people[:40], strict=False)]
        links += [rel(users[i]["_key"], users[i + 1]["_key"]) for i in range(10)]
        run_job(state, scope, entities=users + people, relationships=links)


def partition_round(state: J1SimState) -> list[SimJob]:
    """A small partition's life: first DIFF, an incremental DIFF, a CROSS_SCOPE and a cascade."""
    scope = "part-00001"
    target_scope, target_source = "bg-00000", "api"
    users = [ent(f"part-user-{i:03d}") for i in range(40)]
    things = [ent(f"part-thing-{i:03d}", "t_thing", "Device") for i in range(40)]
    links = [rel(users[i]["_key"], things[i]["_key"]) for i in range(40)]
    cross = [
        {
            **rel(users[i]["_key"], f"bg-00000-u{i:03d}", "KNOWS"),
            "_toEntityScope": target_scope,
            "_toEntitySource": target_source,
        }
        for i in range(5)
    ]
    maps = [mapped(users[i]["_key"], f"bg-00000-{i}@x.io") for i in range(10)]
    jobs = [run_job(state, scope, entities=users + things, relationships=links + cross + maps)]
    changed = [{**u, "title": "new"} for u in users[:10]]
    jobs.append(
        run_job(
            state,
            scope,
            entities=changed + users[20:] + things + [ent("part-user-new")],
            relationships=links[20:] + cross + maps[5:],
        )
    )
    owners = [
        {
            **rel(f"bg-00001-u{i:03d}", f"part-thing-{i + 20:03d}", "OWNS"),
            "_fromEntityScope": "bg-00001",
            "_fromEntitySource": "api",
            "_toEntityScope": scope,
            "_toEntitySource": "api",
        }
        for i in range(5)
    ]
    jobs.append(run_job(state, "part-links-00001", "CROSS_SCOPE", relationships=owners))
    jobs.append(run_job(state, "part-links-00001", "CROSS_SCOPE", relationships=owners[:2]))
    jobs.append(run_job(state, scope, "PATCH", deleteEntities=[{"_key": "part-thing-020"}]))
    return jobs


class ScanCountingDict(dict[str, Any]):
    """A graph table that counts whole-table iterations (a finalize must never need one)."""

    scans = 0

    def __iter__(self) -> Any:
        ScanCountingDict.scans += 1
        return super().__iter__()

    def keys(self) -> Any:
        ScanCountingDict.scans += 1
        return super().keys()

    def values(self) -> Any:
        ScanCountingDict.scans += 1
        return super().values()

    def items(self) -> Any:
        ScanCountingDict.scans += 1
        return super().items()


def test_small_scope_finalize_work_does_not_grow_with_the_account() -> None:
    visited: dict[int, list[int]] = {}
    counters: dict[int, list[dict[str, int]]] = {}
    for partitions in (2, 40):
        state = J1SimState(
            {ACCOUNT: "k"}, J1SimConfig(behaviour=J1Behaviour.from_mapping({"explicit_deletes": "apply"}))
        )
        background(state, partitions)
        graph = state.graph(ACCOUNT)
        # Value indexes are account-level: built once on first use, then kept up to date.
        email_index = graph.ensure_index("email")
        graph.entities = ScanCountingDict(graph.entities)
        graph.relationships = ScanCountingDict(graph.relationships)
        ScanCountingDict.scans = 0
        jobs = partition_round(state)
        assert ScanCountingDict.scans == 0  # no job looked at the whole account
        assert graph.property_index["email"] is email_index  # no per-job rebuild
        visited[partitions] = [j.visited for j in jobs]
        counters[partitions] = [dict(j.counters) for j in jobs]
        assert len(graph.entities) >= partitions * 60
    # Same work and same outcome whether the account holds 200 or 4,000 other objects.
    assert visited[2] == visited[40]
    assert counters[2] == counters[40]
    first, second, cross, cross_again, patch = counters[40]
    assert first["numEntitiesCreated"] == 80 and first["numRelationshipsCreated"] == 45
    assert first["numMappedRelationshipsCreated"] == 10
    assert second["numEntitiesDeleted"] == 10 and second["numEntitiesUpdated"] == 10
    assert second["numEntitiesCreated"] == 1
    assert second["numRelationshipsDeleted"] == 20 and second["numMappedRelationshipsDeleted"] == 5
    assert cross["numRelationshipsCreated"] == 5 and cross_again["numRelationshipsDeleted"] == 3
    assert patch["numEntitiesDeleted"] == 1 and patch["numRelationshipsDeleted"] == 2  # own + OWNS
    # Each job examines about what it uploads plus what its scope holds (here ≤ 200 objects).
    assert all(v <= 400 for v in visited[40]), visited[40]


def check_indexes(graph: AccountGraph) -> None:
    """Every index equals a recomputation from the graph itself."""
    by_scope: dict[str, set[str]] = {}
    for eid, e in graph.entities.items():
        by_scope.setdefault(e["_scope"], set()).add(eid)
    assert graph.entity_ids_by_scope == by_scope
    rel_scope: dict[str, set[str]] = {}
    by_entity: dict[str, set[str]] = {}
    for rid, r in graph.relationships.items():
        rel_scope.setdefault(r["_scope"], set()).add(rid)
        for side in ("_fromEntityId", "_toEntityId"):
            by_entity.setdefault(r[side], set()).add(rid)
    assert graph.relationship_ids_by_scope == rel_scope
    assert graph.relationship_ids_by_entity == by_entity
    for name, index in graph.property_index.items():
        expected: dict[Any, set[str]] = {}
        for eid, e in graph.entities.items():
            for key in index_keys(e.get(name)):
                expected.setdefault(key, set()).add(eid)
        assert index == expected, name


@pytest.mark.parametrize("behaviour", [J1Behaviour(), J1Behaviour.permissive()], ids=["strict", "permissive"])
def test_indexes_stay_exact_through_every_kind_of_change(behaviour: J1Behaviour) -> None:
    state = J1SimState({ACCOUNT: "k"}, J1SimConfig(behaviour=behaviour))
    background(state, 3)
    graph = state.graph(ACCOUNT)
    partition_round(state)
    check_indexes(graph)
    # Property changes that move an entity between index entries, list values, class lists.
    run_job(
        state,
        "bg-00000",
        "PATCH",
        entities=[
            {"_key": "bg-00000-u000", "email": "moved@x.io", "tags": ["a", "b"]},
            {"_key": "bg-00000-u001", "_type": "t_user", "_class": ["User", "Person"], "email": None},
        ],
    )
    run_job(state, "bg-00001")  # an empty DIFF empties a scope
    run_job(state, "bg-00002", "PATCH", deleteEntities=[{"_key": "bg-00002-u005"}])
    check_indexes(graph)
    assert "bg-00001" not in graph.entity_ids_by_scope
    assert graph.entities[object_id("bg-00000", "bg-00000-u000")]["email"] == "moved@x.io"
