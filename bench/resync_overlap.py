"""Benchmark: a full resync runs its sources concurrently; it takes about its longest source.

Each run resyncs a fresh mirror twice against the same simulated tenant: once with the rounds
one after another (`Engine.run_rounds(concurrent=False)`, what `syncd resync` did before) and
once concurrently (the default now: every source at once, those that read another one's
results after it). Printed per run: the span of the rounds, the longest single round, the sum
of all rounds, and the ratios span/longest and span/sum. The simulator adds `--latency-ms` to
every Graph request (a network round trip) so paging dominates as it does on a real tenant.
syncd runs in a child process (the simulators stay in this one), as in production where Graph
does its work elsewhere. The J1 push that follows the rounds is not part of the span.

Run: .venv/bin/python -m bench.resync_overlap [--users 20000] [--devices 3000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from syncd import log
from syncd.engine import RoundsReport
from syncd.runtime import open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness, start_harness
from syncd.sim.intune_reports import report_store

ROOT = Path(__file__).resolve().parents[1]


async def _child(config: Path, concurrent: bool) -> dict[str, object]:
    from syncd.config import load_settings

    settings = load_settings(config, environ={})
    async with open_runtime(settings) as rt:
        report = await rt.engine.run_rounds(force_full=True, concurrent=concurrent)
    return {"span": report.span, "durations": report.durations, "failed": report.failed}


async def one(h: SimHarness, state: Path, *, concurrent: bool) -> tuple[RoundsReport, int]:
    config = h.config_path(
        {
            "state": {"dir": str(state)},
            "sync": {"intune_requests_per_20s": 100_000, "sign_in_activity": "off"},
            "log": {"level": "WARNING", "format": "json"},
        }
    )
    before = h.sims.graph.counters.total()
    cmd = [sys.executable, "-m", "bench.resync_overlap", "--child", str(config)]
    if concurrent:
        cmd.append("--concurrent")
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"child failed: {err.decode()[-2000:]}")
    data = json.loads(out.decode().strip().splitlines()[-1])
    report = RoundsReport(durations=data["durations"], span=data["span"], failed=data["failed"])
    return report, h.sims.graph.counters.total() - before


def _line(name: str, r: RoundsReport, requests: int) -> str:
    slowest = max(r.durations, key=lambda o: r.durations[o])
    return (
        f"  {name:10s} span {r.span:6.1f}s | longest {r.longest:6.1f}s ({slowest}) | sum {r.total:6.1f}s | "
        f"span/longest {r.span / r.longest:4.2f} | span/sum {r.span / r.total:4.2f} | "
        f"{requests} Graph requests | failed {sorted(r.failed) or 'none'}"
    )


async def main(args: argparse.Namespace) -> None:
    log.configure_logging("WARNING", "console")
    t0 = time.perf_counter()
    tenant = generate_tenant(
        seed=14,
        users=args.users,
        groups=max(20, args.users // 10),
        devices=max(20, args.users // 5),
        managed_devices=args.devices,
    )
    print(f"tenant: {tenant.counts()} built in {time.perf_counter() - t0:.1f}s", flush=True)
    work = Path(tempfile.mkdtemp(prefix="resync-overlap-"))
    h = await start_harness(tenant, work, notifications=False)
    h.sims.graph.set_faults({"latency_ms": args.latency_ms, "delta_page_size": args.page_size})
    report_store(h.sims.graph).config.job_seconds = args.job_seconds
    ratios: dict[str, list[float]] = {"serial": [], "concurrent": [], "vs_serial_longest": []}
    spans: dict[str, list[float]] = {"serial": [], "concurrent": []}
    try:
        for run in range(args.runs):
            print(f"run {run + 1}:", flush=True)
            serial_longest = 1.0
            for name, concurrent in (("serial", False), ("concurrent", True)):
                state = work / f"state-{run}-{name}"
                report, requests = await one(h, state, concurrent=concurrent)
                shutil.rmtree(state, ignore_errors=True)
                print(_line(name, report, requests), flush=True)
                ratios[name].append(report.span / report.longest)
                spans[name].append(report.span)
                if concurrent:
                    ratios["vs_serial_longest"].append(report.span / serial_longest)
                else:
                    serial_longest = report.longest
    finally:
        await h.stop()
        shutil.rmtree(work, ignore_errors=True)
    for name in ("serial", "concurrent"):
        print(
            f"median {name}: span {statistics.median(spans[name]):.1f}s, "
            f"span/longest {statistics.median(ratios[name]):.2f}"
        )
    ratio = statistics.median(spans["concurrent"]) / statistics.median(spans["serial"])
    print(f"concurrent span / serial span: {ratio:.2f}")
    print(
        "concurrent span / longest round of the serial run (the longest source alone): "
        f"{statistics.median(ratios['vs_serial_longest']):.2f}"
    )


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        log.configure_logging("WARNING", "json")
        print(json.dumps(asyncio.run(_child(Path(sys.argv[2]), "--concurrent" in sys.argv))))
        raise SystemExit(0)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--devices", type=int, default=3_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--page-size", type=int, default=200)
    p.add_argument("--job-seconds", type=float, default=2.0)
    asyncio.run(main(p.parse_args()))
