"""Deciding, for one J1 partition, which job carries its pending changes (pure: no I/O).

Documented path (always available):
* entity upserts only → a PATCH job of just those entities ("properties you include are
  written, properties you don't include are untouched": a property that disappeared is sent as
  null);
* anything else (an entity or relationship deleted, a relationship changed, a mapped relationship
  changed, a partition flagged or doubtful) → a DIFF job of the whole partition.

Faster paths, only for behaviours the probe proved on the account (syncd/j1/capabilities.py):
explicit ``deleteEntities`` in the PATCH job; relationship changes as an additive CROSS_SCOPE job
(with ``deleteRelationships`` and same-scope endpoints only when those are proven too).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from syncd.j1.capabilities import Behaviour, Capabilities
from syncd.j1.partitions import ENTITY_PART, SOURCE, Layout, Partition
from syncd.j1.verify import Expectation
from syncd.mirror import UNKNOWN_HASH, PartitionSnapshot, PartitionState, SnapshotRow
from syncd.mirror.outbox import ObjectId

Mode = Literal["DIFF", "PATCH", "CROSS_SCOPE"]


@dataclass
class PartitionPlan:
    """One partition's job (or none) and what J1 holds once it is FINISHED and verified."""

    partition: Partition
    scope: str
    mode: Mode | None
    """None: nothing to send; the pending rows are already in step with J1 and are only settled."""
    reason: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    relationships: list[dict[str, Any]] = field(default_factory=list)
    delete_entities: list[dict[str, Any]] = field(default_factory=list)
    delete_relationships: list[dict[str, Any]] = field(default_factory=list)
    expectation: Expectation = field(default_factory=Expectation)
    sent: dict[ObjectId, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    absent: set[ObjectId] = field(default_factory=set)
    settled: set[ObjectId] | None = None
    behaviours: list[Behaviour] = field(default_factory=list)
    """Undocumented behaviours this job relies on (revoked if the job contradicts them)."""
    types: dict[str, int] = field(default_factory=dict)
    """Uploaded objects per ``_type`` (metrics)."""
    deleted_types: dict[str, int] = field(default_factory=dict)
    """Explicitly deleted objects per ``_type`` (metrics)."""

    @property
    def objects(self) -> int:
        return (
            len(self.entities)
            + len(self.relationships)
            + len(self.delete_entities)
            + len(self.delete_relationships)
        )

    def drop(self, kind: Literal["entity", "relationship"], key: str) -> None:
        """Leave a refused object out: J1 does not hold it after this job (a DIFF deletes it)."""
        field_ = self.entities if kind == "entity" else self.relationships
        field_[:] = [o for o in field_ if o.get("_key") != key]
        self.sent.pop((kind, key), None)
        exp = self.expectation
        if kind == "entity":
            exp.entities_sent = len(self.entities)
            exp.entities_created_min = 0
            if exp.entities_deleted is not None and self.mode == "DIFF":
                exp.entities_deleted = (exp.entities_deleted[0], exp.entities_deleted[1] + 1)
        else:
            if exp.relationships_sent is not None:
                exp.relationships_sent = len([r for r in self.relationships if "_mapping" not in r])
            exp.relationships_created_min = 0
            if exp.relationships_deleted is not None and self.mode == "DIFF":
                exp.relationships_deleted = (
                    exp.relationships_deleted[0],
                    exp.relationships_deleted[1] + 1,
                )
        if self.mode == "DIFF":
            self.absent.add((kind, key))


def _id(row: SnapshotRow) -> ObjectId:
    return (row.kind, row.key)


def _certainly_present(row: SnapshotRow) -> bool:
    return row.pushed_hash is not None and row.pushed_hash != UNKNOWN_HASH


def patch_object(row: SnapshotRow) -> dict[str, Any]:
    """The entity as a PATCH sends it: properties J1 holds that are no longer set become null."""
    obj = row.object()
    for name in row.pushed_props:
        if name not in obj and not name.startswith("_"):
            obj[name] = None
    return obj


class PartitionPlanner:
    """Plans jobs for partitions of one layout, with the account's proven behaviours."""

    def __init__(
        self, layout: Layout, capabilities: Capabilities, *, fast_paths: bool, partial_types: Collection[str]
    ) -> None:
        self.layout = layout
        self.caps = capabilities
        self.fast_paths = fast_paths
        self.partial_types = frozenset(partial_types)

    def _proven(self, behaviour: Behaviour) -> bool:
        return self.fast_paths and self.caps.proven(behaviour)

    def plan(
        self, partition: Partition, snap: PartitionSnapshot, state: PartitionState | None
    ) -> PartitionPlan:
        scope = partition.scope(self.layout.base)
        if partition.kind == ENTITY_PART:
            return self._plan_entities(partition, scope, snap, state)
        return self._plan_relationships(partition, scope, snap, state)

    # --- entity partitions ---------------------------------------------------------------------

    def _plan_entities(
        self, partition: Partition, scope: str, snap: PartitionSnapshot, state: PartitionState | None
    ) -> PartitionPlan:
        entities = [r for r in snap.rows if r.kind == "entity"]
        live_entities = {r.key for r in entities if not r.deleted and not snap.is_refused(r)}

        def desired(row: SnapshotRow) -> bool:
            if row.deleted or snap.is_refused(row):
                return False
            return row.kind == "entity" or (row.ends_live and (row.from_key or "") in live_entities)

        pending = [r for r in snap.rows if _id(r) in snap.pending]
        upserts = [r for r in pending if r.kind == "entity" and desired(r) and r.hash != r.pushed_hash]
        deletes = [
            r
            for r in pending
            if r.kind == "entity"
            and not desired(r)
            and r.pushed_hash is not None
            and not snap.is_refused(r)
            and r.type not in self.partial_types
        ]
        mapped_changes = [
            r
            for r in pending
            if r.kind == "relationship"
            and ((desired(r) and r.hash != r.pushed_hash) or (not desired(r) and r.pushed_hash is not None))
        ]
        reason = self._diff_reason(state, snap)
        if reason is None and mapped_changes:
            reason = "a mapped relationship changed"
        fast_deletes = self._proven(Behaviour.EXPLICIT_ENTITY_DELETES) and all(
            _certainly_present(r) for r in deletes
        )
        if reason is None and deletes and not fast_deletes:
            reason = "an entity was deleted"
        if reason is not None:
            return self._diff(partition, scope, snap, state, reason, [r for r in snap.rows if desired(r)])
        plan = PartitionPlan(partition, scope, None, "in step", settled=set(snap.pending))
        if not upserts and not deletes:
            return plan
        plan.mode = "PATCH"
        plan.reason = "entity upserts" + (" and explicit deletes" if deletes else "")
        plan.entities = [patch_object(r) for r in upserts]
        plan.delete_entities = [{"_key": r.key} for r in deletes]
        plan.sent = {_id(r): (r.hash, r.object()) for r in upserts}
        plan.absent = {_id(r) for r in deletes}
        plan.expectation = Expectation(
            entities_sent=len(upserts),
            entities_created_min=0 if _uncertain(state) else sum(1 for r in upserts if r.pushed_hash is None),
            entities_deleted=(len(deletes), len(deletes)),
            relationships_deleted=None if deletes else (0, 0),
        )
        if deletes:
            plan.behaviours.append(Behaviour.EXPLICIT_ENTITY_DELETES)
        _count_types(plan.types, upserts)
        _count_types(plan.deleted_types, deletes)
        return plan

    # --- relationship partitions ---------------------------------------------------------------

    def _plan_relationships(
        self, partition: Partition, scope: str, snap: PartitionSnapshot, state: PartitionState | None
    ) -> PartitionPlan:
        rows = [r for r in snap.rows if r.kind == "relationship"]

        def desired(row: SnapshotRow) -> bool:
            return (
                not row.deleted
                and row.ends_live
                and not snap.is_refused(row)
                and (row.from_key or "") in snap.present_in_j1
                and (row.to_key or "") in snap.present_in_j1
            )

        pending = [r for r in rows if _id(r) in snap.pending]
        upserts = [r for r in pending if desired(r) and r.hash != r.pushed_hash]
        deletes = [
            r
            for r in pending
            if not desired(r) and r.pushed_hash is not None and r.type not in self.partial_types
        ]
        reason = self._diff_reason(state, snap)
        if reason is None and (upserts or deletes):
            reason = self._cross_scope_blocker(upserts, deletes)
        if reason is not None:
            return self._diff(partition, scope, snap, state, reason, [r for r in rows if desired(r)])
        plan = PartitionPlan(partition, scope, None, "in step", settled=set(snap.pending))
        if not upserts and not deletes:
            return plan
        plan.mode = "CROSS_SCOPE"
        plan.reason = "relationship changes (proven additive CROSS_SCOPE)"
        plan.relationships = [self.label(r.object()) for r in upserts]
        plan.delete_relationships = [{"_key": r.key} for r in deletes]
        plan.sent = {_id(r): (r.hash, r.object()) for r in upserts}
        plan.absent = {_id(r) for r in deletes}
        plan.expectation = Expectation(
            entities_deleted=(0, 0),
            relationships_sent=len(upserts),
            relationships_created_min=0
            if _uncertain(state)
            else sum(1 for r in upserts if r.pushed_hash is None),
            relationships_deleted=(len(deletes), len(deletes)),
        )
        plan.behaviours.append(Behaviour.CROSS_SCOPE_ADDITIVE)
        if deletes:
            plan.behaviours.append(Behaviour.CROSS_SCOPE_DELETES)
        if any(self._same_scope(r) for r in upserts):
            plan.behaviours.append(Behaviour.CROSS_SCOPE_SAME_SCOPE)
        _count_types(plan.types, upserts)
        _count_types(plan.deleted_types, deletes)
        return plan

    def _cross_scope_blocker(
        self, upserts: Sequence[SnapshotRow], deletes: Sequence[SnapshotRow]
    ) -> str | None:
        """Why these relationship changes need a DIFF, or None when a proven CROSS_SCOPE fits."""
        if not self._proven(Behaviour.CROSS_SCOPE_ADDITIVE):
            return "a relationship changed"
        if deletes and not (
            self._proven(Behaviour.CROSS_SCOPE_DELETES) and all(_certainly_present(r) for r in deletes)
        ):
            return "a relationship was deleted"
        if any(r.pushed_hash == UNKNOWN_HASH for r in upserts):
            return "J1's copy of a relationship is unknown"
        if not self._proven(Behaviour.CROSS_SCOPE_SAME_SCOPE) and any(self._same_scope(r) for r in upserts):
            return "a relationship has both endpoints in one scope"
        return None

    def _same_scope(self, row: SnapshotRow) -> bool:
        return self.layout.entity_scope(row.from_key or "") == self.layout.entity_scope(row.to_key or "")

    def label(self, relationship: dict[str, Any]) -> dict[str, Any]:
        """Name each endpoint by ``_key``, ``_scope`` and ``_source`` (J1's cross-scope reference)."""
        labelled = dict(relationship)
        for side in ("from", "to"):
            key = relationship.get(f"_{side}EntityKey")
            if isinstance(key, str):
                labelled[f"_{side}EntityScope"] = self.layout.entity_scope(key)
                labelled[f"_{side}EntitySource"] = SOURCE
        return labelled

    # --- DIFF ----------------------------------------------------------------------------------

    def _diff_reason(self, state: PartitionState | None, snap: PartitionSnapshot) -> str | None:
        if state is not None and state.needs_diff:
            return "flagged for a DIFF"
        if state is not None and state.uncertain:
            return "J1's state of the partition is not known for sure"
        if snap.gone:
            return "a key was removed before its push was acknowledged"
        return None

    def _diff(
        self,
        partition: Partition,
        scope: str,
        snap: PartitionSnapshot,
        state: PartitionState | None,
        reason: str,
        desired: list[SnapshotRow],
    ) -> PartitionPlan:
        plan = PartitionPlan(partition, scope, "DIFF", reason)
        keep = {_id(r) for r in desired}
        for row in desired:
            obj = row.object()
            plan.sent[_id(row)] = (row.hash, obj)
            if row.kind == "entity":
                plan.entities.append(obj)
            elif row.mapped:
                plan.relationships.append(obj)
            else:
                plan.relationships.append(self.label(obj))
        protected = {_id(r) for r in snap.rows if _id(r) not in keep and r.type in self.partial_types}
        plan.absent = {_id(r) for r in snap.rows if _id(r) not in keep} - protected
        plan.absent |= snap.gone
        # An object of a partial type that was not uploaded stays in J1: its row is not settled.
        plan.settled = None
        uncertain = _uncertain(state)
        exp = Expectation()
        entity_rows = [r for r in snap.rows if r.kind == "entity"]
        explicit_rows = [r for r in snap.rows if r.kind == "relationship" and not r.mapped]
        gone_entities = sum(1 for kind, _ in snap.gone if kind == "entity")
        gone_relationships = sum(1 for kind, _ in snap.gone if kind == "relationship")
        exp.entities_sent = len(plan.entities)
        exp.entities_created_min = (
            0 if uncertain else sum(1 for r in desired if r.kind == "entity" and r.pushed_hash is None)
        )
        exp.entities_deleted = (
            None if uncertain else _deleted_range(entity_rows, keep, protected, gone_entities)
        )
        if partition.kind == ENTITY_PART:
            exp.relationships_sent = None
            exp.relationships_deleted = None  # J1 may count the cascade of a deleted entity here
        else:
            exp.relationships_sent = len(plan.relationships)
            exp.relationships_created_min = (
                0 if uncertain else sum(1 for r in desired if r.pushed_hash is None)
            )
            exp.relationships_deleted = (
                None if uncertain else _deleted_range(explicit_rows, keep, protected, gone_relationships)
            )
            exp.entities_deleted = (0, 0)
        plan.expectation = exp
        _count_types(plan.types, desired)
        return plan


def _uncertain(state: PartitionState | None) -> bool:
    return state is not None and state.uncertain


def _deleted_range(
    rows: Sequence[SnapshotRow], keep: set[ObjectId], protected: set[ObjectId], gone: int
) -> tuple[int, int]:
    """(certain, possible) deletions: rows J1 holds for sure, plus those it may hold."""
    certain = possible = 0
    for row in rows:
        if _id(row) in keep or _id(row) in protected or row.pushed_hash is None:
            continue
        if row.pushed_hash == UNKNOWN_HASH:
            possible += 1
        else:
            certain += 1
    return certain, certain + possible + gone


def _count_types(counts: dict[str, int], rows: Sequence[SnapshotRow]) -> None:
    for row in rows:
        counts[row.type] = counts.get(row.type, 0) + 1
