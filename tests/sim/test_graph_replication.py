"""Delta as the real service behaves: replication delays, `$select` and `$top` limits.

The delta overview ("Processing delays"): a change can be missing from a round and show up in a
later one, while its change notification has already been sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.kit.tenants import graph_tenant
from syncd.sim.graph.faults import Faults
from tests.helpers.graph_sim import FakeClock, GraphSimClient, graph_sim
from tests.sim.conftest import Receiver
from tests.sim.test_graph_notifications import _subscribe


@asynccontextmanager
async def _delayed(tmp_path: Path, clock: FakeClock, **faults: Any) -> AsyncIterator[GraphSimClient]:
    settings = Faults(allow_http_notification_url=True, **faults)
    async with graph_sim(graph_tenant(), tmp_path, faults=settings, clock=clock) as h:
        await h.fetch_token()
        yield h


def _ids(values: list[dict[str, Any]]) -> list[str]:
    return sorted(str(v["id"]) for v in values)


async def test_a_change_is_notified_at_once_but_reaches_delta_after_its_delay(
    receiver: Receiver, tmp_path: Path
) -> None:
    clock = FakeClock()
    async with _delayed(tmp_path, clock, replication_delay_min=2.0, replication_delay_max=2.0) as h:
        await _subscribe(h, receiver)
        _, link, _ = await h.follow("/v1.0/users/delta?$select=displayName")
        uid = str(next(iter(h.tenant.list("users")))["id"])
        await h.admin("PATCH", f"/users/{uid}", {"displayName": "Replicating"})
        await receiver.wait_for(1)  # the notification is out ...
        assert receiver.notifications[0]["value"][0]["resourceData"]["id"] == uid
        values, link2, _ = await h.follow(link)  # ... but delta does not show the change yet
        assert values == []
        clock.advance(1.9)
        values, link2, _ = await h.follow(link2)
        assert values == []
        clock.advance(0.2)
        values, link3, _ = await h.follow(link2)
        assert values == [{"id": uid, "displayName": "Replicating"}]
        values, _, _ = await h.follow(link3)
        assert values == []  # reported once


async def test_late_changes_come_in_a_later_round_and_none_twice(tmp_path: Path) -> None:
    clock = FakeClock()
    async with _delayed(tmp_path, clock, replication_delay_min=0.0, replication_delay_max=10.0, seed=3) as h:
        _, link, _ = await h.follow("/v1.0/users/delta?$select=jobTitle")
        users = [str(u["id"]) for u in list(h.tenant.list("users"))[:12]]
        for n, uid in enumerate(users):
            await h.admin("PATCH", f"/users/{uid}", {"jobTitle": f"Job {n}"})
        records = h.tenant.log["users"][-len(users) :]
        delays = {r.obj_id: h.sim.delta.delay_of(r.seq) for r in records}
        assert len(set(delays.values())) == len(users)  # random per change
        cut = sorted(delays.values())[len(users) // 2]
        early = sorted(u for u, d in delays.items() if d < cut)
        # some change made later is visible while an earlier one is not: the watermark case
        order = [r.obj_id for r in records]
        assert any(
            delays[order[i]] >= cut and delays[order[j]] < cut
            for i in range(len(order))
            for j in range(i + 1, len(order))
        )
        clock.advance(cut - 0.01)
        values, link2, _ = await h.follow(link)
        assert _ids(values) == early
        clock.advance(10.0)
        values, link3, _ = await h.follow(link2)
        assert _ids(values) == sorted(set(users) - set(early))
        values, _, _ = await h.follow(link3)
        assert values == []


async def test_a_full_round_leaves_out_an_object_created_but_not_replicated(tmp_path: Path) -> None:
    clock = FakeClock()
    async with _delayed(tmp_path, clock, replication_delay_min=5.0, replication_delay_max=5.0) as h:
        made = await h.admin("POST", "/users", {"displayName": "Brand New", "accountEnabled": True})
        values, link, _ = await h.follow("/v1.0/users/delta?$select=displayName")
        assert made["id"] not in _ids(values)
        assert len(values) == len(list(h.tenant.list("users"))) - 1
        clock.advance(5.1)
        values, _, _ = await h.follow(link)
        assert values == [{"id": made["id"], "displayName": "Brand New"}]


async def test_without_a_delay_changes_are_visible_at_once(harness: GraphSimClient) -> None:
    _, link, _ = await harness.follow("/v1.0/users/delta?$select=displayName")
    uid = str(next(iter(harness.tenant.list("users")))["id"])
    await harness.admin("PATCH", f"/users/{uid}", {"displayName": "Immediate"})
    values, _, _ = await harness.follow(link)
    assert values == [{"id": uid, "displayName": "Immediate"}]


async def test_delta_select_refuses_what_delta_does_not_support(harness: GraphSimClient) -> None:
    status, body, _ = await harness.get("/v1.0/users/delta?$select=id,displayName,signInActivity")
    assert status == 400, body
    assert "signInActivity" in body["error"]["message"] and "delta" in body["error"]["message"]
    status, body, _ = await harness.get("/v1.0/users/delta?$select=birthday,skills&$deltatoken=latest")
    assert status == 400 and "birthday" in body["error"]["message"] and "skills" in body["error"]["message"]
    status, body, _ = await harness.get("/v1.0/groups/delta?$select=id,hideFromAddressLists")
    assert status == 400 and "hideFromAddressLists" in body["error"]["message"]
    # the same properties are fine outside delta
    status, body, _ = await harness.get("/v1.0/users?$select=id,birthday&$top=1")
    assert status == 200, body
