"""syncd on the test's own event loop: the daemon (as `syncd demo` runs it) and the runtime."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from syncd import log as syncd_log
from syncd.config import load_settings
from syncd.daemon import Daemon
from syncd.runtime import Runtime, open_runtime
from syncd.sim.harness import SimHarness

READY_TIMEOUT = 120.0
S = TypeVar("S")


@asynccontextmanager
async def running_daemon(config: Path, *, logs: io.StringIO | None = None) -> AsyncIterator[Daemon]:
    """`Daemon` for the config file (no signal handlers), ready; stopped on the way out, exit 0
    asserted. With `logs`, its logs go there as JSON, secrets registered, as `syncd run` does;
    without, logging stays as the test set it (e.g. `structlog.testing.capture_logs`)."""
    settings = load_settings(config, environ={})
    if logs is not None:
        syncd_log.configure_logging(settings.log.level, "json", stream=logs)
        syncd_log.register_secrets(settings.secrets())
    daemon = Daemon(settings, config_path=config, install_signals=False)
    ready = asyncio.Event()
    daemon.on_ready(ready.set)
    task = asyncio.create_task(daemon.run(), name="daemon")
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiter.cancel()
        if task in done:
            task.result()  # raises the start-up error
            raise AssertionError("the daemon returned before it was ready")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise AssertionError(f"the daemon was not ready within {READY_TIMEOUT} s")
    try:
        yield daemon
    finally:
        if not task.done():
            daemon.request_stop()
        assert await asyncio.wait_for(task, 60) == 0


@asynccontextmanager
async def intune_runtime(h: SimHarness, **sync: Any) -> AsyncIterator[Runtime]:
    """A runtime against the simulators; `sync` overrides `[sync]` keys (no request-budget waits)."""
    extra = {"sync": {"intune_requests_per_20s": 100_000, "intune_concurrency": 4, **sync}}
    async with open_runtime(h.settings(extra)) as rt:
        yield rt


def source_of(rt: Runtime, origin: str, kind: type[S]) -> S:
    """The engine's source of `origin`, as the class the test knows it to be."""
    source = rt.engine.sources[origin]
    assert isinstance(source, kind), type(source)
    return source
