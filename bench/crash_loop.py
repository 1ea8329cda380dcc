"""Crash loop: `kill -9` syncd at random moments during fetch, mirror write and J1 push, restart it
each time while the tenant keeps changing; at the end J1 must equal the tenant's truth.

    .venv/bin/python bench/crash_loop.py [--kills 30] [--seed 1] [--dir /tmp/syncd-crash-loop]

The simulators run in this process; the daemon is a real `syncd run` subprocess. Latency faults
widen each window: Graph latency for "fetch", J1 latency for "push", a burst of changes for
"mirror write" (the round commit). The truth is computed from the simulator's tenant alone
(user keys, group keys, user/group membership keys), never from syncd's mirror.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from syncd.sim.harness import start_harness  # noqa: E402
from tests.e2e.prod_helpers import (  # noqa: E402
    Churn,
    config,
    graph_faults,
    j1_directory,
    j1_faults,
    small_tenant,
    start_daemon,
    tenant_truth,
    wait_converged,
    wait_for,
)

PHASES = ("fetch", "mirror", "push")


@dataclass
class CrashLoopResult:
    kills: int = 0
    by_phase: dict[str, int] = field(default_factory=dict)
    evidence: dict[str, int] = field(default_factory=dict)
    """Kills where the targeted work was provably in flight (Graph request / J1 job open)."""
    changes: int = 0
    converged_s: float = 0.0
    diff: dict[str, Any] = field(default_factory=dict)
    truth_sizes: dict[str, int] = field(default_factory=dict)
    final_exit: int | None = None

    @property
    def ok(self) -> bool:
        return not self.diff and self.final_exit == 0 and self.kills > 0


async def crash_loop(
    kills: int, workdir: Path, *, seed: int = 1, say: Any = print, converge_timeout: float = 90.0
) -> CrashLoopResult:
    rng = random.Random(seed)
    tenant = small_tenant(seed=seed, users=60, groups=8)
    h = await start_harness(tenant, workdir, notifications=True)
    churn = Churn(tenant, seed)
    result = CrashLoopResult()
    logs = workdir / "logs"
    try:
        cfg = config(h, sync={"safety_net_interval": 1.0, "drain_interval": 0.5}, j1={"request_timeout": 10})
        graph = h.sims.graph
        jobs = h.sims.j1_state.jobs
        for i in range(kills):
            phase = PHASES[i % len(PHASES)]
            graph_faults(h, latency_ms=120 if phase == "fetch" else 0)
            j1_faults(h, latency_ms=250 if phase == "push" else 0)
            d = await start_daemon(cfg, logs)
            deadline = time.monotonic() + rng.uniform(1.5, 4.0)
            graph_before, jobs_before = graph.counters.total(), len(jobs)
            evidence = False
            # keep the tenant changing; kill at a random moment once the targeted work is running
            while time.monotonic() < deadline:
                burst = 25 if phase == "mirror" else rng.randint(1, 3)
                for _ in range(burst):
                    churn.step()
                result.changes += burst
                await asyncio.sleep(rng.uniform(0.05, 0.4))
                if phase == "fetch" and graph.counters.total() > graph_before:
                    evidence = True
                if (
                    phase == "push"
                    and len(jobs) > jobs_before
                    and any(j.status not in ("FINISHED", "ABORTED") for j in jobs.values())
                ):
                    evidence = True
                if evidence and rng.random() < 0.5:
                    break
            await d.kill9()
            result.kills += 1
            result.by_phase[phase] = result.by_phase.get(phase, 0) + 1
            result.evidence[phase] = result.evidence.get(phase, 0) + int(evidence)
            say(
                f"kill {i + 1:3d}/{kills} during {phase:6s} (in flight: {evidence}) after "
                f"{time.monotonic() - d.started:.1f}s"
            )
        # the last word: faults off, the tenant stops changing, one more start converges
        graph_faults(h, latency_ms=0)
        j1_faults(h, latency_ms=0)
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
    print(f"kills: {result.kills} {result.by_phase}; in flight at kill: {result.evidence}")
    print(f"tenant changes during the loop: {result.changes}; truth: {result.truth_sizes}")
    print(f"converged {result.converged_s}s after the last restart; final exit {result.final_exit}")
    print(
        "RESULT:",
        "OK: J1 equals the tenant (nothing missing, nothing left over)"
        if result.ok
        else f"FAIL: {result.diff}",
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
