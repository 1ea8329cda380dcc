"""Alert delivery: a structured log event always, then the outbox rows each target drains.

Alerts are written to the mirror's alert outbox in the same transaction as the diff, and a
separate task drains it: delivery is at-least-once, survives restarts, and a receiver that is down
never holds up the J1 push (or the other receivers: each target has its own concurrency slots).
What a target sends and how is its class's business (``syncd.alerts.targets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import aiohttp
import structlog

from syncd.alerts.targets import AlertTarget
from syncd.alerts.types import SEVERITIES, Alert
from syncd.mirror.types import AlertRow
from syncd.retry import backoff

log = structlog.get_logger(__name__)

_SEVERITY_LOG_LEVEL = {
    "info": "info",
    "low": "info",
    "medium": "warning",
    "high": "warning",
    "critical": "error",
}

T = TypeVar("T")


class AlertStore(Protocol):
    """The mirror's alert outbox. Methods may be plain or ``async``; both are accepted.

    ``due_alerts`` returns rows ``{row_id, alert_id, rule_id, severity, target, payload, attempts}``
    whose next attempt is due; ``attempts`` counts failed attempts so far (``retry_alert`` adds one).
    """

    def enqueue_alerts(self, rows: list[AlertRow]) -> int | Awaitable[int]: ...
    def due_alerts(
        self, now: float, limit: int
    ) -> list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]: ...
    def ack_alert(self, row_id: int) -> Awaitable[None] | None: ...
    def retry_alert(self, row_id: int, next_attempt: float, error: str) -> Awaitable[None] | None: ...


async def _maybe_await(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


def severity_at_least(severity: str, minimum: str) -> bool:
    """Severity order: info < low < medium < high < critical (unknown counts as info)."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return rank.get(severity, 0) >= rank.get(minimum, 0)


def log_alert(alert: Alert) -> None:
    """The always-on output: one structured log event per alert."""
    level = _SEVERITY_LOG_LEVEL.get(alert.severity, "warning")
    getattr(log, level)(
        "alert",
        alert_id=alert.alert_id,
        rule_id=alert.rule_id,
        severity=alert.severity,
        message=alert.message,
        change=alert.change,
    )


def alerts_to_rows(alerts: Sequence[Alert], targets: Sequence[AlertTarget]) -> list[AlertRow]:
    """Log every alert, then one outbox row per (alert, target whose min_severity it reaches)."""
    rows: list[AlertRow] = []
    for alert in alerts:
        log_alert(alert)
        payload = alert.to_dict()
        for target in targets:
            if severity_at_least(alert.severity, target.min_severity):
                rows.append(
                    AlertRow(
                        alert_id=alert.alert_id,
                        rule_id=alert.rule_id,
                        severity=alert.severity,
                        target=target.name,
                        payload=payload,
                    )
                )
    return rows


# --- dispatcher --------------------------------------------------------------------------------


class AlertDispatcher:
    """Drains the alert outbox: ack on success, retry with capped exponential backoff, give up after N."""

    def __init__(
        self,
        store: AlertStore,
        targets: Sequence[AlertTarget],
        session: aiohttp.ClientSession,
        *,
        max_attempts: int = 8,
        backoff_base: float = 5.0,
        backoff_cap: float = 900.0,
        jitter: float = 0.1,
        batch_size: int = 100,
        per_target_concurrency: int = 4,
        poll_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1 or batch_size < 1 or per_target_concurrency < 1:
            raise ValueError("max_attempts, batch_size and per_target_concurrency must be >= 1")
        self.store = store
        self.targets = {t.name: t for t in targets}
        self.session = session
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.jitter = jitter
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.clock = clock
        self._slots = {name: asyncio.Semaphore(per_target_concurrency) for name in self.targets}
        self._last_fetched = 0

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Delay before attempt ``attempts + 1``: base·2^(attempts-1), jittered, ≥ Retry-After, capped."""
        delay = backoff(
            attempts, base=self.backoff_base, cap=self.backoff_cap, low=1 - self.jitter, high=1 + self.jitter
        )
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.backoff_cap)

    async def run_once(self) -> int:
        """Deliver every due row once (targets in parallel); returns how many were delivered."""
        rows = await _maybe_await(self.store.due_alerts(self.clock(), self.batch_size))
        self._last_fetched = len(rows)
        if not rows:
            return 0
        results = await asyncio.gather(*(self._handle(row) for row in rows))
        return sum(1 for r in results if r)

    async def run_forever(self, wake: asyncio.Event) -> None:
        """Run until cancelled; between passes wait for `wake` (new alerts) or poll_interval (retries)."""
        while True:
            wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("alert_dispatch_failed", error=type(exc).__name__)
                self._last_fetched = 0
            if self._last_fetched >= self.batch_size:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.poll_interval)

    async def _handle(self, row: Mapping[str, Any]) -> bool:
        ctx = {"alert_id": row.get("alert_id"), "rule_id": row.get("rule_id"), "target": row.get("target")}
        try:
            row_id = row["row_id"]
            target = self.targets.get(str(row.get("target")))
            if target is None:
                log.warning("alert_target_unknown", **ctx)
                await _maybe_await(self.store.ack_alert(row_id))
                return False
            payload = row.get("payload") or {}
            if isinstance(payload, str | bytes):
                payload = json.loads(payload)
            async with self._slots[target.name]:
                outcome = await target.deliver(payload, self.session)
            attempts = int(row.get("attempts") or 0) + 1
            if outcome.ok:
                await _maybe_await(self.store.ack_alert(row_id))
                log.info("alert_delivered", attempts=attempts, **ctx)
                return True
            if outcome.permanent or attempts >= self.max_attempts:
                log.error(
                    "alert_delivery_gave_up",
                    attempts=attempts,
                    error=outcome.error,
                    permanent=outcome.permanent,
                    **ctx,
                )
                await _maybe_await(self.store.ack_alert(row_id))  # the log event is its record
                return False
            delay = self.backoff(attempts, outcome.retry_after)
            await _maybe_await(self.store.retry_alert(row_id, self.clock() + delay, outcome.error))
            log.warning(
                "alert_delivery_retry", attempts=attempts, next_in=round(delay, 3), error=outcome.error, **ctx
            )
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("alert_dispatch_row_failed", error=type(exc).__name__, **ctx)
            return False
