"""Shared fixtures for the alerts tests: an in-memory alert outbox and a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from syncd.mirror import AlertRow
from tests.conftest import Serve


@dataclass
class MemoryStore:
    """The mirror's alert outbox Protocol, in memory (async, like the real writer-thread store)."""

    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    acked: list[int] = field(default_factory=list)
    retries: list[tuple[int, float, str]] = field(default_factory=list)
    _next: int = 1

    async def enqueue_alerts(self, rows: list[AlertRow]) -> int:
        added = 0
        for r in rows:
            if any(x["alert_id"] == r["alert_id"] and x["target"] == r["target"] for x in self.rows.values()):
                continue  # idempotent per (alert, target)
            self.rows[self._next] = {
                **r,
                "row_id": self._next,
                "attempts": 0,
                "next_attempt": 0.0,
                "last_error": None,
            }
            self._next += 1
            added += 1
        return added

    async def due_alerts(self, now: float, limit: int) -> list[dict[str, Any]]:
        due = [dict(r) for r in self.rows.values() if r["next_attempt"] <= now]
        return due[:limit]

    async def ack_alert(self, row_id: int) -> None:
        self.rows.pop(row_id, None)
        self.acked.append(row_id)

    async def retry_alert(self, row_id: int, next_attempt: float, error: str) -> None:
        row = self.rows[row_id]
        row["attempts"] += 1
        row["next_attempt"] = next_attempt
        row["last_error"] = error
        self.retries.append((row_id, next_attempt, error))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


class Clock:
    """A settable clock so backoff can be checked without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class Receiver:
    """A local webhook receiver; `plan` holds the statuses to answer, then 200 forever."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    plan: list[int] = field(default_factory=list)
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)


@pytest.fixture
def receiver_factory(serve: Serve) -> Callable[..., Any]:
    async def make(
        plan: list[int] | None = None, delay: float = 0.0, headers: dict[str, str] | None = None
    ) -> Receiver:
        rec = Receiver(plan=list(plan or []), delay=delay, headers=dict(headers or {}))

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            rec.requests.append(
                {"path": request.path, "headers": dict(request.headers), "json": json.loads(body)}
            )
            rec.times.append(asyncio.get_running_loop().time())
            if rec.delay:
                await asyncio.sleep(rec.delay)
            status = rec.plan.pop(0) if rec.plan else 200
            return web.Response(status=status, text="ok", headers=rec.headers if status != 200 else None)

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        rec.url = await serve(app) + "/hook/secret-token"
        return rec

    return make
