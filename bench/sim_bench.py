"""Benchmark of the Graph simulator: tenant generation and paged /users serving.

Targets: a 100k-user tenant (10k groups, 500k memberships, 20k devices) built in < 30 s;
a full `/users?$top=999` listing served at >= 20k objects/s.
Run: .venv/bin/python -m bench.sim_bench [--users N] [--runs R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from aiohttp import web

from syncd.sim.generator import generate_tenant
from syncd.sim.graph.app import GraphSim
from syncd.sim.tenant import Tenant


def build(users: int, seed: int, intune: bool) -> tuple[Tenant, float]:
    start = time.perf_counter()
    t = generate_tenant(
        seed=seed,
        users=users,
        groups=users // 10,
        devices=users // 5,
        memberships=users * 5,
        with_intune=intune,
    )
    return t, time.perf_counter() - start


async def serve_listing(tenant: Tenant, runs: int) -> list[tuple[float, int]]:
    sim = GraphSim(tenant)
    runner = web.AppRunner(sim.create_app(intune_routes=False), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    cid, secret = next(iter(tenant.apps.items()))
    results = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        form = {
            "grant_type": "client_credentials",
            "client_id": cid,
            "client_secret": secret,
            "scope": f"{base}/.default",
        }
        async with s.post(f"{base}/{tenant.tenant_id}/oauth2/v2.0/token", data=form) as r:
            token = (await r.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(runs):
            url: str | None = f"{base}/v1.0/users?$top=999"
            count = 0
            start = time.perf_counter()
            while url:
                async with s.get(url, headers=headers) as r:
                    body = await r.json()
                count += len(body["value"])
                url = body.get("@odata.nextLink")
            results.append((time.perf_counter() - start, count))
    await runner.cleanup()
    return results


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-intune", action="store_true")
    args = p.parse_args()
    builds = []
    tenant = None
    for i in range(args.runs):
        tenant, secs = build(args.users, seed=i + 1, intune=not args.no_intune)
        builds.append(secs)
        c = tenant.counts()
        print(
            f"build run {i + 1}: {secs:.2f} s users={c['users']} groups={c['groups']} devices={c['devices']} "
            f"memberships={c['memberships']} intune={'yes' if tenant.intune is not None else 'no'}"
        )
    print(f"build: median {statistics.median(builds):.2f} s (target < 30 s)")
    assert tenant is not None
    listing = asyncio.run(serve_listing(tenant, args.runs))
    rates = []
    for i, (secs, count) in enumerate(listing):
        rates.append(count / secs)
        print(f"serve run {i + 1}: {count} users in {secs:.2f} s = {count / secs:,.0f} objects/s")
    print(f"serve: median {statistics.median(rates):,.0f} objects/s (target >= 20,000)")


if __name__ == "__main__":
    main()
