"""The simulators seen from outside: the Graph simulator's admin API (`/_sim/...`) and request
counters, and the jobs the J1 simulator ran for syncd."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from syncd.sim.harness import SimHarness


class SimAdmin:
    """The Graph simulator's admin API over plain HTTP: tenant changes made this way show up in
    delta and fire change notifications like real ones."""

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
    """Answered Graph requests per route of the simulator (method + route pattern; the items of a
    `$batch` count one each, like Graph's limits)."""
    return {route: c["requests"] for route, c in h.sims.graph.counters.routes.items()}


def delta_requests(h: SimHarness, resource: str) -> int:
    """Requests to `/{resource}/delta` (every page counts)."""
    return sum(n for route, n in graph_requests(h).items() if f"/{resource}/" in route and "delta" in route)


def syncd_jobs(h: SimHarness, since: int = 0) -> list[dict[str, Any]]:
    """The J1 simulator's jobs on syncd's partition scopes, from job number `since` on (probe and
    isolation scopes left out)."""
    return [j for j in h.sims.j1_state.jobs_view()[since:] if h.is_syncd_scope(j["scope"])]


def uploaded_objects(job: dict[str, Any]) -> int:
    """Objects a J1 job received in its uploads (entities, relationships, explicit deletes)."""
    return sum(job["uploads"]["objects"].values())
