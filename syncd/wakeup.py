"""Refresh-now hints, coalesced per origin (Home Assistant's debounced refresh, leading edge).

A hint runs the origin's work at once when it is idle; hints that arrive while it runs, or within
``cooldown`` seconds after it finished, are folded into ONE more run. A burst of 1,000
notifications therefore costs two or three rounds, and a lone change is acted on immediately.
The trailing run also catches a change that Graph's delta had not yet replicated when the
notification arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


class WakeUps:
    """Coalesces hints per key and runs ``work(key)`` with at most one run per key at a time."""

    def __init__(
        self,
        work: Callable[[str], Awaitable[object]],
        *,
        cooldown: float = 1.0,
        cooldowns: dict[str, float] | None = None,
    ) -> None:
        self._work = work
        self.cooldown = cooldown
        self.cooldowns = dict(cooldowns or {})
        """Per-key overrides, e.g. no cooldown for the J1 push (it is serialised anyway)."""
        self._pending: dict[str, bool] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False
        self.runs: dict[str, int] = {}

    def request(self, key: str) -> None:
        """Never blocks: safe to call from a request handler."""
        if self._closed:
            return
        self._pending[key] = True
        if key not in self._tasks:
            self._tasks[key] = asyncio.get_running_loop().create_task(self._worker(key), name=f"wakeup:{key}")

    def busy(self, key: str) -> bool:
        return key in self._tasks

    async def _worker(self, key: str) -> None:
        try:
            while self._pending.get(key) and not self._closed:
                self._pending[key] = False
                self.runs[key] = self.runs.get(key, 0) + 1
                try:
                    await self._work(key)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the work logs its own details; keep the loop alive
                    log.debug("wake-up work failed", key=key, error=type(exc).__name__)
                pause = self.cooldowns.get(key, self.cooldown)
                if pause > 0:
                    await asyncio.sleep(pause)
        finally:
            self._tasks.pop(key, None)

    async def idle(self) -> None:
        """Wait until no work runs or is pending (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self, timeout: float = 10.0, cancel_grace: float = 5.0) -> None:  # noqa: ASYNC109
        """Stop taking hints; let a running round finish within ``timeout``, then cancel it.

        A cancelled run gets ``cancel_grace`` seconds to clean up (e.g. abort its J1 job); whatever
        it had committed stays in the outbox. Never waits longer than ``timeout + cancel_grace``.
        """
        self._closed = True
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, still = await asyncio.wait(tasks, timeout=timeout)
        if not still:
            return
        log.warning("in-flight work did not finish in time: cancelling it", keys=sorted(self._tasks))
        for task in still:
            task.cancel()
        _done, stuck = await asyncio.wait(still, timeout=cancel_grace)
        for task in stuck:  # its clean-up hangs (e.g. an abort call); cancel that too, don't wait
            task.cancel()
