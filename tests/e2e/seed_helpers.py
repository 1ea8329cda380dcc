"""Shared helpers for the seed feature tests (tests/e2e/test_seed_*.py): simulators + syncd."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.sim.generator import generate_tenant
from syncd.sim.graph.permissions_fault import PERMISSION_FAULTS, PermissionFaults
from syncd.sim.harness import SimHarness, start_harness

ROOT = Path(__file__).resolve().parents[2]


def small_tenant(**kw: Any) -> Any:
    args: dict[str, Any] = {"seed": 11, "users": 25, "groups": 5, "devices": 4}
    args.update(kw)
    return generate_tenant(**args)


@asynccontextmanager
async def running_harness(tmp_path: Path, **tenant_kw: Any) -> AsyncIterator[SimHarness]:
    h = await start_harness(small_tenant(**tenant_kw), tmp_path, notifications=False)
    try:
        yield h
    finally:
        await h.stop()


def permission_faults(h: SimHarness) -> PermissionFaults:
    app = h.sims.runners[0].app
    return app[PERMISSION_FAULTS]


def graph_routes(h: SimHarness) -> dict[str, int]:
    """Graph sim request count per route (method + pattern)."""
    return {route: c["requests"] for route, c in h.sims.graph.counters.routes.items()}


@dataclass
class CliResult:
    code: int
    out: str
    err: str


async def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path = ROOT
) -> CliResult:
    """`python -m syncd ARGS` in a subprocess while this loop keeps serving the simulators."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SYNCD_LOG_FORMAT": "console", **(env or {})},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), timeout=60)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())
