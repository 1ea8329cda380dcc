"""Benchmark of the J1 simulator under a partitioned full resync: many small DIFF scopes.

syncd spreads its data over thousands of small scopes (~100 objects each) and DIFFs them one at a
time, several in flight. This measures, over HTTP on loopback with `--concurrency` jobs in flight:

* partitioned: `--jobs` DIFF jobs of `--objects` objects (60 % entities, 40 % relationships), each
  on its own scope, against an account already holding `--background` objects; then the same jobs
  again (a no-change full resync);
* the same partitioned round against an empty account (finalize cost must not depend on the
  account's size: ratio ≈ 1);
* single-scope baseline: the same objects in ONE DIFF job (uploads of `--chunk` objects), i.e. the
  cost of the old layout, as objects/s.

It also reports the finalize work counter (`visited`: stored objects a job examined) per job.
Wall time on a shared machine is noisy; the ratios use process CPU time (client and simulator
share the process). Targets: ≥ 100 partitioned jobs per CPU-second, a loaded/empty cost ratio
close to 1 (finalize work independent of the account's size) and the partitioned throughput within
2x of the single-scope job's.
Run: .venv/bin/python -m bench.j1_sim_bench [--runs 3] [--background 300000] [--jobs 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from syncd.sim.j1 import J1SimConfig, J1SimState, SimJob, create_j1_app

ACCOUNT = "bench-account"
KEY = "bench-api-key-0000"
JOBS = "/persister/synchronization/jobs"
HEADERS = {"Authorization": f"Bearer {KEY}", "JupiterOne-Account": ACCOUNT}


def partition(prefix: str, n_objects: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One partition's objects: users and devices, users related to the next one and to a device."""
    n_entities = n_objects * 6 // 10
    n_rels = n_objects - n_entities
    entities = [
        {
            "_key": f"{prefix}-e{i:04d}",
            "_type": "bench_user" if i % 2 else "bench_device",
            "_class": "User" if i % 2 else "Device",
            "displayName": f"{prefix} {i}",
            "mail": f"{prefix}.{i}@example.com",
            "accountEnabled": True,
        }
        for i in range(n_entities)
    ]
    relationships = [
        {
            "_key": f"{prefix}-r{i:04d}",
            "_type": "bench_user_has_device",
            "_class": "HAS",
            "_fromEntityKey": entities[i % n_entities]["_key"],
            "_toEntityKey": entities[(i + 1) % n_entities]["_key"],
        }
        for i in range(n_rels)
    ]
    return entities, relationships


def seed_background(state: J1SimState, total: int, per_scope: int) -> float:
    """`total` objects in scopes of `per_scope`, finalized in-process (no HTTP); returns seconds."""
    start = time.perf_counter()
    for p in range(max(1, total // per_scope)):
        entities, relationships = partition(f"bg-{p:06d}", per_scope)
        job = SimJob(
            id=str(uuid.uuid4()), account_id=ACCOUNT, source="api", scope=f"bg-{p:06d}", sync_mode="DIFF"
        )
        job.entities = {e["_key"]: e for e in entities}
        job.relationships = {r["_key"]: r for r in relationships}
        state.finalize_entities(job)
        state.finalize_relationships(job)
    return time.perf_counter() - start


@dataclass
class Round:
    seconds: float
    cpu: float
    """Process CPU seconds (client and simulator share the process): steadier than wall time on a
    shared machine."""
    jobs: int
    objects: int
    requests: int
    visited: list[int]


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.requests = 0

    async def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        self.requests += 1
        async with self.session.request(method, self.base + path, json=body, headers=HEADERS) as resp:
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return dict(data)

    async def diff(self, scope: str, uploads: list[dict[str, Any]]) -> dict[str, Any]:
        job = (await self.call("POST", JOBS, {"source": "api", "scope": scope, "syncMode": "DIFF"}))["job"]
        for body in uploads:
            await self.call("POST", f"{JOBS}/{job['id']}/upload", body)
        await self.call("POST", f"{JOBS}/{job['id']}/finalize", {})
        while True:
            got = (await self.call("GET", f"{JOBS}/{job['id']}"))["job"]
            if got["status"] == "FINISHED":
                return dict(got)
            if got["done"] or got["status"].startswith("ERROR"):
                raise RuntimeError(f"job {scope} ended {got['status']}")
            await asyncio.sleep(0.001)


async def partitioned_round(
    state: J1SimState, client: Client, jobs: int, objects: int, concurrency: int
) -> Round:
    bodies = []
    for p in range(jobs):
        entities, relationships = partition(f"part-{p:06d}", objects)
        bodies.append((f"part-{p:06d}", [{"entities": entities, "relationships": relationships}]))
    queue: asyncio.Queue[tuple[str, list[dict[str, Any]]]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    seen_jobs = len(state.jobs)
    requests_before = client.requests

    async def worker() -> None:
        while not queue.empty():
            scope, uploads = queue.get_nowait()
            await client.diff(scope, uploads)

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    visited = [getattr(j, "visited", -1) for j in list(state.jobs.values())[seen_jobs:]]
    return Round(seconds, cpu, jobs, jobs * objects, client.requests - requests_before, visited)


async def single_scope_round(state: J1SimState, client: Client, jobs: int, objects: int, chunk: int) -> Round:
    entities: list[dict[str, Any]] = []
    relationships: list[dict[str, Any]] = []
    for p in range(jobs):
        e, r = partition(f"part-{p:06d}", objects)
        entities += e
        relationships += r
    uploads = [{"entities": entities[i : i + chunk]} for i in range(0, len(entities), chunk)]
    uploads += [{"relationships": relationships[i : i + chunk]} for i in range(0, len(relationships), chunk)]
    seen_jobs = len(state.jobs)
    requests_before = client.requests
    start, cpu = time.perf_counter(), time.process_time()
    await client.diff("single-scope", uploads)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    visited = [getattr(j, "visited", -1) for j in list(state.jobs.values())[seen_jobs:]]
    objects = len(entities) + len(relationships)
    return Round(seconds, cpu, 1, objects, client.requests - requests_before, visited)


async def serve(state: J1SimState) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(create_j1_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, background in (("warm-up", 0), ("empty", 0), ("loaded", args.background)):
        state = J1SimState({ACCOUNT: KEY}, J1SimConfig(finalize_step_delay=(0.0, 0.0)))
        results[f"{label}_seed_s"] = seed_background(state, background, args.objects) if background else 0.0
        runner, base = await serve(state)
        try:
            connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
            async with aiohttp.ClientSession(connector=connector) as session:
                client = Client(session, base)
                if label == "warm-up":
                    await partitioned_round(
                        state, client, min(args.jobs, 100), args.objects, args.concurrency
                    )
                    continue
                results[f"{label}_first"] = await partitioned_round(
                    state, client, args.jobs, args.objects, args.concurrency
                )
                results[f"{label}_again"] = await partitioned_round(
                    state, client, args.jobs, args.objects, args.concurrency
                )
                if label == "loaded":
                    results["single"] = await single_scope_round(
                        state, client, args.jobs, args.objects, args.chunk
                    )
                results[f"{label}_graph"] = len(state.graph(ACCOUNT).entities) + len(
                    state.graph(ACCOUNT).relationships
                )
        finally:
            await runner.cleanup()
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--background", type=int, default=300_000, help="objects already in the account")
    p.add_argument("--jobs", type=int, default=2000, help="partitions (one DIFF job each)")
    p.add_argument("--objects", type=int, default=100, help="objects per partition")
    p.add_argument("--concurrency", type=int, default=8, help="jobs in flight")
    p.add_argument("--chunk", type=int, default=2000, help="objects per upload in the single-scope job")
    args = p.parse_args()
    print(
        f"# {args.jobs} DIFF jobs x {args.objects} objects, {args.concurrency} in flight; "
        f"background {args.background:,} objects; single-scope uploads of {args.chunk}"
    )
    rates: dict[str, list[float]] = {}
    for run in range(1, args.runs + 1):
        r = asyncio.run(one_run(args))
        first, again, empty = r["loaded_first"], r["loaded_again"], r["empty_first"]
        single = r["single"]
        row = {
            "loaded_jobs_s": first.jobs / first.seconds,
            "loaded_jobs_cpu_s": first.jobs / first.cpu,
            "no_change_jobs_cpu_s": again.jobs / again.cpu,
            "empty_jobs_cpu_s": empty.jobs / empty.cpu,
            "loaded_vs_empty_cost": first.cpu / empty.cpu,
            "partitioned_obj_cpu_s": first.objects / first.cpu,
            "single_obj_cpu_s": single.objects / single.cpu,
        }
        row["partitioned_vs_single_cpu"] = row["partitioned_obj_cpu_s"] / row["single_obj_cpu_s"]
        for name, value in row.items():
            rates.setdefault(name, []).append(value)
        print(
            f"run {run}: seeded {args.background:,} objects in {r['loaded_seed_s']:.1f} s; account ends at "
            f"{r['loaded_graph']:,} objects\n"
            f"  partitioned, loaded account: {first.jobs} jobs in {first.seconds:.1f} s wall "
            f"({row['loaded_jobs_s']:.0f} jobs/s), {first.cpu:.1f} s CPU ({row['loaded_jobs_cpu_s']:.0f} "
            f"jobs/CPU-s, {row['partitioned_obj_cpu_s']:,.0f} obj/CPU-s), {first.requests / first.jobs:.1f} "
            f"requests/job, visited/job max {max(first.visited)}\n"
            f"  no-change round, loaded: {again.cpu:.1f} s CPU "
            f"({row['no_change_jobs_cpu_s']:.0f} jobs/CPU-s), "
            f"visited/job max {max(again.visited)}\n"
            f"  partitioned, empty account: {empty.cpu:.1f} s CPU "
            f"({row['empty_jobs_cpu_s']:.0f} jobs/CPU-s), "
            f"visited/job max {max(empty.visited)} -> loaded/empty cost ratio "
            f"{row['loaded_vs_empty_cost']:.2f}\n"
            f"  single scope: {single.objects:,} objects in 1 job, {single.seconds:.1f} s wall, "
            f"{single.cpu:.1f} s CPU ({row['single_obj_cpu_s']:,.0f} obj/CPU-s), "
            f"visited {single.visited[0]:,} "
            f"-> partitioned/single throughput {row['partitioned_vs_single_cpu']:.2f}"
        )
    print("median over runs: " + ", ".join(f"{k} {statistics.median(v):,.2f}" for k, v in rates.items()))


if __name__ == "__main__":
    main()
