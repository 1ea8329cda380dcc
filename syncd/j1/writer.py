"""Getting the mirror's changes into J1 with only the behaviour J1 documents (see docs/j1-writes.md).

The graph lives in small J1 scopes (partitions, syncd/j1/partitions.py). A push takes the
partitions with pending changes, entity partitions first (relationships need their endpoints),
plans one job per partition (syncd/j1/plan.py), runs them a few at a time, checks every FINISHED
job's counters against what was sent (syncd/j1/verify.py) and only then acknowledges the outbox.

* A partition whose job fails is retried with exponential back-off and jitter; the others go on.
* A request J1 refuses as bad data is split until the refused objects stand alone; they are set
  aside (``syncd status``, metrics) and the rest is uploaded.
* A job whose counters do not match is never acknowledged: its partition is re-sent by DIFF, any
  undocumented behaviour it relied on is revoked, and a metric, a log line, ``/healthz`` and an
  alert say so.
* Every job id is recorded in the mirror before its first upload; a job left open by a crash is
  aborted (or, if it finished, its partition re-sent by DIFF) on the next start.
* A full resync flags every partition for a DIFF; a changed layout (first partitioned push after
  the single-scope layout, a grown tenant, a new ``[j1] scope``) is filled completely before the
  scopes it replaces are emptied, so J1 never lacks the data.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import structlog

from syncd import metrics
from syncd.j1.capabilities import KV_KEY, Behaviour, Capabilities
from syncd.j1.client import RefusedUpload, SyncApiClient
from syncd.j1.errors import (
    J1AuthError,
    J1Error,
    J1JobFailedError,
    J1ObjectTooLargeError,
    J1RetryExhaustedError,
)
from syncd.j1.partitions import ENTITY_PART, RELATIONSHIP_PART, Layout, Partition, PartKind, parse_scope
from syncd.j1.plan import PartitionPlan, PartitionPlanner
from syncd.j1.verify import Expectation, verify_job
from syncd.mirror import (
    Mirror,
    PartitionAck,
    PartitionFailure,
    PartitionRef,
    PartitionState,
    RefusedObject,
)
from syncd.pausepoints import pause_point
from syncd.retry import backoff

if TYPE_CHECKING:
    from syncd.config import J1Strategy

log = structlog.get_logger(__name__)

LAYOUT_KEY = "j1.layout"
PENDING_LAYOUT_KEY = "j1.layout_pending"
RETIRING_LAYOUT_KEY = "j1.layout_retiring"
LEGACY_PUSH_CURSOR = "full_push"
"""Set by every syncd after its first full push: without a layout, it marks a single-scope deployment."""
DRAIN_PASSES = 4
RETRY_BASE = 1.0
PARTITION_RETRY_CAP = 300.0
UNAVAILABLE_CAP = 60.0
ISOLATE_AFTER = 3
"""Consecutive failures of a partition's job (bad data) before its objects are tried one group at a
time on a throw-away scope to find the ones J1 refuses."""
RECENT_MISMATCHES = 20

AlertSink = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]
"""(rule id, severity, message, details): raises an operational alert of syncd itself."""


class J1Unavailable(J1Error):
    """J1 answered with transient failures or refused the credentials: every push waits (back-off)."""


class PartitionFailed(Exception):
    """A job of one partition failed; the others go on."""

    def __init__(self, message: str, *, bad_data: bool = False) -> None:
        super().__init__(message)
        self.bad_data = bad_data


@dataclass
class PushReport:
    """Counts of one push, for logs, metrics and benches."""

    mode: str
    jobs: Counter[str] = field(default_factory=Counter)
    entity_upserts: int = 0
    entity_deletes: int = 0
    relationship_upserts: int = 0
    relationship_deletes: int = 0
    mapped_relationships: int = 0
    partitions: int = 0
    failed_partitions: int = 0
    verification_failures: int = 0
    refused: int = 0
    deferred: bool = False
    duration: float = 0.0

    @property
    def objects(self) -> int:
        return (
            self.entity_upserts
            + self.entity_deletes
            + self.relationship_upserts
            + self.relationship_deletes
            + self.mapped_relationships
        )

    @property
    def job_count(self) -> int:
        return sum(self.jobs.values())

    def add_plan(self, plan: PartitionPlan) -> None:
        assert plan.mode is not None
        self.jobs[plan.mode] += 1
        self.entity_upserts += len(plan.entities)
        self.entity_deletes += len(plan.delete_entities)
        mapped = sum(1 for r in plan.relationships if "_mapping" in r)
        self.mapped_relationships += mapped
        self.relationship_upserts += len(plan.relationships) - mapped
        self.relationship_deletes += len(plan.delete_relationships)


@dataclass(frozen=True)
class Mismatch:
    """A FINISHED job whose counters differed from what was sent (kept for /healthz and status)."""

    at: float
    scope: str
    mode: str
    job_id: str
    problems: tuple[str, ...]


def _ref(partition: Partition, base: str) -> PartitionRef:
    return PartitionRef(partition.scope(base), partition.kind, partition.bits, partition.bucket)


def _attempts(state: PartitionState | None) -> int:
    """Consecutive failures of a partition counting the one at hand."""
    return (state.attempts if state is not None else 0) + 1


class J1Writer:
    """Pushes the mirror to J1; the caller serialises pushes (one push at a time)."""

    def __init__(
        self,
        client: SyncApiClient,
        mirror: Mirror,
        *,
        scope: str,
        strategy: J1Strategy = "auto",
        job_timeout: float = 600.0,
        concurrency: int = 16,
        partial_types: Callable[[], Sequence[str]] = lambda: (),
        on_job: Callable[[str, str], None] | None = None,
        alert_sink: AlertSink | None = None,
    ) -> None:
        self.client = client
        self.mirror = mirror
        self.base = scope
        self.strategy = strategy
        self.job_timeout = job_timeout
        self.concurrency = max(1, concurrency)
        self.partial_types = partial_types
        self.on_job = on_job or (lambda mode, status: None)
        self.alert_sink = alert_sink
        self.capabilities = Capabilities()
        self.retry_base = RETRY_BASE
        """First back-off step of a failing partition (doubles per attempt)."""
        self.mismatches: list[Mismatch] = []
        self._started = False
        self._unavailable_until = 0.0
        self._unavailable_attempts = 0

    # --- state ----------------------------------------------------------------------------------

    def retry_at(self) -> float:
        """When J1 may be tried again after transient failures (0: now)."""
        return self._unavailable_until

    async def has_work(self) -> bool:
        """Outbox rows or partitions flagged for a DIFF (a retry is worth scheduling)."""
        if await self.mirror.outbox_depth():
            return True
        return bool(await self.mirror.partition_states(needs_diff_only=True))

    async def start(self) -> int:
        """Load what the mirror knows (capabilities) and close jobs a crash left open. Returns
        how many jobs were left behind. Idempotent; every push calls it first."""
        if self._started:
            return 0
        await self.reload_capabilities()
        left = await self.recover_jobs()
        self._started = True
        return left

    async def reload_capabilities(self) -> None:
        """Read the probe's findings (and revocations) from the mirror."""
        self.capabilities = Capabilities.from_json(await self.mirror.get_value(KV_KEY))
        self._publish_capabilities()

    def _publish_capabilities(self) -> None:
        for behaviour in Behaviour:
            metrics.J1_BEHAVIOUR_PROVEN.labels(behaviour=behaviour.value).set(
                1 if self._proven(behaviour) else 0
            )

    def _proven(self, behaviour: Behaviour) -> bool:
        return self.strategy == "auto" and self.capabilities.proven(behaviour)

    def _cascade(self) -> bool | None:
        """What the probe found about J1 removing a deleted entity's relationships in other scopes
        (None: unknown, or the documented-only strategy, which assumes nothing)."""
        finding = self.capabilities.findings.get(Behaviour.CASCADE_DELETES)
        if self.strategy != "auto" or finding is None:
            return None
        return finding.ok

    async def recover_jobs(self) -> int:
        """Abort jobs a crash left open; a job that finished unacknowledged makes its partition
        doubtful (re-sent by DIFF, counters not held against J1's unknown previous state)."""
        jobs = await self.mirror.jobs_in_flight()
        for job_id, scope, mode, _created in jobs:
            status = "unknown"
            try:
                job = await self.client.get_job(job_id)
                status = str(job.get("status"))
                if status == "AWAITING_UPLOADS":
                    await self.client.abort(job_id, reason="syncd: left open by a crash, aborted at start")
                    status = "ABORTED"
                elif status in ("FINALIZE_PENDING", "FINALIZING_ENTITIES", "FINALIZING_RELATIONSHIPS"):
                    job = await self.client.wait_finished(job_id, timeout=self.job_timeout)
                    status = str(job.get("status"))
            except J1JobFailedError as exc:
                status = str(exc.code)
            except J1Error as exc:
                if exc.status == 404:
                    status = "NOT_FOUND"
                else:
                    raise
            log.warning("j1 job left behind by a crash", job_id=job_id, scope=scope, mode=mode, status=status)
            parsed = parse_scope(scope)
            if parsed is not None:
                _base, part = parsed
                ref = PartitionRef(scope, part.kind, part.bits, part.bucket)
                await self.mirror.mark_partitions([ref], needs_diff=True, uncertain=True)
            await self.mirror.forget_job(job_id)
        return len(jobs)

    # --- layout ---------------------------------------------------------------------------------

    async def _stored_layout(self, key: str) -> Layout | None:
        raw = await self.mirror.get_value(key)
        return Layout.from_json(raw) if isinstance(raw, dict) else None

    async def layout(self) -> Layout | None:
        """The layout J1 holds (None before the first partitioned push)."""
        return await self._stored_layout(LAYOUT_KEY)

    async def pending_layout(self) -> Layout | None:
        """The layout being filled (its scopes replace the current ones once complete)."""
        return await self._stored_layout(PENDING_LAYOUT_KEY)

    async def retiring_layout(self) -> Layout | None:
        """The layout emptied once the pending one is complete."""
        return await self._stored_layout(RETIRING_LAYOUT_KEY)

    async def _active_layout(self) -> Layout:
        """The layout pushes write: a pending (being filled) one, else the current one; sized and
        fully flagged the first time, or when ``[j1] scope`` changed."""
        pending = await self.pending_layout()
        if pending is not None:
            return pending
        current = await self.layout()
        if current is not None and current.base == self.base:
            return current
        if current is None and await self.mirror.get_cursor(LEGACY_PUSH_CURSOR) is not None:
            current = Layout(self.base, legacy=True)  # syncd before partitions: one scope
        entity_objects, relationship_objects = await self.mirror.object_counts()
        return await self._begin_layout(
            Layout.sized(self.base, entity_objects, relationship_objects), retiring=current
        )

    async def _begin_layout(self, layout: Layout, *, retiring: Layout | None) -> Layout:
        """Start filling ``layout`` (every partition flagged); ``retiring`` is emptied once it is full.

        Recorded in one transaction: a crash never leaves a pending layout whose partitions are
        not all flagged (which would let the old scopes be emptied before the new ones are full)."""
        if retiring is not None:
            log.info(
                "j1 layout change: filling the new scopes before emptying the old ones",
                new_partitions=layout.partition_count(),
                old_scopes=retiring.partition_count(),
            )
        await self.mirror.set_values(
            {
                PENDING_LAYOUT_KEY: layout.to_json(),
                RETIRING_LAYOUT_KEY: retiring.to_json() if retiring is not None else None,
            },
            flag=[_ref(p, layout.base) for p in layout.partitions()],
            uncertain=True,
        )
        return layout

    async def _finish_layout_change(self, layout: Layout) -> None:
        """Once every partition of a pending layout is in J1: empty the scopes it replaces, then make
        it the current layout (a crash in between repeats the emptying: it is idempotent)."""
        if await self.pending_layout() != layout:
            return
        scopes = set(layout.scopes())
        waiting = [s for s in await self.mirror.partition_states(needs_diff_only=True) if s.scope in scopes]
        if waiting:
            return
        retiring = await self.retiring_layout()
        if retiring is not None:
            for scope in retiring.scopes():
                if scope not in scopes:
                    await self._empty_scope(scope)
        await self.mirror.set_values(
            {LAYOUT_KEY: layout.to_json(), PENDING_LAYOUT_KEY: None, RETIRING_LAYOUT_KEY: None}
        )
        await self.mirror.forget_other_partition_scopes(sorted(scopes))
        log.info("j1 layout in place", partitions=layout.partition_count(), base=layout.base)

    async def _empty_scope(self, scope: str) -> dict[str, Any]:
        """An empty DIFF job: J1 deletes everything the scope holds (documented DIFF semantics)."""
        job = await self.client.create_job(scope=scope, sync_mode="DIFF")
        job_id = str(job["id"])
        await self.mirror.record_job(job_id, scope, "DIFF")
        try:
            await self.client.finalize(job_id)
            finished = await self.client.wait_finished(job_id, timeout=self.job_timeout)
        except BaseException:
            await self.client.abort_quietly(job_id, "syncd: job not completed")
            raise
        finally:
            await self.mirror.forget_job(job_id)
        self.on_job("DIFF", "finished")
        return finished

    # --- pushes ---------------------------------------------------------------------------------

    async def push_full(self) -> PushReport:
        """Reconcile everything: a DIFF of every partition (deletions included). A tenant that
        outgrew its partitions gets a larger layout, filled before the old one is emptied."""
        await self.start()
        if await self.mirror.clear_refused():
            log.info("full push: objects J1 refused earlier are tried again")
        layout = await self._active_layout()
        if await self.pending_layout() is None:
            grown = layout.grown(
                {
                    ENTITY_PART: await self.mirror.fullest_partition(ENTITY_PART, layout.entity_bits),
                    RELATIONSHIP_PART: await self.mirror.fullest_partition(
                        RELATIONSHIP_PART, layout.relationship_bits
                    ),
                }
            )
            if grown != layout:
                layout = await self._begin_layout(grown, retiring=layout)
            else:
                await self.mirror.mark_partitions(
                    [_ref(p, layout.base) for p in layout.partitions()], needs_diff=True, uncertain=True
                )
        self._unavailable_until = 0.0  # an explicit full push tries J1 now
        report = await self.drain(mode="full")
        waiting = [
            s
            for s in await self.mirror.partition_states(needs_diff_only=True)
            if s.scope.startswith(self.base)
        ]
        if waiting:
            raise J1Error(
                None,
                "PARTITIONS_PENDING",
                f"{len(waiting)} of {layout.partition_count()} J1 partitions are not in J1 yet"
                f" (last error: {waiting[0].last_error}); they are retried with back-off",
            )
        return report

    async def drain(self, *, mode: str = "incremental") -> PushReport:
        """Push every partition that has pending changes or is flagged for a DIFF."""
        started = time.monotonic()
        report = PushReport(mode=mode)
        if time.time() < self._unavailable_until:
            report.deferred = True
            return report
        await self.start()
        layout = await self._active_layout()
        planner = PartitionPlanner(
            layout,
            self.capabilities,
            fast_paths=self.strategy == "auto",
            partial_types=self.partial_types(),
        )
        unavailable: J1Unavailable | None = None
        for kind in (ENTITY_PART, RELATIONSHIP_PART):
            for _ in range(DRAIN_PASSES):
                due = await self._due(layout, kind)
                if not due:
                    break
                outcomes = await self._run_partitions(due, planner, report)
                unavailable = next((o for o in outcomes if isinstance(o, J1Unavailable)), None)
                if unavailable is not None or not any(o is True for o in outcomes):
                    break
            if unavailable is not None:
                break
        if unavailable is None:
            await self._finish_layout_change(layout)
        await self._publish_state()
        report.duration = time.monotonic() - started
        if unavailable is not None:
            raise unavailable
        self._unavailable_attempts = 0
        return report

    async def _due(self, layout: Layout, kind: PartKind) -> list[tuple[Partition, PartitionState | None]]:
        """Partitions of ``kind`` with outbox rows or a pending DIFF, minus those backing off, each
        with its state (only the writer changes a state, and pushes are serialised)."""
        now = time.time()
        bits = layout.bits(kind)
        states = {s.scope: s for s in await self.mirror.partition_states() if s.kind == kind}
        found: dict[str, Partition] = {}
        for state in states.values():
            partition = Partition(kind, state.bits, state.bucket)
            if state.needs_diff and state.scope == partition.scope(layout.base) and state.bits == bits:
                found[state.scope] = partition
        for bucket in await self.mirror.pending_buckets(kind, bits):
            partition = Partition(kind, bits, bucket)
            found.setdefault(partition.scope(layout.base), partition)
        return sorted(
            ((p, states.get(scope)) for scope, p in found.items()
             if scope not in states or states[scope].next_attempt <= now),
            key=lambda due: due[0],
        )

    async def _run_partitions(
        self,
        partitions: Sequence[tuple[Partition, PartitionState | None]],
        planner: PartitionPlanner,
        report: PushReport,
    ) -> list[bool | J1Unavailable]:
        semaphore = asyncio.Semaphore(self.concurrency)
        stop = asyncio.Event()

        async def one(partition: Partition, state: PartitionState | None) -> bool | J1Unavailable:
            async with semaphore:
                if stop.is_set():
                    return False
                try:
                    return await self._push_partition(partition, state, planner, report)
                except J1Unavailable as exc:
                    stop.set()
                    return exc

        return list(await asyncio.gather(*(one(p, state) for p, state in partitions)))

    async def _push_partition(
        self,
        partition: Partition,
        state: PartitionState | None,
        planner: PartitionPlanner,
        report: PushReport,
    ) -> bool:
        """Plan, run, verify and acknowledge one partition's job; False when it failed."""
        ref = _ref(partition, planner.layout.base)
        lo, hi = partition.hash_range
        snap = await self.mirror.partition_snapshot(partition.kind, lo, hi)
        plan = planner.plan(partition, snap, state)
        ack = PartitionAck(
            part=partition.kind,
            lo=lo,
            hi=hi,
            max_seq=snap.max_seq,
            scope=ref.scope,
            gen=state.gen if state is not None else 0,
            cascade=self._cascade(),
        )
        report.partitions += 1
        if plan.mode is None:
            ack.settled = plan.settled
            await self.mirror.ack_partition(ack)
            return True
        try:
            job = await self._run_job(plan, report)
        except J1Unavailable as exc:
            await self._partition_failed(ref, plan, state, str(exc), report, transient=True)
            raise
        except PartitionFailed as exc:
            await self._partition_failed(ref, plan, state, str(exc), report, bad_data=exc.bad_data)
            return False
        job_id = str(job.get("id"))
        problems = verify_job(job, plan.expectation)
        if problems:
            await self.mirror.forget_job(job_id)
            await self._mismatch(ref, plan, state, job_id, problems, report)
            return False
        ack.job_id = job_id
        ack.sent = plan.sent
        ack.absent = plan.absent
        ack.settled = plan.settled
        await pause_point("j1.ack")
        await self.mirror.ack_partition(ack)
        if self.mismatches:  # J1 holds this partition as sent again: its mismatch is resolved
            self.mismatches = [m for m in self.mismatches if m.scope != ref.scope]
        self.on_job(plan.mode, "finished")
        report.add_plan(plan)
        metrics.J1_UPLOADED_OBJECTS.labels(mode=plan.mode).inc(plan.objects)
        upsert_op = "diff" if plan.mode == "DIFF" else "upsert"
        for type_, n in plan.types.items():
            metrics.CHANGES_PUSHED.labels(type=type_, op=upsert_op).inc(n)
        for type_, n in plan.deleted_types.items():
            metrics.CHANGES_PUSHED.labels(type=type_, op="delete").inc(n)
        return True

    async def _run_job(self, plan: PartitionPlan, report: PushReport) -> dict[str, Any]:
        """Create, record, upload, finalize and wait; J1Unavailable or PartitionFailed on failure."""
        assert plan.mode is not None
        try:
            created = await self.client.create_job(scope=plan.scope, sync_mode=plan.mode)
        except J1Error as exc:
            raise self._classify(exc) from exc
        job_id = str(created["id"])
        await self.mirror.record_job(job_id, plan.scope, plan.mode)
        finished = False
        try:
            await pause_point("j1.upload")
            refused: list[RefusedUpload] | None = None if plan.behaviours else []
            await self.client.upload(
                job_id,
                entities=plan.entities,
                relationships=plan.relationships,
                delete_entities=plan.delete_entities,
                delete_relationships=plan.delete_relationships,
                refused=refused,
            )
            if refused:
                await self._set_aside(plan, refused)
                report.refused += len(refused)
            partial = sorted(set(self.partial_types())) if plan.mode == "DIFF" else []
            await pause_point("j1.finalize")
            await self.client.finalize(job_id, partial_types=partial)
            job = await self.client.wait_finished(job_id, timeout=self.job_timeout)
            finished = True
            return job
        except J1JobFailedError as exc:
            self.on_job(plan.mode, "failed")
            raise PartitionFailed(f"job {job_id} ended {exc.code}", bad_data=True) from exc
        except J1Error as exc:
            self.on_job(plan.mode, "failed")
            if plan.behaviours and exc.status == 400:
                raise PartitionFailed(
                    f"J1 refused a job relying on {plan.behaviours}: {exc.message}"
                ) from exc
            raise self._classify(exc) from exc
        finally:
            if not finished:
                await self.client.abort_quietly(job_id, "syncd: job not completed")
                await self.mirror.forget_job(job_id)

    def _classify(self, exc: J1Error) -> Exception:
        """Transient or account-wide failures stop the whole push; the rest are the partition's."""
        if isinstance(exc, J1RetryExhaustedError | J1AuthError):
            return J1Unavailable(exc.status, exc.code, exc.message, attempts=exc.attempts)
        if isinstance(exc, J1ObjectTooLargeError):
            return PartitionFailed(str(exc), bad_data=True)
        return PartitionFailed(str(exc), bad_data=exc.status == 400)

    async def _set_aside(self, plan: PartitionPlan, refused: Sequence[RefusedUpload]) -> None:
        """Objects J1 refused are left out (until they change) and the job goes on without them."""
        now = time.time()
        rows: list[RefusedObject] = []
        for item in refused:
            kind: Literal["entity", "relationship"] = "entity" if item.field == "entities" else "relationship"
            sent = plan.sent.get((kind, item.key))
            hash_, obj = sent if sent is not None else ("", {})
            rows.append(
                RefusedObject(
                    kind,
                    item.key,
                    hash_,
                    str(obj.get("_type", "")),
                    plan.scope,
                    item.code,
                    item.message,
                    now,
                )
            )
            plan.drop(kind, item.key)
        await self.mirror.set_aside(rows)
        log.error(
            "j1 refused objects; they are set aside until they change (see `syncd status`)",
            scope=plan.scope,
            count=len(rows),
            first_key=rows[0].key if rows else None,
            code=rows[0].code if rows else None,
        )

    # --- failures -------------------------------------------------------------------------------

    async def _partition_failed(
        self,
        ref: PartitionRef,
        plan: PartitionPlan,
        state: PartitionState | None,
        error: str,
        report: PushReport,
        *,
        transient: bool = False,
        bad_data: bool = False,
    ) -> None:
        attempts = _attempts(state)
        report.failed_partitions += 1
        if transient:
            self._unavailable_attempts += 1
            self._unavailable_until = time.time() + backoff(
                self._unavailable_attempts, base=self.retry_base, cap=UNAVAILABLE_CAP
            )
            delay = self._unavailable_until - time.time()
        else:
            delay = backoff(attempts, base=self.retry_base, cap=PARTITION_RETRY_CAP)
        needs_diff = plan.mode == "DIFF" or bool(plan.behaviours)
        if plan.behaviours and not transient:
            await self._revoke(plan.behaviours, f"job on {ref.scope} failed: {error}")
        retry_at = time.time() + delay
        await self.mirror.record_partition_failure(
            ref, PartitionFailure(attempts, retry_at, error, needs_diff=needs_diff, uncertain=False)
        )
        log.warning(
            "j1 partition push failed; retrying with back-off",
            scope=ref.scope,
            mode=plan.mode,
            attempts=attempts,
            retry_in_s=round(delay, 1),
            error=error[:300],
        )
        if bad_data and not plan.behaviours and attempts >= ISOLATE_AFTER:
            await self._isolate(plan)

    async def _mismatch(
        self,
        ref: PartitionRef,
        plan: PartitionPlan,
        state: PartitionState | None,
        job_id: str,
        problems: Sequence[str],
        report: PushReport,
    ) -> None:
        """J1 FINISHED a job that did not do what was sent: never acknowledged, re-sent by DIFF."""
        assert plan.mode is not None
        report.verification_failures += 1
        metrics.J1_VERIFICATION_FAILURES.labels(mode=plan.mode).inc()
        self.mismatches = [
            *self.mismatches[-(RECENT_MISMATCHES - 1) :],
            Mismatch(time.time(), ref.scope, plan.mode, job_id, tuple(problems)),
        ]
        if plan.behaviours:
            await self._revoke(plan.behaviours, f"contradicted by job {job_id} on {ref.scope}: {problems}")
        attempts = _attempts(state)
        delay = 0 if attempts == 1 else backoff(attempts, base=self.retry_base, cap=PARTITION_RETRY_CAP)
        error = f"verification: {'; '.join(problems)}"[:500]
        await self.mirror.record_partition_failure(
            ref, PartitionFailure(attempts, time.time() + delay, error, needs_diff=True, uncertain=True)
        )
        log.error(
            "j1 job finished but did not do what was sent; not acknowledged, partition re-sent by DIFF",
            scope=ref.scope,
            mode=plan.mode,
            job_id=job_id,
            problems=list(problems),
            relied_on=[b.value for b in plan.behaviours],
        )
        if self.alert_sink is not None:
            await self.alert_sink(
                "syncd-j1-job-mismatch",
                "high",
                f"J1 {plan.mode} job on {ref.scope} did not do what was sent: {'; '.join(problems)}",
                {
                    "scope": ref.scope,
                    "mode": plan.mode,
                    "job_id": job_id,
                    "problems": list(problems),
                    "fallback": "partition re-sent by DIFF"
                    + (
                        f"; stopped relying on {', '.join(b.value for b in plan.behaviours)}"
                        if plan.behaviours
                        else ""
                    ),
                },
            )
        if "Errors=" in " ".join(problems) and not plan.behaviours and attempts >= ISOLATE_AFTER:
            await self._isolate(plan)

    async def _revoke(self, behaviours: Iterable[Behaviour], detail: str) -> None:
        for behaviour in behaviours:
            if self.capabilities.proven(behaviour):
                self.capabilities.revoke(behaviour, detail[:500])
                log.error(
                    "j1 behaviour no longer relied on; using the documented path", behaviour=behaviour.value
                )
        await self.mirror.set_value(KV_KEY, self.capabilities.to_json())
        self._publish_capabilities()

    # --- isolating refused objects --------------------------------------------------------------

    async def _isolate(self, plan: PartitionPlan) -> None:
        """A partition's job keeps failing on its data: run its objects through DIFF jobs on a
        throw-away scope, halving the failing groups, to find the objects J1 refuses; set them aside."""
        scope = f"{self.base}-isolate"
        entities = {e["_key"]: e for e in plan.entities}
        candidates: list[tuple[Literal["entity", "relationship"], dict[str, Any]]] = [
            ("entity", e) for e in plan.entities
        ] + [("relationship", r) for r in plan.relationships]
        refused: list[RefusedUpload] = []

        async def accepted(group: list[tuple[Literal["entity", "relationship"], dict[str, Any]]]) -> bool:
            ents = [o for k, o in group if k == "entity"]
            rels = [o for k, o in group if k == "relationship"]
            sources = {r["_mapping"]["sourceEntityKey"] for r in rels if "_mapping" in r}
            ents += [entities[k] for k in sources if k in entities and all(e["_key"] != k for e in ents)]
            try:
                job = await self.client.run_job(
                    scope, "DIFF", entities=ents, relationships=rels, timeout=self.job_timeout
                )
            except J1JobFailedError:
                return False
            except J1Error as exc:
                if exc.status == 400:
                    return False
                raise
            return not verify_job(job, _errors_only())

        async def search(group: list[tuple[Literal["entity", "relationship"], dict[str, Any]]]) -> None:
            if await accepted(group):
                return
            if len(group) == 1:
                kind, obj = group[0]
                refused.append(
                    RefusedUpload(
                        "entities" if kind == "entity" else "relationships",
                        str(obj.get("_key")),
                        None,
                        "J1 fails any job holding this object",
                    )
                )
                return
            mid = len(group) // 2
            await search(group[:mid])
            await search(group[mid:])

        try:
            await search(candidates)
        finally:
            try:
                await self._empty_scope(scope)
            except J1Error as exc:
                log.warning("could not empty the isolation scope", scope=scope, error=str(exc)[:200])
        if refused:
            await self._set_aside(plan, refused)

    # --- status ---------------------------------------------------------------------------------

    async def _publish_state(self) -> None:
        states = await self.mirror.partition_states()
        metrics.J1_PARTITIONS_FAILING.set(sum(1 for s in states if s.attempts > 0))
        metrics.J1_PARTITIONS_PENDING_DIFF.set(sum(1 for s in states if s.needs_diff))
        metrics.J1_REFUSED_OBJECTS.set(await self.mirror.refused_count())

    def health_problems(self) -> list[str]:
        """Why J1 may not hold the truth (for /healthz): jobs whose counters did not match what
        was sent, until a later job on the same partition succeeds. (Transient J1 outages show as
        outbox lag instead.)"""
        return [
            f"J1 job {m.job_id} ({m.mode} on {m.scope}) did not do what was sent: {'; '.join(m.problems)}"
            for m in self.mismatches
        ]

    async def scopes_written(self) -> list[str]:
        """Every scope syncd may have written: the current, pending and retiring layouts, the
        single scope of syncd before partitions, and the isolation scope."""
        scopes: list[str] = []
        for layout in (await self.layout(), await self.pending_layout(), await self.retiring_layout()):
            if layout is not None:
                scopes.extend(layout.scopes())
        scopes += [self.base, f"{self.base}-isolate"]
        return list(dict.fromkeys(scopes))

    async def purge(self) -> list[tuple[str, dict[str, Any] | J1Error]]:
        """Empty every scope syncd wrote (``syncd uninstall --purge-j1``): (scope, finished job or
        the error) for each; repeatable, since an empty DIFF of an empty scope changes nothing."""
        results: list[tuple[str, dict[str, Any] | J1Error]] = []
        for scope in await self.scopes_written():
            try:
                results.append((scope, await self._empty_scope(scope)))
            except J1Error as exc:
                results.append((scope, exc))
        return results


def _errors_only() -> Expectation:
    """Only the error counters count (a trial job on a throw-away scope)."""
    return Expectation(
        entities_sent=None, entities_deleted=None, relationships_sent=None, relationships_deleted=None
    )


def alert_id(rule_id: str, *parts: str) -> str:
    """A stable id for an operational alert (receivers dedupe on it)."""
    return hashlib.sha256("\x1f".join((rule_id, *parts)).encode()).hexdigest()[:32]
