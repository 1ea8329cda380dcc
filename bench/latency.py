"""Change latency and idle Graph cost of the always-on daemon, on a simulated 10k-user tenant.

Run: .venv/bin/python -m bench.latency [--users 10000] [--changes 200] [--runs 2]
     [--spacing 0.5 1.0] [--idle-seconds 120] [--idle-scale 30] [--skip-idle]
     [--replication-delay MIN MAX] [--startup-runs N] [--startup-intune-budget R]

The Graph and J1 simulators run in this process; the daemon runs as a child process
(`syncd -c CFG run`) with the default `[sync]` settings (debounce 1 s, safety net 300 s, ...) and
change notifications on (HTTPS webhook signed by the simulator's CA).

Latency: each run applies `--changes` mixed user and group changes through the simulator's admin
API (disable, re-enable, rename user, rename group, add member, remove member, create user),
spaced `--spacing` seconds apart, and times each from the admin call to the moment the J1
simulator's graph shows it (O(1) look-ups every 5 ms). Prints p50/p95/p99/max per run and over all
runs (goal p50 <= 1.5 s, p99 <= 3 s), per change kind, plus the daemon's rounds per change.

Replication delay (`--replication-delay 0 2`): the Graph simulator makes each change visible to
delta only after a random delay in [MIN, MAX] seconds, while its notification goes out at once (the
delta overview's "processing delays"). Goal: every change in J1, p95 <= MAX + 2 s, without the
5-minute safety net.

Start-up (`--startup-runs N`): the daemon is stopped, changes keep coming (every `--spacing`), and
it is restarted with its Intune polls paced to `--startup-intune-budget` requests per 20 s (a big,
throttled tenant: READY takes long). For each change made around the restart: the time from the
change, and from the daemon's subscriptions (reused or created, from its log), to the J1 graph.
Goal: changes made after the subscriptions reach J1 within seconds, long before READY.

Idle cost: the daemon is restarted with every interval divided by `--idle-scale`, left idle for
`--idle-seconds`, and the simulator's per-route counters are extrapolated to one hour of the real
intervals: requests/hour = count * 3600 / (idle_seconds * idle_scale). Goal: only the safety-net
delta rounds (users, groups), the devices delta polling and the Intune polls. Routes that are
not scaled (token refresh ~1/hour, subscription renewal when due) are listed as observed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.kit.daemon import DaemonProc, start_daemon
from bench.kit.sim_admin import SimAdmin, delta_requests, graph_requests, sim_admin
from bench.kit.stats import describe, percentiles
from bench.kit.truth import j1_property
from bench.kit.waiting import poll
from syncd.config import SyncSettings
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness, start_harness
from syncd.sim.tenant import Tenant

DEFAULTS: dict[str, Any] = {"debounce": 1.0, "full_resync_interval": 86400.0}
"""The harness config sets a short debounce for tests; the bench puts the defaults back."""
J1_BENCH: dict[str, Any] = {"map_users_to_persons": False}
"""The J1 simulator resolves each user -> Person mapping by scanning every entity (O(n^2) in one
finalize, blocking its event loop for minutes at 10k users); mappings travel only in full DIFF
pushes (hourly), not in the change path measured here, so the bench switches them off."""
KINDS = {
    "disable": 30,
    "enable": 25,
    "rename_user": 35,
    "rename_group": 20,
    "add_member": 35,
    "remove_member": 30,
    "create_user": 25,
}
Check = Callable[[], bool]
STARTUP_KINDS = ("rename_user", "disable", "create_user", "enable")
"""User changes only around a restart (a long one would use up the groups of a small tenant)."""


def _say(text: str) -> None:
    print(text, flush=True)


class Picker:
    """Distinct objects for each change, so pending changes never overlap."""

    def __init__(self, tenant: Tenant, rng: random.Random) -> None:
        self.tenant = tenant
        self.rng = rng
        self.used: set[str] = set()

    def user(self, *, enabled: bool | None = True) -> str:
        pool = [
            str(u["id"])
            for u in self.tenant.list("users")
            if str(u["id"]) not in self.used and (enabled is None or bool(u.get("accountEnabled")) == enabled)
        ]
        uid = self.rng.choice(pool)
        self.used.add(uid)
        return uid

    def group(self) -> str:
        pool = [str(g["id"]) for g in self.tenant.list("groups") if str(g["id"]) not in self.used]
        gid = self.rng.choice(pool)
        self.used.add(gid)
        return gid

    def membership(self) -> tuple[str, str]:
        """A (group, user member) pair of unused objects."""
        for _ in range(1000):
            gid = self.group()
            users = [
                m
                for m in self.tenant.member_ids(gid)
                if self.tenant.store_of(m) == "users" and m not in self.used
            ]
            if users:
                uid = self.rng.choice(users)
                self.used.add(uid)
                return gid, uid
        raise RuntimeError("no membership left")


async def apply_change(h: SimHarness, admin: SimAdmin, pick: Picker, kind: str, n: int) -> Check:
    """Make one change through the admin API; return the check that J1 shows it."""
    if kind == "disable":
        uid = pick.user(enabled=True)
        await admin.patch_user(uid, accountEnabled=False)
        return lambda: j1_property(h, uid, "accountEnabled") is False
    if kind == "enable":
        uid = pick.user(enabled=False)
        await admin.patch_user(uid, accountEnabled=True)
        return lambda: j1_property(h, uid, "accountEnabled") is True
    if kind == "rename_user":
        uid, name = pick.user(enabled=None), f"Bench Renamed User {n} {time.time_ns()}"
        await admin.patch_user(uid, displayName=name)
        return lambda: j1_property(h, uid, "displayName") == name
    if kind == "rename_group":
        gid, name = pick.group(), f"Bench Renamed Group {n} {time.time_ns()}"
        await admin.call("PATCH", f"/_sim/groups/{gid}", {"displayName": name})
        return lambda: j1_property(h, gid, "displayName") == name
    if kind == "add_member":
        gid = pick.group()
        uid = pick.user(enabled=None)
        await admin.call("POST", f"/_sim/groups/{gid}/members", {"id": uid})
        return lambda: h.j1_object("r", f"{gid}|has|{uid}") is not None
    if kind == "remove_member":
        gid, uid = pick.membership()
        await admin.call("DELETE", f"/_sim/groups/{gid}/members/{uid}")
        return lambda: h.j1_object("r", f"{gid}|has|{uid}") is None
    if kind == "create_user":
        stamp = f"{n}-{time.time_ns()}"
        made = await admin.call(
            "POST",
            "/_sim/users",
            {
                "displayName": f"Bench New User {stamp}",
                "userPrincipalName": f"bench.{stamp}@{h.tenant.domain}",
                "mail": f"bench.{stamp}@{h.tenant.domain}",
                "accountEnabled": True,
                "userType": "Member",
            },
        )
        new_id = str(made["id"])
        pick.used.add(new_id)
        return lambda: h.j1_object("e", new_id) is not None
    raise AssertionError(kind)


async def _watch(check: Check, started: float, limit: float) -> float | None:
    """Seconds from `started` until J1 showed the change (looked up every 5 ms), None if not within
    `limit`."""
    if await poll(check, started + limit - time.monotonic(), interval=0.005) is None:
        return None
    return time.monotonic() - started


async def latency_run(
    h: SimHarness, admin: SimAdmin, pick: Picker, args: argparse.Namespace, run: int
) -> list[tuple[str, float | None]]:
    total = sum(KINDS.values())
    kinds = [k for k, w in KINDS.items() for _ in range(max(1, w * args.changes // total))]
    while len(kinds) < args.changes:  # rounding: top up in the order of the table
        kinds.append(list(KINDS)[len(kinds) % len(KINDS)])
    kinds = kinds[: args.changes]
    pick.rng.shuffle(kinds)
    watchers: list[tuple[str, asyncio.Task[float | None]]] = []
    for n, kind in enumerate(kinds):
        started = time.monotonic()
        check = await apply_change(h, admin, pick, kind, n + run * 1000)
        watchers.append((kind, asyncio.create_task(_watch(check, started, args.limit))))
        await asyncio.sleep(pick.rng.uniform(*args.spacing))
    return [(kind, await task) for kind, task in watchers]


def _stamp(event: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


async def startup_run(
    h: SimHarness, admin: SimAdmin, pick: Picker, args: argparse.Namespace, workdir: Path, run: int
) -> dict[str, Any]:
    """Restart the daemon while changes keep coming; time each change to J1."""
    sync = {**DEFAULTS, "intune_requests_per_20s": args.startup_intune_budget}
    config = h.config_path({"sync": sync, "j1": J1_BENCH, "log": {"level": "INFO", "format": "json"}})
    logs = workdir / f"startup-{run}"
    made: list[tuple[str, float, asyncio.Task[float | None]]] = []
    churning = True

    async def churn() -> None:
        n = 0
        while churning and n < args.changes:
            kind = STARTUP_KINDS[n % len(STARTUP_KINDS)]
            started, wall = time.monotonic(), time.time()
            check = await apply_change(h, admin, pick, kind, 100_000 + run * 1000 + n)
            made.append((kind, wall, asyncio.create_task(_watch(check, started, args.limit * 4))))
            n += 1
            await asyncio.sleep(pick.rng.uniform(*args.spacing))

    task = asyncio.create_task(churn())
    daemon: DaemonProc | None = None
    try:
        await asyncio.sleep(2.0)  # changes while the daemon is down: the catch-up rounds' job
        launched = time.time()
        daemon = await start_daemon(config, logs)
        took = await daemon.wait_healthy(h.health_url, 900)
        ready = launched + took
        await asyncio.sleep(3.0)  # and a few after READY
    finally:
        churning = False
        await task
        results = [(kind, wall, await t) for kind, wall, t in made]
        if daemon is not None:
            await daemon.stop(60)
    subs = [e for e in daemon.events("subscription reused") + daemon.events("subscription created")]
    subscribed = max((_stamp(e) for e in subs), default=ready)
    after = [(wall, t) for _k, wall, t in results if wall >= subscribed]
    before = [(wall, t) for _k, wall, t in results if wall < subscribed]
    return {
        "ready_s": ready - launched,
        "subscribed_s": subscribed - launched,
        "after": after,
        "before": before,
        "launched": launched,
        "ready": ready,
        "subscribed": subscribed,
    }


def _report_startup(runs: list[dict[str, Any]]) -> None:
    lat_after: list[float] = []
    to_j1_after_subs: list[float] = []
    missed = 0
    for n, r in enumerate(runs, 1):
        after = [t for _w, t in r["after"] if t is not None]
        before = r["before"]
        missed += sum(1 for _w, t in r["after"] + before if t is None)
        lat_after.extend(after)
        # a change made before the subscriptions: J1 time measured from the subscriptions
        caught = [w + t - r["subscribed"] for w, t in before if t is not None]
        to_j1_after_subs.extend(caught)
        pre_ready = sum(1 for w, t in r["after"] if t is not None and w + t < r["ready"])
        _say(
            f"start-up run {n}: subscriptions {r['subscribed_s']:.1f} s after launch, READY after "
            f"{r['ready_s']:.1f} s; {len(r['after'])} changes after the subscriptions: "
            f"{describe(percentiles(after))}, {pre_ready} of them in J1 before READY; "
            f"{len(before)} made before: in J1 {describe(percentiles(caught))} after the subscriptions"
        )
    _say(
        f"start-up, all runs: changes after the subscriptions {describe(percentiles(lat_after))}; "
        f"changes made before, J1 after the subscriptions {describe(percentiles(to_j1_after_subs))}; "
        f"missed {missed}"
    )


async def idle_cost(h: SimHarness, workdir: Path, args: argparse.Namespace) -> None:
    s = args.idle_scale
    d = SyncSettings()  # the shipped defaults, scaled down
    scaled = {
        **DEFAULTS,
        "safety_net_interval": d.safety_net_interval / s,
        "devices_delta_interval": d.devices_delta_interval / s,
        "intune_devices_interval": d.intune_devices_interval / s,
        "intune_policies_interval": d.intune_policies_interval / s,
        "drain_interval": d.drain_interval / s,
        "sign_in_interval": d.sign_in_interval / s,
    }
    config = h.config_path({"sync": scaled, "j1": J1_BENCH, "log": {"level": "INFO", "format": "json"}})
    daemon = await start_daemon(config, workdir / "idle")
    # ready = the restart's catch-up rounds (every origin once) are done
    await daemon.wait_healthy(h.health_url, 900)
    await asyncio.sleep(0.5)
    # no alignment to the scheduler's phase needed: each scaled interval divides the window
    h.sims.graph.counters.reset()
    rounds_before = Counter(e.get("origin") for e in daemon.events("round"))
    await asyncio.sleep(args.idle_seconds)
    counts = graph_requests(h)
    rounds_after = Counter(e.get("origin") for e in daemon.events("round"))
    await daemon.stop(60)
    factor = 3600.0 / (args.idle_seconds * s)
    _say(
        f"\nIdle Graph requests, {args.idle_seconds:.0f} s with intervals / {s:g} "
        f"(= {args.idle_seconds * s / 3600:.2f} h of the default intervals); per idle hour:"
    )
    total = 0.0
    for route, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        per_hour = n * factor
        total += per_hour
        _say(f"  {per_hour:9.1f}/h  ({n:5d} seen)  {route}")
    _say(f"  {total:9.1f}/h  total")
    rounds = {o: rounds_after[o] - rounds_before.get(o, 0) for o in rounds_after}
    _say(
        "  rounds in the window per origin: " + ", ".join(f"{o}={n}" for o, n in sorted(rounds.items()) if n)
    )
    d = SyncSettings()
    expected = {
        "users delta (safety net)": 3600 / d.safety_net_interval,
        "groups delta (safety net)": 3600 / d.safety_net_interval,
        "devices delta": 3600 / d.devices_delta_interval,
        "intune managedDevices/deviceCategories polls": 2 * 3600 / d.intune_devices_interval,
        "other intune + account polls": 10 * 3600 / d.intune_policies_interval,
        "user sign-in poll": 3600 / d.sign_in_interval,
    }
    _say("  expected rounds per hour: " + ", ".join(f"{k} {v:g}" for k, v in expected.items()))


async def bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="syncd-latency-"))
    _say(f"Generating a tenant: {args.users} users ...")
    tenant = generate_tenant(
        seed=args.seed, users=args.users, groups=max(10, args.users // 10), devices=max(10, args.users // 5)
    )
    h = await start_harness(tenant, workdir, notifications=True)
    try:
        config = h.config_path({"sync": DEFAULTS, "j1": J1_BENCH, "log": {"level": "INFO", "format": "json"}})
        daemon = await start_daemon(config, workdir / "daemon")
        took = await daemon.wait_healthy(h.health_url, 900)
        _say(f"daemon ready after {took:.1f} s (initial full sync; notifications on); state in {workdir}")
        rng = random.Random(args.seed)
        pick = Picker(tenant, rng)
        every: list[float] = []
        missed = 0
        by_kind: dict[str, list[float]] = defaultdict(list)
        low, high = args.replication_delay
        if high > 0:
            h.sims.graph.set_faults({"replication_delay_min": low, "replication_delay_max": high})
            _say(f"replication delay on: each change visible to delta {low:g} to {high:g} s after it")
        async with sim_admin(h) as admin:
            for run in range(args.runs):
                users_delta0 = delta_requests(h, "users")
                groups_delta0 = delta_requests(h, "groups")
                results = await latency_run(h, admin, pick, args, run)
                got = [t for _k, t in results if t is not None]
                missed += len(results) - len(got)
                every.extend(got)
                for k, t in results:
                    if t is not None:
                        by_kind[k].append(t)
                ud = delta_requests(h, "users") - users_delta0
                gd = delta_requests(h, "groups") - groups_delta0
                _say(
                    f"run {run + 1}: {describe(percentiles(got))}; not seen within {args.limit:g} s: "
                    f"{len(results) - len(got)}; delta requests users={ud} groups={gd}"
                )
            await daemon.stop(60)
            startups = [await startup_run(h, admin, pick, args, workdir, n) for n in range(args.startup_runs)]
        overall = percentiles(every)
        _say(f"\nAll runs: {describe(overall)}; missed {missed}")
        for kind, samples in sorted(by_kind.items()):
            _say(f"  {kind:14s} {describe(percentiles(samples))}")
        if overall and high > 0:
            ok = overall["p95"] <= high + 2.0 and not missed
            verdict = "met" if ok else "MISSED"
            _say(f"goal with replication delay: all in J1, p95 <= {high + 2:g} s: {verdict}")
        elif overall:
            ok = overall["p50"] <= 1.5 and overall["p99"] <= 3.0 and not missed
            _say(f"goal p50 <= 1.5 s and p99 <= 3 s: {'met' if ok else 'MISSED'}")
        if startups:
            _report_startup(startups)
        pushes = daemon.events("push")
        if pushes:
            durations = [float(p.get("duration_s", 0)) for p in pushes[1:]]
            _say(f"J1 pushes: {len(pushes)}; push duration {describe(percentiles(durations))}")
        rounds = [e for e in daemon.events("round") if e.get("origin") in ("users", "groups")]
        if rounds:
            _say(
                f"users/groups rounds: {len(rounds)}; round duration "
                f"{describe(percentiles([float(e.get('duration_s', 0)) for e in rounds[2:]]))}"
            )
        if not args.skip_idle:
            await idle_cost(h, workdir, args)
    finally:
        await h.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--changes", type=int, default=200)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--spacing", type=float, nargs=2, default=(0.5, 1.0), metavar=("MIN", "MAX"))
    p.add_argument("--limit", type=float, default=30.0, help="give up on a change after this many seconds")
    p.add_argument("--idle-seconds", type=float, default=120.0)
    p.add_argument("--idle-scale", type=float, default=30.0)
    p.add_argument("--skip-idle", action="store_true")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", action="store_true", help="keep the state directory (logs)")
    p.add_argument(
        "--replication-delay",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("MIN", "MAX"),
        help="the Graph simulator's replication delay per change (seconds)",
    )
    p.add_argument("--startup-runs", type=int, default=0, help="restarts with changes coming meanwhile")
    p.add_argument(
        "--startup-intune-budget",
        type=int,
        default=20,
        help="[sync] intune_requests_per_20s during the start-up runs (slow Intune polls)",
    )
    args = p.parse_args()
    asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
