"""Polling for a condition: the one loop benches and tests wait with."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Check = Callable[[], bool | Awaitable[bool]]
"""A condition, plain or async."""


async def _holds(check: Check) -> bool:
    result = check()
    return bool(await result) if inspect.isawaitable(result) else bool(result)


async def poll(check: Check, limit: float, *, interval: float = 0.1) -> float | None:
    """Seconds until `check` held (checked every `interval`), or None if it did not within `limit`."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            while not await _holds(check):
                await asyncio.sleep(interval)
    except TimeoutError:
        return None
    return time.monotonic() - started


async def wait_for(
    check: Check, timeout: float, what: str | Callable[[], str] = "the condition", *, interval: float = 0.1
) -> float:
    """Seconds until `check` held; fails the test (AssertionError) after `timeout`, naming `what`
    (a callable is asked only then, for a diagnosis of the state at the time)."""
    took = await poll(check, timeout, interval=interval)
    if took is None:
        detail = what() if callable(what) else what
        raise AssertionError(f"timed out after {timeout}s waiting for {detail}")
    return took
