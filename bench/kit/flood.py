"""The listener under attack (tests/e2e/test_prod_webhook_flood.py, bench/webhook_flood.py): the
daemon's own `Listener` + webhook app on this loop, a loop probe, and the attack
(bench/kit/webhook_attack.py) in a separate process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.kit.daemon import ROOT
from syncd import metrics
from syncd.listener import Listener, ListenerLimits
from syncd.webhook import WebhookHooks, create_webhook_app

CLIENT_STATE = "flood-test-client-state-0123456789abcdef"
TENANT = "11111111-2222-3333-4444-555555555555"


@dataclass
class LoopProbe:
    """How long the event loop was held, two ways.

    * A 1 ms ticker: loop-thread CPU time and wall time between two of its wake-ups (a gap can
      span two loop iterations; wall time also counts the OS running other processes).
    * Each loop iteration's busy stretch: loop-thread CPU time from the selector's return to its
      next call, the time during which no callback, timer or I/O could be served at all.
    CPU time (``time.thread_time``) is what the loop spent, whatever the machine's load.
    """

    cpu_gaps: list[float] = field(default_factory=list)
    wall_gaps: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)

    async def run(self) -> None:
        restore = self._watch_iterations(asyncio.get_running_loop())
        try:
            wall, cpu = time.perf_counter(), time.thread_time()
            while True:
                await asyncio.sleep(0.001)
                now_wall, now_cpu = time.perf_counter(), time.thread_time()
                self.wall_gaps.append(now_wall - wall)
                self.cpu_gaps.append(now_cpu - cpu)
                wall, cpu = now_wall, now_cpu
        finally:
            restore()

    def _watch_iterations(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        selector = loop._selector  # type: ignore[attr-defined]  # asyncio keeps the selector private
        original = selector.select
        returned: list[float] = []

        def select(timeout: float | None = None) -> Any:
            if returned:
                self.busy.append(time.thread_time() - returned[-1])
            try:
                return original(timeout)
            finally:
                returned[:] = [time.thread_time()]

        selector.select = select
        return lambda: delattr(selector, "select")

    def summary(self) -> dict[str, float]:
        cpu, wall, busy = sorted(self.cpu_gaps), sorted(self.wall_gaps), sorted(self.busy)
        return {
            "ticks": len(cpu),
            "iterations": len(busy),
            "iteration_max_ms": round(busy[-1] * 1000, 2),
            "iteration_p999_ms": round(busy[int(len(busy) * 0.999)] * 1000, 2),
            "cpu_max_ms": round(cpu[-1] * 1000, 2),
            "cpu_p999_ms": round(cpu[int(len(cpu) * 0.999)] * 1000, 2),
            "wall_max_ms": round(wall[-1] * 1000, 2),
            "wall_p99_ms": round(wall[int(len(wall) * 0.99)] * 1000, 2),
        }


@contextlib.asynccontextmanager
async def serving(limits: ListenerLimits, max_body: int, woken: list[str]) -> AsyncIterator[Listener]:
    async def wake(origin: str) -> None:
        woken.append(origin)

    async def lifecycle(sub: str, event: str) -> None:
        raise AssertionError("no lifecycle event is valid here")

    app = create_webhook_app(
        WebhookHooks(wake=wake, lifecycle=lifecycle),
        client_state=CLIENT_STATE,
        tenant_id=TENANT,
        max_body_bytes=max_body,
        read_timeout=limits.read_timeout,
    )
    listener = await Listener.start(app, "127.0.0.1", 0, name="webhook", limits=limits)
    try:
        yield listener
    finally:
        await listener.stop()


def closed_total(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "syncd_listener_closed_total", {"listener": "webhook", "reason": reason}
    )
    return value or 0.0


async def attack(port: int, **options: Any) -> dict[str, Any]:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.kit.webhook_attack",
        f"--port={port}",
        f"--client-state={CLIENT_STATE}",
        f"--tenant={TENANT}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0
    return dict(json.loads(out))
