"""Subscriptions: validation handshake, field checks, CRUD, quotas, expiry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.kit.tenants import graph_tenant
from syncd.sim.graph.faults import Faults
from tests.helpers.graph_sim import GraphSimClient, graph_sim
from tests.sim.conftest import Receiver


def _exp(minutes: float = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sub(rec: Receiver, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "changeType": "updated,deleted",
        "notificationUrl": f"{rec.url}/hook?x=1",
        "resource": "users",
        "expirationDateTime": _exp(),
        "clientState": "s3cret",
    }
    body.update(over)
    return body


async def test_create_runs_validation_handshake(harness: GraphSimClient, receiver: Receiver) -> None:
    status, body = await harness.call(
        "POST", "/v1.0/subscriptions", _sub(receiver, lifecycleNotificationUrl=f"{receiver.url}/life")
    )
    assert status == 201, body
    assert body["@odata.context"].endswith("#subscriptions/$entity")
    assert body["resource"] == "users" and body["clientState"] == "s3cret"
    assert body["applicationId"] == harness.client_id
    assert body["expirationDateTime"].endswith("Z") and body["latestSupportedTlsVersion"] == "v1_2"
    assert len(receiver.validations) == 2  # notification + lifecycle URL
    assert receiver.validations[0].startswith("Validation: Testing client application reachability")


async def test_validation_failures(harness: GraphSimClient, receiver: Receiver) -> None:
    receiver.echo_wrong = True
    status, body = await harness.call("POST", "/v1.0/subscriptions", _sub(receiver))
    assert status == 400 and "validationToken" in body["error"]["message"]
    receiver.echo_wrong = False
    receiver.validation_delay = 1.0
    harness.sim.faults.validation_timeout = 0.3
    status, body = await harness.call("POST", "/v1.0/subscriptions", _sub(receiver))
    assert status == 400 and body["error"]["message"] == "Subscription validation request timed out."
    status, body = await harness.call(
        "POST", "/v1.0/subscriptions", _sub(receiver, notificationUrl="http://127.0.0.1:1/nothing")
    )
    assert status == 400 and body["error"]["message"].startswith("Subscription validation request failed")
    status, body = await harness.call("GET", "/v1.0/subscriptions")
    assert body["value"] == []


async def test_field_checks(harness: GraphSimClient, receiver: Receiver) -> None:
    bad = [
        {"expirationDateTime": _exp(41760 + 5)},
        {"expirationDateTime": _exp(-5)},
        {"clientState": "x" * 129},
        {"changeType": "created,updated"},
        {"changeType": "renamed"},
        {"resource": "deviceManagement/managedDevices"},
        {"lifecycleNotificationUrl": "ftp://x"},
    ]
    for over in bad:
        status, _ = await harness.call("POST", "/v1.0/subscriptions", _sub(receiver, **over))
        assert status == 400, over
    status, _ = await harness.call(
        "POST", "/v1.0/subscriptions", _sub(receiver, expirationDateTime=_exp(41000))
    )
    assert status == 201
    status, _body = await harness.call("POST", "/v1.0/subscriptions", _sub(receiver, resource="/groups"))
    assert status == 201


async def test_http_url_rejected_unless_allowed(receiver: Receiver, tmp_path: Path) -> None:
    async with graph_sim(graph_tenant(), tmp_path, faults=Faults()) as h:
        await h.fetch_token()
        status, body = await h.call("POST", "/v1.0/subscriptions", _sub(receiver))
        assert status == 400 and "HTTPS" in body["error"]["message"]
        assert receiver.validations == []


async def test_https_receiver_with_generated_cert(tmp_path: Path) -> None:
    async with graph_sim(graph_tenant(), tmp_path, faults=Faults()) as h:
        rec = Receiver()
        app = web.Application()
        app.router.add_post("/hook", rec.handle)
        wr = web.AppRunner(app, access_log=None)
        await wr.setup()
        tls = h.h.sims.tls  # the harness's CA signed the webhook certificate
        await web.TCPSite(wr, "127.0.0.1", 0, ssl_context=tls.webhook_server_context()).start()
        rec.url = f"https://localhost:{wr.addresses[0][1]}"
        try:
            await h.fetch_token()
            status, body = await h.call("POST", "/v1.0/subscriptions", _sub(rec))
            assert status == 201, body
            uid = next(iter(h.tenant.list("users")))["id"]
            await h.admin("PATCH", f"/users/{uid}", {"displayName": "TLS"})
            await rec.wait_for(1)
            assert rec.notifications[0]["value"][0]["resource"] == f"Users/{uid}"
        finally:
            await wr.cleanup()


async def test_crud_reauthorize_and_404(harness: GraphSimClient, receiver: Receiver) -> None:
    status, created = await harness.call("POST", "/v1.0/subscriptions", _sub(receiver))
    sid = created["id"]
    status, got = await harness.call("GET", f"/v1.0/subscriptions/{sid}")
    assert status == 200 and got["id"] == sid
    new_exp = _exp(120)
    status, patched = await harness.call(
        "PATCH", f"/v1.0/subscriptions/{sid}", {"expirationDateTime": new_exp}
    )
    assert status == 200 and patched["expirationDateTime"][:19] == new_exp[:19]
    status, _ = await harness.call("PATCH", f"/v1.0/subscriptions/{sid}", {"expirationDateTime": _exp(50000)})
    assert status == 400
    status, _ = await harness.call(
        "PATCH", f"/v1.0/subscriptions/{sid}", {"lifecycleNotificationUrl": "https://x"}
    )
    assert status == 400
    status, _ = await harness.call("POST", f"/v1.0/subscriptions/{sid}/reauthorize")
    assert status == 204 and harness.sim.reauthorized == [sid]
    status, listed = await harness.call("GET", "/v1.0/subscriptions")
    assert [s["id"] for s in listed["value"]] == [sid]
    status, _ = await harness.call("DELETE", f"/v1.0/subscriptions/{sid}")
    assert status == 204
    for method in ("GET", "DELETE", "PATCH"):
        status, body = await harness.call(
            method, f"/v1.0/subscriptions/{sid}", {"expirationDateTime": _exp()}
        )
        assert status == 404 and body["error"]["code"] == "ResourceNotFound"


async def test_quota(harness: GraphSimClient, receiver: Receiver) -> None:
    await harness.admin("PUT", "/faults", {"subscription_quota": 2})
    assert (await harness.call("POST", "/v1.0/subscriptions", _sub(receiver)))[0] == 201
    assert (await harness.call("POST", "/v1.0/subscriptions", _sub(receiver)))[0] == 201
    status, body = await harness.call("POST", "/v1.0/subscriptions", _sub(receiver))
    assert status == 403 and "quota" in body["error"]["message"]


async def test_expired_subscription_is_deleted(harness: GraphSimClient, receiver: Receiver) -> None:
    status, created = await harness.call(
        "POST", "/v1.0/subscriptions", _sub(receiver, expirationDateTime=_exp(0.02))
    )
    assert status == 201
    await asyncio.sleep(1.5)
    status, _ = await harness.call("GET", f"/v1.0/subscriptions/{created['id']}")
    assert status == 404
    assert harness.sim.notifier.stats["expired_subscriptions"] == 1
