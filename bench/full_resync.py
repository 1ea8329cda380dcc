"""End-to-end bench: a full resync of a large tenant, then incremental cycles of 10 changes.

Run: .venv/bin/python -m bench.full_resync [--users 100000] [--groups 10000]
     [--memberships 500000] [--resync-runs 1] [--cycles 3]

The Graph and J1 simulators run in this process; syncd runs in a child process, so the peak RSS
measured (VmHWM of that child, sampled) is syncd's alone:

* resync: the real CLI, ``syncd -c <cfg> resync`` (a fresh mirror each run): wall time, peak
  RSS (goal < 400 MB), Graph requests (simulator counters), J1 objects uploaded (simulator jobs).
* cycle: ``python -m bench.full_resync --child-cycle <cfg>``: one delta round per directory
  resource then one drain (what the daemon does on a wake-up), after 10 changes made through
  the simulator. Graph requests per delta resource (goal <= 2), J1 jobs and objects uploaded
  (changed entities by PATCH; a deletion or a relationship change re-sends its small partition by
  DIFF), next to the objects that changed in J1 (the J1 graph before and after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the child cycle imports no simulator
    from syncd.sim.harness import SimHarness
    from syncd.sim.tenant import Tenant

ROOT = Path(__file__).resolve().parents[1]
SYNCD = Path(sys.executable).with_name("syncd")
DELTA_ROUTES = {r: f"GET /v1.0/{r}/delta" for r in ("users", "groups", "devices")}


# --- child: one incremental cycle ------------------------------------------------------------------
async def _cycle(config: Path) -> dict[str, Any]:
    from syncd.config import load_settings
    from syncd.runtime import open_runtime

    settings = load_settings(config, environ={})
    out: dict[str, Any] = {"rounds": {}}
    async with open_runtime(settings) as rt:
        for origin in ("users", "groups", "devices"):
            report = await rt.engine.run_round(origin)
            out["rounds"][origin] = {"kind": report.kind, "pages": report.pages, "objects": report.objects}
        push = await rt.engine.drain()
        out["push"] = {"objects": push.objects, "jobs": push.jobs}
        out["outbox_left"] = await rt.mirror.outbox_depth()
    return out


def child_cycle(config: Path) -> int:
    from syncd import log

    log.configure_logging("WARNING", "json")
    print(json.dumps(asyncio.run(_cycle(config))))
    return 0


# --- parent ------------------------------------------------------------------------------------
def _vm_hwm_mb(pid: int) -> float | None:
    """The process's own peak RSS (VmHWM of its address space), None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def run_child(cmd: list[str]) -> tuple[int, float, float, str]:
    """Run `cmd` while this loop keeps serving the simulators; (rc, wall s, peak RSS MB, stdout).

    The peak RSS is the child's VmHWM, sampled until it exits. Not `ru_maxrss`: Linux folds the
    high-water mark of the address space replaced by exec (this large parent's, after fork or
    vfork) into the child's `ru_maxrss`, which then reports the parent's size.
    """
    started = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        while proc.poll() is None:
            hwm = _vm_hwm_mb(proc.pid)
            if hwm is not None and time.perf_counter() - started > 0.2:  # after exec
                peak = max(peak, hwm)
            await asyncio.sleep(0.02)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode()
        if proc.returncode != 0:
            sys.stderr.write(err.read().decode()[-4000:])
    return proc.returncode, wall, peak, stdout


def uploads_since(h: SimHarness, n_jobs: int) -> tuple[list[dict[str, Any]], int, int]:
    """Jobs since `n_jobs`, objects uploaded to syncd's partition scopes (person mappings
    included), and to any other scope (none expected)."""
    from bench.kit.sim_admin import uploaded_objects

    jobs = h.sims.j1_state.jobs_view()[n_jobs:]
    ours = sum(uploaded_objects(j) for j in jobs if h.is_syncd_scope(j["scope"]))
    others = sum(uploaded_objects(j) for j in jobs if not h.is_syncd_scope(j["scope"]))
    return jobs, ours, others


def graph_diff(
    before: tuple[dict[str, Any], dict[str, Any]], after: tuple[dict[str, Any], dict[str, Any]]
) -> int:
    """Objects syncd must upload for the change: entities added, removed or changed, relationships
    added or changed, and removed relationships whose two endpoints survive (J1 removes the
    relationships of a deleted entity itself)."""

    def strip(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_") or k in ("_class", "_type")}

    (e0, r0), (e1, r1) = before, after
    count = len(e0.keys() ^ e1.keys()) + sum(1 for k in e0.keys() & e1.keys() if strip(e0[k]) != strip(e1[k]))
    count += len(r1.keys() - r0.keys()) + sum(
        1 for k in r0.keys() & r1.keys() if strip(r0[k]) != strip(r1[k])
    )
    count += sum(
        1 for k in r0.keys() - r1.keys() if r0[k]["_fromEntityKey"] in e1 and r0[k]["_toEntityKey"] in e1
    )
    return count


def mutate(tenant: Tenant, rnd: int) -> list[str]:
    """Ten changes of the kinds a tenant sees every day."""
    users = list(tenant.list("users"))
    groups = list(tenant.list("groups"))
    base = 1000 * rnd
    u = [users[base + i] for i in range(8)]
    g = [groups[50 + rnd * 5 + i] for i in range(3)]
    done = []
    tenant.update("users", u[0]["id"], {"accountEnabled": not u[0]["accountEnabled"]})
    done.append("user disabled/enabled")
    tenant.update("users", u[1]["id"], {"displayName": f"Renamed {rnd}"})
    done.append("user renamed")
    tenant.update("users", u[2]["id"], {"jobTitle": f"Title {rnd}"})
    done.append("user job title")
    tenant.soft_delete("users", u[3]["id"])
    done.append("user soft-deleted")
    tenant.hard_delete("users", u[4]["id"])
    done.append("user hard-deleted")
    tenant.upsert("users", {**{k: v for k, v in u[5].items() if k != "id"}, "displayName": f"New {rnd}"})
    done.append("user created")
    tenant.add_member(g[0]["id"], u[6]["id"])
    done.append("member added")
    members = tenant.member_ids(g[1]["id"])
    tenant.remove_member(g[1]["id"], members[0])
    done.append("member removed")
    tenant.update("groups", g[2]["id"], {"description": f"Changed {rnd}"})
    done.append("group description")
    tenant.add_member(g[2]["id"], u[7]["id"])
    done.append("member added")
    return done


async def bench(args: argparse.Namespace) -> None:
    from bench.kit.sim_admin import graph_requests
    from syncd.sim.generator import generate_tenant
    from syncd.sim.harness import start_harness

    t0 = time.perf_counter()
    tenant = generate_tenant(
        seed=11,
        users=args.users,
        groups=args.groups,
        devices=args.devices,
        memberships=args.memberships,
        with_intune=False,
    )
    counts = tenant.counts()
    print(f"tenant generated in {time.perf_counter() - t0:.1f} s: {counts}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    h = await start_harness(tenant, work, notifications=False)
    config = h.config_path({"log": {"level": "WARNING", "format": "json"}})
    rows: list[tuple[str, str]] = []
    try:
        resync: list[tuple[float, float, int, int]] = []
        for run in range(args.resync_runs):
            shutil.rmtree(work / "syncd", ignore_errors=True)
            h.sims.graph.counters.reset()
            n_jobs = len(h.sims.j1_state.jobs_view())
            rc, wall, rss, stdout = await run_child([str(SYNCD), "-c", str(config), "resync"])
            if rc != 0:
                raise SystemExit(f"resync failed (rc {rc})")
            requests = sum(graph_requests(h).values())
            _jobs, objects, mapped = uploads_since(h, n_jobs)
            resync.append((wall, rss, requests, objects))
            print(
                f"resync run {run + 1}: {wall:.1f} s, peak RSS {rss:.0f} MB, {requests} Graph requests "
                f"({graph_requests(h)}), {objects} J1 objects uploaded (+{mapped} to other scopes); "
                f"{stdout.strip()}",
                flush=True,
            )
        ents, rels = h.j1_graph()
        print(f"J1 graph: {len(ents)} entities, {Counter(r['_type'] for r in rels.values())}", flush=True)
        cycles: list[tuple[float, float, dict[str, int], int, int, int, int]] = []
        for rnd in range(args.cycles):
            before = h.j1_graph()
            mutate(tenant, rnd)
            h.sims.graph.counters.reset()
            n_jobs = len(h.sims.j1_state.jobs_view())
            rc, wall, rss, stdout = await run_child(
                [sys.executable, "-m", "bench.full_resync", "--child-cycle", str(config)]
            )
            if rc != 0:
                raise SystemExit(f"cycle failed (rc {rc})")
            result = json.loads(stdout.strip().splitlines()[-1])
            per_resource = {r: graph_requests(h).get(route, 0) for r, route in DELTA_ROUTES.items()}
            jobs, objects, mapped = uploads_since(h, n_jobs)
            expected = graph_diff(before, h.j1_graph())
            cycles.append((wall, rss, per_resource, objects, expected, len(jobs), mapped))
            print(
                f"cycle {rnd + 1}: {wall:.2f} s, peak RSS {rss:.0f} MB, delta requests {per_resource}, "
                f"J1 jobs {[(j['mode'], j['uploads']['objects']) for j in jobs]}, uploaded {objects} "
                f"(+{mapped} to other scopes), "
                f"changed in J1 {expected}, outbox left {result['outbox_left']}",
                flush=True,
            )
    finally:
        await h.stop()
        shutil.rmtree(work, ignore_errors=True)

    walls = [r[0] for r in resync]
    rows.append(
        ("tenant", f"{counts['users']} users, {counts['groups']} groups, {counts['memberships']} memberships")
    )
    rows.append(("resync runs", str(len(resync))))
    rows.append(("resync wall s (median / max)", f"{statistics.median(walls):.1f} / {max(walls):.1f}"))
    rows.append(("resync peak RSS MB (max; goal < 400)", f"{max(r[1] for r in resync):.0f}"))
    rows.append(("resync Graph requests", " / ".join(str(r[2]) for r in resync)))
    rows.append(("resync J1 objects uploaded", " / ".join(str(r[3]) for r in resync)))
    if cycles:
        worst = {r: max(c[2][r] for c in cycles) for r in DELTA_ROUTES}
        rows.append(("cycles (10 changes each)", str(len(cycles))))
        rows.append(("cycle wall s (median)", f"{statistics.median(c[0] for c in cycles):.2f}"))
        rows.append(("cycle peak RSS MB (max)", f"{max(c[1] for c in cycles):.0f}"))
        rows.append(("cycle Graph requests per delta resource (max; goal <= 2)", str(worst)))
        uploaded = " / ".join(str(c[3]) for c in cycles)
        rows.append(("cycle J1 objects uploaded (a DIFF re-sends its partition)", uploaded))
        rows.append(("cycle J1 objects uploaded to other scopes", " / ".join(str(c[6]) for c in cycles)))
        rows.append(("cycle objects changed in J1", " / ".join(str(c[4]) for c in cycles)))
        rows.append(("cycle J1 jobs", " / ".join(str(c[5]) for c in cycles)))
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--child-cycle", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--groups", type=int, default=10_000)
    p.add_argument("--memberships", type=int, default=500_000)
    p.add_argument("--devices", type=int, default=2_000)
    p.add_argument("--resync-runs", type=int, default=1)
    p.add_argument("--cycles", type=int, default=3)
    args = p.parse_args()
    if args.child_cycle:
        return child_cycle(args.child_cycle)
    asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
