"""Getting the mirror's changes into J1, using only the sync API modes that J1 documents.

* Full resync: one ``DIFF`` job on the scope with the whole desired graph; ``partialDatasets``
  protects the types of sources that failed or are switched off.
* Incremental (``[j1] incremental_mode = "patch"``, the default): the outbox is drained in order.
  Entity upserts and entity deletes (``deleteEntities``) go in a ``PATCH`` job; relationship
  upserts and deletes (``deleteRelationships``) then go in a ``CROSS_SCOPE`` job whose
  relationships name their endpoints' scope (``_fromEntityScope``/``_toEntityScope``). Only when
  both jobs are FINISHED is the outbox batch acknowledged.
* User → Person mapped relationships are only accepted by ``DIFF`` jobs, so they live in a scope
  of their own (``<scope>-person-mapping``) that is re-sent whole, at most every
  ``mapping_interval`` seconds, when any of them changed.
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

from syncd.j1.client import SyncApiClient
from syncd.mirror import Mirror
from syncd.mirror.types import OutboxBatch
from syncd.model.convert.directory import is_person_mapping_key

log = structlog.get_logger(__name__)

DRAIN_BATCH = 5000
FULL_CHUNK = 2000
MAPPING_DIRTY = "j1.person_mapping_dirty"
"""Mirror key/value flag: a mapped relationship changed and the mapping scope must be re-sent."""


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
    """Pushes to one J1 scope (plus its person-mapping scope); the caller serialises pushes."""

    def __init__(
        self,
        client: SyncApiClient,
        mirror: Mirror,
        *,
        scope: str,
        incremental_mode: str = "patch",
        job_timeout: float = 600.0,
        mapping_interval: float = 300.0,
        partial_types: Callable[[], Sequence[str]] = lambda: (),
        on_job: Callable[[str, str], None] | None = None,
    ) -> None:
        self.client = client
        self.mirror = mirror
        self.scope = scope
        self.mapping_scope = f"{scope}-person-mapping"
        self.incremental_mode = incremental_mode
        self.job_timeout = job_timeout
        self.mapping_interval = mapping_interval
        self.partial_types = partial_types
        self.on_job = on_job or (lambda mode, status: None)
        self._last_mapping_push = 0.0

    # --- full ---------------------------------------------------------------------------------
    async def push_full(self) -> PushReport:
        """DIFF the scope with the complete desired graph, then the mapping scope; ack everything
        that was enqueued before the push started."""
        started = time.monotonic()
        report = PushReport(mode="DIFF")
        max_seq = await self.mirror.outbox_max_seq()
        job_id = await self._create("DIFF", self.scope)
        try:
            async for entities, relationships in self.mirror.iter_desired_graph(FULL_CHUNK):
                explicit = [r for r in relationships if not _is_mapped(r)]
                await self.client.upload(job_id, entities=entities, relationships=explicit)
                report.entity_upserts += len(entities)
                report.relationship_upserts += len(explicit)
            await self._finish(job_id, "DIFF", partial=sorted(set(self.partial_types())))
        except BaseException as exc:
            await self._failed(job_id, "DIFF", exc)
            raise
        report.jobs = 1
        report.mapped_relationships = await self._push_mapping()
        report.jobs += 1
        await self.mirror.mark_all_pushed(max_seq)
        report.duration = time.monotonic() - started
        return report

    async def _push_mapping(self) -> int:
        """DIFF the person-mapping scope with every mapped relationship of the mirror."""
        await self.mirror.set_value(MAPPING_DIRTY, time.time())
        job_id = await self._create("DIFF", self.mapping_scope)
        count = 0
        try:
            async for _entities, relationships in self.mirror.iter_desired_graph(FULL_CHUNK):
                mapped = [r for r in relationships if _is_mapped(r)]
                if mapped:
                    await self.client.upload(job_id, relationships=mapped)
                    count += len(mapped)
            await self._finish(job_id, "DIFF")
        except BaseException as exc:
            await self._failed(job_id, "DIFF", exc)
            raise
        await self.mirror.delete_value(MAPPING_DIRTY)
        self._last_mapping_push = time.monotonic()
        return count

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
            await self.mirror.ack_outbox(batch)
        if await self.mirror.get_value(MAPPING_DIRTY) is not None and (
            force_mapping or time.monotonic() - self._last_mapping_push >= self.mapping_interval
        ):
            report.mapped_relationships = await self._push_mapping()
            report.jobs += 1
        report.duration = time.monotonic() - started
        return report

    async def _push_batch(self, batch: OutboxBatch, report: PushReport) -> None:
        upserts = [r for r in batch.relationship_upserts if not _is_mapped(r)]
        deletes = [k for k in batch.relationship_deletes if not is_person_mapping_key(k)]
        if len(upserts) != len(batch.relationship_upserts) or len(deletes) != len(batch.relationship_deletes):
            # Recorded before the ack, so a crash cannot forget that the mapping scope is stale.
            await self.mirror.set_value(MAPPING_DIRTY, time.time())
        if batch.entity_upserts or batch.entity_deletes:
            await self._run_job(
                "PATCH",
                entities=batch.entity_upserts,
                delete_entities=[{"_key": key} for key in batch.entity_deletes],
            )
            report.jobs += 1
            report.entity_upserts += len(batch.entity_upserts)
            report.entity_deletes += len(batch.entity_deletes)
        if upserts or deletes:
            await self._run_job(
                "CROSS_SCOPE",
                relationships=[self._cross_scope(r) for r in upserts],
                delete_relationships=[{"_key": key} for key in deletes],
            )
            report.jobs += 1
            report.relationship_upserts += len(upserts)
            report.relationship_deletes += len(deletes)

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
            await self.client.upload(
                job_id,
                entities=entities,
                relationships=relationships,
                delete_entities=delete_entities,
                delete_relationships=delete_relationships,
            )
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
