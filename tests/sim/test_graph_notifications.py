"""Change and lifecycle notification delivery, retries, drops, delays, slow-endpoint rules."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.kit.tenants import graph_tenant
from syncd.sim.graph.faults import Faults
from syncd.sim.graph.notifications import DeliveryConfig
from tests.helpers.graph_sim import GraphSimClient, graph_sim
from tests.sim.conftest import Receiver


def _exp(minutes: float = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _subscribe(h: GraphSimClient, rec: Receiver, resource: str = "users", **over: Any) -> str:
    body: dict[str, Any] = {
        "changeType": "updated,deleted",
        "notificationUrl": f"{rec.url}/hook",
        "resource": resource,
        "expirationDateTime": _exp(),
        "clientState": "cs-1",
        "lifecycleNotificationUrl": f"{rec.url}/life",
    }
    body.update(over)
    status, created = await h.call("POST", "/v1.0/subscriptions", body)
    assert status == 201, created
    return str(created["id"])


async def test_user_changes_are_batched_with_client_state(
    harness: GraphSimClient, receiver: Receiver
) -> None:
    sid = await _subscribe(harness, receiver)
    users = [u["id"] for u in harness.tenant.list("users")]
    await harness.admin("PATCH", f"/users/{users[0]}", {"displayName": "N1"})
    await harness.admin("POST", f"/users/{users[1]}/hard-delete")
    await receiver.wait_for(1)
    await asyncio.sleep(0.1)
    notes = [n for post in receiver.notifications for n in post["value"]]
    assert len(notes) == 2
    first = notes[0]
    assert first["subscriptionId"] == sid and first["clientState"] == "cs-1"
    assert first["changeType"] == "updated" and first["resource"] == f"Users/{users[0]}"
    assert first["tenantId"] == harness.tenant.tenant_id
    assert first["resourceData"]["@odata.type"] == "#Microsoft.Graph.User"
    assert first["resourceData"]["@odata.id"] == f"Users/{users[0]}"
    assert first["resourceData"]["organizationId"] == harness.tenant.tenant_id
    assert notes[1]["changeType"] == "deleted"


async def test_group_membership_change_notifies_group_subscription(
    harness: GraphSimClient, receiver: Receiver
) -> None:
    await _subscribe(harness, receiver, resource="groups", changeType="updated")
    gid = next(iter(harness.tenant.list("groups")))["id"]
    new = await harness.admin("POST", "/users", {"displayName": "Joiner"})
    await harness.admin("POST", f"/groups/{gid}/members", {"id": new["id"]})
    await receiver.wait_for(1)
    note = receiver.notifications[0]["value"][0]
    assert (
        note["resource"] == f"Groups/{gid}"
        and note["resourceData"]["@odata.type"] == "#Microsoft.Graph.Group"
    )


async def test_failed_delivery_is_retried(harness: GraphSimClient, receiver: Receiver) -> None:
    await _subscribe(harness, receiver)
    receiver.fail_next = 2
    uid = next(iter(harness.tenant.list("users")))["id"]
    await harness.admin("PATCH", f"/users/{uid}", {"displayName": "Retry"})
    await receiver.wait_for(1)
    stats = harness.sim.notifier.stats
    assert stats["failed_attempts"] == 2 and stats["retried"] == 2 and stats["delivered"] == 1


async def test_gives_up_after_schedule(harness: GraphSimClient, receiver: Receiver) -> None:
    await _subscribe(harness, receiver)
    receiver.fail_next = 10
    uid = next(iter(harness.tenant.list("users")))["id"]
    await harness.admin("PATCH", f"/users/{uid}", {"displayName": "Lost"})
    deadline = time.monotonic() + 5
    while harness.sim.notifier.stats["gave_up"] == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert harness.sim.notifier.stats["gave_up"] == 1
    assert receiver.notifications == []


async def test_drop_and_delay_faults(harness: GraphSimClient, receiver: Receiver) -> None:
    await _subscribe(harness, receiver)
    await harness.admin("PUT", "/faults", {"notify_drop_rate": 1.0})
    uid = next(iter(harness.tenant.list("users")))["id"]
    await harness.admin("PATCH", f"/users/{uid}", {"displayName": "Dropped"})
    await asyncio.sleep(0.3)
    assert receiver.notifications == [] and harness.sim.notifier.stats["dropped"] == 1
    await harness.admin("PUT", "/faults", {"notify_drop_rate": 0.0, "notify_delay_seconds": 0.6})
    start = time.monotonic()
    await harness.admin("PATCH", f"/users/{uid}", {"displayName": "Late"})
    await receiver.wait_for(1)
    assert time.monotonic() - start >= 0.6


async def test_lifecycle_trigger_both_variants(harness: GraphSimClient, receiver: Receiver) -> None:
    sid = await _subscribe(harness, receiver)
    result = await harness.admin(
        "POST", f"/subscriptions/{sid}/lifecycle", {"event": "reauthorizationRequired"}
    )
    assert result == {"delivered": True}
    item = receiver.lifecycle[-1]["value"][0]
    assert item["lifecycleEvent"] == "reauthorizationRequired" and item["subscriptionId"] == sid
    assert item["tenantId"] == harness.tenant.tenant_id and item["clientState"] == "cs-1"
    await harness.admin("PUT", "/faults", {"lifecycle_variant": "observed"})
    await harness.admin("POST", f"/subscriptions/{sid}/lifecycle")
    item = receiver.lifecycle[-1]["value"][0]
    assert item["organizationId"] == harness.tenant.tenant_id and "tenantId" not in item
    assert item["resource"] == ""


async def test_lifecycle_sent_automatically_before_expiry(receiver: Receiver, tmp_path: Path) -> None:
    faults = Faults(allow_http_notification_url=True, lifecycle_lead_seconds=3600)
    async with graph_sim(graph_tenant(), tmp_path, faults=faults) as h:
        await h.fetch_token()
        sid = await _subscribe(h, receiver, expirationDateTime=_exp(30))
        await receiver.wait_for(1, lifecycle=True)
        item = receiver.lifecycle[0]["value"][0]
        assert item["subscriptionId"] == sid and item["lifecycleEvent"] == "reauthorizationRequired"


async def test_slow_endpoint_is_dropped(receiver: Receiver, tmp_path: Path) -> None:
    delivery = DeliveryConfig(
        retry_delays=(), batch_window=0.01, tick=0.05, slow_seconds=0.05, min_samples=2, timeout=1.0
    )
    async with graph_sim(graph_tenant(), tmp_path, delivery=delivery) as h:
        await h.fetch_token()
        await _subscribe(h, receiver)
        receiver.response_delay = 0.1
        users = [u["id"] for u in h.tenant.list("users")]
        for i, uid in enumerate(users[:2]):
            await h.admin("PATCH", f"/users/{uid}", {"displayName": f"slow{i}"})
            await receiver.wait_for(i + 1)
        await h.admin("PATCH", f"/users/{users[2]}", {"displayName": "never"})
        await asyncio.sleep(0.3)
        assert len(receiver.notifications) == 2
        assert h.sim.notifier.stats["dropped_slow"] == 1
