"""GraphClient against a small real aiohttp server: headers, retries, errors, paging, $batch."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from syncd.graph.client import GraphClient, route_label
from syncd.graph.errors import (
    GraphError,
    GraphTransportError,
    NotApplicableTenant,
    NotFound,
    PermissionDenied,
    Throttled,
    Unauthorized,
)

MakeClient = Callable[..., GraphClient]


def err(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": "rid-1", "date": "x"}}}
    return web.json_response(body, status=status, headers=headers)


def app_with(handler: Callable[[web.Request], Any], path: str = "/{tail:.*}") -> web.Application:
    app = web.Application()
    app.router.add_route("*", path, handler)
    return app


class FailsFirst:
    """A handler whose first call goes wrong (`first`), every later one answers `body`; counts calls."""

    def __init__(self, first: Callable[[web.Request], Awaitable[web.StreamResponse]], body: Any) -> None:
        self.first = first
        self.body = body
        self.calls = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        if self.calls == 1:
            return await self.first(request)
        return web.json_response(self.body)


async def test_headers_path_and_params(serve: Any, make_client: MakeClient) -> None:
    seen: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"id": "1"})

    base = await serve(app_with(handler))
    client = make_client(base)
    assert await client.get("/users", params={"$select": "id,displayName"}) == {"id": "1"}
    await client.get("/beta/deviceManagement/managedDevices")
    await client.get("deviceManagement/intents", version="beta")
    r = seen[0]
    assert r.path == "/v1.0/users"
    assert r.query["$select"] == "id,displayName"
    assert r.headers["Authorization"] == "Bearer tok-1-SECRETBEARER"
    assert r.headers["Accept"] == "application/json"
    uuid.UUID(r.headers["client-request-id"])
    assert seen[1].path == "/beta/deviceManagement/managedDevices"
    assert seen[2].path == "/beta/deviceManagement/intents"


async def test_429_fractional_retry_after_is_honoured(serve: Any, make_client: MakeClient) -> None:
    arrivals: list[float] = []
    request_ids: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        request_ids.append(request.headers["client-request-id"])
        if len(arrivals) == 1:
            return err(429, "TooManyRequests", "Please retry again later.", **{"Retry-After": "0.35"})
        return web.json_response({"ok": True})

    labels: list[tuple[str, int]] = []
    client = make_client(await serve(app_with(handler)), on_request=lambda lbl, st: labels.append((lbl, st)))
    assert await client.get("/users") == {"ok": True}
    assert arrivals[1] - arrivals[0] >= 0.35
    assert request_ids[0] == request_ids[1]  # one logical request
    assert labels == [("GET /v1.0/users", 429), ("GET /v1.0/users", 200)]


class FirstCallFails:
    """A handler whose first call runs ``first`` (an error answer, a reset, a stall; None: then
    answer as the others do) and whose other calls answer ``body``; it counts the calls."""

    def __init__(
        self, first: Callable[[web.Request], Awaitable[web.StreamResponse | None]], body: dict[str, Any]
    ) -> None:
        self.first = first
        self.body = body
        self.calls = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        if self.calls == 1 and (answer := await self.first(request)) is not None:
            return answer
        return web.json_response(self.body)


async def test_503_then_success(serve: Any, make_client: MakeClient) -> None:
    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503, text="<html>Service Unavailable</html>")

    handler = FailsFirst(unavailable, {"value": []})
    client = make_client(await serve(app_with(handler.handle)))
    assert await client.get("/groups") == {"value": []}
    assert handler.calls == 2


async def test_connection_reset_is_retried(serve: Any, make_client: MakeClient) -> None:
    async def reset(request: web.Request) -> web.Response:
        transport = request.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()  # RST
        await asyncio.sleep(0.05)
        return web.Response()

    handler = FailsFirst(reset, {"id": "ok"})
    client = make_client(await serve(app_with(handler.handle)))
    assert await client.get("/users/1") == {"id": "ok"}
    assert handler.calls == 2


async def test_timeout_is_retried(serve: Any, make_client: MakeClient) -> None:
    async def too_late(request: web.Request) -> web.Response:
        await asyncio.sleep(0.8)
        return web.json_response({"id": "late"})

    handler = FailsFirst(too_late, {"id": "late"})
    client = make_client(await serve(app_with(handler.handle)), request_timeout=0.3)
    started = time.monotonic()
    assert await client.get("/users/1") == {"id": "late"}
    assert handler.calls == 2
    assert time.monotonic() - started < 1.5


async def test_timeouts_exhaust_into_transport_error(serve: Any, make_client: MakeClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.json_response({})

    client = make_client(await serve(app_with(handler)), request_timeout=0.1, max_attempts=2)
    with pytest.raises(GraphTransportError) as info:
        await client.get("/users")
    assert info.value.status == 0 and info.value.code == "timeout"


async def test_connection_refused_bounded(make_client: MakeClient) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = make_client(f"http://127.0.0.1:{port}", max_attempts=3)
    with pytest.raises(GraphTransportError) as info:
        await client.get("/users")
    assert info.value.code == "connection"


async def test_bounded_attempts_then_graph_error(serve: Any, make_client: MakeClient) -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return err(503, "serviceNotAvailable", "down", **{"Retry-After": "0.01"})

    client = make_client(await serve(app_with(handler)), max_attempts=3)
    with pytest.raises(Throttled) as info:
        await client.get("/users")
    assert calls == 3
    assert info.value.status == 503 and info.value.code == "serviceNotAvailable"
    assert info.value.request_id == "rid-1"


async def test_500_non_json_body_exhausts(serve: Any, make_client: MakeClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=502, text="Bad gateway from proxy")

    client = make_client(await serve(app_with(handler)), max_attempts=2)
    with pytest.raises(GraphError) as info:
        await client.get("/users")
    assert info.value.status == 502 and info.value.code == "unknown"
    assert "Bad gateway" in info.value.message


async def test_retry_after_too_long_fails_fast(serve: Any, make_client: MakeClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return err(429, "TooManyRequests", "slow down", **{"Retry-After": "3600"})

    client = make_client(await serve(app_with(handler)), max_retry_after=10)
    started = time.monotonic()
    with pytest.raises(Throttled) as info:
        await client.get("/users")
    assert info.value.retry_after == 3600
    assert time.monotonic() - started < 1


def test_route_label_hides_ids() -> None:
    assert (
        route_label("get", "/v1.0/groups/2e5807ce-58f3-4a94-9b37-ffff2e085957/members")
        == "GET /v1.0/groups/{id}/members"
    )


async def test_401_invalidates_once_then_succeeds(serve: Any, make_client: MakeClient, tokens: Any) -> None:
    auths: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        auths.append(request.headers["Authorization"])
        if len(auths) == 1:
            return err(401, "InvalidAuthenticationToken", "Access token has expired.")
        return web.json_response({"id": "me"})

    client = make_client(await serve(app_with(handler)))
    assert await client.get("/organization") == {"id": "me"}
    assert tokens.invalidations == 1
    assert auths == ["Bearer tok-1-SECRETBEARER", "Bearer tok-2-SECRETBEARER"]


async def test_401_twice_raises_unauthorized(serve: Any, make_client: MakeClient, tokens: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        return err(401, "Authorization_IdentityNotFound", "The identity of the calling application could not")

    client = make_client(await serve(app_with(handler)))
    with pytest.raises(Unauthorized) as info:
        await client.get("/users")
    assert tokens.invalidations == 1
    assert info.value.code == "Authorization_IdentityNotFound"


@pytest.mark.parametrize(
    ("status", "code", "message", "exc_type"),
    [
        (400, "BadRequest", "Request not applicable to target tenant.", NotApplicableTenant),
        (403, "Authorization_RequestDenied", "Insufficient privileges", PermissionDenied),
        (403, "accessDenied", "nope", PermissionDenied),
        (404, "Request_ResourceNotFound", "gone", NotFound),
        (400, "BadRequest", "something else", GraphError),
    ],
)
async def test_error_mapping(
    serve: Any, make_client: MakeClient, status: int, code: str, message: str, exc_type: type
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return err(status, code, message)

    client = make_client(await serve(app_with(handler)))
    with pytest.raises(GraphError) as info:
        await client.get("/deviceManagement")
    assert type(info.value) is exc_type
    assert (info.value.status, info.value.code, info.value.message) == (status, code, message)


async def test_paging_follows_next_links_incl_empty_pages(serve: Any, make_client: MakeClient) -> None:
    seen: list[tuple[str, str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path_qs, request.headers.get("ConsistencyLevel")))
        base = f"http://{request.host}"
        token = request.query.get("$skiptoken")
        if token is None:
            return web.json_response(
                {
                    "@odata.count": 3,
                    "value": [{"id": "a"}],
                    "@odata.nextLink": f"{base}/v1.0/users?$skiptoken=p%2B2",
                }
            )
        if token == "p+2":
            return web.json_response({"value": [], "@odata.nextLink": f"{base}/v1.0/users?$skiptoken=p3"})
        return web.json_response({"value": [{"id": "b"}, {"id": "c"}]})

    client = make_client(await serve(app_with(handler)))
    pages = [
        p
        async for p in client.iter_pages(
            "/users", params={"$count": "true"}, headers={"ConsistencyLevel": "eventual"}
        )
    ]
    assert [len(p["value"]) for p in pages] == [1, 0, 2]
    assert seen[1][0] == "/v1.0/users?$skiptoken=p%2B2"  # verbatim, not re-encoded
    assert all(level == "eventual" for _, level in seen)
    items = [i["id"] async for i in client.iter_items("/users")]
    assert items == ["a", "b", "c"]


async def test_next_link_to_other_host_refused(serve: Any, make_client: MakeClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"value": [], "@odata.nextLink": "https://evil.example.com/v1.0/users?x=1"})

    client = make_client(await serve(app_with(handler)))
    with pytest.raises(ValueError, match="another host"):
        async for _ in client.iter_pages("/users"):
            pass


async def test_post_patch_delete(serve: Any, make_client: MakeClient) -> None:
    seen: list[tuple[str, str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        seen.append((request.method, request.path, body))
        if request.method == "DELETE":
            return web.Response(status=204)
        return web.json_response({"echo": body}, status=201 if request.method == "POST" else 200)

    client = make_client(await serve(app_with(handler)))
    assert await client.post("/subscriptions", {"a": 1}) == {"echo": {"a": 1}}
    assert await client.patch("/subscriptions/1", {"b": 2}) == {"echo": {"b": 2}}
    await client.delete("/subscriptions/1")
    assert [s[0] for s in seen] == ["POST", "PATCH", "DELETE"]


class BatchServer:
    """A $batch endpoint: throttles chosen ids once, answers in reverse order."""

    def __init__(self, throttle_once: dict[str, str]) -> None:
        self.throttle_once = dict(throttle_once)
        self.posts: list[list[dict[str, Any]]] = []
        self.times: list[float] = []

    async def handler(self, request: web.Request) -> web.Response:
        assert request.path == "/v1.0/$batch"
        body = await request.json()
        reqs = body["requests"]
        assert len(reqs) <= 20
        self.posts.append(reqs)
        self.times.append(time.monotonic())
        responses = []
        for r in reqs:
            if r["id"] in self.throttle_once:
                ra = self.throttle_once.pop(r["id"])
                responses.append({"id": r["id"], "status": 429, "headers": {"Retry-After": ra}, "body": {}})
            else:
                responses.append({"id": r["id"], "status": 200, "body": {"url": r["url"]}})
        return web.json_response({"responses": list(reversed(responses))})


async def test_batch_splits_and_orders(serve: Any, make_client: MakeClient) -> None:
    server = BatchServer({})
    client = make_client(await serve(app_with(server.handler)))
    reqs = [{"method": "GET", "url": f"/users/{i}"} for i in range(45)]
    out = await client.batch(reqs)
    assert [len(p) for p in server.posts] == [20, 20, 5]
    assert [o["body"]["url"] for o in out] == [f"/users/{i}" for i in range(45)]


async def test_batch_retries_only_throttled_items_after_longest_retry_after(
    serve: Any, make_client: MakeClient
) -> None:
    server = BatchServer({"2": "0.1", "4": "0.3"})
    client = make_client(await serve(app_with(server.handler)))
    reqs = [{"id": str(i), "method": "GET", "url": f"/groups/{i}/members"} for i in range(1, 6)]
    out = await client.batch(reqs)
    assert [o["status"] for o in out] == [200] * 5
    assert len(server.posts) == 2
    assert sorted(r["id"] for r in server.posts[1]) == ["2", "4"]
    assert server.times[1] - server.times[0] >= 0.3


async def test_batch_retry_is_bounded(serve: Any, make_client: MakeClient) -> None:
    class Always(BatchServer):
        async def handler(self, request: web.Request) -> web.Response:
            self.throttle_once = {"1": "0.01"}
            return await super().handler(request)

    server = Always({})
    client = make_client(await serve(app_with(server.handler)), max_attempts=3)
    out = await client.batch([{"id": "1", "method": "GET", "url": "/users/1"}])
    assert out[0]["status"] == 429
    assert len(server.posts) == 3


async def test_batch_rejects_duplicate_ids(make_client: MakeClient) -> None:
    client = make_client("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="duplicate"):
        await client.batch([{"id": "a", "url": "/x"}, {"id": "A", "url": "/y"}])


async def test_secrets_absent_from_errors_and_logs(
    serve: Any, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    async def handler(request: web.Request) -> web.Response:
        return err(500, "generalException", "boom")

    client = make_client(await serve(app_with(handler)), max_attempts=2)
    with pytest.raises(GraphError) as info:
        await client.get("/users")
    for text in (str(info.value), repr(info.value), repr(client), caplog.text):
        assert "SECRETBEARER" not in text
    assert "500" in str(info.value) and "rid-1" in str(info.value)
    assert json.dumps(info.value.args).find("SECRETBEARER") == -1


class FlakyItems:
    """A $batch endpoint whose chosen items fail once with a given status and no Retry-After."""

    def __init__(self, fail_once: dict[str, int]) -> None:
        self.fail_once = dict(fail_once)
        self.posts: list[list[str]] = []

    async def handler(self, request: web.Request) -> web.Response:
        reqs = (await request.json())["requests"]
        self.posts.append([r["id"] for r in reqs])
        responses = []
        for r in reqs:
            status = self.fail_once.pop(r["id"], 200)
            body = {"url": r["url"]} if status == 200 else {"error": {"code": "x", "message": "transient"}}
            responses.append({"id": r["id"], "status": status, "body": body})
        return web.json_response({"responses": responses})


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_batch_item_failing_once_without_retry_after_is_retried_alone(
    serve: Any, make_client: MakeClient, status: int
) -> None:
    server = FlakyItems({"2": status})
    client = make_client(await serve(app_with(server.handler)))
    out = await client.batch([{"id": str(i), "method": "GET", "url": f"/users/{i}"} for i in range(1, 4)])
    assert [o["status"] for o in out] == [200, 200, 200]
    assert server.posts == [["1", "2", "3"], ["2"]]


async def test_batch_items_pay_the_budget_of_their_family(serve: Any, make_client: MakeClient) -> None:
    from syncd.graph.budget import INTUNE, Pacing, RequestBudget

    server = FlakyItems({})
    pacing = Pacing(budgets={INTUNE: RequestBudget(1000)})
    client = make_client(await serve(app_with(server.handler)), pacing=pacing)
    await client.batch([{"method": "GET", "url": f"/deviceManagement/intents/{i}"} for i in range(7)])
    await client.batch([{"method": "GET", "url": f"/users/{i}"} for i in range(3)])
    assert pacing.used(INTUNE) == 7  # items, not the envelope; directory items are not Intune's


async def test_a_429_holds_every_request_of_its_family_only(serve: Any, make_client: MakeClient) -> None:
    arrivals: dict[str, list[float]] = {}
    throttled = [False]

    async def handler(request: web.Request) -> web.Response:
        arrivals.setdefault(request.path, []).append(time.monotonic())
        if request.path.endswith("/deviceManagement/intents") and not throttled[0]:
            throttled[0] = True
            return err(429, "TooManyRequests", "slow down", **{"Retry-After": "0.4"})
        return web.json_response({"value": []})

    client = make_client(await serve(app_with(handler)))
    first = asyncio.create_task(client.get("/deviceManagement/intents", version="beta"))
    await asyncio.sleep(0.1)  # the 429 arrived: the Intune family is held for 0.4 s
    started = time.monotonic()
    await asyncio.gather(
        client.get("/deviceAppManagement/mobileApps"),  # same family: waits for the gate
        client.get("/users"),  # another family: not held
    )
    await first
    assert arrivals["/v1.0/users"][0] - started < 0.2
    assert arrivals["/v1.0/deviceAppManagement/mobileApps"][0] - started >= 0.25

