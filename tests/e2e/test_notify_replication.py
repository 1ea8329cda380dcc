"""Graph as it really behaves, end to end: changes that replicate after their notification,
notifications lost (`missed`), and changes made while the daemon starts.

The safety net is an hour away in these tests: whatever reaches J1 got there by notification,
by another look after a notified round that found nothing, or by the start-up catch-up.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from structlog.testing import capture_logs

from bench.kit.sim_admin import delta_requests, sim_admin
from bench.kit.tenants import small_tenant
from bench.kit.truth import j1_property, until_in_j1
from bench.kit.waiting import wait_for
from syncd.daemon import Daemon
from syncd.sim.tenant import Tenant
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import running_daemon

QUIET = {"safety_net_interval": 3600, "debounce": 0.2}
USERS_GROUPS = {"sync": {**QUIET, "sources": ["users", "groups"]}}


def _users(tenant: Tenant, n: int) -> list[str]:
    return [str(u["id"]) for u in tenant.list("users") if u.get("accountEnabled")][:n]


async def test_changes_replicated_after_their_notification_still_reach_j1(tmp_path: Path) -> None:
    tenant = small_tenant(seed=41)
    uids = _users(tenant, 6)
    async with (
        running_harness(tenant, tmp_path) as h,
        sim_admin(h) as admin,
        running_daemon(h.config_path(USERS_GROUPS)) as daemon,
    ):
        assert daemon.notified is not None
        await admin.faults(replication_delay_min=0.6, replication_delay_max=1.5)
        started: dict[str, float] = {}
        for n, uid in enumerate(uids):
            started[uid] = time.monotonic()
            await admin.patch_user(uid, displayName=f"Replicated Late {n}")
            await asyncio.sleep(0.25)
        took: dict[str, float] = {}
        while len(took) < len(uids) and time.monotonic() - min(started.values()) < 10:
            for n, uid in enumerate(uids):
                if uid not in took and j1_property(h, uid, "displayName") == f"Replicated Late {n}":
                    took[uid] = time.monotonic() - started[uid]
            await asyncio.sleep(0.02)
        assert sorted(took) == sorted(uids), f"missing in J1: {set(uids) - set(took)}"
        assert max(took.values()) < 1.5 + 2.5, took  # the delay, then a look soon after
        assert daemon.notified.looks.get("users", 0) >= 1  # found by looking again
        notified = daemon.notified
        await wait_for(lambda: not notified.pending("users"), timeout=3, what="nothing left", interval=0.01)


async def test_a_missed_event_catches_up_lost_notifications(tmp_path: Path) -> None:
    tenant = small_tenant(seed=42)
    [uid] = _users(tenant, 1)
    async with (
        running_harness(tenant, tmp_path) as h,
        sim_admin(h) as admin,
        running_daemon(h.config_path(USERS_GROUPS)) as daemon,
    ):
        assert daemon.notified is not None
        await admin.faults(notify_drop_rate=1.0, replication_delay_min=0.8, replication_delay_max=0.8)
        await admin.patch_user(uid, displayName="Notification Lost")
        took = await until_in_j1(h, uid, "displayName", "Notification Lost", 5)
        assert took < 0.8 + 2.5
        stats = h.sims.graph.notifier.stats
        assert stats["dropped"] >= 1 and stats["missed_sent"] >= 1 and stats["delivered"] == 0


async def test_changes_made_during_start_up_reach_j1_before_the_intune_polls_end(tmp_path: Path) -> None:
    tenant = small_tenant(seed=43)
    uids = _users(tenant, 3)
    # Intune polls paced to a crawl: 6 requests per 20 s (they would take minutes here)
    slow_intune = {"sync": {**QUIET, "intune_requests_per_20s": 6}}
    async with running_harness(tenant, tmp_path) as h, sim_admin(h) as admin:
        with capture_logs() as first_run:
            async with running_daemon(h.config_path({"sync": QUIET})):
                pass  # first run: the baseline
        created = [e["event"] for e in first_run if e["event"] in ("subscription created", "round")]
        assert created[:2] == ["subscription created", "subscription created"], created[:4]
        await admin.patch_user(uids[0], displayName="Changed While Stopped")

        daemon = Daemon(h.settings(slow_intune), install_signals=False)
        task = asyncio.create_task(daemon.run())
        try:
            await wait_for(
                lambda: len(daemon.state.subscriptions) == 2, timeout=10, what="subscriptions", interval=0.01
            )
            await admin.patch_user(uids[1], displayName="Changed During Start-Up")
            changed = time.monotonic()
            await until_in_j1(h, uids[1], "displayName", "Changed During Start-Up", 4)
            took = time.monotonic() - changed
            await until_in_j1(h, uids[0], "displayName", "Changed While Stopped", 4)
            assert not daemon.state.ready  # the Intune polls are still going
            assert took < 3.0
            assert delta_requests(h, "users") >= 2
        finally:
            daemon.request_stop()
            assert await asyncio.wait_for(task, 60) == 0


async def test_reauthorization_challenges_on_the_token_cadence_keep_notifications_flowing(
    tmp_path: Path,
) -> None:
    tenant = small_tenant(seed=44)
    [uid] = _users(tenant, 1)
    async with running_harness(tenant, tmp_path) as h, sim_admin(h) as admin:
        # short-lived access tokens: challenges every 0.4 s; an unanswered one pauses delivery
        await admin.faults(access_token_ttl=3, reauth_lead_seconds=3, reauth_repeat_seconds=0.4)
        async with running_daemon(h.config_path(USERS_GROUPS)):
            await asyncio.sleep(3.5)  # longer than any token's life
            stats = h.sims.graph.notifier.stats
            assert stats["reauth_challenges"] >= 4
            assert len(await admin.reauthorized()) >= 4  # every challenge answered
            await admin.patch_user(uid, displayName="Still Notified")
            took = await until_in_j1(h, uid, "displayName", "Still Notified", 4)
            assert took < 2.5 and stats["paused"] == 0
