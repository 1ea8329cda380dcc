"""In-memory state of the J1 sync API simulator: accounts, jobs, the stored graph, faults, counters.

Finalize logic lives here as plain synchronous methods so the HTTP layer only sequences the
documented status steps; each step mutates the graph atomically on the event loop.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from syncd.sim.j1.behaviour import J1Behaviour
from syncd.sim.j1.graph import AccountGraph
from syncd.sim.j1.validation import ApiError, JsonObj, ValidationRules

Source = Literal["api", "integration-external", "integration-managed", "system-internal"]
SyncMode = Literal["DIFF", "PATCH", "CROSS_SCOPE", "OVERRIDE"]
JobStatus = Literal[
    "AWAITING_UPLOADS",
    "FINALIZE_PENDING",
    "FINALIZING_ENTITIES",
    "FINALIZING_RELATIONSHIPS",
    "FINISHED",
    "ABORTED",
    "ABORTED_DUE_TO_INVALID_CONFIGURATION",
    "ERROR_BAD_DATA",
    "ERROR_UNEXPECTED_FAILURE",
]
SOURCES: frozenset[Source] = frozenset(get_args(Source))
SYNC_MODES: frozenset[SyncMode] = frozenset(get_args(SyncMode))
FINALIZING: frozenset[JobStatus] = frozenset(
    {"FINALIZE_PENDING", "FINALIZING_ENTITIES", "FINALIZING_RELATIONSHIPS"}
)
TERMINAL: frozenset[JobStatus] = frozenset(
    {"FINISHED", "ABORTED", "ABORTED_DUE_TO_INVALID_CONFIGURATION", "ERROR_BAD_DATA"}
)
KEY_LIST_FAULTS = ("reject_keys", "bad_data_keys")
MAPPER_SOURCE = "system-mapper"
MAPPER_SCOPE = "system-mapper"
# Fixed namespace so `_id` is a deterministic UUIDv5 of (scope, key), as after the pipeline upgrade.
ID_NAMESPACE = uuid.UUID("6f1c5a0e-2d4b-5b7a-9e3c-1a2b3c4d5e6f")

_ACTION_COUNTERS = [
    f"num{kind}{verb}"
    for kind in ("Entities", "Relationships", "MappedRelationships")
    for verb in ("Created", "Updated", "Deleted")
]
_ERROR_COUNTERS = [
    f"num{kind}{verb}Errors"
    for kind in ("Entity", "Relationship", "MappedRelationship")
    for verb in ("Create", "Update", "Delete")
]
_RAW_COUNTERS = [
    f"num{kind}RawDataEntries{verb}"
    for kind in ("Entity", "Relationship")
    for verb in ("Uploaded", "Created", "Updated", "Deleted")
]
COUNTER_NAMES = [
    "numEntitiesUploaded",
    "numRelationshipsUploaded",
    *_ACTION_COUNTERS,
    *_ERROR_COUNTERS,
    *_RAW_COUNTERS,
]
SYSTEM_FIELDS = frozenset(
    {"_id", "_scope", "_source", "_accountId", "_createdOn", "_beginOn", "_version", "_rawData"}
)


def object_id(scope: str, key: str) -> str:
    """Deterministic `_id` for a graph object: UUIDv5 of scope and key."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{scope}\x1f{key}"))


def now_ms() -> int:
    """Epoch milliseconds, the J1 timestamp unit."""
    return int(time.time() * 1000)


@dataclass
class J1Faults:
    """Switchable faults applied to `/persister/...` calls (never to the admin API)."""

    outage: bool = False
    rate_429: float = 0.0
    count_429: int = 0
    retry_after: float | None = 1.0
    retry_after_http_date: bool = False
    rate_5xx: float = 0.0
    count_5xx: int = 0
    status_5xx: int = 503
    max_body_bytes: int | None = None
    latency_ms: float = 0.0
    path_filter: str | None = None
    reject_keys: list[str] = field(default_factory=list)
    """An upload holding an object whose `_key` contains one of these is refused whole (400)."""
    bad_data_keys: list[str] = field(default_factory=list)
    """A job that staged an object whose `_key` contains one of these ends `ERROR_BAD_DATA`."""

    def update(self, data: Mapping[str, Any]) -> None:
        """Apply a partial JSON update, type-checked so typos fail loudly."""
        known = {f.name: f for f in fields(self)}
        for name, value in data.items():
            if name not in known:
                raise ApiError(400, "UNKNOWN_FAULT", f"unknown fault field {name!r}")
            if name in KEY_LIST_FAULTS:
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise ApiError(400, "INVALID_FAULT", f"{name!r} must be a list of non-empty strings")
                setattr(self, name, list(value))
                continue
            current = getattr(self, name)
            optional = name in ("retry_after", "max_body_bytes", "path_filter")
            if value is None and optional:
                setattr(self, name, None)
                continue
            if isinstance(current, bool) or name == "retry_after_http_date" or name == "outage":
                ok = isinstance(value, bool)
            elif name in ("path_filter",):
                ok = isinstance(value, str)
            elif name in ("count_429", "count_5xx", "status_5xx", "max_body_bytes"):
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else:
                ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            if not ok:
                raise ApiError(400, "INVALID_FAULT", f"bad value for fault {name!r}")
            setattr(
                self,
                name,
                float(value) if name in ("rate_429", "rate_5xx", "latency_ms", "retry_after") else value,
            )
        if not 500 <= self.status_5xx <= 599:
            raise ApiError(400, "INVALID_FAULT", "status_5xx must be a 5xx status")

    def as_json(self) -> JsonObj:
        """Current faults as JSON."""
        return {
            f.name: list(getattr(self, f.name)) if f.name in KEY_LIST_FAULTS else getattr(self, f.name)
            for f in fields(self)
        }

    @staticmethod
    def key_hit(patterns: list[str], key: Any) -> bool:
        """Whether `key` (a `_key`, possibly absent) contains one of `patterns`."""
        return isinstance(key, str) and any(p in key for p in patterns)


@dataclass
class J1SimConfig:
    """Static simulator settings (limits, strictness, finalize pacing)."""

    max_body_bytes: int = 6_000_000
    rules: ValidationRules = field(default_factory=ValidationRules)
    override_max_entities: int = 10_000
    finalize_step_delay: tuple[float, float] = (0.0, 0.02)
    seed: int | None = None
    behaviour: J1Behaviour = field(default_factory=J1Behaviour)
    """The readings of the open points at start (and after `reset`); see `J1Behaviour`."""


@dataclass
class SimJob:
    """One sync job: its configuration, staged uploads and counters."""

    id: str
    account_id: str
    source: Source
    scope: str
    sync_mode: SyncMode
    integration_instance_id: str | None = None
    integration_job_id: str | None = None
    status: JobStatus = "AWAITING_UPLOADS"
    start_timestamp: int = field(default_factory=now_ms)
    end_timestamp: int | None = None
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))
    entities: dict[str, JsonObj] = field(default_factory=dict)
    relationships: dict[str, JsonObj] = field(default_factory=dict)
    delete_entities: list[JsonObj] = field(default_factory=list)
    delete_relationships: list[JsonObj] = field(default_factory=list)
    partial_types: frozenset[str] = frozenset()
    upload_requests: int = 0
    upload_bytes: int = 0
    upload_objects: Counter[str] = field(default_factory=Counter)
    abort_reason: str | None = None
    visited: int = 0
    """Stored objects this job's finalize examined (instrumentation: finalize work must stay
    proportional to the job, not to the account)."""

    def as_json(self) -> JsonObj:
        """The documented job object."""
        job: JsonObj = {
            "id": self.id,
            "source": self.source,
            "scope": self.scope,
            "syncMode": self.sync_mode,
            "accountId": self.account_id,
            "status": self.status,
            "done": self.status in TERMINAL,
            "startTimestamp": self.start_timestamp,
            "endTimestamp": self.end_timestamp,
            "integrationInstanceId": self.integration_instance_id,
            "integrationJobId": self.integration_job_id,
        }
        job.update(self.counters)
        return job


def _user_props(obj: Mapping[str, Any]) -> JsonObj:
    return {k: v for k, v in obj.items() if k not in SYSTEM_FIELDS}


def _class_matches(stored: Any, wanted: Any) -> bool:
    have = set(stored) if isinstance(stored, list) else {stored}
    want = set(wanted) if isinstance(wanted, list) else {wanted}
    return want <= have


class J1SimState:
    """Everything the simulator knows; shared by the API and the admin routes."""

    def __init__(self, accounts: Mapping[str, str] | None = None, config: J1SimConfig | None = None) -> None:
        self.accounts: dict[str, str] = dict(accounts or {})
        self.config = config or J1SimConfig()
        self.faults = J1Faults()
        self.behaviour = self.config.behaviour.copy()
        self.jobs: dict[str, SimJob] = {}
        self.finalizing: dict[tuple[str, str], SimJob] = {}
        """(account, scope) → the job that last entered finalize there (one at a time per scope)."""
        self.graphs: dict[str, AccountGraph] = {}
        self.requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.injected: Counter[str] = Counter()
        self.rng = random.Random(self.config.seed)
        self.tasks: set[asyncio.Task[None]] = set()

    # -- housekeeping -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget jobs, graph, stats, faults and runtime behaviour changes; keep accounts and config."""
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        self.faults = J1Faults()
        self.behaviour = self.config.behaviour.copy()
        self.jobs.clear()
        self.finalizing.clear()
        self.graphs.clear()
        self.requests.clear()
        self.responses.clear()
        self.injected.clear()
        self.rng = random.Random(self.config.seed)

    def graph(self, account_id: str) -> AccountGraph:
        """The account's graph, created on first use."""
        return self.graphs.setdefault(account_id, AccountGraph())

    def job_for(self, account_id: str, job_id: str) -> SimJob:
        """Look a job up; other accounts' jobs are invisible (404)."""
        job = self.jobs.get(job_id)
        if job is None or job.account_id != account_id:
            raise ApiError(404, "JOB_NOT_FOUND", "Job not found")
        return job

    def start_finalize(self, job: SimJob) -> None:
        """Move a job to FINALIZE_PENDING unless another job of its scope is finalizing (400)."""
        key = (job.account_id, job.scope)
        other = self.finalizing.get(key)
        if other is not None and other.status in FINALIZING:
            raise ApiError(400, "SCOPE_FINALIZE_IN_PROGRESS", "Another job of this scope is finalizing")
        self.finalizing[key] = job
        job.status = "FINALIZE_PENDING"

    # -- seeding ------------------------------------------------------------------------------
    def seed_entity(self, account_id: str, scope: str, source: str, props: Mapping[str, Any]) -> JsonObj:
        """Store an entity directly (admin seeding), bypassing jobs."""
        graph = self.graph(account_id)
        key = str(props["_key"])
        eid = object_id(scope, key)
        existing = graph.entities.get(eid)
        stored = self._stamp(
            {k: v for k, v in props.items() if v is not None}, account_id, scope, source, existing
        )
        stored["_id"] = eid
        graph.put_entity(stored)
        return stored

    @staticmethod
    def _stamp(
        props: JsonObj, account_id: str, scope: str, source: str, existing: Mapping[str, Any] | None
    ) -> JsonObj:
        ts = now_ms()
        props.update(
            {
                "_scope": scope,
                "_source": source,
                "_accountId": account_id,
                "_createdOn": existing["_createdOn"] if existing else ts,
                "_beginOn": ts,
                "_version": (int(existing["_version"]) + 1) if existing else 1,
            }
        )
        return props

    # -- faults on staged data ----------------------------------------------------------------
    def has_bad_data(self, job: SimJob) -> bool:
        """Whether the job staged an object the `bad_data_keys` fault marks as bad."""
        patterns = self.faults.bad_data_keys
        if not patterns:
            return False
        staged: list[Iterable[Mapping[str, Any]]] = [
            job.entities.values(),
            job.relationships.values(),
            job.delete_entities,
            job.delete_relationships,
        ]
        return any(J1Faults.key_hit(patterns, obj.get("_key")) for objs in staged for obj in objs)

    # -- finalize: entities -------------------------------------------------------------------
    def _delete_entity(self, job: SimJob, graph: AccountGraph, eid: str) -> None:
        """Delete an entity; its relationships go too (other scopes' only with `cascade_deletes`)."""
        entity = graph.remove_entity(eid)
        if entity is None:
            return
        job.counters["numEntitiesDeleted"] += 1
        for rid in graph.relationship_ids_of(eid):
            job.visited += 1
            rel = graph.relationships[rid]
            if not self.behaviour.cascade_deletes and rel["_scope"] != entity["_scope"]:
                continue  # left dangling until its own scope removes it
            self._remove_relationship(job, graph, rid)

    @staticmethod
    def _remove_relationship(job: SimJob, graph: AccountGraph, rid: str) -> None:
        rel = graph.remove_relationship(rid)
        if rel is not None:
            job.counters[
                "numMappedRelationshipsDeleted" if "_mapping" in rel else "numRelationshipsDeleted"
            ] += 1

    def _write_entity(
        self, job: SimJob, graph: AccountGraph, eid: str, new_props: JsonObj, scope: str
    ) -> None:
        existing = graph.entities.get(eid)
        job.visited += 1
        if existing is not None and _user_props(existing) == new_props:
            return
        stored = self._stamp(
            dict(new_props), job.account_id, scope, existing["_source"] if existing else job.source, existing
        )
        stored["_id"] = eid
        graph.put_entity(stored)
        job.counters["numEntitiesUpdated" if existing else "numEntitiesCreated"] += 1

    def _find_by_id_or_key(self, job: SimJob, graph: AccountGraph, obj: Mapping[str, Any]) -> str | None:
        """Resolve an entity reference for PATCH (job scope only) and OVERRIDE (whole account)."""
        if "_id" in obj:
            ent = graph.entities.get(str(obj["_id"]))
            if ent is None or (job.sync_mode != "OVERRIDE" and ent["_scope"] != job.scope):
                return None
            return str(obj["_id"])
        if job.sync_mode == "OVERRIDE":
            hits = []
            for eid in sorted(graph.entity_ids_with("_key", obj["_key"])):
                job.visited += 1
                e = graph.entities[eid]
                if e["_type"] == obj.get("_type") and e["_source"] != MAPPER_SOURCE:
                    hits.append(eid)
            return hits[0] if len(hits) == 1 else None
        eid = object_id(job.scope, str(obj["_key"]))
        return eid if eid in graph.entities else None

    def finalize_entities(self, job: SimJob) -> None:
        """Apply the job's entity uploads and entity deletes according to its mode."""
        graph = self.graph(job.account_id)
        c = job.counters
        if job.sync_mode == "DIFF":
            kept: set[str] = set()
            for obj in job.entities.values():
                eid = object_id(job.scope, obj["_key"])
                kept.add(eid)
                props = {k: v for k, v in obj.items() if v is not None and k != "_rawData"}
                self._write_entity(job, graph, eid, props, job.scope)
                self._store_raw(job, graph, eid, obj)
            in_scope = graph.entity_ids_in_scope(job.scope)
            job.visited += len(in_scope)
            for eid in sorted(in_scope - kept):
                ent = graph.entities.get(eid)
                if (
                    ent is not None
                    and ent["_source"] != MAPPER_SOURCE
                    and ent["_type"] not in job.partial_types
                ):
                    self._delete_entity(job, graph, eid)
        elif job.sync_mode in ("PATCH", "OVERRIDE"):
            for obj in job.entities.values():
                self._patch_entity(job, graph, obj)
        if self.behaviour.explicit_deletes != "apply":
            return  # accepted at upload, never applied: the strict reading
        for ref in job.delete_entities:
            found = self._resolve_delete(job, graph.entities, ref)
            if found is None:
                c["numEntityDeleteErrors"] += 1
            else:
                self._delete_entity(job, graph, found)

    def _patch_entity(self, job: SimJob, graph: AccountGraph, obj: JsonObj) -> None:
        """PATCH/OVERRIDE: included properties are written, null removes one, others untouched."""
        c = job.counters
        found = self._find_by_id_or_key(job, graph, obj)
        patch = {k: v for k, v in obj.items() if k not in ("_id", "_rawData")}
        if found is None:
            if job.sync_mode == "OVERRIDE" or "_id" in obj:
                c["numEntityUpdateErrors"] += 1  # PATCH by _id and OVERRIDE never create
                return
            found = object_id(job.scope, obj["_key"])
            self._write_entity(
                job, graph, found, {k: v for k, v in patch.items() if v is not None}, job.scope
            )
        else:
            current = graph.entities[found]
            if "_key" in obj and current["_key"] != obj["_key"]:
                c["numEntityUpdateErrors"] += 1
                return
            merged = _user_props(current)
            for name, value in patch.items():
                if value is None:
                    merged.pop(name, None)
                else:
                    merged[name] = value
            self._write_entity(job, graph, found, merged, current["_scope"])
        self._store_raw(job, graph, found, obj)

    def _store_raw(self, job: SimJob, graph: AccountGraph, eid: str, obj: Mapping[str, Any]) -> None:
        raw = obj.get("_rawData")
        if raw is None:
            return
        verb = "Updated" if eid in graph.raw_data else "Created"
        graph.raw_data[eid] = list(raw)
        job.counters[f"numEntityRawDataEntries{verb}"] += len(raw)

    def _resolve_delete(self, job: SimJob, pool: Mapping[str, JsonObj], ref: Mapping[str, Any]) -> str | None:
        """Explicit deletes address the job's own scope, by `_id` or by `_key`."""
        oid = str(ref["_id"]) if "_id" in ref else object_id(job.scope, str(ref["_key"]))
        obj = pool.get(oid)
        if obj is None or obj["_scope"] != job.scope:
            return None
        if "_key" in ref and obj["_key"] != ref["_key"]:
            return None
        if "_type" in ref and obj["_type"] != ref["_type"]:
            return None
        return oid

    # -- finalize: relationships --------------------------------------------------------------
    def _endpoint(
        self, job: SimJob, graph: AccountGraph, rel: Mapping[str, Any], side: str
    ) -> JsonObj | None:
        """Resolve one endpoint. `_xEntityId` is an `_id`. A key without a scope label, or labelled
        with the job's scope, is looked up in the job's scope; a key in another scope needs what
        `cross_scope_reference` asks for; a given `_xEntitySource` must always match."""
        eid = rel.get(f"_{side}EntityId")
        if eid is not None:
            return graph.entities.get(str(eid))
        key = str(rel[f"_{side}EntityKey"])
        scope = rel.get(f"_{side}EntityScope")
        source = rel.get(f"_{side}EntitySource")
        reading = self.behaviour.cross_scope_reference
        ent: JsonObj | None
        if scope is None or scope == job.scope:
            ent = graph.entities.get(object_id(job.scope, key))
            if ent is None and scope is None and reading == "key":
                ent = self._unique_by_key(job, graph, key)
        else:
            ent = graph.entities.get(object_id(str(scope), key))
            if source is None and reading == "key_scope_source":
                return None  # the guide: another scope's entity is named by _key, _scope and _source
        if ent is not None and source is not None and ent["_source"] != source:
            return None
        return ent

    @staticmethod
    def _unique_by_key(job: SimJob, graph: AccountGraph, key: str) -> JsonObj | None:
        """The one non-mapper entity of the account with this `_key`, if exactly one exists."""
        hits = []
        for eid in graph.entity_ids_with("_key", key):
            job.visited += 1
            if graph.entities[eid]["_source"] != MAPPER_SOURCE:
                hits.append(graph.entities[eid])
        return hits[0] if len(hits) == 1 else None

    def _write_relationship(self, job: SimJob, graph: AccountGraph, props: JsonObj, mapped: bool) -> str:
        rid = object_id(job.scope, props["_key"])
        existing = graph.relationships.get(rid)
        job.visited += 1
        prefix = "numMappedRelationships" if mapped else "numRelationships"
        if existing is not None and _user_props(existing) == props:
            return rid
        stored = self._stamp(dict(props), job.account_id, job.scope, job.source, existing)
        stored["_id"] = rid
        graph.put_relationship(stored)
        job.counters[f"{prefix}Updated" if existing else f"{prefix}Created"] += 1
        return rid

    @staticmethod
    def _map_candidates(
        job: SimJob, graph: AccountGraph, keys: tuple[str, ...], target: Mapping[str, Any]
    ) -> list[JsonObj]:
        """Entities that may match a filter group, from the account's property index (no scan)."""
        plain = [k for k in keys if k != "_class"]
        lead = plain[0] if plain else "_class"
        wanted = target.get(lead)
        if lead == "_class" and isinstance(wanted, list):
            wanted = wanted[0] if wanted else None
        if isinstance(wanted, list) or wanted is None:
            return []
        found = [graph.entities[eid] for eid in sorted(graph.entity_ids_with(lead, wanted))]
        job.visited += len(found)
        return found

    def _map_targets(
        self, job: SimJob, graph: AccountGraph, mapping: Mapping[str, Any]
    ) -> list[JsonObj] | None:
        """Find mapping targets across the whole account; create one unless told not to."""
        target = mapping["targetEntity"]
        for keys in mapping["targetFilterKeys"]:
            if not all(k in target for k in keys):
                continue
            hits = [
                e
                for e in self._map_candidates(job, graph, tuple(keys), target)
                if all(
                    _class_matches(e.get(k), target[k]) if k == "_class" else e.get(k) == target[k]
                    for k in keys
                )
            ]
            if hits:
                return sorted(hits, key=lambda e: str(e["_id"]))
        if mapping.get("skipTargetCreation", False):
            return []
        if not isinstance(target.get("_type"), str) or "_class" not in target:
            return None
        key = target.get("_key") or "|".join(
            f"{k}={target[k]}" for group in mapping["targetFilterKeys"] for k in group if k in target
        )
        props = {k: v for k, v in target.items() if v is not None}
        props["_key"] = str(key)
        eid = object_id(MAPPER_SCOPE, str(key))
        stored = self._stamp(props, job.account_id, MAPPER_SCOPE, MAPPER_SOURCE, None)
        stored["_id"] = eid
        graph.put_entity(stored)
        return [stored]

    def _finalize_mapped(self, job: SimJob, graph: AccountGraph, rel: JsonObj, kept: set[str]) -> None:
        mapping = rel["_mapping"]
        source = graph.entities.get(object_id(job.scope, mapping["sourceEntityKey"]))
        targets = self._map_targets(job, graph, mapping) if source is not None else None
        if source is None or targets is None:
            job.counters["numMappedRelationshipCreateErrors"] += 1
            return
        for target in targets:
            fwd = mapping["relationshipDirection"] == "FORWARD"
            frm, to = (source, target) if fwd else (target, source)
            props = dict(rel)
            if len(targets) > 1:
                props["_key"] = f"{rel['_key']}|{target['_id']}"
            props.update(
                {
                    "_fromEntityKey": frm["_key"],
                    "_toEntityKey": to["_key"],
                    "_fromEntityId": frm["_id"],
                    "_toEntityId": to["_id"],
                }
            )
            kept.add(self._write_relationship(job, graph, props, mapped=True))

    def _owns_relationship_set(self, job: SimJob) -> bool:
        """DIFF always; CROSS_SCOPE under the "replace" reading of "a single sync job that owns them"."""
        if job.sync_mode == "DIFF":
            return True
        return job.sync_mode == "CROSS_SCOPE" and self.behaviour.cross_scope_ownership == "replace"

    def finalize_relationships(self, job: SimJob) -> None:
        """Apply relationship uploads (explicit and mapped) and relationship deletes."""
        graph = self.graph(job.account_id)
        kept: set[str] = set()
        for rel in job.relationships.values():
            if "_mapping" in rel:
                self._finalize_mapped(job, graph, rel, kept)
                continue
            kept.add(object_id(job.scope, rel["_key"]))
            frm = self._endpoint(job, graph, rel, "from")
            to = self._endpoint(job, graph, rel, "to")
            if frm is None or to is None:
                job.counters["numRelationshipCreateErrors"] += 1
                continue
            props = {k: v for k, v in rel.items() if v is not None}
            props.update(
                {
                    "_fromEntityKey": frm["_key"],
                    "_toEntityKey": to["_key"],
                    "_fromEntityId": frm["_id"],
                    "_toEntityId": to["_id"],
                }
            )
            self._write_relationship(job, graph, props, mapped=False)
        if self._owns_relationship_set(job):
            in_scope = graph.relationship_ids_in_scope(job.scope)
            job.visited += len(in_scope)
            for rid in sorted(in_scope - kept):
                if graph.relationships[rid]["_type"] not in job.partial_types:
                    self._remove_relationship(job, graph, rid)
        if self.behaviour.explicit_deletes != "apply":
            return
        for ref in job.delete_relationships:
            found = self._resolve_delete(job, graph.relationships, ref)
            if found is None:
                job.counters["numRelationshipDeleteErrors"] += 1
            else:
                self._remove_relationship(job, graph, found)

    # -- admin views --------------------------------------------------------------------------
    def query_graph(
        self,
        scope: str | None,
        type_: str | None,
        account_id: str | None,
        scope_prefix: str | None = None,
    ) -> JsonObj:
        """Entities and relationships, optionally filtered by scope (or scope prefix), `_type` and
        account; scope filters read the scope indexes instead of the whole graph."""
        graphs: Iterable[AccountGraph] = (
            [self.graphs[account_id]]
            if account_id in self.graphs
            else []
            if account_id
            else self.graphs.values()
        )
        entities: list[JsonObj] = []
        relationships: list[JsonObj] = []
        for g in graphs:
            if scope is not None or scope_prefix is not None:
                scopes = [scope] if scope is not None else list(g.scopes_with_prefix(scope_prefix or ""))
                if scope is not None and scope_prefix is not None and not scope.startswith(scope_prefix):
                    scopes = []
                found_e, found_r = g.in_scopes(scopes)
            else:
                found_e, found_r = list(g.entities.values()), list(g.relationships.values())
            entities.extend(e for e in found_e if type_ is None or e["_type"] == type_)
            relationships.extend(r for r in found_r if type_ is None or r["_type"] == type_)
        return {"entities": entities, "relationships": relationships}

    def jobs_view(self) -> list[JsonObj]:
        """Per-job summary for `GET /_sim/jobs`."""
        return [
            {
                "id": j.id,
                "accountId": j.account_id,
                "mode": j.sync_mode,
                "scope": j.scope,
                "source": j.source,
                "status": j.status,
                "abortReason": j.abort_reason,
                "partialTypes": sorted(j.partial_types),
                "uploads": {
                    "requests": j.upload_requests,
                    "bytes": j.upload_bytes,
                    "objects": dict(j.upload_objects),
                },
                "counters": dict(j.counters),
                "visited": j.visited,
            }
            for j in self.jobs.values()
        ]

    def stats_view(self) -> JsonObj:
        """Request counts per route, response counts per status, injected faults."""
        return {
            "requests": dict(self.requests),
            "total": sum(self.requests.values()),
            "responses": {str(k): v for k, v in sorted(self.responses.items())},
            "faultsInjected": dict(self.injected),
        }
