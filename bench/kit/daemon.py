"""syncd as a child process, the way systemd or an operator runs it: `syncd run` (`DaemonProc`) and
the one-shot commands (`run_cli`). The simulators keep running on the caller's event loop; the
child gets a clean environment (as under systemd), never the caller's `SYNCD_*` settings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.kit.waiting import wait_for
from syncd.model import schema as m
from syncd.sim.harness import SimHarness

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the children's working directory."""


DIRECTORY_SOURCES = [m.SOURCE_USERS, m.SOURCE_GROUPS]


def directory_config(h: SimHarness, **sections: dict[str, Any]) -> Path:
    """The harness config for a daemon child on the directory sources: fast timings, JSON logs at
    INFO (its events are read back), plus `sections` (merged into the sections of those names)."""
    extra: dict[str, dict[str, Any]] = {
        "sync": {
            "sources": DIRECTORY_SOURCES,
            "debounce": 0.2,
            "drain_interval": 0.5,
            "safety_net_interval": 3600,
        },
        "log": {"level": "INFO", "format": "json"},
    }
    for name, values in sections.items():
        extra.setdefault(name, {}).update(values)
    return h.config_path(extra)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH and unbuffered output, plus `extra`."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", **(extra or {})}


def syncd_argv(config: Path | None, *args: str) -> list[str]:
    """`python -m syncd [-c CONFIG] ARGS` with this interpreter (the project's venv)."""
    return [sys.executable, "-m", "syncd", *(("-c", str(config)) if config is not None else ()), *args]


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


async def run_cli(
    *args: str,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path = ROOT,
    timeout: float = 60.0,
) -> CliResult:
    """`syncd [-c CONFIG] ARGS` to completion, its output captured (killed after `timeout`)."""
    proc = await asyncio.create_subprocess_exec(
        *syncd_argv(config, *args),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(env),
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))


def json_events(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of `text` (other lines skipped)."""
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict):
                out.append(item)
    return out


@dataclass
class DaemonProc:
    """A `syncd run` child, stdout and stderr in files (no pipe can fill up)."""

    proc: asyncio.subprocess.Process
    out_path: Path
    err_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Its JSON log events (the config must set `[log] format = "json"`), those named `name`."""
        found = json_events(self.out_path.read_text(errors="replace"))
        return found if name is None else [e for e in found if e.get("event") == name]

    def has_event(self, event: str, **fields: Any) -> bool:
        return any(all(e.get(k) == v for k, v in fields.items()) for e in self.events(event))

    def _alive(self) -> None:
        if self.proc.returncode is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.output()[-3000:]}")

    async def wait_event(self, event: str, timeout: float, **fields: Any) -> None:
        def seen() -> bool:
            self._alive()
            return self.has_event(event, **fields)

        await wait_for(seen, timeout, f"log event {event!r} {fields}")

    async def wait_healthy(self, health_url: str, timeout: float) -> float:
        """Seconds from the start until `/healthz` says ready (polled every 0.2 s)."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def ready() -> bool:
                self._alive()
                try:
                    async with http.get(f"{health_url}/healthz") as resp:
                        return bool((await resp.json()).get("ready"))
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    return False

            await wait_for(ready, timeout, "/healthz to say ready", interval=0.2)
        return time.monotonic() - self.started

    def signal(self, sig: int) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, sig)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (kill -9 if it overruns, then fail)."""
        self.signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.proc.wait()
            raise AssertionError(f"daemon did not stop within {timeout}s:\n{self.output()[-3000:]}") from None

    async def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        await self.proc.wait()


async def start_daemon(
    config: Path,
    logs: Path,
    *,
    notify: Path | None = None,
    watchdog_usec: int | None = None,
    command: tuple[str, ...] = ("run",),
    env: Mapping[str, str] | None = None,
    argv: list[str] | None = None,
) -> DaemonProc:
    """`syncd -c CONFIG run` (or `command`), or exactly `argv` when given; its output goes to the next
    numbered `.out`/`.err` pair in the `logs` directory; `notify` and `watchdog_usec` set the
    systemd variables."""
    logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob("*.out")))
    out_path, err_path = logs / f"{n:03d}.out", logs / f"{n:03d}.err"
    full_env = child_env(env)
    if notify is not None:
        full_env["NOTIFY_SOCKET"] = str(notify)
    if watchdog_usec is not None:
        full_env["WATCHDOG_USEC"] = str(watchdog_usec)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *(argv or syncd_argv(config, *command)),
            stdout=out,
            stderr=err,
            stdin=asyncio.subprocess.DEVNULL,
            env=full_env,
            cwd=str(ROOT),
        )
    return DaemonProc(proc, out_path, err_path)
