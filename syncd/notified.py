"""Changes Graph announced that delta has not shown yet: look again, soon, a few times.

Graph documents processing delays: a change can be missing from a delta round while its change
notification has already arrived. The notified round then finds nothing, and without a second
look the change would wait for the safety net (minutes). So the ids a notification names are kept
until a round of their resource shows them; while some are missing, the resource's round is
requested again after short, growing delays, until they show up or `HORIZON` passes (then the
safety net takes over). A `missed` lifecycle event (notifications lost) adds a wildcard that
only the horizon clears. Nothing is remembered across restarts: the start-up catch-up covers it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence

import structlog

log = structlog.get_logger(__name__)

DELAYS: tuple[float, ...] = (0.5, 0.75, 1.0, 1.5, 2.5, 4.0, 6.0, 10.0, 15.0, 20.0)
"""Seconds between a round that missed a notified change and the next look (the last repeats)."""
HORIZON = 90.0
"""After this long a change still not in delta is left to the safety-net round."""
ANY = "*"
"""Wildcard id: some change was lost (a `missed` event); only the horizon clears it."""


class NotifiedChanges:
    """Per resource: notified ids not yet seen in a delta round, and the timer of the next look."""

    def __init__(
        self,
        request: Callable[[str], None],
        *,
        delays: Sequence[float] = DELAYS,
        horizon: float = HORIZON,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._request = request
        self.delays = tuple(delays)
        self.horizon = horizon
        self._clock = clock
        self._pending: dict[str, dict[str, float]] = {}
        self._attempts: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.looks: dict[str, int] = {}
        """Rounds requested by this class, per resource (metrics and tests)."""

    def notified(self, origin: str, ids: Iterable[str]) -> None:
        """A notification named these objects: keep them until a round shows them."""
        pending = self._pending.setdefault(origin, {})
        now = self._clock()
        for object_id in ids:
            if object_id.lower() not in pending:
                pending[object_id.lower()] = now
                self._attempts[origin] = 0  # a new change: the next looks come quickly again

    def lost(self, origin: str) -> None:
        """Notifications were lost (`missed`): keep looking until the horizon."""
        self._pending.setdefault(origin, {})[ANY] = self._clock()
        self._attempts[origin] = 0

    def pending(self, origin: str) -> set[str]:
        return set(self._pending.get(origin, {}))

    def round_done(self, origin: str, seen: Iterable[str]) -> None:
        """A delta round of `origin` ended (`seen`: the ids it showed; nothing if it failed)."""
        pending = self._pending.get(origin)
        if not pending:
            return
        for object_id in seen:
            pending.pop(object_id.lower(), None)
        now = self._clock()
        expired = [k for k, since in pending.items() if now - since > self.horizon]
        for key in expired:
            del pending[key]
        if expired and ANY not in expired:
            log.info(
                "notified changes not in delta yet; the safety-net round will find them",
                origin=origin,
                count=len(expired),
            )
        if not pending:
            self._attempts.pop(origin, None)
            self._cancel(origin)
            return
        attempt = self._attempts.get(origin, 0)
        delay = self.delays[min(attempt, len(self.delays) - 1)]
        loop = asyncio.get_running_loop()
        scheduled = self._timers.get(origin)
        if scheduled is not None and scheduled.when() <= loop.time() + delay:
            return  # a look comes soon enough already
        self._cancel(origin)
        self._attempts[origin] = attempt + 1
        log.debug("looking again for notified changes", origin=origin, waiting=len(pending), delay=delay)
        self._timers[origin] = loop.call_later(delay, self._look, origin)

    def _look(self, origin: str) -> None:
        self._timers.pop(origin, None)
        self.looks[origin] = self.looks.get(origin, 0) + 1
        self._request(origin)

    def _cancel(self, origin: str) -> None:
        timer = self._timers.pop(origin, None)
        if timer is not None:
            timer.cancel()

    def close(self) -> None:
        for origin in list(self._timers):
            self._cancel(origin)
