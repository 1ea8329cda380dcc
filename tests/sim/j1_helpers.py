"""Shared driver for the J1 simulator tests: a raw-HTTP `Sim` against a 127.0.0.1 test server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from syncd.sim.j1 import J1SimConfig, J1SimState, create_j1_app
from tests.helpers.j1_objects import entity, relationship

ACCOUNT = "acct-main"
KEY = "s3cret-api-key-main"
OTHER_ACCOUNT = "acct-other"
OTHER_KEY = "s3cret-api-key-other"
JOBS = "/persister/synchronization/jobs"
DONE_STATUSES = ("FINISHED", "ABORTED", "ERROR_BAD_DATA", "ERROR_UNEXPECTED_FAILURE")


class Sim:
    """Tiny raw-HTTP driver so tests exercise the wire format, not our client."""

    def __init__(self, state: J1SimState, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.state = state
        self.server = server
        self.session = session

    def headers(self, account: str = ACCOUNT, key: str = KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "JupiterOne-Account": account}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        hdrs = self.headers() if headers is None else headers
        if body is not None:
            data = json.dumps(body).encode()
            hdrs = {**hdrs, "Content-Type": "application/json"}
        async with self.session.request(
            method, self.server.make_url(path), data=data, headers=hdrs, params=params
        ) as resp:
            text = await resp.text()
            return resp.status, (json.loads(text) if text else None), resp

    async def create(self, scope: str = "scope-a", mode: str | None = "DIFF", **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"source": "api", "scope": scope, **extra}
        if mode is not None:
            body["syncMode"] = mode
        status, data, _ = await self.call("POST", JOBS, body)
        assert status == 200, data
        return dict(data["job"])

    async def upload(self, job_id: str, expect: int = 200, **fields: Any) -> Any:
        status, data, _ = await self.call("POST", f"{JOBS}/{job_id}/upload", fields)
        assert status == expect, data
        return data

    async def finalize(self, job_id: str, body: Any = None) -> dict[str, Any]:
        status, data, _ = await self.call(
            "POST", f"{JOBS}/{job_id}/finalize", body if body is not None else {}
        )
        assert status == 200, data
        return dict(data["job"])

    async def wait(self, job_id: str, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                status, data, _ = await self.call("GET", f"{JOBS}/{job_id}")
                assert status == 200
                if data["job"]["status"] in DONE_STATUSES:
                    return dict(data["job"])
                await asyncio.sleep(0.005)

    async def run(
        self, scope: str, mode: str = "DIFF", finalize_body: Any = None, **fields: Any
    ) -> dict[str, Any]:
        job = await self.create(scope, mode)
        if fields:
            await self.upload(job["id"], **fields)
        await self.finalize(job["id"], finalize_body)
        return await self.wait(job["id"])

    async def graph(self, **query: str) -> dict[str, Any]:
        status, data, _ = await self.call("GET", "/_sim/graph", headers={}, params=query)
        assert status == 200
        return dict(data)

    async def behave(self, **switches: Any) -> dict[str, Any]:
        """Set behaviour switches through the admin API (as a test or a bench would)."""
        status, data, _ = await self.call("PUT", "/_sim/behaviour", switches, headers={})
        assert status == 200, data
        return dict(data)

    async def faults(self, **faults: Any) -> dict[str, Any]:
        status, data, _ = await self.call("PUT", "/_sim/faults", faults, headers={})
        assert status == 200, data
        return dict(data)


SimFactory = Callable[..., Awaitable[Sim]]


@pytest.fixture(name="make_sim")
async def make_sim_fixture() -> AsyncIterator[SimFactory]:
    """Start J1 simulators (two accounts) with a `J1SimConfig` built from the keyword arguments."""
    servers: list[TestServer] = []
    session = aiohttp.ClientSession()

    async def factory(**config: Any) -> Sim:
        config.setdefault("finalize_step_delay", (0.0, 0.002))
        config.setdefault("seed", 7)
        state = J1SimState({ACCOUNT: KEY, OTHER_ACCOUNT: OTHER_KEY}, J1SimConfig(**config))
        server = TestServer(create_j1_app(state), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return Sim(state, server, session)

    yield factory
    await session.close()
    for server in servers:
        await server.close()


@pytest.fixture(name="sim")
async def sim_fixture(make_sim: SimFactory) -> Sim:
    """One J1 simulator with the default (strict) behaviour."""
    return await make_sim()


def ent(key: str, type_: str = "test_user", cls: str | list[str] = "User", **props: Any) -> dict[str, Any]:
    return entity(key, type_, cls, **props)


def rel(
    frm: str, to: str, cls: str = "HAS", type_: str = "test_user_has_thing", **props: Any
) -> dict[str, Any]:
    return relationship(frm, to, type_, cls, **props)


def error_code(data: Any) -> str:
    assert set(data) == {"error"} and set(data["error"]) == {"code", "message"}, data
    return str(data["error"]["code"])
