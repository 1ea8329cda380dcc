"""Benchmark of the Intune polls: requests and wall time of a full pass and of a no-change pass.

A tenant with N managed devices (default 20k) served by the simulators; syncd's Intune source
polls every collection through the engine (mirror commits included, no J1 push).
Goal: a no-change pass costs at most 10% of a full pass, in Graph requests (`$batch` items count
one each, as Intune's limits count them; the outer `$batch` POSTs are reported apart).
The request budget is raised so the token bucket does not dominate the wall time; the default
budget (`intune_requests_per_20s` = 800) would pace a full pass at 40 requests/s.

Run: .venv/bin/python bench/intune.py [--devices 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from syncd import log
from syncd.runtime import Runtime, open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness, start_harness
from syncd.sources.intune import COLLECTIONS, IntuneCollectionSource

ORIGINS = [c.origin for c in COLLECTIONS]


def counts(h: SimHarness) -> tuple[int, int]:
    """(Intune requests incl. `$batch` items, outer `$batch` POSTs) answered so far."""
    intune = batches = 0
    for route, c in h.sims.graph.counters.routes.items():
        if "$batch" in route:
            batches += c["requests"]
        elif "/deviceManagement" in route or "/deviceAppManagement" in route:
            intune += c["requests"]
    return intune, batches


async def one_pass(rt: Runtime, h: SimHarness, *, full: bool) -> tuple[int, int, float, int]:
    r0, b0 = counts(h)
    start = time.perf_counter()
    fetched = 0
    for origin in ORIGINS:
        await rt.engine.run_round(origin, force_full=full)
        source = rt.engine.sources[origin]
        assert isinstance(source, IntuneCollectionSource)
        fetched += source.last_fetched
    took = time.perf_counter() - start
    r1, b1 = counts(h)
    return r1 - r0, b1 - b0, took, fetched


async def main(devices: int, runs: int, concurrency: int) -> None:
    log.configure_logging("WARNING", "console")
    t0 = time.perf_counter()
    tenant = generate_tenant(
        seed=20, users=max(100, devices // 4), groups=200, devices=devices // 2, managed_devices=devices
    )
    built = time.perf_counter() - t0
    print(f"tenant: {tenant.intune.counts()['managedDevices']} managed devices, built in {built:.1f}s")
    tmp = Path(tempfile.mkdtemp(prefix="intune-bench-"))
    h = await start_harness(tenant, tmp, notifications=False)
    try:
        settings = h.settings(
            {"sync": {"intune_requests_per_20s": 10_000_000, "intune_concurrency": concurrency}}
        )
        async with open_runtime(settings) as rt:
            await rt.engine.run_round("account")
            await rt.engine.run_round("users", force_full=True)
            rows = []
            for run in range(runs):
                full = await one_pass(rt, h, full=True)
                nochange = await one_pass(rt, h, full=False)
                rows.append((full, nochange))
                print(
                    f"run {run + 1}: full pass {full[0]} requests ({full[1]} $batch POSTs, "
                    f"{full[3]} objects fetched) in {full[2]:.1f}s | no-change pass {nochange[0]} requests "
                    f"({nochange[1]} $batch POSTs, {nochange[3]} fetched) in {nochange[2]:.2f}s | "
                    f"ratio {nochange[0] / max(1, full[0]):.2%}"
                )
        steady = rows[1:] or rows  # run 1's full pass is the baseline (empty mirror)
        full_req = statistics.median(r[0][0] for r in steady)
        nc_req = statistics.median(r[1][0] for r in rows)
        print(
            f"median: full pass {full_req:.0f} requests, "
            f"{statistics.median(r[0][2] for r in steady):.1f}s; "
            f"no-change pass {nc_req:.0f} requests, {statistics.median(r[1][2] for r in rows):.2f}s; "
            f"ratio {nc_req / max(1, full_req):.2%} (goal <= 10%)"
        )
    finally:
        await h.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.devices, args.runs, args.concurrency))
