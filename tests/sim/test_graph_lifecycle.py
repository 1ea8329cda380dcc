"""Lifecycle notifications as Graph sends them for users and groups: `reauthorizationRequired` on
the access-token cadence (and the pause when nobody answers), `missed` when notifications were
lost; and a processed request whose answer is lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.kit.tenants import graph_tenant
from syncd.sim.graph.faults import Faults
from syncd.sim.graph.notifications import DeliveryConfig
from tests.helpers.graph_sim import graph_sim
from tests.sim.conftest import Receiver
from tests.sim.test_graph_notifications import _subscribe

FAST = DeliveryConfig(retry_delays=(0.05,), batch_window=0.01, tick=0.05, timeout=1.0)


def _events(rec: Receiver, event: str) -> list[dict[str, object]]:
    return [i for post in rec.lifecycle for i in post["value"] if i.get("lifecycleEvent") == event]


async def test_reauthorization_challenges_follow_the_access_token_and_delivery_pauses(
    receiver: Receiver, tmp_path: Path
) -> None:
    faults = Faults(
        allow_http_notification_url=True,
        access_token_ttl=2,
        reauth_lead_seconds=2.0,
        reauth_repeat_seconds=0.25,
    )
    async with graph_sim(graph_tenant(), tmp_path, faults=faults, delivery=FAST) as h:
        await h.fetch_token()
        sid = await _subscribe(h, receiver)  # an hour-long subscription: not the expiry lead
        await receiver.wait_for(2, timeout=3, lifecycle=True)
        challenges = _events(receiver, "reauthorizationRequired")
        assert len(challenges) >= 2 and {c["subscriptionId"] for c in challenges} == {sid}
        # nobody reauthorized: once the authorizing token expired, change notifications are lost
        await asyncio.sleep(2.0)
        uid = str(next(iter(h.tenant.list("users")))["id"])
        await h.admin("PATCH", f"/users/{uid}", {"displayName": "While Paused"})
        await asyncio.sleep(0.2)
        assert receiver.notifications == []
        assert h.sim.notifier.stats["paused"] == 1
        # reauthorizing with a fresh token resumes delivery (and the cadence starts over)
        await h.fetch_token()
        status, _ = await h.call("POST", f"/v1.0/subscriptions/{sid}/reauthorize")
        assert status == 204
        await h.admin("PATCH", f"/users/{uid}", {"displayName": "After Reauthorize"})
        await receiver.wait_for(1)
        assert receiver.notifications[0]["value"][0]["resourceData"]["id"] == uid


async def test_lost_notifications_are_reported_as_missed(receiver: Receiver, tmp_path: Path) -> None:
    async with graph_sim(graph_tenant(), tmp_path, delivery=FAST) as h:
        await h.fetch_token()
        sid = await _subscribe(h, receiver)
        await h.admin("PUT", "/faults", {"notify_drop_rate": 1.0})
        uid = str(next(iter(h.tenant.list("users")))["id"])
        await h.admin("PATCH", f"/users/{uid}", {"displayName": "Dropped"})
        await receiver.wait_for(1, lifecycle=True)
        [missed] = _events(receiver, "missed")
        assert missed["subscriptionId"] == sid and missed["clientState"] == "cs-1"
        assert receiver.notifications == []
        # the receiver fails every delivery: after the retries, Graph gives up and says so
        await h.admin("PUT", "/faults", {"notify_drop_rate": 0.0})
        receiver.fail_next = 10
        await h.admin("PATCH", f"/users/{uid}", {"displayName": "Undeliverable"})
        await receiver.wait_for(2, lifecycle=True)
        assert len(_events(receiver, "missed")) == 2 and h.sim.notifier.stats["gave_up"] == 1
        # the switch: no missed events
        await h.admin("PUT", "/faults", {"notify_drop_rate": 1.0, "missed_on_drop": False})
        await h.admin("PATCH", f"/users/{uid}", {"displayName": "Silently Dropped"})
        await asyncio.sleep(0.3)
        assert len(_events(receiver, "missed")) == 2


async def test_a_processed_request_can_lose_its_answer(receiver: Receiver, tmp_path: Path) -> None:
    async with graph_sim(graph_tenant(), tmp_path, delivery=FAST) as h:
        await h.fetch_token()
        lose = {"drop_response_next": 1, "drop_response_path": "POST /v1.0/subscriptions"}
        await h.admin("PUT", "/faults", lose)
        status, _ = await h.call("GET", "/v1.0/users?$top=1")  # other paths answer normally
        assert status == 200
        try:
            await _subscribe(h, receiver)
        except Exception as exc:  # the connection dropped before the 201
            assert "Disconnected" in type(exc).__name__ or "Connection" in type(exc).__name__, exc
        else:
            raise AssertionError("the answer should have been lost")
        status, listed = await h.call("GET", "/v1.0/subscriptions")
        assert status == 200 and len(listed["value"]) == 1  # ... but the subscription exists
