"""Hostile input on the webhook, property-based, against a real local server.

The app must stay up, answer with the right status code, never reflect input as HTML and never
act on anything invalid: the wake hook is called only for valid items with the right clientState.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd import metrics
from syncd.webhook import MAX_VALIDATION_TOKEN, WebhookHooks, create_webhook_app

T = TypeVar("T")
CLIENT_STATE = "the-right-client-state-value"
TENANT = "11111111-2222-3333-4444-555555555555"
MAX_BODY = 256 * 1024  # 100k nested arrays (200 KB) fit under it


@dataclass
class Server:
    loop: asyncio.AbstractEventLoop
    url: str
    session: aiohttp.ClientSession
    woken: list[str] = field(default_factory=list)
    lifecycle: list[tuple[str, str]] = field(default_factory=list)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def post(
        self,
        path: str,
        data: bytes,
        ctype: str | None = "application/json",
        query: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        async def go() -> tuple[int, dict[str, str], bytes]:
            headers = {"Content-Type": ctype} if ctype is not None else {}
            async with self.session.post(self.url + path, data=data, headers=headers, params=query) as r:
                return r.status, dict(r.headers), await r.read()

        return self.run(go())


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    woken: list[str] = []
    lifecycle: list[tuple[str, str]] = []

    async def wake(origin: str) -> None:
        woken.append(origin)

    async def on_lifecycle(sub: str, event: str) -> None:
        lifecycle.append((sub, event))

    async def start() -> tuple[web.AppRunner, aiohttp.ClientSession, int]:
        app = create_webhook_app(
            WebhookHooks(wake=wake, lifecycle=on_lifecycle),
            client_state=CLIENT_STATE,
            tenant_id=TENANT,
            max_body_bytes=MAX_BODY,
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return runner, aiohttp.ClientSession(), port

    runner, session, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    srv = Server(loop, f"http://127.0.0.1:{port}", session, woken, lifecycle)
    try:
        yield srv
    finally:

        async def stop() -> None:
            await session.close()
            await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _alive(srv: Server) -> None:
    status, _, body = srv.post("/notifications", b"", ctype=None, query={"validationToken": "alive"})
    assert (status, body) == (200, b"alive")


def _counter(result: str) -> float:
    value = metrics.REGISTRY.get_sample_value("syncd_notifications_total", {"result": result})
    return value or 0.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
hostile_items = st.fixed_dictionaries(
    {},
    optional={
        "clientState": st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=40),
            st.just(CLIENT_STATE + "x"),
            st.just(CLIENT_STATE[:-1]),
        ),
        "resource": st.one_of(
            st.text(max_size=30), st.sampled_from(["Users/abc", "Groups/x", "/users"]), st.integers()
        ),
        "subscriptionId": st.one_of(st.text(max_size=20), st.integers(), st.none()),
        "tenantId": st.one_of(st.just(TENANT), st.text(max_size=36)),
        "extra": json_values,
    },
)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(body=st.binary(max_size=2000))
def test_random_bytes_never_crash_and_never_wake(server: Server, body: bytes) -> None:
    before = len(server.woken)
    status, headers, _ = server.post("/notifications", body)
    assert status in (202, 400), status
    if status == 202:  # only a JSON object with a value array gets here; nothing valid in it
        assert json.loads(body)["value"] is not None
    assert len(server.woken) == before
    assert "html" not in headers.get("Content-Type", "")


@SETTINGS
@given(items=st.lists(hostile_items, max_size=6))
def test_items_without_the_client_state_are_ignored_and_counted(
    server: Server, items: list[dict[str, Any]]
) -> None:
    items = [i for i in items if i.get("clientState") != CLIENT_STATE]
    before, rejected = len(server.woken), _counter("rejected_client_state")
    before_lifecycle = len(server.lifecycle)
    status, _, _ = server.post("/notifications", json.dumps({"value": items}).encode())
    assert status == 202
    assert len(server.woken) == before and len(server.lifecycle) == before_lifecycle
    assert _counter("rejected_client_state") == rejected + len(items)


@SETTINGS
@given(junk=st.lists(hostile_items, max_size=4), ids=st.lists(st.uuids(), min_size=1, max_size=3))
def test_valid_items_among_junk_wake_exactly_their_origin(
    server: Server, junk: list[dict[str, Any]], ids: list[Any]
) -> None:
    junk = [i for i in junk if i.get("clientState") != CLIENT_STATE]
    valid = [
        {
            "clientState": CLIENT_STATE,
            "resource": f"Users/{u}",
            "tenantId": TENANT,
            "subscriptionId": "s",
            "changeType": "updated",
        }
        for u in ids
    ]
    before = len(server.woken)
    status, _, _ = server.post("/notifications", json.dumps({"value": junk + valid}).encode())
    assert status == 202
    assert server.woken[before:] == ["users"]  # many valid hints → one wake-up, no other origin


@SETTINGS
@given(token=st.text(min_size=1, max_size=300))
def test_validation_token_is_echoed_as_plain_text_or_refused(server: Server, token: str) -> None:
    status, headers, body = server.post("/notifications", b"", ctype=None, query={"validationToken": token})
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers["Content-Type"].startswith("text/plain")
    if any(ord(c) < 32 or ord(c) == 127 for c in token):
        assert status == 400 and body == b"invalid validationToken"
    else:
        assert status == 200 and body.decode() == token


def test_markup_validation_token_is_text_not_html(server: Server) -> None:
    token = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    status, headers, body = server.post("/lifecycle", b"", ctype=None, query={"validationToken": token})
    assert status == 200 and body.decode() == token
    assert headers["Content-Type"].startswith("text/plain") and headers["X-Content-Type-Options"] == "nosniff"
    status, _, _ = server.post(
        "/notifications", b"", query={"validationToken": "x" * (MAX_VALIDATION_TOKEN + 1)}
    )
    assert status == 400


@pytest.mark.parametrize(("depth", "status"), [(1_000, 400), (100_000, 413)])
def test_deep_nesting_is_a_4xx_not_a_crash(server: Server, depth: int, status: int) -> None:
    """Nesting within the structure budget is parsed and refused (400); beyond it (100k brackets
    in 200 KB, where Graph items have one per ~21 bytes) it is refused unparsed (413)."""
    before = len(server.woken)
    body = b"[" * depth + b"]" * depth
    assert server.post("/notifications", body)[0] == status
    body = b'{"value": ' + b"[" * depth + b"]" * depth + b"}"
    assert server.post("/notifications", body)[0] == status
    assert len(server.woken) == before
    _alive(server)


def test_huge_bodies_are_413_and_wrong_types_415(server: Server) -> None:
    before = len(server.woken)
    valid = {"clientState": CLIENT_STATE, "resource": "Users/a", "tenantId": TENANT}
    huge = json.dumps({"value": [valid], "pad": "x" * (MAX_BODY + 10)}).encode()
    assert server.post("/notifications", huge)[0] == 413
    assert server.post("/lifecycle", huge)[0] == 413
    ok = json.dumps({"value": [valid]}).encode()
    for ctype in (
        "text/html",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        None,
    ):
        assert server.post("/notifications", ok, ctype=ctype)[0] == 415, ctype
    assert len(server.woken) == before
    assert _counter("too_large") >= 2 and _counter("unsupported_media_type") >= 5

    # chunked (no Content-Length) and too large: still 413
    async def chunked() -> int:
        async def gen() -> Any:
            for _ in range(MAX_BODY // 10_000 + 5):
                yield b" " * 10_000

        async with server.session.post(
            server.url + "/notifications", data=gen(), headers={"Content-Type": "application/json"}
        ) as r:
            return r.status

    assert server.run(chunked()) == 413
    _alive(server)


def test_lifecycle_with_wrong_state_is_ignored(server: Server) -> None:
    before = len(server.lifecycle)
    item = {
        "clientState": "nope",
        "subscriptionId": "s1",
        "lifecycleEvent": "reauthorizationRequired",
        "tenantId": TENANT,
    }
    assert server.post("/lifecycle", json.dumps({"value": [item]}).encode())[0] == 202
    assert len(server.lifecycle) == before
    item["clientState"] = CLIENT_STATE
    assert server.post("/lifecycle", json.dumps({"value": [item]}).encode())[0] == 202
    assert server.lifecycle[before:] == [("s1", "reauthorizationRequired")]
