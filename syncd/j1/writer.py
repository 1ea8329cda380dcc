"""Getting the mirror's changes into J1, using only the sync API modes that J1 documents.

* Full resync: one ``DIFF`` job on the scope with the whole desired graph; ``partialDatasets``
  protects the types of sources that failed or are switched off.
* Incremental (``[j1] incremental_mode = "patch"``, the default): the outbox is drained in order.
  Entity upserts and entity deletes (``deleteEntities``) go in a ``PATCH`` job; relationship
  upserts and deletes (``deleteRelationships``) then go in a ``CROSS_SCOPE`` job whose
  relationships name their endpoints' scope (``_fromEntityScope``/``_toEntityScope``). Only when
  both jobs are FINISHED is the outbox batch acknowledged.
* User → Person mapped relationships are only accepted by ``DIFF`` jobs, and J1 resolves their
  ``sourceEntityKey`` within the job's scope, so they travel with the scope's full DIFF: a change
  to one of them marks the mapping stale, and a full DIFF from the mirror follows at most every
  ``mapping_interval`` seconds (and at every periodic full resync).
* ``incremental_mode = "diff"``: any pending change triggers a full DIFF from the mirror, the most
  conservative choice if a J1 account refuses the incremental modes.

See docs/j1-writes.md for the reasoning and the open questions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from syncd import metrics
from syncd.j1.client import SyncApiClient
from syncd.mirror import Mirror
from syncd.mirror.types import OutboxBatch
from syncd.model.convert.directory import is_person_mapping_key
from syncd.pausepoints import pause_point

log = structlog.get_logger(__name__)

DRAIN_BATCH = 5000
FULL_CHUNK = 2000
DELETE_TYPE_LOOKUPS = 500
"""Deletes carry only keys; up to this many per batch get their type from the mirror's tombstone
for ``syncd_changes_pushed``, the rest are counted under type ``unknown`` (bounded work)."""
MAPPING_DIRTY = "j1.person_mapping_dirty"
"""Mirror key/value flag: a mapped relationship changed; a full DIFF must carry it to J1."""


@dataclass
class PushReport:
    """Counts of one push, for logs and metrics."""

    mode: str
    entity_upserts: int = 0
    entity_deletes: int = 0
    relationship_upserts: int = 0
    relationship_deletes: int = 0
    mapped_relationships: int = 0
    jobs: int = 0
    duration: float = 0.0

    @property
    def objects(self) -> int:
        return (
            self.entity_upserts + self.entity_deletes + self.relationship_upserts + self.relationship_deletes
        )


def _is_mapped(relationship: dict[str, Any]) -> bool:
    return "_mapping" in relationship


class J1Writer:
    """Pushes to one J1 scope; the caller serialises pushes."""

    def __init__(
        self,
        client: SyncApiClient,
        mirror: Mirror,
        *,
        scope: str,
        incremental_mode: str = "patch",
        job_timeout: float = 600.0,
        mapping_interval: float = 3600.0,
        partial_types: Callable[[], Sequence[str]] = lambda: (),
        on_job: Callable[[str, str], None] | None = None,
    ) -> None:
        self.client = client
        self.mirror = mirror
        self.scope = scope
        self.incremental_mode = incremental_mode
        self.job_timeout = job_timeout
        self.mapping_interval = mapping_interval
        self.partial_types = partial_types
        self.on_job = on_job or (lambda mode, status: None)
        self._last_full_push = time.monotonic()

    # --- full ---------------------------------------------------------------------------------
    async def push_full(self) -> PushReport:
        """DIFF the scope with the complete desired graph; ack everything enqueued before it started."""
        started = time.monotonic()
        report = PushReport(mode="DIFF")
        max_seq = await self.mirror.outbox_max_seq()
        uploaded: dict[str, int] = {}
        job_id = await self._create("DIFF", self.scope)
        try:
            await pause_point("j1.upload")
            async for entities, relationships in self.mirror.iter_desired_graph(FULL_CHUNK):
                await self.client.upload(job_id, entities=entities, relationships=relationships)
                _add_types(uploaded, entities)
                _add_types(uploaded, relationships)
                mapped = sum(1 for r in relationships if _is_mapped(r))
                report.entity_upserts += len(entities)
                report.relationship_upserts += len(relationships) - mapped
                report.mapped_relationships += mapped
            await pause_point("j1.finalize")
            await self._finish(job_id, "DIFF", partial=sorted(set(self.partial_types())))
        except BaseException as exc:
            await self._failed(job_id, "DIFF", exc)
            raise
        await pause_point("j1.ack")
        _count_types(uploaded, "full")
        report.jobs = 1
        await self.mirror.mark_all_pushed(max_seq)
        await self.mirror.delete_value(MAPPING_DIRTY)
        self._last_full_push = time.monotonic()
        report.duration = time.monotonic() - started
        return report

    # --- incremental --------------------------------------------------------------------------
    async def drain(self, *, force_mapping: bool = False) -> PushReport:
        """Push pending outbox rows until the outbox is empty (on failure, rows stay)."""
        if self.incremental_mode == "diff":
            if await self.mirror.outbox_depth() == 0 and await self.mirror.get_value(MAPPING_DIRTY) is None:
                return PushReport(mode="DIFF")
            return await self.push_full()
        started = time.monotonic()
        report = PushReport(mode="PATCH+CROSS_SCOPE")
        while True:
            batch = await self.mirror.read_outbox(DRAIN_BATCH)
            if batch.rows == 0:
                break
            if batch.has_writes:
                await self._push_batch(batch, report)
            await pause_point("j1.ack")
            await self.mirror.ack_outbox(batch)
        if await self.mirror.get_value(MAPPING_DIRTY) is not None and (
            force_mapping or time.monotonic() - self._last_full_push >= self.mapping_interval
        ):
            # Mapped relationships only travel in a DIFF of the scope (see the module docstring).
            full = await self.push_full()
            report.jobs += full.jobs
            report.mapped_relationships = full.mapped_relationships
        report.duration = time.monotonic() - started
        return report

    async def _push_batch(self, batch: OutboxBatch, report: PushReport) -> None:
        upserts = [r for r in batch.relationship_upserts if not _is_mapped(r)]
        deletes = [k for k in batch.relationship_deletes if not is_person_mapping_key(k)]
        if len(upserts) != len(batch.relationship_upserts) or len(deletes) != len(batch.relationship_deletes):
            # Recorded before the ack, so a crash cannot forget that the mapping is stale in J1.
            await self.mirror.set_value(MAPPING_DIRTY, time.time())
        if batch.entity_upserts or batch.entity_deletes:
            entity_delete_types = await self._delete_types(batch.entity_deletes, entity=True)
            await self._run_job(
                "PATCH",
                entities=batch.entity_upserts,
                delete_entities=[{"_key": key} for key in batch.entity_deletes],
            )
            report.jobs += 1
            report.entity_upserts += len(batch.entity_upserts)
            report.entity_deletes += len(batch.entity_deletes)
            _count_pushed(batch.entity_upserts, "upsert")
            _count_types(entity_delete_types, "delete")
        if upserts or deletes:
            relationship_delete_types = await self._delete_types(deletes, entity=False)
            await self._run_job(
                "CROSS_SCOPE",
                relationships=[self._cross_scope(r) for r in upserts],
                delete_relationships=[{"_key": key} for key in deletes],
            )
            report.jobs += 1
            report.relationship_upserts += len(upserts)
            report.relationship_deletes += len(deletes)
            _count_pushed(upserts, "upsert")
            _count_types(relationship_delete_types, "delete")

    async def _delete_types(self, keys: Sequence[str], *, entity: bool) -> dict[str, int]:
        """type → count of the deleted keys (types read from the mirror's tombstones, bounded)."""
        counts: dict[str, int] = {}
        for i, key in enumerate(keys):
            type_ = "unknown"
            if i < DELETE_TYPE_LOOKUPS:
                try:
                    row = await (
                        self.mirror.get_entity_row(key) if entity else self.mirror.get_relationship_row(key)
                    )
                except Exception:  # a metric label is never worth failing a push for
                    row = None
                if row is not None:
                    type_ = row.type
            counts[type_] = counts.get(type_, 0) + 1
        return counts

    def _cross_scope(self, relationship: dict[str, Any]) -> dict[str, Any]:
        """Name the scope of both endpoints, as CROSS_SCOPE requires."""
        labelled = dict(relationship)
        labelled["_fromEntityScope"] = self.scope
        labelled["_toEntityScope"] = self.scope
        return labelled

    # --- jobs ---------------------------------------------------------------------------------
    async def _create(self, mode: str, scope: str) -> str:
        job = await self.client.create_job(scope=scope, sync_mode=mode)
        return str(job["id"])

    async def _finish(self, job_id: str, mode: str, *, partial: Sequence[str] = ()) -> None:
        await self.client.finalize(job_id, partial_types=partial)
        await self.client.wait_finished(job_id, timeout=self.job_timeout)
        self.on_job(mode, "finished")

    async def _run_job(
        self,
        mode: str,
        *,
        entities: Sequence[dict[str, Any]] = (),
        relationships: Sequence[dict[str, Any]] = (),
        delete_entities: Sequence[dict[str, Any]] = (),
        delete_relationships: Sequence[dict[str, Any]] = (),
    ) -> None:
        job_id = await self._create(mode, self.scope)
        try:
            await pause_point("j1.upload")
            await self.client.upload(
                job_id,
                entities=entities,
                relationships=relationships,
                delete_entities=delete_entities,
                delete_relationships=delete_relationships,
            )
            await pause_point("j1.finalize")
            await self._finish(job_id, mode)
        except BaseException as exc:
            await self._failed(job_id, mode, exc)
            raise

    async def _failed(self, job_id: str, mode: str, exc: BaseException) -> None:
        self.on_job(mode, "failed")
        try:
            await self.client.abort(job_id, reason=f"syncd: {type(exc).__name__}")
        except Exception as abort_exc:  # best effort: the original error matters more
            log.debug("abort failed", job_id=job_id, error=type(abort_exc).__name__)


def _add_types(counts: dict[str, int], objects: Sequence[dict[str, Any]]) -> None:
    for obj in objects:
        type_ = str(obj.get("_type") or "unknown")
        counts[type_] = counts.get(type_, 0) + 1


def _count_types(counts: dict[str, int], op: str) -> None:
    """``syncd_changes_pushed{type, op}``: called only once J1 finished the job (acknowledged).

    ``op``: ``upsert`` / ``delete`` (incremental jobs) or ``full`` (objects sent in a full DIFF;
    J1 works out creations, updates and deletions by omission itself)."""
    for type_, n in counts.items():
        metrics.CHANGES_PUSHED.labels(type=type_, op=op).inc(n)


def _count_pushed(objects: Sequence[dict[str, Any]], op: str) -> None:
    counts: dict[str, int] = {}
    _add_types(counts, objects)
    _count_types(counts, op)
