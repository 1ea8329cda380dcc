"""Benchmark of the Intune polls: requests and wall time of a full pass and of a no-change pass.

A tenant with N managed devices (default 20k) served by the simulators; syncd's Intune source
polls every collection through the engine (mirror commits included, no J1 push).

* Requests are Graph requests as Intune's limits count them: `$batch` items count one each, the
  outer `$batch` POSTs are reported apart, and so are report downloads (storage host, not Graph).
* `--per-device` makes the inventory export unavailable (a tenant without the report, or an app
  without the permission to create exports): detected apps then come one request per device,
  which is what every full pass cost before the exports (21,116 requests at 20k devices).
* Goals: a full pass under 1 % of 21,116 requests; a no-change pass at most 10 % of a full pass.

The request budget is raised so the token bucket does not dominate the wall time; `--budget 800`
uses syncd's default (`intune_requests_per_20s` = 800, 40 requests/s, below Intune's limits).
The simulator finishes an export job `--job-seconds` after its creation (real Intune takes tens
of seconds to minutes).

Run: .venv/bin/python -m bench.intune [--devices 20000] [--runs 3] [--per-device]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.kit.sim_admin import graph_requests
from bench.kit.tenants import intune_of
from syncd import log
from syncd.runtime import Runtime, open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness, start_harness
from syncd.sim.intune_reports import report_store
from syncd.sources.intune import COLLECTIONS, IntuneCollectionSource

ORIGINS = [c.origin for c in COLLECTIONS]


def counts(h: SimHarness) -> tuple[int, int, int]:
    """(Intune requests incl. `$batch` items, outer `$batch` POSTs, report downloads) so far."""
    intune = batches = 0
    for route, n in graph_requests(h).items():
        if "$batch" in route:
            batches += n
        elif "/deviceManagement" in route or "/deviceAppManagement" in route:
            intune += n
    return intune, batches, report_store(h.sims.graph).downloads


def by_route(h: SimHarness) -> Counter[str]:
    return Counter(
        {
            route: n
            for route, n in graph_requests(h).items()
            if "/deviceManagement" in route or "/deviceAppManagement" in route
        }
    )


@dataclass(frozen=True)
class Pass:
    """One pass over every Intune collection."""

    requests: int
    batches: int
    downloads: int
    seconds: float
    fetched: int
    per_origin: dict[str, tuple[int, float]]
    """Requests and seconds per collection."""
    routes: Counter[str]


async def one_pass(rt: Runtime, h: SimHarness, *, full: bool) -> Pass:
    r0, b0, d0 = counts(h)
    routes0 = by_route(h)
    start = time.perf_counter()
    fetched = 0
    per_origin: dict[str, tuple[int, float]] = {}
    for origin in ORIGINS:
        o0 = counts(h)[0]
        t0 = time.perf_counter()
        await rt.engine.run_round(origin, force_full=full)
        source = rt.engine.sources[origin]
        assert isinstance(source, IntuneCollectionSource)
        fetched += source.last_fetched
        per_origin[origin] = (counts(h)[0] - o0, time.perf_counter() - t0)
    took = time.perf_counter() - start
    r1, b1, d1 = counts(h)
    return Pass(r1 - r0, b1 - b0, d1 - d0, took, fetched, per_origin, by_route(h) - routes0)


def _origins(result: Pass) -> str:
    return ", ".join(f"{o.removeprefix('intune:')} {n}/{s:.1f}s" for o, (n, s) in result.per_origin.items())


async def main(args: argparse.Namespace) -> None:
    log.configure_logging("WARNING", "console")
    t0 = time.perf_counter()
    devices = args.devices
    tenant = generate_tenant(
        seed=20, users=max(100, devices // 4), groups=200, devices=devices // 2, managed_devices=devices
    )
    built = time.perf_counter() - t0
    print(f"tenant: {intune_of(tenant).counts()['managedDevices']} managed devices, built in {built:.1f}s")
    tmp = Path(tempfile.mkdtemp(prefix="intune-bench-"))
    h = await start_harness(tenant, tmp, notifications=False)
    store = report_store(h.sims.graph)
    store.config.job_seconds = args.job_seconds
    if args.per_device:
        store.config.unavailable = ["AppInvRawData"]
    try:
        settings = h.settings(
            {"sync": {"intune_requests_per_20s": args.budget, "intune_concurrency": args.concurrency}}
        )
        async with open_runtime(settings) as rt:
            await rt.engine.run_round("account")
            await rt.engine.run_round("users", force_full=True)
            rows: list[tuple[Pass, Pass]] = []
            for run in range(args.runs):
                full = await one_pass(rt, h, full=True)
                nochange = await one_pass(rt, h, full=False)
                rows.append((full, nochange))
                print(
                    f"run {run + 1}: full pass {full.requests} requests ({full.batches} $batch POSTs, "
                    f"{full.downloads} report downloads, {full.fetched} objects fetched) in "
                    f"{full.seconds:.1f}s | no-change pass {nochange.requests} requests in "
                    f"{nochange.seconds:.2f}s",
                    flush=True,
                )
                print(f"  full pass per collection (requests/seconds): {_origins(full)}", flush=True)
                if args.routes:
                    for route, n in full.routes.most_common(12):
                        print(f"    {n:6d}  {route}")
        steady = rows[1:] or rows  # run 1's full pass is the baseline (empty mirror)
        full_req = statistics.median(full.requests for full, _ in steady)
        nc_req = statistics.median(nochange.requests for _, nochange in rows)
        full_s = statistics.median(full.seconds for full, _ in steady)
        print(
            f"median: full pass {full_req:.0f} requests ({full_req / 21116:.2%} of 21,116), {full_s:.1f}s; "
            f"no-change pass {nc_req:.0f} requests ({nc_req / max(1, full_req):.2%} of a full pass)"
        )
    finally:
        await h.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--job-seconds", type=float, default=2.0)
    parser.add_argument(
        "--budget", type=int, default=10_000_000, help="intune_requests_per_20s (syncd's default: 800)"
    )
    parser.add_argument("--per-device", action="store_true", help="make the inventory export unavailable")
    parser.add_argument("--routes", action="store_true", help="print the busiest routes of each full pass")
    asyncio.run(main(parser.parse_args()))
