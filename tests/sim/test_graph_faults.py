"""Throttling, 5xx, latency, connection resets, determinism, counters, admin reset."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest

from bench.kit.tenants import graph_tenant
from syncd.sim.graph.faults import Faults
from tests.conftest import Serve
from tests.helpers.graph_sim import GraphSimClient, graph_sim


async def test_429_with_fractional_retry_after_and_counters(harness: GraphSimClient) -> None:
    await harness.admin("PUT", "/faults", {"throttle_next": 2, "retry_after": "1.5"})
    status, body, headers = await harness.get("/v1.0/users")
    assert status == 429 and headers["Retry-After"] == "1.5"
    assert float(headers["Retry-After"]) == 1.5
    err = body["error"]
    assert err["code"] == "TooManyRequests" and err["message"] == "Please retry again later."
    assert err["innerError"]["code"] == "429" and err["innerError"]["status"] == "429"
    assert headers["Content-Type"] == "application/json"
    assert (await harness.get("/v1.0/users"))[0] == 429
    assert (await harness.get("/v1.0/users"))[0] == 200
    stats = await harness.admin("GET", "/stats")
    route = stats["routes"]["GET /v1.0/users"]
    assert route["requests"] == 3 and route["throttled"] == 2 and route["200"] == 1
    assert stats["totals"]["throttled"] == 2


async def test_503_with_retry_after_and_504(harness: GraphSimClient) -> None:
    await harness.admin(
        "PUT", "/faults", {"error_next": 1, "error_statuses": [503], "error_retry_after": "2"}
    )
    status, body, headers = await harness.get("/v1.0/groups")
    assert status == 503 and headers["Retry-After"] == "2" and body["error"]["code"] == "serviceNotAvailable"
    await harness.admin("PUT", "/faults", {"error_next": 1, "error_statuses": [504]})
    status, body, headers = await harness.get("/v1.0/groups")
    assert status == 504 and "Retry-After" not in headers


async def test_rate_faults_are_deterministic_for_a_seed(tmp_path: Path) -> None:
    runs = iter(range(3))

    async def run(seed: int) -> list[int]:
        faults = Faults(seed=seed, throttle_rate=0.3, error_rate=0.2)
        async with graph_sim(graph_tenant(), tmp_path / f"run{next(runs)}", faults=faults) as h:
            await h.fetch_token()
            return [(await h.get("/v1.0/organization"))[0] for _ in range(30)]

    a, b, c = await run(5), await run(5), await run(6)
    assert a == b and a != c
    assert 429 in a and 200 in a and ({503, 504} & set(a))


async def test_latency(harness: GraphSimClient) -> None:
    await harness.admin("PUT", "/faults", {"latency_ms": 300})
    start = time.monotonic()
    assert (await harness.get("/v1.0/organization"))[0] == 200
    assert time.monotonic() - start >= 0.3


async def test_connection_reset(harness: GraphSimClient) -> None:
    # aiohttp retries an idempotent request once on a dropped connection: reset both attempts
    await harness.admin("PUT", "/faults", {"reset_next": 2})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh:
        with pytest.raises(aiohttp.ClientError):
            await fresh.get(
                f"{harness.base}/v1.0/organization", headers={"Authorization": f"Bearer {harness.token}"}
            )
    assert (await harness.get("/v1.0/organization"))[0] == 200


async def test_admin_and_login_are_never_faulted(harness: GraphSimClient) -> None:
    await harness.admin("PUT", "/faults", {"throttle_rate": 1.0})
    await harness.admin("GET", "/stats")
    await harness.fetch_token()
    assert (await harness.get("/v1.0/organization"))[0] == 429


async def test_unknown_fault_rejected_and_reset(harness: GraphSimClient) -> None:
    async with harness.session.put(f"{harness.base}/_sim/faults", json={"nope": 1}) as r:
        assert r.status == 400
    await harness.admin("PUT", "/faults", {"throttle_rate": 1.0})
    assert (await harness.get("/v1.0/organization"))[0] == 429
    await harness.admin("POST", "/reset")
    assert (await harness.admin("GET", "/faults"))["throttle_rate"] == 0.0
    assert (await harness.get("/v1.0/organization"))[0] == 200
    stats = await harness.admin("GET", "/stats")
    assert stats["routes"]["GET /v1.0/organization"] == {"requests": 1, "throttled": 0, "200": 1}


async def test_middleware_covers_intune_routes_when_present(serve: Serve) -> None:
    from syncd.sim.graph.app import GraphSim

    sim = GraphSim(graph_tenant(devices=4), faults=Faults(throttle_next=1))
    app = sim.create_app()  # with the Intune routes when syncd.sim.intune(_routes) exists
    base = await serve(app)
    async with aiohttp.ClientSession() as s, s.get(f"{base}/beta/deviceManagement/managedDevices") as r:
        assert r.status == 401  # auth applies whether or not the route exists
    has_intune = any("deviceManagement" in res.canonical for res in app.router.resources())
    assert sim.counters.routes  # counted
    if has_intune:
        key = next(k for k in sim.counters.routes if "deviceManagement/managedDevices" in k)
        assert sim.counters.routes[key]["401"] == 1
