"""Hostile traffic cannot freeze the daemon: the event loop stays responsive under a flood of
costly notification bodies and slow clients, and slow clients are let go.

The notification listener (the daemon's own `Listener` + webhook app) runs on this test's event
loop; the attack runs in a separate process (bench/kit/webhook_attack.py). The loop is measured
in loop-thread CPU time, which the machine's load does not inflate (bench/kit/flood.py,
`LoopProbe`): every iteration's busy stretch (selector return to next select: nothing else could
run meanwhile), and the gap between the wake-ups of a 1 ms ticker. Wall-clock gaps are reported.
"""

from __future__ import annotations

import asyncio
import gc
import json

import pytest
from structlog.testing import capture_logs

from bench.kit.flood import LoopProbe, attack, closed_total, serving
from syncd.listener import ListenerLimits

MAX_LOOP_CPU_MS = 8.0
"""A few ms: the webhook decodes or sorts one body per loop iteration, and one body at the size
and structure limits costs ~1.5 ms of CPU here."""


async def _flood_and_slow_clients(
    *, workers: int, rounds: int, slow: int, max_body: int, burst_allowance_ms: float = 0.0
) -> None:
    read_timeout = 2.0
    # keep-alive longer than the read deadline: the listener's own head deadline must cut the
    # slow clients off (recent aiohttp also ends a connection idle for keepalive_timeout)
    limits = ListenerLimits(read_timeout=read_timeout, keepalive_timeout=4.0, max_connections=slow + 24)
    woken: list[str] = []
    probe = LoopProbe()
    gc.collect()
    gc.freeze()  # the test process's own heap (pytest, hypothesis...) is not the daemon's
    try:
        async with serving(limits, max_body, woken) as listener:
            timeouts_before = closed_total("read_timeout")
            ticker = asyncio.create_task(probe.run())
            try:
                with capture_logs() as logs:
                    report = await attack(
                        listener.port,
                        workers=workers,
                        rounds=rounds,
                        slow=slow,
                        give_up=read_timeout + 6,
                        max_body=max_body,
                    )
            finally:
                ticker.cancel()
            loop = probe.summary()
            print(json.dumps({"loop": loop, **{k: v for k, v in report.items() if k != "legitimate"}}))

            # the loop was never held for more than a few ms, whatever came in; hundreds of
            # connections opened at the same instant add asyncio's own cost per connection event
            assert loop["ticks"] > 1000, loop
            assert loop["iteration_max_ms"] <= MAX_LOOP_CPU_MS + burst_allowance_ms, loop
            assert loop["cpu_p999_ms"] <= MAX_LOOP_CPU_MS + burst_allowance_ms, loop

            # every hostile body got a 4xx (or was cut off), none woke anything
            for outcome in report["flood"]:
                name, status = outcome.rsplit(":", 1)
                assert status in ("400", "413", "202", "0"), outcome
                if status == "0":  # dropped mid-send: only the oversized body is refused unread
                    assert name == "oversized", outcome
            # the legitimate sender was served all along, quickly
            legit = report["legitimate"]
            assert len(legit) >= 5 and all(status == 202 for status, _ in legit), legit
            assert max(latency for _, latency in legit) < 2.0, legit
            assert woken and set(woken) == {"users"}
            # slow clients were let go: a slow head within read_timeout, a slow body after its 408
            # and a short linger (lingering_time, 1 s)
            closed = report["slow_closed_after"]
            heads, bodies = closed[1::2], closed[0::2]
            assert all(
                c is not None and 0.8 * read_timeout - 0.3 <= c <= read_timeout + 0.5 for c in heads
            ), heads
            assert all(c is not None and c <= read_timeout + 1.8 for c in bodies), bodies
            assert closed_total("read_timeout") - timeouts_before == len(heads)
            # one summary line per request, never one per item
            assert len(logs) <= workers * rounds + len(legit) + slow, len(logs)
            assert listener.guard.open <= limits.max_connections
    finally:
        gc.unfreeze()


async def test_flood_and_slow_clients_keep_the_loop_responsive() -> None:
    await _flood_and_slow_clients(workers=4, rounds=10, slow=60, max_body=131_072)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_heavy_flood_and_slow_clients_keep_the_loop_responsive() -> None:
    # 400 connections land within a few ms; asyncio takes them in slices of the listen backlog
    # (64), each slice costing a few ms of connection set-up on top of the request work
    await _flood_and_slow_clients(workers=16, rounds=40, slow=400, max_body=131_072, burst_allowance_ms=4.0)


async def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    limits = ListenerLimits(read_timeout=5.0, keepalive_timeout=5.0, max_connections=8)
    async with serving(limits, 65_536, []) as listener:
        refused_before = closed_total("connection_limit")
        conns = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(20)]
        try:

            async def eof(reader: asyncio.StreamReader) -> bool:
                try:
                    return await asyncio.wait_for(reader.read(1), 0.5) == b""
                except (TimeoutError, ConnectionError):
                    return False

            ended = await asyncio.gather(*(eof(r) for r, _ in conns))
            assert sum(ended) == 12, ended  # the first 8 are held (until read_timeout), the rest dropped
            assert not any(ended[:8])
            assert closed_total("connection_limit") - refused_before == 12
            assert listener.guard.open == 8
        finally:
            for _, w in conns:
                w.close()
