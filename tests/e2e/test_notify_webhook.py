"""The webhook on its own: validation handshake, clientState, malformed bodies, lifecycle intake.

The app is served by a real aiohttp server (`aiohttp.test_utils.TestServer`) and called over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from syncd import metrics
from syncd.health import create_health_app
from syncd.webhook import WebhookHooks, create_webhook_app

SECRET = "s3cret-client-state-Zq81"
WRONG = "not-the-secret-Pw44"
TENANT = "0cea0ab7-2234-4f57-bc80-4d3e66df4791"


@dataclass
class Recorder:
    woken: list[str] = field(default_factory=list)
    lifecycle: list[tuple[str, str]] = field(default_factory=list)

    async def wake(self, origin: str) -> None:
        self.woken.append(origin)

    async def on_lifecycle(self, sub_id: str, event: str) -> None:
        self.lifecycle.append((sub_id, event))


@pytest.fixture
async def hook() -> AsyncIterator[tuple[TestClient[Any, Any], Recorder]]:
    rec = Recorder()
    app = create_webhook_app(
        WebhookHooks(wake=rec.wake, lifecycle=rec.on_lifecycle),
        client_state=SECRET,
        tenant_id=TENANT,
        max_body_bytes=16_384,
        path_prefix="/graph",
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, rec
    finally:
        await client.close()


def _counter(result: str) -> float:
    return metrics.REGISTRY.get_sample_value("syncd_notifications_total", {"result": result}) or 0.0


def _note(
    resource: str = "Users/72b08237-30f1-4fbe-be57-1df593448f7a", state: str = SECRET
) -> dict[str, Any]:
    return {
        "subscriptionId": "f43589a8-2107-4c5d-9c24-eea6301f162b",
        "subscriptionExpirationDateTime": "2099-12-10T10:23:45.9356913-08:00",
        "changeType": "updated",
        "resource": resource,
        "resourceData": {"id": resource.rsplit("/", 1)[-1], "organizationId": TENANT},
        "clientState": state,
        "tenantId": TENANT,
    }


@pytest.mark.parametrize("path", ["/notifications", "/lifecycle", "/graph/notifications", "/graph/lifecycle"])
async def test_validation_handshake_echoes_the_decoded_token_as_plain_text(
    hook: tuple[TestClient[Any, Any], Recorder], path: str
) -> None:
    client, rec = hook
    token = "Validation: Token <script>alert(1)</script> & more"
    before = _counter("validation")
    resp = await client.post(
        path,
        params={"validationToken": token},
        data=b"",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    assert resp.status == 200
    assert await resp.text() == token  # URL-decoded, byte for byte
    assert resp.content_type == "text/plain"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert _counter("validation") == before + 1
    assert rec.woken == [] and rec.lifecycle == []


async def test_validation_token_with_control_characters_is_refused(
    hook: tuple[TestClient[Any, Any], Recorder],
) -> None:
    client, _ = hook
    resp = await client.post("/notifications", params={"validationToken": "bad\x00token"})
    assert resp.status == 400
    assert resp.content_type == "text/plain"


async def test_valid_notifications_wake_each_origin_once(hook: tuple[TestClient[Any, Any], Recorder]) -> None:
    client, rec = hook
    before = _counter("accepted")
    body = {"value": [_note(f"Users/u{i}") for i in range(30)] + [_note("Groups/g1"), _note("users/x")]}
    resp = await client.post("/notifications", json=body)
    assert resp.status == 202
    assert sorted(rec.woken) == ["groups", "users"]
    assert _counter("accepted") == before + 32


async def test_wrong_client_state_is_accepted_ignored_counted_and_never_logged(
    hook: tuple[TestClient[Any, Any], Recorder],
) -> None:
    client, rec = hook
    before = _counter("rejected_client_state")
    with capture_logs() as logs:
        resp = await client.post("/notifications", json={"value": [_note(state=WRONG), _note(state="")]})
        life = await client.post(
            "/lifecycle",
            json={"value": [{**_note(state=WRONG), "lifecycleEvent": "reauthorizationRequired"}]},
        )
    assert resp.status == 202  # no hint to a prober about what was wrong
    assert life.status == 202
    assert rec.woken == [] and rec.lifecycle == []
    assert _counter("rejected_client_state") == before + 3
    dumped = json.dumps(logs, default=str)
    assert logs, "a rejection is logged"
    assert WRONG not in dumped and SECRET not in dumped
    # the counter is exposed on /metrics, which lives on the health listener, not on this one
    assert (await client.get("/metrics")).status == 404
    assert (await client.get("/healthz")).status == 404
    health: TestClient[Any, Any] = TestClient(TestServer(create_health_app(_healthy)))
    await health.start_server()
    try:
        text = await (await health.get("/metrics")).text()
    finally:
        await health.close()
    assert 'syncd_notifications_total{result="rejected_client_state"}' in text


async def _healthy() -> tuple[bool, dict[str, Any]]:
    return True, {}


async def test_other_tenant_is_ignored(hook: tuple[TestClient[Any, Any], Recorder]) -> None:
    client, rec = hook
    note = {**_note(), "tenantId": "11111111-2222-3333-4444-555555555555"}
    resp = await client.post("/notifications", json={"value": [note]})
    assert resp.status == 202
    assert rec.woken == []


@pytest.mark.parametrize(
    ("body", "ctype", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"value": {"not": "a list"}}', "application/json", 400),
        (b"[1, 2, 3]", "application/json", 400),
        (b'{"value": []}', "text/plain", 415),
        (b'{"value": []}', "application/x-www-form-urlencoded", 415),
        (b'{"value": ["' + b"x" * 20_000 + b'"]}', "application/json", 413),
    ],
)
async def test_malformed_bodies_get_4xx(
    hook: tuple[TestClient[Any, Any], Recorder], body: bytes, ctype: str, status: int
) -> None:
    client, rec = hook
    for path in ("/notifications", "/lifecycle"):
        resp = await client.post(path, data=body, headers={"Content-Type": ctype})
        assert resp.status == status, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert rec.woken == [] and rec.lifecycle == []


async def test_lifecycle_events_reach_the_hook(hook: tuple[TestClient[Any, Any], Recorder]) -> None:
    client, rec = hook
    documented = {**_note(), "lifecycleEvent": "reauthorizationRequired"}
    observed = {  # the shape seen in the wild: organizationId, empty resource, null extras
        "lifecycleEvent": "reauthorizationRequired",
        "subscriptionId": "sub-2",
        "resource": "",
        "clientState": SECRET,
        "sequence": None,
        "encryptedContent": None,
        "organizationId": TENANT,
        "subscriptionExpirationDateTime": "2099-01-01T00:00:00Z",
    }
    resp = await client.post("/lifecycle", json={"value": [documented, observed], "validationTokens": ["x"]})
    assert resp.status == 202
    assert rec.lifecycle == [
        ("f43589a8-2107-4c5d-9c24-eea6301f162b", "reauthorizationRequired"),
        ("sub-2", "reauthorizationRequired"),
    ]
    # a lifecycle event sent to the notification URL is handled too
    resp = await client.post("/notifications", json={"value": [{**observed, "subscriptionId": "sub-3"}]})
    assert resp.status == 202
    assert rec.lifecycle[-1] == ("sub-3", "reauthorizationRequired")
