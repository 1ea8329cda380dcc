"""`syncd demo`: the daemon against the built-in simulators, with scripted changes flowing through.

Everything runs on loopback: the Graph and J1 simulators, the daemon (with change notifications
over HTTPS, signed by the simulator's private CA) and a small alert receiver. Each scripted
tenant change goes through the simulator's admin API, and the demo reports when it reached the
J1 simulator's graph and which alert the daemon raised.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from syncd.daemon import Daemon
from syncd.log import configure_logging
from syncd.model import schema as m
from syncd.sim.alert_receiver import AlertReceiver
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness, add_privileged_group, start_harness

DEMO_DIR = Path("state/demo")
WAIT = 20.0


def _say(text: str) -> None:
    print(text, flush=True)


async def _until(check: Callable[[], bool], limit: float = WAIT) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if check():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return None


async def _step(
    h: SimHarness,
    receiver: AlertReceiver,
    title: str,
    act: Callable[[], Awaitable[None]],
    reached: Callable[[dict[str, dict[str, Any]], dict[str, dict[str, Any]]], bool],
    results: list[tuple[str, float | None, list[str]]],
) -> None:
    seen = len(receiver.alerts)
    await act()
    latency = await _until(lambda: reached(*h.j1_graph()))
    await _until(lambda: len(receiver.alerts) > seen, limit=5.0)
    fired = [str(a.get("message") or a.get("rule_id")) for a in receiver.alerts[seen:]]
    shown = f"{latency:.2f} s" if latency is not None else "NOT within 20 s"
    _say(f"  - {title}: in J1 after {shown}" + "".join(f"\n      alert: {f}" for f in fired))
    results.append((title, latency, fired))


async def run_demo(*, users: int = 200, keep_running: bool = False) -> int:
    receiver = AlertReceiver()
    harness: list[SimHarness] = []
    try:
        return await _demo(users, keep_running, receiver, harness)
    finally:
        await receiver.stop()
        for h in harness:
            await h.stop()


async def _demo(users: int, keep_running: bool, receiver: AlertReceiver, harness: list[SimHarness]) -> int:
    await asyncio.to_thread(shutil.rmtree, DEMO_DIR, True)
    _say(f"Generating a simulated tenant ({users} users) and starting the Graph and J1 simulators ...")
    tenant = generate_tenant(seed=42, users=users, groups=max(10, users // 10), devices=max(10, users // 5))
    admins = {"id": add_privileged_group(tenant)}
    h = await start_harness(tenant, DEMO_DIR, notifications=True)
    harness.append(h)
    alert_url = await receiver.start()
    settings = h.settings(
        {
            "alerts": {"targets": {"demo": {"kind": "webhook", "url": alert_url}}},
            "sync": {"devices_delta_interval": 2.0},
            "log": {"level": "ERROR", "format": "console"},
        }
    )
    configure_logging(settings.log.level, settings.log.format)
    daemon = Daemon(settings, install_signals=True)
    ready = asyncio.Event()
    daemon.on_ready(ready.set)
    task = asyncio.create_task(daemon.run())
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if task in done or not ready.is_set():
        waiter.cancel()
        _say("the daemon did not become ready")
        return 1 if task not in done else task.result() or 1
    entities, relationships = h.j1_graph()
    _say(
        f"Initial full sync done: {len(entities)} entities and {len(relationships)} relationships in the "
        f"J1 simulator; change notifications subscribed for {', '.join(daemon.state.subscriptions)}."
    )
    _say("Scripted tenant changes (through the simulator's admin API):")
    sim = h.sims.graph_http_url
    results: list[tuple[str, float | None, list[str]]] = []
    people = [u for u in tenant.list("users") if u.get("accountEnabled") and u.get("userType") != "Guest"]
    victim, promoted, leaver = people[0], people[1], people[2]
    devices = [
        d
        for d in (tenant.intune.list("managedDevices") if tenant.intune else [])
        if d.get("complianceState") == "compliant"
    ]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:

        async def call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            async with http.request(method, f"{sim}{path}", json=body) as resp:
                resp.raise_for_status()
                text = await resp.text()
                return json.loads(text) if text else {}

        async def disable() -> None:
            await call("PATCH", f"/_sim/users/{victim['id']}", {"accountEnabled": False})

        await _step(
            h,
            receiver,
            f"user {victim.get('displayName')} disabled",
            disable,
            lambda e, r: e.get(victim["id"], {}).get("accountEnabled") is False,
            results,
        )

        guest_box: dict[str, Any] = {}

        async def invite() -> None:
            guest_box.update(
                await call(
                    "POST",
                    "/_sim/users",
                    {
                        "displayName": "Eve External",
                        "userType": "Guest",
                        "accountEnabled": True,
                        "userPrincipalName": "eve_example.com#EXT#@simorg.onmicrosoft.com",
                        "mail": "eve@example.com",
                    },
                )
            )

        await _step(
            h,
            receiver,
            "guest user Eve External invited",
            invite,
            lambda e, r: any(v.get("displayName") == "Eve External" for v in e.values()),
            results,
        )

        async def promote() -> None:
            await call("POST", f"/_sim/groups/{admins['id']}/members", {"id": promoted["id"]})

        await _step(
            h,
            receiver,
            f"user {promoted.get('displayName')} added to Global Administrators",
            promote,
            lambda e, r: f"{admins['id']}|has|{promoted['id']}" in r,
            results,
        )

        if devices:
            device = devices[0]

            async def noncompliant() -> None:
                await call(
                    "POST",
                    f"/_sim/intune/managedDevices/{device['id']}/compliance",
                    {"complianceState": "noncompliant"},
                )

            await _step(
                h,
                receiver,
                f"device {device.get('deviceName')} fell out of compliance",
                noncompliant,
                lambda e, r: e.get(device["id"], {}).get("complianceState") == "noncompliant",
                results,
            )

        async def leave() -> None:
            await call("POST", f"/_sim/users/{leaver['id']}/soft-delete")

        await _step(
            h,
            receiver,
            f"user {leaver.get('displayName')} deleted",
            leave,
            lambda e, r: leaver["id"] not in e,
            results,
        )

    types = {e["_type"] for e in h.j1_graph()[0].values()}
    _say(
        f"J1 simulator graph now holds {len(types)} of the {len(m.ENTITY_TYPES)} entity types; "
        f"{len(receiver.alerts)} alerts delivered to the local receiver."
    )
    ok = all(latency is not None for _t, latency, _f in results)
    if keep_running:
        _say(
            f"Running: Graph simulator {h.sims.graph_http_url}, J1 simulator {h.sims.j1_url}, "
            f"daemon health {daemon.health_url}/healthz. Ctrl-C to stop."
        )
        await daemon.stop_event.wait()
    daemon.request_stop()
    await task
    _say("Demo finished: " + ("every change reached J1." if ok else "some changes did not reach J1!"))
    return 0 if ok else 1
