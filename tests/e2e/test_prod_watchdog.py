"""The systemd watchdog hears from syncd only while it makes progress.

The daemon runs in this process (so the test can wedge its mirror writer thread) with a local
NOTIFY_SOCKET and WATCHDOG_USEC: a writer thread that stops answering, and a round that hangs
on a Graph call, each stop the WATCHDOG=1 pings, put the reason in STATUS= and turn /healthz 503;
once the cause is gone, pings and a 200 come back.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.kit.daemon import directory_config
from bench.kit.tenants import directory_tenant
from bench.kit.waiting import wait_for
from syncd.sim.harness import SimHarness, start_harness
from tests.helpers.harness import graph_faults
from tests.helpers.inprocess import running_daemon
from tests.helpers.service import NotifySocket, health_get

WATCHDOG_USEC = 400_000  # pings every 0.2 s while all is well


def _pings_since(sock: NotifySocket, since: float) -> int:
    return sum(1 for t, msg in sock.messages if msg == "WATCHDOG=1" and t > since)


async def _healthz(h: SimHarness) -> tuple[int, dict[str, object]]:
    code, body = await health_get(h, "/healthz")
    return code, json.loads(body)


async def _stalled_then_recovered(
    sock: NotifySocket, h: SimHarness, reason: str, release: Callable[[], object]
) -> None:
    """Pings stop and the reason shows (STATUS=, /healthz 503); after `release()` all recovers."""
    loop = asyncio.get_running_loop()

    async def stalled() -> bool:
        code, body = await _healthz(h)
        return code == 503 and reason in str(body.get("stalled"))

    await wait_for(stalled, 15, f"/healthz 503 naming {reason!r}")
    status = [ln for ln in sock.lines() if ln.startswith("STATUS=stalled")]
    assert status and reason in status[-1], sock.lines()[-5:]
    quiet_from = loop.time()
    await asyncio.sleep(0.8)  # four watchdog periods
    assert _pings_since(sock, quiet_from) == 0
    release()
    resumed_from = loop.time()
    await wait_for(lambda: _pings_since(sock, resumed_from) >= 2, 20, "watchdog pings again")

    async def healthy() -> bool:
        code, body = await _healthz(h)
        return code == 200 and body.get("stalled") is None

    await wait_for(healthy, 20, "/healthz 200 again")


async def test_a_stuck_writer_thread_stops_the_watchdog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await start_harness(directory_tenant(), tmp_path, notifications=False)
    sock = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    gate = threading.Event()
    try:
        cfg = directory_config(
            h, sync={"safety_net_interval": 0.5}, health={"writer_timeout": 1.0, "max_lag": 600}
        )
        async with running_daemon(cfg, logs=io.StringIO()) as daemon:
            assert daemon.rt is not None
            await wait_for(lambda: any(msg == "WATCHDOG=1" for _, msg in sock.messages), 10, "a first ping")
            # the writer thread now waits on something that never comes (a wedged SQLite call)
            wedged = asyncio.ensure_future(daemon.rt.mirror._writer.run(lambda: gate.wait(60)))
            await _stalled_then_recovered(sock, h, "mirror writer thread has not answered", gate.set)
            await wedged
    finally:
        gate.set()
        sock.close()
        await h.stop()


async def test_a_hung_round_stops_the_watchdog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    h = await start_harness(directory_tenant(), tmp_path, notifications=False)
    sock = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    try:
        cfg = directory_config(
            h,
            sync={"safety_net_interval": 0.5},
            graph={"request_timeout": 4},
            health={"work_timeout": 1.5, "max_lag": 600},
        )
        async with running_daemon(cfg, logs=io.StringIO()):
            await wait_for(lambda: any(msg == "WATCHDOG=1" for _, msg in sock.messages), 10, "a first ping")
            graph_faults(h, latency_ms=3500)  # every Graph call now hangs for 3.5 s
            await _stalled_then_recovered(
                sock, h, "round:users has been running", lambda: graph_faults(h, latency_ms=0)
            )
    finally:
        sock.close()
        await h.stop()
