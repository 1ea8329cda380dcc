"""The daemon with change notifications, in-process against the Graph and J1 simulators.

Done-when of the "Change notifications" issue: a change reaches J1 without the safety net, the
handshake and lifecycle events work end to end, dropped notifications are caught up by the safety
net, a burst costs a handful of delta rounds, and without `public_url` the daemon runs on polling.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from structlog.testing import capture_logs

from bench.kit.sim_admin import delta_requests, sim_admin
from bench.kit.tenants import small_tenant
from bench.kit.truth import until_in_j1
from bench.kit.waiting import wait_for
from syncd import metrics
from syncd.sim.tenant import Tenant
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import running_daemon
from tests.helpers.notifications import user_notification, webhook_ssl

USERS_GROUPS = ["users", "groups"]
NO_SAFETY_NET = {"sync": {"safety_net_interval": 3600, "sources": USERS_GROUPS}}


def _enabled_members(tenant: Tenant, n: int) -> list[str]:
    users = [u for u in tenant.list("users") if u.get("accountEnabled") and u.get("userType") != "Guest"]
    return [str(u["id"]) for u in users[:n]]


def _validations() -> float:
    return metrics.REGISTRY.get_sample_value("syncd_notifications_total", {"result": "validation"}) or 0.0


async def test_changes_reach_j1_by_notification_without_the_safety_net(tmp_path: Path) -> None:
    tenant = small_tenant()
    uid, other = _enabled_members(tenant, 2)
    group = next(g for g in tenant.list("groups"))
    gid = str(group["id"])
    validations = _validations()
    async with (
        running_harness(tenant, tmp_path) as h,
        sim_admin(h) as admin,
        running_daemon(h.config_path(NO_SAFETY_NET)) as daemon,
    ):
        # the simulator validated both URLs of both subscriptions against the daemon's webhook
        assert set(daemon.state.subscriptions) == {"users", "groups"}
        assert _validations() >= validations + 4
        subs = await admin.subscriptions()
        assert sorted(s["resource"] for s in subs) == ["groups", "users"]
        assert all(s["notificationUrl"].endswith("/notifications") for s in subs)
        users_delta = delta_requests(h, "users")

        await admin.patch_user(uid, displayName="Renamed By Notification", accountEnabled=False)
        took = await until_in_j1(h, uid, "displayName", "Renamed By Notification", 5)
        assert h.j1_graph()[0][uid]["accountEnabled"] is False
        assert took < 3.0
        assert delta_requests(h, "users") > users_delta  # a delta round ran, woken by the notification
        assert h.sims.graph.notifier.stats["delivered"] >= 1

        await admin.call("POST", f"/_sim/groups/{gid}/members", {"id": other})
        rel = f"{gid}|has|{other}"
        await wait_for(lambda: rel in h.j1_graph()[1], timeout=5, what="new membership in J1", interval=0.01)


async def test_lifecycle_reauthorization_required_reauthorizes_and_runs_a_delta_round(tmp_path: Path) -> None:
    tenant = small_tenant(seed=12)
    async with (
        running_harness(tenant, tmp_path) as h,
        sim_admin(h) as admin,
        running_daemon(h.config_path(NO_SAFETY_NET)) as daemon,
    ):
        assert daemon.wakeups is not None
        sub_id = daemon.state.subscriptions["users"]
        rounds = daemon.wakeups.runs.get("users", 0)
        users_delta = delta_requests(h, "users")
        assert sub_id not in await admin.reauthorized()
        answer = await admin.call(
            "POST", f"/_sim/subscriptions/{sub_id}/lifecycle", {"event": "reauthorizationRequired"}
        )
        assert answer["delivered"] is True

        async def reauthorized() -> bool:
            return sub_id in await admin.reauthorized()

        await wait_for(reauthorized, timeout=5, what="reauthorize call", interval=0.02)
        wakeups = daemon.wakeups
        await wait_for(
            lambda: wakeups.runs.get("users", 0) > rounds, timeout=5, what="users round", interval=0.01
        )
        await wakeups.idle()
        assert delta_requests(h, "users") > users_delta
        # reauthorized in place: same subscription, nothing recreated
        assert [s["id"] for s in await admin.subscriptions() if s["resource"] == "users"] == [sub_id]


async def test_dropped_notifications_are_caught_up_by_the_safety_net(tmp_path: Path) -> None:
    tenant = small_tenant(seed=13)
    uid = _enabled_members(tenant, 1)[0]
    async with (
        running_harness(tenant, tmp_path) as h,
        sim_admin(h) as admin,
        running_daemon(h.config_path({"sync": {"safety_net_interval": 2, "sources": USERS_GROUPS}})),
    ):
        await admin.faults(notify_drop_rate=1, missed_on_drop=False)  # lost without a trace
        dropped = h.sims.graph.notifier.stats["dropped"]
        delivered = h.sims.graph.notifier.stats["delivered"]
        await admin.patch_user(uid, jobTitle="Changed While Notifications Are Lost")
        await until_in_j1(h, uid, "jobTitle", "Changed While Notifications Are Lost", 8)
        assert h.sims.graph.notifier.stats["dropped"] > dropped
        assert h.sims.graph.notifier.stats["delivered"] == delivered


async def test_a_burst_of_1000_notifications_costs_a_handful_of_delta_rounds(tmp_path: Path) -> None:
    tenant = small_tenant(seed=14)
    ids = [str(u["id"]) for u in tenant.list("users")]
    async with running_harness(tenant, tmp_path) as h, running_daemon(h.config_path(NO_SAFETY_NET)) as daemon:
        assert daemon.wakeups is not None and daemon.webhook_url is not None
        sub_id = daemon.state.subscriptions["users"]
        rounds = daemon.wakeups.runs.get("users", 0)
        first_pages = h.sims.graph.counters.routes.copy()
        users_delta = delta_requests(h, "users")
        notes = [user_notification(h, sub_id, ids[i % len(ids)], h.client_state, i) for i in range(1000)]
        url = f"{daemon.webhook_url}/notifications"
        started = time.monotonic()
        connector = aiohttp.TCPConnector(ssl=webhook_ssl(h), limit=20)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def post(batch: list[dict[str, object]]) -> int:
                async with http.post(url, json={"value": batch}) as resp:
                    return resp.status

            # Graph batches a few notifications per POST; send 200 POSTs of 5, 20 at a time
            statuses = await asyncio.gather(*(post(notes[i : i + 5]) for i in range(0, 1000, 5)))
        burst = time.monotonic() - started
        assert statuses == [202] * 200
        await asyncio.sleep(0.2)
        await daemon.wakeups.idle()
        runs = daemon.wakeups.runs.get("users", 0) - rounds
        assert 1 <= runs <= 2 + int(burst / daemon.wakeups.cooldown), (runs, burst)
        assert runs <= 6
        # each round is one delta request here (small tenant: one page)
        assert 1 <= delta_requests(h, "users") - users_delta <= 6, first_pages
        # a burst for users never touches groups
        assert daemon.wakeups.runs.get("groups", 0) == 0


async def test_without_public_url_the_daemon_polls_and_says_so_once(tmp_path: Path) -> None:
    tenant = small_tenant(seed=15)
    uid = _enabled_members(tenant, 1)[0]
    async with running_harness(tenant, tmp_path, notifications=False) as h, sim_admin(h) as admin:
        with capture_logs() as logs:
            async with running_daemon(
                h.config_path({"sync": {"safety_net_interval": 1, "sources": USERS_GROUPS}})
            ) as daemon:
                assert daemon.subs is None
                assert daemon.state.subscriptions == {}
                assert await admin.subscriptions() == []
                await admin.patch_user(uid, displayName="Polled Change")
                await until_in_j1(h, uid, "displayName", "Polled Change", 6)
                await asyncio.sleep(1.2)  # a few more scheduled rounds: still said only once
        said = [e for e in logs if "public_url" in str(e.get("event"))]
        assert len(said) == 1, said
        ready = [e for e in logs if e.get("event") == "syncd ready"]
        assert ready and ready[0]["notifications"] is False
        assert h.sims.graph.notifier.stats["queued"] == 0
