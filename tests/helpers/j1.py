"""The J1 simulator in the tests: its readings of the J1 docs, J1 ≡ mirror property by property,
probing it like the daemon does at its first start, and the keys of every job it finished."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from bench.kit.truth import j1_graph
from syncd.runtime import Runtime
from syncd.sim.harness import SimHarness
from syncd.sim.j1 import SimJob
from syncd.sim.j1.behaviour import J1Behaviour

J1_SYSTEM = frozenset(
    {
        "_id",
        "_scope",
        "_source",
        "_accountId",
        "_createdOn",
        "_beginOn",
        "_endOn",
        "_version",
        "_deleted",
        "_rawData",
        "_fromEntityId",
        "_toEntityId",
        "_fromEntityScope",
        "_toEntityScope",
        "_fromEntitySource",
        "_toEntitySource",
    }
)

STRICT: dict[str, Any] = {}
PERMISSIVE: dict[str, Any] = J1Behaviour.permissive().as_json()
MIXED: dict[str, Any] = {
    "explicit_deletes": "ignore",
    "cross_scope_ownership": "additive",
    "cross_scope_same_scope": "reject",
    "cross_scope_reference": "key",
    "cascade_deletes": False,
}
"""Additive CROSS_SCOPE without explicit deletes or same-scope endpoints, and no cascade."""
READINGS = {"strict": STRICT, "permissive": PERMISSIVE, "mixed": MIXED}
ONE_SWITCH_EACH: dict[str, dict[str, Any]] = {
    **{f"{name}={value}": {name: value} for name, value in PERMISSIVE.items() if name != "cascade_deletes"},
    "cascade_deletes=False": {"cascade_deletes": False},
}
"""The strict reading with one switch flipped to its permissive value, for each switch."""


def _props(obj: dict[str, Any]) -> dict[str, Any]:
    """What a client controls of a stored object (J1 drops null properties)."""
    return {k: v for k, v in obj.items() if k not in J1_SYSTEM and v is not None}


def _mirror_live(conn: sqlite3.Connection) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    refused = {(k, key) for k, key in conn.execute("SELECT kind, key FROM j1_refused")}
    entities = {
        key: json.loads(data)
        for key, data in conn.execute("SELECT key, data FROM entities WHERE deleted = 0")
        if ("entity", key) not in refused
    }
    relationships = {
        key: json.loads(data)
        for key, data, frm, to in conn.execute(
            "SELECT key, data, from_key, to_key FROM relationships"
            " WHERE deleted = 0 AND ends_live = 1 AND to_key IS NOT NULL"
        )
        if ("relationship", key) not in refused and frm in entities and to in entities
    }
    return entities, relationships


async def j1_mismatches(h: SimHarness, rt: Runtime) -> list[str]:
    """Every difference between J1 (syncd's scopes) and the mirror's live graph, properties included
    (mapped relationships aside: J1 resolves them into relationships of its own)."""
    want_entities, want_rels = await rt.mirror.read_with("comparing", _mirror_live)
    got_entities, got_rels = j1_graph(h)
    got_rels = {k: r for k, r in got_rels.items() if "_mapping" not in r}
    problems: list[str] = []
    for kind, want, got in (("entity", want_entities, got_entities), ("relationship", want_rels, got_rels)):
        missing, extra = set(want) - set(got), set(got) - set(want)
        if missing:
            problems.append(f"{len(missing)} {kind} missing in J1, e.g. {sorted(missing)[:3]}")
        if extra:
            problems.append(f"{len(extra)} {kind} in J1 but not in the mirror, e.g. {sorted(extra)[:3]}")
        for key in set(want) & set(got):
            if _props(want[key]) != _props(got[key]):
                diff = {
                    p: (want[key].get(p), got[key].get(p))
                    for p in set(_props(want[key])) | set(_props(got[key]))
                    if _props(want[key]).get(p) != _props(got[key]).get(p)
                }
                problems.append(f"{kind} {key}: properties differ {diff}")
                break
    return problems


async def assert_j1_equals_mirror(h: SimHarness, rt: Runtime) -> None:
    problems = await j1_mismatches(h, rt)
    assert not problems, "\n".join(problems)


class JobRecorder:
    """Keeps the keys of every job the J1 simulator finalizes (it drops them once FINISHED)."""

    def __init__(self, h: SimHarness) -> None:
        self.keys: dict[str, dict[str, list[str]]] = {}
        state = h.sims.j1_state
        finalize = state.finalize_entities

        def record(job: SimJob) -> None:
            self.keys[job.id] = {
                "entities": list(job.entities),
                "relationships": list(job.relationships),
                "deleteEntities": [str(d["_key"]) for d in job.delete_entities],
                "deleteRelationships": [str(d["_key"]) for d in job.delete_relationships],
            }
            finalize(job)

        # wrap the simulator's own step: the jobs are watched, not changed
        state.finalize_entities = record  # type: ignore[method-assign]
