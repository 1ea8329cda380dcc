"""Crash loop: `kill -9` syncd at each named pause point in turn, restart it, while the tenant keeps
changing; at the end J1 must equal the tenant's truth, keys and property values
(bench/crash_loop.py, tests/e2e/test_prod_crash_loop.py; `kill_at` also serves
tests/e2e/test_engine_crash.py).

The daemon is a real `syncd run` child started with `SYNCD_PAUSE_AT=<point>` (syncd/pausepoints.py):
when it reaches the point it writes a marker with its pid and waits, and only then is it killed, so
every kill names the moment it hit (fetch, mirror commit, J1 upload, finalize, ack...). The truth
is computed from the simulator's tenant alone and compared with every J1 scope syncd writes,
never with syncd's mirror.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.kit.churn import Churn
from bench.kit.daemon import directory_config, start_daemon
from bench.kit.tenants import directory_tenant
from bench.kit.truth import directory_truth, j1_directory, wait_converged
from bench.kit.waiting import wait_for
from syncd.pausepoints import ENV_MARKER, ENV_POINT, POINTS
from syncd.sim.harness import start_harness


@dataclass(frozen=True)
class Kill:
    point: str
    paused_after: float
    """Seconds from the daemon's start until it paused at the point."""
    changes_before: int
    """Tenant changes made while this daemon ran, before it paused."""


async def kill_at(
    point: str,
    config: Path,
    logs: Path,
    marker: Path,
    *,
    timeout: float = 60.0,
    meanwhile: Callable[[], int] | None = None,
) -> Kill:
    """Start `syncd run` paused at `point`, wait until it reports that it stopped there, `kill -9` it.
    `meanwhile` runs every 0.2 s while waiting (e.g. tenant changes, so that every restart has rounds
    to fetch and commit and changes to push) and says how many changes it made."""
    marker.unlink(missing_ok=True)
    d = await start_daemon(config, logs, env={ENV_POINT: point, ENV_MARKER: str(marker)})
    changes = 0

    def paused() -> bool:
        nonlocal changes
        if d.returncode is not None:
            raise AssertionError(f"daemon exited {d.returncode} before {point}:\n{d.output()[-3000:]}")
        if marker.exists():
            return True
        if meanwhile is not None:
            changes += meanwhile()
        return False

    try:
        await wait_for(
            paused, timeout, lambda: f"the daemon to pause at {point}:\n{d.output()[-3000:]}", interval=0.2
        )
        hit, pid = marker.read_text().split()
        assert (hit, int(pid)) == (point, d.pid), (hit, pid, point, d.pid)
        return Kill(point, round(time.monotonic() - d.started, 2), changes)
    finally:
        await d.kill9()


@dataclass
class CrashLoopResult:
    kills: list[Kill] = field(default_factory=list)
    changes: int = 0
    converged_s: float = 0.0
    diff: dict[str, Any] = field(default_factory=dict)
    truth_sizes: dict[str, int] = field(default_factory=dict)
    final_exit: int | None = None

    @property
    def by_point(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kill in self.kills:
            out[kill.point] = out.get(kill.point, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return not self.diff and self.final_exit == 0 and bool(self.kills)


async def crash_loop(
    kills: int,
    workdir: Path,
    *,
    seed: int = 1,
    say: Callable[[str], Any] = print,
    converge_timeout: float = 90.0,
    point_timeout: float = 60.0,
) -> CrashLoopResult:
    """Kill at POINTS[0], POINTS[1], ... (cycling) `kills` times, then converge and compare."""
    tenant = directory_tenant(seed, users=60, groups=8)
    h = await start_harness(tenant, workdir, notifications=True)
    churn = Churn(tenant, seed)

    def two_changes() -> int:
        churn.step()
        churn.step()
        return 2

    result = CrashLoopResult()
    logs = workdir / "logs"
    try:
        cfg = directory_config(
            h, sync={"safety_net_interval": 1.0, "drain_interval": 0.5}, j1={"request_timeout": 10}
        )
        for i in range(kills):
            point = POINTS[i % len(POINTS)]
            kill = await kill_at(
                point, cfg, logs, workdir / "paused-at", timeout=point_timeout, meanwhile=two_changes
            )
            result.kills.append(kill)
            result.changes += kill.changes_before
            say(
                f"kill {i + 1:3d}/{kills} at {point:17s} (paused {kill.paused_after:4.1f}s after start, "
                f"{kill.changes_before} tenant changes meanwhile)"
            )
        # the last word: no pause, the tenant stops changing, one more start converges
        t0 = time.monotonic()
        d = await start_daemon(cfg, logs)
        try:
            await wait_converged(h, converge_timeout)
        except AssertionError as exc:
            say(str(exc))
        result.converged_s = round(time.monotonic() - t0, 1)
        truth = directory_truth(h.tenant)
        result.diff = truth.diff(j1_directory(h))
        result.truth_sizes = {
            "users": len(truth.users),
            "groups": len(truth.groups),
            "memberships": len(truth.memberships),
        }
        await wait_for(lambda: d.has_event("syncd ready"), 30, lambda: f"ready:\n{d.output()[-3000:]}")
        result.final_exit = await d.stop()
    finally:
        await h.stop()
    return result
