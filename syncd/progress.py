"""Is syncd making progress? The answer gates the systemd watchdog ping.

A ping sent just because the event loop turns proves little: a writer thread stuck in SQLite or
a round waiting forever on a half-open connection keep the loop turning while nothing syncs.
So each watchdog period the mirror's writer thread gets a no-op to run, and the oldest round or
J1 push in flight is looked at. When the writer has not answered within ``writer_timeout`` or
some work has run past ``work_timeout``, the ping is withheld (systemd restarts syncd after
``WatchdogSec=``), and the reason goes to ``STATUS=``, ``/healthz`` and the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog

from syncd import metrics, sdnotify

log = structlog.get_logger(__name__)

DEFAULT_PERIOD = 5.0
"""Check period without a systemd watchdog (``/healthz`` still reports a stall)."""


class Progress:
    """Tracks the writer probe and in-flight work; ``run()`` pings the watchdog while all is well."""

    def __init__(
        self,
        ping_writer: Callable[[], Coroutine[Any, Any, None]],
        in_flight: Callable[[], Mapping[str, float]],
        *,
        writer_timeout: float,
        work_timeout: float,
        on_change: Callable[[str | None], object] = lambda problem: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ping_writer = ping_writer
        self._in_flight = in_flight
        """Work name (e.g. ``round:users``, ``push``) → its start on ``clock``."""
        self.writer_timeout = writer_timeout
        self.work_timeout = work_timeout
        self._on_change = on_change
        self._clock = clock
        self._probe: asyncio.Task[None] | None = None
        self._probe_sent = 0.0
        self.problem: str | None = None
        """Why syncd is stalled, or None while it makes progress."""

    def check(self) -> str | None:
        """Send a writer probe if none is out, then say what (if anything) is stuck."""
        now = self._clock()
        if self._probe is None or self._probe.done():
            if self._probe is not None and not self._probe.cancelled():
                self._probe.exception()  # an error is an answer too; retrieved so asyncio stays quiet
            self._probe = asyncio.get_running_loop().create_task(self._ping_writer(), name="writer-probe")
            self._probe_sent = now
        problems: list[str] = []
        waited = now - self._probe_sent
        if not self._probe.done() and waited > self.writer_timeout:
            problems.append(f"the mirror writer thread has not answered for {waited:.0f}s")
        for name, started in sorted(self._in_flight().items(), key=lambda item: item[1]):
            if now - started > self.work_timeout:
                problems.append(f"{name} has been running for {now - started:.0f}s")
        problem = "; ".join(problems) or None
        if problem != self.problem:
            self.problem = problem
            metrics.STALLED.set(1 if problem else 0)
            if problem:
                log.error("no progress: the watchdog ping is withheld", reason=problem)
            else:
                log.info("progress again: watchdog pings resume")
            self._on_change(problem)
        return problem

    async def run(self, watchdog: float | None) -> None:
        """Until cancelled: check every half ``WatchdogSec=`` (or ``DEFAULT_PERIOD``), ping if fine."""
        period = watchdog / 2 if watchdog else DEFAULT_PERIOD
        try:
            while True:
                if self.check() is None and watchdog:
                    sdnotify.watchdog()
                await asyncio.sleep(period)
        finally:
            if self._probe is not None and not self._probe.done():
                self._probe.cancel()
