"""The writer thread keeps SQLite off the event loop: no statement runs on the loop's thread, and a
heartbeat keeps ticking during a big commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
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

    statement_threads: set[int] = set()

    def trace(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(lambda _sql: statement_threads.add(threading.get_ident()))

    await mirror._write("tracing", trace)  # the writer connection, in its own thread
    beat = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    result = await r.commit()
    took = time.perf_counter() - started
    stop.set()
    await beat
    assert result.counts["entities_created"] == 10_000 and result.counts["relationships_created"] == 20_000
    assert took > 0.2, "the commit should be big enough to matter"
    # Deterministic: every statement of the commit ran on the writer thread, none on the loop's.
    assert statement_threads and threading.get_ident() not in statement_threads
    # The loop kept running all along. Wall-clock gaps also depend on how busy the machine is (CI
    # runs other tests beside this one), so the timing bound is the commit's own length: a commit
    # on the loop's thread would stall it for all of that time.
    assert len(gaps) > took / 0.05
    assert max(gaps) < took / 2, f"event loop blocked for {max(gaps):.3f}s during a {took:.2f}s commit"


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
