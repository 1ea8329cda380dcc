"""Crash loop: `kill -9` syncd at each named pause point in turn, restart it, while the tenant
keeps changing; at the end J1 must equal the tenant's truth, keys and property values.

    .venv/bin/python bench/crash_loop.py [--kills 30] [--seed 1] [--dir /tmp/syncd-crash-loop]

The simulators run in this process; the daemon is a real `syncd run` subprocess started with
`SYNCD_PAUSE_AT=<point>` (syncd/pausepoints.py): when it reaches the point it writes a marker
with its pid and waits, and only then is it killed, so every kill names the moment it hit
(fetch, mirror commit, J1 upload, finalize, ack...). The truth is computed from the simulator's
tenant alone (user and group keys with their names and other properties, membership keys) and
compared with every J1 scope syncd writes, never with syncd's mirror.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from syncd.pausepoints import ENV_MARKER, ENV_POINT, POINTS  # noqa: E402
from syncd.sim.harness import start_harness  # noqa: E402
from tests.e2e.prod_helpers import (  # noqa: E402
    Churn,
    config,
    j1_directory,
    small_tenant,
    start_daemon,
    tenant_truth,
    wait_converged,
    wait_for,
)


@dataclass(frozen=True)
class Kill:
    point: str
    paused_after: float
    """Seconds from the daemon's start until it paused at the point."""
    changes_before: int
    """Tenant changes made while this daemon ran, before it paused."""


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
    say: Any = print,
    converge_timeout: float = 90.0,
    point_timeout: float = 60.0,
) -> CrashLoopResult:
    """Kill at POINTS[0], POINTS[1], ... (cycling) `kills` times, then converge and compare."""
    tenant = small_tenant(seed=seed, users=60, groups=8)
    h = await start_harness(tenant, workdir, notifications=True)
    churn = Churn(tenant, seed)
    result = CrashLoopResult()
    logs = workdir / "logs"
    marker = workdir / "paused-at"
    try:
        cfg = config(h, sync={"safety_net_interval": 1.0, "drain_interval": 0.5}, j1={"request_timeout": 10})
        for i in range(kills):
            point = POINTS[i % len(POINTS)]
            marker.unlink(missing_ok=True)
            d = await start_daemon(cfg, logs, env={ENV_POINT: point, ENV_MARKER: str(marker)})
            deadline = time.monotonic() + point_timeout
            changes = 0
            # the tenant keeps changing, so every restart has rounds to fetch and commit and
            # changes to push, until the daemon reports that it stopped at the point
            while not marker.exists():
                if d.proc.returncode is not None:
                    raise AssertionError(
                        f"daemon exited {d.proc.returncode} before {point}:\n{d.output()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    await d.kill9()
                    raise AssertionError(f"the daemon never reached {point} in {point_timeout}s")
                for _ in range(2):
                    churn.step()
                changes += 2
                await asyncio.sleep(0.2)
            hit, pid = marker.read_text().split()
            assert (hit, int(pid)) == (point, d.pid), (hit, pid, point, d.pid)
            paused_after = time.monotonic() - d.started
            await d.kill9()
            result.kills.append(Kill(point, round(paused_after, 2), changes))
            result.changes += changes
            say(
                f"kill {i + 1:3d}/{kills} at {point:17s} (paused {paused_after:4.1f}s after start, "
                f"{changes} tenant changes meanwhile)"
            )
        # the last word: no pause, the tenant stops changing, one more start converges
        t0 = time.monotonic()
        d = await start_daemon(cfg, logs)
        try:
            await wait_converged(h, converge_timeout)
        except AssertionError as exc:
            say(str(exc))
        result.converged_s = round(time.monotonic() - t0, 1)
        truth = tenant_truth(h.tenant)
        result.diff = truth.diff(j1_directory(h))
        result.truth_sizes = {
            "users": len(truth.users),
            "groups": len(truth.groups),
            "memberships": len(truth.memberships),
        }
        await wait_for(lambda: d.has_event("syncd ready"), 30, "ready")
        result.final_exit = await d.stop()
    finally:
        await h.stop()
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dir", type=Path, default=Path("/tmp/syncd-crash-loop"))
    args = p.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    result = asyncio.run(crash_loop(args.kills, args.dir, seed=args.seed))
    print(f"kills: {len(result.kills)} by point {json.dumps(result.by_point)}")
    print(f"tenant changes during the loop: {result.changes}; truth: {result.truth_sizes}")
    print(f"converged {result.converged_s}s after the last restart; final exit {result.final_exit}")
    print(
        "RESULT:",
        "OK: J1 equals the tenant, keys and properties (nothing missing, changed or left over)"
        if result.ok
        else f"FAIL: {json.dumps(result.diff)[:3000]}",
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
