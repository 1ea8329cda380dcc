"""Fixtures for the Graph simulator tests: a running simulator, an authenticated client and a
local webhook receiver (all on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.sim.generator import generate_tenant
from syncd.sim.graph.app import GraphSim
from syncd.sim.graph.faults import Faults
from syncd.sim.graph.notifications import DeliveryConfig
from syncd.sim.tenant import Tenant
from syncd.sim.tls import TlsFiles, ensure_tls
from tests.sim.j1_helpers import make_sim_fixture, sim_fixture  # noqa: F401 - J1 simulator fixtures

TIMEOUT = aiohttp.ClientTimeout(total=15)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return ensure_tls(tmp_path_factory.mktemp("simtls"))


def small_tenant(**kw: Any) -> Tenant:
    args: dict[str, Any] = {"seed": 7, "users": 30, "groups": 5, "devices": 6, "with_intune": False}
    args.update(kw)
    return generate_tenant(**args)


class FakeClock:
    """A settable clock for the simulator (starts at the real time, moves only when told)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class SimHarness:
    """A running GraphSim (plain HTTP) plus a client session and the app's credentials."""

    sim: GraphSim
    base: str
    session: aiohttp.ClientSession
    client_id: str
    client_secret: str
    token: str = ""

    @property
    def tenant(self) -> Tenant:
        return self.sim.tenant

    async def fetch_token(self) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "scope": f"{self.base}/.default",
        }
        async with self.session.post(
            f"{self.base}/{self.tenant.tenant_id}/oauth2/v2.0/token", data=form
        ) as r:
            assert r.status == 200, await r.text()
            self.token = (await r.json())["access_token"]
        return self.token

    async def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        if url.startswith("/"):
            url = self.base + url
        h = {"Authorization": f"Bearer {self.token}"}
        h.update(headers or {})
        async with self.session.get(url, headers=h) as r:
            body = await r.json(content_type=None)
            return r.status, body, r.headers

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        h = {"Authorization": f"Bearer {self.token}"}
        async with self.session.request(method, self.base + path, json=body, headers=h) as r:
            text = await r.text()
            return r.status, (None if not text else await r.json(content_type=None))

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.base}/_sim{path}", json=body) as r:
            assert r.status < 300, await r.text()
            return await r.json()

    async def follow(
        self, url: str, headers: dict[str, str] | None = None
    ) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]]]:
        """Follow nextLinks; returns (all values, deltaLink, pages)."""
        values: list[dict[str, Any]] = []
        pages: list[dict[str, Any]] = []
        while True:
            status, body, _ = await self.get(url, headers)
            assert status == 200, body
            pages.append(body)
            values.extend(body["value"])
            assert not ("@odata.nextLink" in body and "@odata.deltaLink" in body)
            if "@odata.nextLink" in body:
                url = body["@odata.nextLink"]
                continue
            return values, body.get("@odata.deltaLink", ""), pages


async def start_harness(
    tenant: Tenant,
    *,
    faults: Faults | None = None,
    delivery: DeliveryConfig | None = None,
    tls: TlsFiles | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[SimHarness, web.AppRunner]:
    faults = faults or Faults(allow_http_notification_url=True)
    delivery = delivery or DeliveryConfig(retry_delays=(0.1, 0.2), batch_window=0.02, tick=0.05, timeout=1.0)
    sim = GraphSim(
        tenant,
        faults=faults,
        delivery=delivery,
        client_ssl=tls.client_context() if tls else None,
        clock=clock,
    )
    runner = web.AppRunner(sim.create_app(intune_routes=False), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    session = aiohttp.ClientSession(timeout=TIMEOUT)
    cid, secret = next(iter(tenant.apps.items()))
    return SimHarness(sim, f"http://127.0.0.1:{port}", session, cid, secret), runner


@pytest.fixture
async def harness() -> AsyncIterator[SimHarness]:
    h, runner = await start_harness(small_tenant())
    await h.fetch_token()
    yield h
    await h.session.close()
    await runner.cleanup()


@dataclass
class Receiver:
    """A webhook endpoint: echoes validation tokens and records notification POSTs."""

    url: str = ""
    notifications: list[dict[str, Any]] = field(default_factory=list)
    validations: list[str] = field(default_factory=list)
    lifecycle: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    echo_wrong: bool = False
    validation_delay: float = 0.0
    response_delay: float = 0.0
    got: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        token = request.query.get("validationToken")
        if token is not None:
            self.validations.append(token)
            if self.validation_delay:
                await asyncio.sleep(self.validation_delay)
            return web.Response(text=token + ("x" if self.echo_wrong else ""), content_type="text/plain")
        body = await request.json()
        if request.path == "/life":
            self.lifecycle.append(body)
            self.got.set()
            return web.Response(status=202)
        if self.response_delay:
            await asyncio.sleep(self.response_delay)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503)
        self.notifications.append(body)
        self.got.set()
        return web.Response(status=202)

    async def wait_for(self, n: int, timeout: float = 5.0, *, lifecycle: bool = False) -> None:
        seen = self.lifecycle if lifecycle else self.notifications

        async def _loop() -> None:
            while len(seen) < n:
                self.got.clear()
                await self.got.wait()

        await asyncio.wait_for(_loop(), timeout)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    app.router.add_post("/life", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield rec
    await runner.cleanup()
