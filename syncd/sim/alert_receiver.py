"""A local alert webhook receiver (standing in for Slack, Teams or an incident tool), for the demo,
the tests and the benches: records bodies, headers and arrival times."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from syncd.alerts.targets import ALERT_ID_HEADER
from syncd.sim.harness import free_port


class AlertReceiver:
    """A real local aiohttp receiver for alert webhooks; records bodies, headers and arrival times."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.alerts: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.arrived: list[float] = []
        self.runner: web.AppRunner | None = None
        self.new_alert = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/alerts", self._receive)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self.url

    async def _receive(self, request: web.Request) -> web.Response:
        self.arrived.append(time.monotonic())
        self.alerts.append(await request.json())
        self.headers.append(dict(request.headers))
        self.new_alert.set()
        return web.Response(status=204)

    def rule_ids(self) -> list[str]:
        return [str(a.get("rule_id")) for a in self.alerts]

    def header_of(self, index: int) -> str | None:
        return self.headers[index].get(ALERT_ID_HEADER)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
