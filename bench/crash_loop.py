"""Crash loop: `kill -9` syncd at each named pause point in turn, restart it, while the tenant
keeps changing; at the end J1 must equal the tenant's truth, keys and property values.

    .venv/bin/python -m bench.crash_loop [--kills 30] [--seed 1] [--dir /tmp/syncd-crash-loop]

The simulators run in this process, the daemon is a real `syncd run` child killed where it paused
(bench/kit/crash_loop.py says how; tests/e2e/test_prod_crash_loop.py runs the same loop in CI).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path

from bench.kit.crash_loop import crash_loop


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
