"""One place that runs rounds and pushes: get → transform → load (mirror) → push (J1).

Rounds of one origin never overlap (a lock per origin); pushes never overlap (one push lock), so
the outbox is drained in order. Rounds of different origins may overlap: `run_rounds` runs a set
of them concurrently, each as soon as the origins it reads from (`depends_on`) are done, so a
resync takes about as long as its longest chain of sources, not their sum. The request budget
and Retry-After are shared by all of them in the Graph client (`syncd.graph.budget`). The
daemon, `syncd resync` and the tests all drive this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from syncd import metrics
from syncd.aio import gather_or_cancel
from syncd.j1.writer import J1Writer, PushReport
from syncd.mirror import Mirror, MirrorError
from syncd.model.schema import relationship_types_touching
from syncd.pausepoints import pause_point
from syncd.sources.base import RoundReport, RoundWork, Source, SourceContext
from syncd.sources.signins import SignInPoll

__all__ = ["Engine", "ResyncReport", "RoundsReport", "Source"]

log = structlog.get_logger(__name__)

ABSENT_GRACE = 86400.0
"""How long the daemon keeps (as partial) the J1 data of an origin Graph says the tenant does not
have (no Intune), before removing it; `syncd resync` removes it at once (grace 0)."""
ABSENT_KEY = "absent_since:"
"""Mirror kv prefix: when Graph first said the origin's data does not exist in this tenant."""
ABSENT_REMOVED = "the tenant has none (Graph: not applicable to target tenant); its data was removed from J1"


@dataclass
class RoundsReport:
    """Outcome of `run_rounds`: the rounds that committed, the ones that failed, and timings."""

    rounds: list[RoundReport] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    """origin -> seconds its round took (failed ones included)."""
    span: float = 0.0
    """Seconds from the first round's start to the last one's end."""

    @property
    def longest(self) -> float:
        return max(self.durations.values(), default=0.0)

    @property
    def total(self) -> float:
        """What the rounds would take one after another."""
        return sum(self.durations.values())


@dataclass
class ResyncReport(RoundsReport):
    """Outcome of `syncd resync`: rounds, failures and the DIFF push."""

    push: PushReport | None = None


class Engine:
    """Runs source rounds against the mirror and pushes the outbox to J1."""

    def __init__(
        self,
        ctx: SourceContext,
        writer: J1Writer,
        sources: Mapping[str, Source],
        *,
        origin_types: Mapping[str, Iterable[str]],
        sign_ins: SignInPoll | None = None,
    ) -> None:
        self.ctx = ctx
        self.writer = writer
        self.sources = dict(sources)
        self.sign_ins = sign_ins
        """The users' last sign-in poll (`poll_sign_ins`), when the users source has one."""
        self.origin_types = {k: list(v) for k, v in origin_types.items()}
        self._round_locks: dict[str, asyncio.Lock] = {}
        self._push_lock = asyncio.Lock()
        self.partial: dict[str, str] = {}
        """origin → reason: rounds that failed or sources switched off; their types are partial."""
        self.last_success: dict[str, float] = {}
        self.last_error: dict[str, str] = {}
        self.in_flight: dict[str, float] = {}
        """``round:<origin>`` / ``push`` → when it started (monotonic): the watchdog's hang check."""
        self.absent_grace = ABSENT_GRACE
        self._absent_since: dict[str, float | None] = {}
        """origin -> first definitive "absent" answer (None: known present); loaded from the mirror."""

    @property
    def mirror(self) -> Mirror:
        return self.ctx.mirror

    def partial_types(self) -> list[str]:
        """Types a DIFF must not delete by omission: those of failed or switched-off origins, and
        every relationship type with an endpoint among them (the groups round cannot upload a
        group → user membership whose user the failed users round never staged)."""
        types: set[str] = set()
        for origin in self.partial:
            types.update(self.origin_types.get(origin, ()))
        types.update(relationship_types_touching(frozenset(types)))
        return sorted(types)

    async def run_round(self, origin: str, *, force_full: bool = False) -> RoundReport:
        """One round of one source; failures are recorded (never turned into deletions) and re-raised."""
        source = self.sources[origin]
        return await self.run_as_round(origin, lambda ctx: source.run(ctx, force_full=force_full))

    async def poll_sign_ins(self) -> RoundReport:
        """The users' last sign-in poll: a round of origin ``users``, so it never overlaps a users
        delta round (an empty report when the mode is off or a 403 switched it off)."""
        poll = self.sign_ins
        if poll is None or poll.origin not in self.sources:
            raise KeyError(f"{SignInPoll.origin}: no sign-in poll (the users source is off)")
        return await self.run_as_round(poll.origin, poll.run)

    async def run_as_round(self, origin: str, work: RoundWork) -> RoundReport:
        """Run ``work`` as a round of ``origin``: under the origin's lock, recorded like its
        scheduled rounds (a sign-in poll, an early re-fetch of a few objects)."""
        lock = self._round_locks.setdefault(origin, asyncio.Lock())
        async with lock, self._running(f"round:{origin}"):
            started = time.time()
            try:
                report = await work(self.ctx)
            except Exception as exc:
                # A failed round commits nothing: its types keep their last state and are partial.
                await self._failed(origin, started, exc, partial=True)
                raise
            if report.kind == "skipped":
                await self._skipped(origin, report)
            else:
                await self._committed(origin, started, report)
            return report

    async def _skipped(self, origin: str, report: RoundReport) -> None:
        """Not an error loop: the origin is off (e.g. no Intune); its types stay partial, unless
        Graph has said for long enough that the tenant does not have it at all."""
        reason = report.skip_reason or "skipped"
        self.last_success[origin] = time.time()
        if report.absent and await self._absent_long_enough(origin):
            await self.remove_origin(origin, ABSENT_REMOVED)
            return
        self.partial[origin] = reason
        await self.mirror.set_origin_flag(origin, True, reason, disabled=True)

    async def _committed(self, origin: str, started: float, report: RoundReport) -> None:
        """The round committed: the origin is present and whole again."""
        if self._absent_since.get(origin, 0.0) is not None:
            await self.mirror.delete_value(ABSENT_KEY + origin)  # present (again)
            self._absent_since[origin] = None
        await pause_point("engine.committed")
        self.partial.pop(origin, None)
        self.last_success[origin] = time.time()
        self.last_error.pop(origin, None)
        await self.mirror.set_origin_flag(origin, False, None)
        await self.mirror.record_run(origin, started, time.time(), "ok", report.as_log(), None)
        metrics.observe_round(origin, report.kind, "ok", report.duration)
        log.info("round", **report.as_log())

    async def _absent_long_enough(self, origin: str) -> bool:
        """Record the first definitive "absent" answer (kept across restarts); True once it is
        older than `absent_grace`."""
        since = self._absent_since.get(origin)
        if since is None:
            stored = await self.mirror.get_value(ABSENT_KEY + origin)
            since = float(stored) if isinstance(stored, int | float) else None
            if since is None:
                since = time.time()
                await self.mirror.set_value(ABSENT_KEY + origin, since)
            self._absent_since[origin] = since
        return time.time() - since >= self.absent_grace

    async def remove_origin(self, origin: str, reason: str) -> None:
        """An empty full round sweeps the origin's rows (their deletes go to the outbox) and its
        types stop being partial, so the next push removes its data from J1: a tenant without
        Intune (after `absent_grace`), a switched-off source under `resync --prune-disabled`."""
        round_ = await self.mirror.begin_round(origin, full=True)
        result = await round_.commit(collect_changes=False)  # nobody reads its change list
        if result.outbox_added:
            log.warning(
                "removing an origin's data from J1", origin=origin, reason=reason, rows=result.outbox_added
            )
        self.partial.pop(origin, None)
        await self.mirror.set_origin_flag(origin, False, reason, disabled=True)

    async def _failed(self, origin: str, started: float, exc: BaseException, *, partial: bool) -> None:
        reason = _describe(exc)
        self.last_error[origin] = reason
        metrics.observe_round(origin, "any", "failed", time.time() - started)
        # Logged before touching the mirror: the mirror may be what failed (disk full, unwritable).
        if isinstance(exc, MirrorError):
            log.error("round failed: the mirror cannot be written", origin=origin, error=reason)
        else:
            log.warning("round failed", origin=origin, error=reason)
        if partial:
            self.partial[origin] = reason
        try:
            if partial:
                await self.mirror.set_origin_flag(origin, True, reason)
            await self.mirror.record_run(origin, started, time.time(), "failed", {}, reason)
        except Exception as mirror_exc:
            log.error(
                "could not record the failed round in the mirror", origin=origin, error=_describe(mirror_exc)
            )

    @contextlib.asynccontextmanager
    async def _running(self, name: str) -> AsyncIterator[None]:
        self.in_flight[name] = time.monotonic()
        try:
            yield
        finally:
            self.in_flight.pop(name, None)

    async def drain(self) -> PushReport:
        """Push what the outbox holds (incremental); rows stay on failure."""
        async with self._push_lock, self._running("push"):
            report = await self.writer.drain()
            await self._after_push(report)
            return report

    async def push_full(self) -> PushReport:
        async with self._push_lock, self._running("push"):
            report = await self.writer.push_full()
            await self._after_push(report)
            return report

    async def _after_push(self, report: PushReport) -> None:
        metrics.OUTBOX_DEPTH.set(await self.mirror.outbox_depth())
        if report.objects or report.failed_partitions or report.verification_failures:
            log.info(
                "push",
                mode=report.mode,
                jobs=dict(report.jobs),
                partitions=report.partitions,
                failed_partitions=report.failed_partitions,
                verification_failures=report.verification_failures,
                refused=report.refused,
                mapped_relationships=report.mapped_relationships,
                entity_upserts=report.entity_upserts,
                entity_deletes=report.entity_deletes,
                relationship_upserts=report.relationship_upserts,
                relationship_deletes=report.relationship_deletes,
                duration_s=round(report.duration, 3),
            )

    async def run_rounds(
        self, origins: Iterable[str] | None = None, *, force_full: bool = False, concurrent: bool = True
    ) -> RoundsReport:
        """One round of each origin, concurrently: each starts once the origins it depends on
        (among those asked for) have finished, successfully or not. Failures are recorded (and
        logged by `run_round`), never raised; the caller decides what a failed origin means.

        `syncd resync` and the daemon's periodic full resync call this; so can the daemon's
        start-up catch-up. With ``concurrent=False`` the rounds run one after another in order.
        """
        asked = origins if origins is not None else self.sources
        wanted = [o for o in dict.fromkeys(asked) if o in self.sources]
        result = RoundsReport()
        done: dict[str, asyncio.Event] = {o: asyncio.Event() for o in wanted}
        started_at = time.monotonic()

        async def one(origin: str) -> None:
            try:
                if concurrent:
                    for dep in self.sources[origin].depends_on:
                        if dep in done and dep != origin:
                            await done[dep].wait()
                began = time.monotonic()
                try:
                    result.rounds.append(await self.run_round(origin, force_full=force_full))
                except Exception as exc:
                    result.failed[origin] = _describe(exc)
                finally:
                    result.durations[origin] = time.monotonic() - began
            finally:
                done[origin].set()

        if concurrent:
            await gather_or_cancel(one(o) for o in wanted)
        else:
            for origin in wanted:
                await one(origin)
        result.span = time.monotonic() - started_at
        log.info(
            "rounds",
            origins=len(wanted),
            failed=sorted(result.failed),
            span_s=round(result.span, 3),
            longest_s=round(result.longest, 3),
            sum_s=round(result.total, 3),
            concurrent=concurrent,
        )
        return result

    async def resync(self, origins: Iterable[str] | None = None, *, concurrent: bool = True) -> ResyncReport:
        """Full rounds of every source (concurrently, see `run_rounds`), then one DIFF job:
        reconciles everything, deletions included."""
        rounds = await self.run_rounds(origins, force_full=True, concurrent=concurrent)
        result = ResyncReport(
            rounds=rounds.rounds, failed=rounds.failed, durations=rounds.durations, span=rounds.span
        )
        result.push = await self.push_full()
        return result


def _describe(exc: BaseException) -> str:
    """A one-line reason without secrets (our errors never carry them)."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
