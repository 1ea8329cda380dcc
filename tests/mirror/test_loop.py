"""The writer thread keeps SQLite off the event loop: a heartbeat keeps ticking during a big commit."""

from __future__ import annotations

import asyncio
import time

from syncd.mirror import Mirror
from tests.mirror.helpers import ent, rel


async def test_loop_keeps_ticking_during_big_commit(mirror: Mirror) -> None:
    r = await mirror.begin_round("users", full=True)
    for i in range(10_000):
        key = f"user-{i:08d}"
        await r.stage(key, [ent(key)], [rel(f"group-{i % 100:07d}", key), rel(key, f"device-{i:08d}")])
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    result = await r.commit()
    took = time.perf_counter() - started
    stop.set()
    await beat
    assert result.counts["entities_created"] == 10_000 and result.counts["relationships_created"] == 20_000
    assert took > 0.2, "the commit should be big enough to matter"
    assert len(gaps) > took / 0.05  # ticked all along
    assert max(gaps) < 0.25, f"event loop blocked for {max(gaps):.3f}s during a {took:.2f}s commit"


async def test_reads_do_not_wait_for_the_writer(mirror: Mirror) -> None:
    r = await mirror.begin_round("users", full=True)
    for i in range(10_000):
        await r.stage(f"u{i}", [ent(f"user-{i:08d}")], [rel("group-0000001", f"user-{i:08d}")])
    commit = asyncio.create_task(r.commit())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    depth = await mirror.outbox_depth()  # served by the read connection
    read_took = time.perf_counter() - started
    await commit
    assert depth == 0  # WAL snapshot: the commit is not visible until it finishes
    assert read_took < 0.2
    assert await mirror.outbox_depth() == 10_000
