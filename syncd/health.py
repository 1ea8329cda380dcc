"""`/healthz` and `/metrics`, on a listener of their own (loopback by default).

They tell anyone who can reach them how far behind syncd is and what fails; the notification
listener faces the internet, so they never share it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from syncd import metrics

HealthCheck = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
HEALTH_KEY: web.AppKey[HealthCheck] = web.AppKey("syncd_health_check")


def create_health_app(health: HealthCheck) -> web.Application:
    app = web.Application(client_max_size=1024)
    app[HEALTH_KEY] = health
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/metrics", metrics.metrics_handler())
    return app


async def handle_healthz(request: web.Request) -> web.Response:
    healthy, details = await request.app[HEALTH_KEY]()
    return web.json_response(
        {"status": "ok" if healthy else "unhealthy", **details}, status=200 if healthy else 503
    )
