"""Helpers for the change-notification and alert end-to-end tests and the latency benches.

The daemon runs in-process (`Daemon(settings, install_signals=False)`, as `syncd demo` does) against
the Graph and J1 simulators started by `syncd.sim.harness`. Tenant changes go through the Graph
simulator's admin API, so they show up in delta and fire notifications like real ones.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from syncd.daemon import Daemon
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness, add_privileged_group, start_harness
from syncd.sim.tenant import Tenant

READY_TIMEOUT = 120.0


def small_tenant(seed: int = 11, *, users: int = 40, privileged_group: bool = False) -> Tenant:
    """A quick tenant (full sync well under a second); optionally with a privileged group."""
    tenant = generate_tenant(seed=seed, users=users, groups=6, devices=10, managed_devices=10)
    if privileged_group:
        add_privileged_group(tenant)
    return tenant


@asynccontextmanager
async def sim_harness(
    tenant: Tenant, state_dir: Path, *, notifications: bool = True, **sim_options: Any
) -> AsyncIterator[SimHarness]:
    h = await start_harness(tenant, state_dir, notifications=notifications, **sim_options)
    try:
        yield h
    finally:
        await h.stop()


async def start_daemon(
    h: SimHarness, extra: dict[str, dict[str, Any]] | None = None
) -> tuple[Daemon, asyncio.Task[int]]:
    """Start a daemon on the harness configuration and wait until it is ready."""
    daemon = Daemon(h.settings(extra), install_signals=False)
    ready = asyncio.Event()
    daemon.on_ready(ready.set)
    task = asyncio.create_task(daemon.run(), name="daemon")
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiter.cancel()
        if task in done:
            task.result()  # raises the start-up error
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise AssertionError("the daemon did not become ready")
    return daemon, task


async def stop_daemon(daemon: Daemon, task: asyncio.Task[int]) -> int:
    daemon.request_stop()
    return await asyncio.wait_for(task, 60)


@asynccontextmanager
async def running_daemon(
    h: SimHarness, extra: dict[str, dict[str, Any]] | None = None
) -> AsyncIterator[Daemon]:
    daemon, task = await start_daemon(h, extra)
    try:
        yield daemon
    finally:
        if not task.done():
            assert await stop_daemon(daemon, task) == 0
        else:
            task.result()


async def until(check: Callable[[], bool], timeout: float = 10.0, *, what: str = "condition") -> float:
    """Poll `check` every 10 ms; return the seconds it took, or fail the test after `timeout`."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        await asyncio.sleep(0.01)


async def until_async(
    check: Callable[[], Awaitable[bool]],
    timeout: float = 10.0,
    *,
    what: str = "condition",
) -> float:
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        await asyncio.sleep(0.02)


class SimAdmin:
    """The Graph simulator's admin API (`/_sim/...`) over plain HTTP."""

    def __init__(self, h: SimHarness, session: aiohttp.ClientSession) -> None:
        self.base = h.sims.graph_http_url
        self.http = session

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self.http.request(method, f"{self.base}{path}", json=body) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise AssertionError(f"{method} {path}: {resp.status} {text[:300]}")
            return json.loads(text) if text else {}

    async def subscriptions(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/_sim/subscriptions"))["value"])

    async def reauthorized(self) -> list[str]:
        return list((await self.call("GET", "/_sim/subscriptions"))["reauthorized"])

    async def faults(self, **values: Any) -> None:
        await self.call("PUT", "/_sim/faults", values)

    async def patch_user(self, user_id: str, **props: Any) -> None:
        await self.call("PATCH", f"/_sim/users/{user_id}", props)


@asynccontextmanager
async def sim_admin(h: SimHarness) -> AsyncIterator[SimAdmin]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield SimAdmin(h, session)


def graph_requests(h: SimHarness) -> dict[str, int]:
    """Answered Graph requests per route of the simulator (method + route pattern)."""
    return {route: c["requests"] for route, c in h.sims.graph.counters.routes.items()}


def delta_requests(h: SimHarness, resource: str) -> int:
    """Requests to `/{resource}/delta` (every page counts)."""
    return sum(n for route, n in graph_requests(h).items() if f"/{resource}/" in route and "delta" in route)


def webhook_ssl(h: SimHarness) -> ssl.SSLContext:
    """Trust the simulator's private CA (it signed the daemon's webhook certificate)."""
    return ssl.create_default_context(cafile=str(h.sims.ca_file))


def user_notification(
    h: SimHarness, sub_id: str, user_id: str, client_state: str, seq: int = 1
) -> dict[str, Any]:
    """One change notification shaped like the Graph simulator's (and Graph's) own."""
    tid = h.sims.tenant_id
    return {
        "subscriptionId": sub_id,
        "subscriptionExpirationDateTime": "2099-01-01T00:00:00Z",
        "changeType": "updated",
        "resource": f"Users/{user_id}",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.User",
            "@odata.id": f"Users/{user_id}",
            "id": user_id,
            "organizationId": tid,
            "sequenceNumber": seq,
        },
        "clientState": client_state,
        "tenantId": tid,
    }


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max (nearest rank) and the mean, in seconds."""
    ordered = sorted(samples)
    if not ordered:
        return {}

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    return {
        "n": float(len(ordered)),
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


# --- J1 simulator look-ups in O(1) (the benches poll them every few ms on a 10k-user graph) ---------
def j1_entity(h: SimHarness, key: str) -> dict[str, Any] | None:
    return h.j1_object("e", key)


def j1_relationship(h: SimHarness, key: str) -> dict[str, Any] | None:
    return h.j1_object("r", key)


class DaemonProcess:
    """`syncd -c CONFIG run` as a child process (the benches: the daemon does not share a loop with
    the simulators). Ready when `/healthz` says so; stopped with SIGTERM."""

    def __init__(self, h: SimHarness, config: Path, log_path: Path) -> None:
        self.h = h
        self.config = config
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 900.0) -> float:
        import sys

        syncd = str(Path(sys.executable).with_name("syncd"))
        started = time.monotonic()
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                syncd, "-c", str(self.config), "run", stdout=out, stderr=out
            )
        url = f"{self.h.health_url}/healthz"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while time.monotonic() - started < timeout:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"syncd exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    async with http.get(url) as resp:
                        if (await resp.json()).get("ready"):
                            return time.monotonic() - started
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"syncd not ready within {timeout} s; see {self.log_path}")

    async def stop(self) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc and self.proc.returncode is not None else 0
        self.proc.terminate()
        try:
            return await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def events(self, name: str) -> list[dict[str, Any]]:
        """JSON log events named `name` (the config must set `[log] format = "json"`)."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                found.append(event)
        return found
