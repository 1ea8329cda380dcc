"""What syncd's J1 writes cost: objects uploaded per kind of change, jobs and requests per full resync.

Run: .venv/bin/python -m bench.j1_writes [--users 100000] [--runs 3] [--j1-permissive]

The Graph and J1 simulators and syncd's engine run in this process (what the daemon does on a
wake-up: the rounds, then one drain). For each kind of change, ``--runs`` changes are made one at a
time through the simulator and each is pushed on its own; the figures are the J1 objects the
change's jobs uploaded (entities, relationships, explicit deletes) and the jobs it took, per run.
The bounds of issue #11: a property change ≤ 2 objects, a deletion or a relationship change ≤ 200.

syncd probes the J1 simulator first, as the daemon does at its first start. With the default
(strictest) simulator only the documented cascade is proven; ``--j1-permissive`` turns every
undocumented behaviour on, so syncd proves and uses the faster paths.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.kit.sim_admin import syncd_jobs, uploaded_objects
from syncd import log
from syncd.runtime import Runtime, open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness, start_harness
from syncd.sim.j1.behaviour import J1Behaviour
from syncd.sim.tenant import Tenant

BOUNDS = {"property": 2, "create": 200, "delete": 200, "member added": 200, "member removed": 200}


def _uploaded(jobs: list[dict[str, Any]]) -> int:
    return sum(uploaded_objects(j) for j in jobs)


def _requests(h: SimHarness) -> int:
    return int(h.sims.j1_state.stats_view()["total"])


async def _cycle(rt: Runtime) -> None:
    for origin in ("users", "groups"):
        await rt.engine.run_round(origin)
    report = await rt.engine.drain()
    assert report.failed_partitions == 0 and report.verification_failures == 0, report


class Changes:
    """One change of each kind, picked so that runs never touch the same objects."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.users: list[str] = [str(u["id"]) for u in tenant.list("users")]
        self.groups: list[str] = [str(g["id"]) for g in tenant.list("groups") if tenant.member_ids(g["id"])]
        self.i = 0

    def _next_user(self) -> str:
        self.i += 1
        return self.users[-self.i]

    def apply(self, kind: str) -> None:
        t = self.tenant
        if kind == "property":
            t.update("users", self._next_user(), {"jobTitle": f"Title {time.monotonic_ns()}"})
        elif kind == "create":
            self.i += 1
            existing = t.get("users", self.users[self.i])
            assert existing is not None
            template = {k: v for k, v in existing.items() if k != "id"}
            created = t.upsert(
                "users",
                {
                    **template,
                    "displayName": f"New User {self.i}",
                    "mail": f"new.user.{self.i}@example.com",
                    "userPrincipalName": f"new.user.{self.i}@example.com",
                },
            )
            self.users.insert(0, str(created["id"]))
        elif kind == "delete":
            t.hard_delete("users", self._next_user())
        elif kind == "member added":
            group = self.groups[self.i % len(self.groups)]
            user = next(u for u in self.users[self.i :] if u not in t.members[group])
            self.i += 1
            t.add_member(group, user)
        elif kind == "member removed":
            group = self.groups[(self.i * 7) % len(self.groups)]
            member = next(m for m in t.member_ids(group) if t.store_of(m) == "users")
            self.i += 1
            t.remove_member(group, member)


async def run(users: int, runs: int, permissive: bool) -> None:
    log.configure_logging("WARNING", "console")
    groups = max(10, users // 10)
    tenant = generate_tenant(
        seed=11, users=users, groups=groups, devices=max(10, users // 5), with_intune=False
    )
    behaviour = J1Behaviour.permissive().as_json() if permissive else {}
    with tempfile.TemporaryDirectory() as tmp:
        h = await start_harness(tenant, Path(tmp), notifications=False, j1_behaviour=behaviour)
        try:
            settings = h.settings({"sync": {"sources": ["users", "groups", "devices"]}})
            async with open_runtime(settings) as rt:
                # what the daemon does once, at its first start
                caps = await rt.probe_j1()
                proven = sorted(n for n, f in caps.findings.items() if f.ok)
                print("J1 behaviours proven by the probe:", proven)
                jobs0, req0 = len(h.sims.j1_state.jobs_view()), _requests(h)
                started = time.monotonic()
                report = await rt.engine.resync()
                wall = time.monotonic() - started
                jobs = syncd_jobs(h, jobs0)
                sizes = [uploaded_objects(j) for j in jobs]
                print(
                    f"full resync: {len(jobs)} jobs ({dict(Counter(j['mode'] for j in jobs))}),"
                    f" {_requests(h) - req0} J1 requests, {_uploaded(jobs)} objects,"
                    f" largest job {max(sizes)} objects, {wall:.1f} s (rounds and push);"
                    f" push {report.push.duration if report.push else 0:.1f} s"
                )
                changes = Changes(tenant)
                for kind, bound in BOUNDS.items():
                    objects, job_counts, requests = [], [], []
                    for _ in range(runs):
                        since, req = len(h.sims.j1_state.jobs_view()), _requests(h)
                        changes.apply(kind)
                        await _cycle(rt)
                        done = syncd_jobs(h, since)
                        objects.append(_uploaded(done))
                        job_counts.append(len(done))
                        requests.append(_requests(h) - req)
                    verdict = "ok" if max(objects) <= bound else f"OVER the bound {bound}"
                    print(
                        f"{kind:15}: objects uploaded per change {objects} (median"
                        f" {statistics.median(objects):g}), jobs {job_counts}, J1 requests {requests}"
                        f" -- bound {bound}: {verdict}"
                    )
        finally:
            await h.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--j1-permissive", action="store_true")
    args = p.parse_args()
    asyncio.run(run(args.users, args.runs, args.j1_permissive))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
