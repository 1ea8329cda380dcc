"""Fixtures for the Graph simulator tests: a running simulator with an authenticated client
(tests/helpers/graph_sim.py) and a local webhook receiver (all on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bench.kit.tenants import graph_tenant
from tests.conftest import Serve
from tests.helpers.graph_sim import GraphSimClient, graph_sim
from tests.sim.j1_helpers import make_sim_fixture, sim_fixture  # noqa: F401 - J1 simulator fixtures


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[GraphSimClient]:
    async with graph_sim(graph_tenant(), tmp_path) as client:
        await client.fetch_token()
        yield client


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
async def receiver(serve: Serve) -> Receiver:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    app.router.add_post("/life", rec.handle)
    rec.url = await serve(app)
    return rec
