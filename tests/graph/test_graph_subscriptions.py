"""SubscriptionsApi against a small in-memory /subscriptions server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from syncd.graph.client import GraphClient
from syncd.graph.errors import NotFound
from syncd.graph.subscriptions import SubscriptionsApi, format_expiration, max_expiration

MakeClient = Callable[..., GraphClient]


class SubsServer:
    def __init__(self) -> None:
        self.subs: dict[str, dict[str, Any]] = {}
        self.reauthorized: list[str] = []
        self.n = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1.0/subscriptions", self.create)
        app.router.add_get("/v1.0/subscriptions", self.list)
        app.router.add_get("/v1.0/subscriptions/{id}", self.get)
        app.router.add_patch("/v1.0/subscriptions/{id}", self.patch)
        app.router.add_delete("/v1.0/subscriptions/{id}", self.delete)
        app.router.add_post("/v1.0/subscriptions/{id}/reauthorize", self.reauthorize)
        return app

    def _find(self, request: web.Request) -> dict[str, Any]:
        sub = self.subs.get(request.match_info["id"])
        if sub is None:
            raise web.HTTPNotFound(
                text='{"error":{"code":"ResourceNotFound","message":"not found"}}',
                content_type="application/json",
            )
        return sub

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.n += 1
        sub = {"id": f"sub-{self.n}", **body}
        self.subs[sub["id"]] = sub
        return web.json_response(sub, status=201)

    async def list(self, request: web.Request) -> web.Response:
        items = list(self.subs.values())
        if "$skiptoken" not in request.query:
            return web.json_response(
                {
                    "value": items[:1],
                    "@odata.nextLink": f"http://{request.host}/v1.0/subscriptions?$skiptoken=2",
                }
            )
        return web.json_response({"value": items[1:]})

    async def get(self, request: web.Request) -> web.Response:
        return web.json_response(self._find(request))

    async def patch(self, request: web.Request) -> web.Response:
        sub = self._find(request)
        sub.update(await request.json())
        return web.json_response(sub)

    async def delete(self, request: web.Request) -> web.Response:
        self._find(request)
        del self.subs[request.match_info["id"]]
        return web.Response(status=204)

    async def reauthorize(self, request: web.Request) -> web.Response:
        self._find(request)
        self.reauthorized.append(request.match_info["id"])
        return web.Response(status=204)


async def test_subscription_lifecycle(serve: Any, make_client: MakeClient) -> None:
    server = SubsServer()
    api = SubscriptionsApi(make_client(await serve(server.app())))
    exp = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    created = await api.create(
        "users", "updated,deleted", "https://h.example/n", "https://h.example/l", "state-SECRET", exp
    )
    assert created["expirationDateTime"] == "2030-01-02T03:04:05.1234560Z"
    assert created["lifecycleNotificationUrl"] == "https://h.example/l"
    assert created["clientState"] == "state-SECRET"
    await api.create("groups", "updated", "https://h.example/n", None, "s", exp)
    assert {s["resource"] for s in await api.list()} == {"users", "groups"}
    renewed = await api.renew(created["id"], exp + timedelta(days=1))
    assert renewed["expirationDateTime"].startswith("2030-01-03")
    await api.reauthorize(created["id"])
    assert server.reauthorized == [created["id"]]
    assert (await api.get(created["id"]))["resource"] == "users"
    await api.delete(created["id"])
    with pytest.raises(NotFound):
        await api.get(created["id"])
    with pytest.raises(NotFound):
        await api.renew(created["id"], exp)


def test_max_expiration_and_format() -> None:
    assert max_expiration("users") == timedelta(minutes=41_760)
    assert max_expiration("/groups/abc/members") == timedelta(minutes=41_760)
    assert max_expiration("users") == timedelta(days=29)
    assert max_expiration("me/messages") == timedelta(minutes=4_230)
    assert format_expiration(datetime(2030, 1, 1)) == "2030-01-01T00:00:00.0000000Z"
