"""Event-loop responsiveness of the notification listener under hostile traffic.

    .venv/bin/python -m bench.webhook_flood [--runs 3] [--workers 8] [--rounds 20] [--slow 200]

The daemon's own listener and webhook app run on this process's loop next to a 1 ms probe; a
separate process floods it with bodies at the size and structure limits (and beyond), opens slow
clients that never finish a request, and sends one valid notification every 200 ms. Reported per
run: the most loop-thread CPU spent between two probe ticks (what no other task could interrupt;
immune to the machine's load), its 99.9th percentile, the worst wall-clock gap (includes time
the OS gave to other processes), how fast the legitimate sender was answered, and when the slow
clients were let go.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
from typing import Any

from bench.kit.flood import LoopProbe, attack, serving
from syncd import log as syncd_log
from syncd.listener import ListenerLimits


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    limits = ListenerLimits(read_timeout=args.read_timeout, keepalive_timeout=5.0, max_connections=args.cap)
    woken: list[str] = []
    probe = LoopProbe()
    gc.collect()
    gc.freeze()
    try:
        async with serving(limits, args.max_body, woken) as listener:
            ticker = asyncio.create_task(probe.run())
            try:
                report = await attack(
                    listener.port,
                    workers=args.workers,
                    rounds=args.rounds,
                    slow=args.slow,
                    give_up=args.read_timeout + 6,
                    max_body=args.max_body,
                )
            finally:
                ticker.cancel()
    finally:
        gc.unfreeze()
    legit = [latency for status, latency in report["legitimate"] if status == 202]
    closed = [c for c in report["slow_closed_after"] if c is not None]
    return {
        **probe.summary(),
        "requests": sum(report["flood"].values()),
        "legit_ok": f"{len(legit)}/{len(report['legitimate'])}",
        "legit_max_ms": round(max(legit) * 1000, 1) if legit else None,
        "slow_closed_max_s": max(closed) if closed else None,
        "slow_never_closed": len(report["slow_closed_after"]) - len(closed),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--slow", type=int, default=200)
    p.add_argument("--cap", type=int, default=256, help="[webhook] max_connections")
    p.add_argument("--max-body", type=int, default=131_072, help="[webhook] max_body_bytes")
    p.add_argument("--read-timeout", type=float, default=2.0)
    args = p.parse_args()
    syncd_log.configure_logging("WARNING", "json", stream=open("/dev/null", "w"))  # noqa: SIM115
    runs = []
    for i in range(args.runs):
        result = asyncio.run(one_run(args))
        runs.append(result)
        print(f"run {i + 1}: {result}")
    for key in ("cpu_max_ms", "cpu_p999_ms", "wall_max_ms"):
        values = [r[key] for r in runs]
        print(f"{key}: median {statistics.median(values)} (runs: {values})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
