"""Request pacing shared by every source of one process: token buckets and Retry-After gates.

Graph throttles per (app, tenant) and per service family: the identity services (users, groups,
devices, organization ...) count resource units per 10 s, Intune counts requests per 20 s
(microsoft-graph.md §5.1). Sources that run at the same time therefore share one budget and one
Retry-After gate per family, kept here and consulted by the Graph client for every request and
every `$batch` item, so concurrency never multiplies the rate a tenant sees.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

INTUNE = "intune"
DIRECTORY = "directory"

_INTUNE_ROOTS = ("/deviceManagement", "/deviceAppManagement")


def family_of(path: str) -> str:
    """The throttling family of a Graph path (``/v1.0/...``, ``/beta/...`` or version-less)."""
    rest = path
    for prefix in ("/v1.0/", "/beta/"):
        if rest.startswith(prefix):
            rest = rest[len(prefix) - 1 :]
            break
    if rest.startswith(_INTUNE_ROOTS):
        return INTUNE
    return DIRECTORY


class RequestBudget:
    """A token bucket: at most ``per_window`` requests per ``window`` seconds, smoothly refilled.

    Waiters are served in arrival order (one lock), so a large fetch cannot starve a small one
    for longer than its own share.
    """

    def __init__(self, per_window: int, window: float = 20.0) -> None:
        self.capacity = max(1, per_window)
        self.window = window
        self.tokens = float(self.capacity)
        self.updated = time.monotonic()
        self.used = 0
        self.waited = 0.0
        """Seconds spent waiting for tokens (for benches and status)."""
        self._lock = asyncio.Lock()

    async def take(self, count: int = 1) -> None:
        count = min(max(1, count), self.capacity)
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(
                    self.capacity, self.tokens + (now - self.updated) * self.capacity / self.window
                )
                self.updated = now
                if self.tokens >= count:
                    self.tokens -= count
                    self.used += count
                    return
                pause = (count - self.tokens) * self.window / self.capacity
                self.waited += pause
                await asyncio.sleep(pause)


@dataclass
class Pacing:
    """Budgets and Retry-After gates per family, shared by every caller of one Graph client."""

    budgets: dict[str, RequestBudget] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)
    """family -> monotonic time before which no request of that family is sent (a 429's Retry-After)."""

    async def acquire(self, family: str, count: int = 1) -> None:
        """Wait for the family's Retry-After gate, then pay ``count`` requests from its budget
        (``count=0``: the gate only)."""
        while True:
            delay = self.not_before.get(family, 0.0) - time.monotonic()
            if delay <= 0:
                break
            await asyncio.sleep(delay)
        budget = self.budgets.get(family)
        if budget is not None and count > 0:
            await budget.take(count)

    def hold(self, family: str, seconds: float) -> None:
        """A 429 with Retry-After: the whole family waits (throttling is per app and tenant)."""
        self.not_before[family] = max(self.not_before.get(family, 0.0), time.monotonic() + seconds)

    def used(self, family: str) -> int:
        budget = self.budgets.get(family)
        return budget.used if budget is not None else 0
