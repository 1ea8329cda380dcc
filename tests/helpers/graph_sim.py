"""The Graph simulator driven over raw HTTP, so its tests exercise the wire format rather than
syncd's client. It runs in the product harness (syncd.sim.harness, Graph only: no J1), reached
on its plain-HTTP listener; notifications go to plain-HTTP receivers unless a test says otherwise."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from syncd.sim.graph.app import GraphSim
from syncd.sim.graph.faults import Faults
from syncd.sim.graph.notifications import DeliveryConfig
from syncd.sim.harness import SimHarness, start_harness
from syncd.sim.tenant import Tenant

TIMEOUT = aiohttp.ClientTimeout(total=15)
FAST_DELIVERY = DeliveryConfig(retry_delays=(0.1, 0.2), batch_window=0.02, tick=0.05, timeout=1.0)
"""Notification delivery quick enough for tests (the simulator's defaults are Graph's pace)."""


class FakeClock:
    """A settable clock for the simulator (starts at the real time, moves only when told)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def use_clock(sim: GraphSim, clock: FakeClock) -> None:
    """Run a started simulator on `clock` (tokens, delta replication, subscriptions, change stamps):
    the harness starts it on the real clock."""
    sim.clock = clock
    sim.tenant.clock = clock
    sim.tokens.clock = clock


@dataclass
class GraphSimClient:
    """A client of the Graph simulator of a running harness: the app's token, raw calls, paging."""

    h: SimHarness
    session: aiohttp.ClientSession
    token: str = ""

    @property
    def sim(self) -> GraphSim:
        return self.h.sims.graph

    @property
    def base(self) -> str:
        return self.h.sims.graph_http_url

    @property
    def tenant(self) -> Tenant:
        return self.h.tenant

    @property
    def client_id(self) -> str:
        return self.h.sims.client_id

    @property
    def client_secret(self) -> str:
        return self.h.sims.client_secret

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


@asynccontextmanager
async def graph_sim(
    tenant: Tenant,
    state_dir: Path,
    *,
    faults: Faults | None = None,
    delivery: DeliveryConfig = FAST_DELIVERY,
    clock: FakeClock | None = None,
) -> AsyncIterator[GraphSimClient]:
    """The Graph simulator for `tenant` (plain-HTTP notification URLs allowed unless `faults` say
    otherwise) and a client of it (no token yet: `await client.fetch_token()`)."""
    h = await start_harness(
        tenant,
        state_dir,
        notifications=False,
        faults=faults or Faults(allow_http_notification_url=True),
        delivery=delivery,
        j1=False,
    )
    if clock is not None:
        use_clock(h.sims.graph, clock)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            yield GraphSimClient(h, session)
    finally:
        await h.stop()
