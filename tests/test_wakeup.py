"""Debounced wake-ups: a lone hint runs at once, a burst folds into a handful of runs."""

from __future__ import annotations

import asyncio
import time

from syncd.wakeup import WakeUps


async def test_lone_hint_runs_immediately() -> None:
    ran: list[float] = []

    async def work(key: str) -> None:
        ran.append(time.monotonic())

    wake = WakeUps(work, cooldown=5.0)
    t0 = time.monotonic()
    wake.request("users")
    await asyncio.sleep(0.05)
    while not ran and time.monotonic() - t0 < 2.0:
        await asyncio.sleep(0.01)
    # leading edge: it ran long before a trailing debounce (5 s) could have
    assert len(ran) == 1 and ran[0] - t0 < 1.0
    await wake.close(timeout=0.1)


async def test_burst_of_1000_hints_is_a_handful_of_runs() -> None:
    runs: dict[str, int] = {}

    async def work(key: str) -> None:
        runs[key] = runs.get(key, 0) + 1
        await asyncio.sleep(0.05)

    wake = WakeUps(work, cooldown=0.2)
    for i in range(1000):
        wake.request("users" if i % 2 else "groups")
        if i % 100 == 0:
            await asyncio.sleep(0.01)
    await wake.idle()
    assert 1 <= runs["users"] <= 3 and 1 <= runs["groups"] <= 3, runs


async def test_hint_during_a_run_gets_one_trailing_run() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    count = 0

    async def work(key: str) -> None:
        nonlocal count
        count += 1
        started.set()
        if count == 1:
            await release.wait()

    wake = WakeUps(work, cooldown=0.0)
    wake.request("users")
    await started.wait()
    for _ in range(50):
        wake.request("users")
    release.set()
    await wake.idle()
    assert count == 2


async def test_failing_work_does_not_stop_later_hints() -> None:
    calls = 0

    async def work(key: str) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    wake = WakeUps(work, cooldown=0.0)
    wake.request("users")
    await wake.idle()
    wake.request("users")
    await wake.idle()
    assert calls == 2


async def test_keys_run_independently() -> None:
    active: set[str] = set()
    overlap = False

    async def work(key: str) -> None:
        nonlocal overlap
        active.add(key)
        await asyncio.sleep(0.05)
        if len(active) == 2:
            overlap = True
        active.discard(key)

    wake = WakeUps(work, cooldown=0.0)
    wake.request("users")
    wake.request("groups")
    await wake.idle()
    assert overlap


async def test_per_key_cooldown_override() -> None:
    """The push key runs back to back (no cooldown) while rounds keep theirs."""
    runs: list[tuple[str, float]] = []

    async def work(key: str) -> None:
        runs.append((key, time.monotonic()))

    wake = WakeUps(work, cooldown=5.0, cooldowns={"push": 0.0})
    wake.request("push")
    await asyncio.sleep(0.02)
    wake.request("push")
    await wake.idle()
    pushes = [t for k, t in runs if k == "push"]
    assert len(pushes) == 2 and pushes[1] - pushes[0] < 1.0  # the 5 s cooldown was skipped
