"""Subscriptions against the Graph simulator: reuse across restarts, renewal at half-life,
recreation after a 404, and the `syncd subscriptions list|delete` CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.kit.daemon import run_cli
from bench.kit.sim_admin import sim_admin
from bench.kit.tenants import small_tenant
from bench.kit.truth import until_in_j1
from syncd.subscriptions import SubscriptionManager, _parse_time, delete_recorded
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import running_daemon

QUIET = {"sync": {"safety_net_interval": 3600, "sources": ["users", "groups"]}}


class Clock:
    """A settable clock for the subscription manager (starts at the real time)."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


async def test_a_restart_reuses_the_subscriptions(tmp_path: Path) -> None:
    async with running_harness(small_tenant(seed=21), tmp_path) as h, sim_admin(h) as admin:
        async with running_daemon(h.config_path(QUIET)) as first:
            created = dict(first.state.subscriptions)
        assert sorted(created) == ["groups", "users"]
        async with running_daemon(h.config_path(QUIET)) as second:  # same state dir
            assert second.state.subscriptions == created
        live = await admin.subscriptions()
        assert {s["resource"]: s["id"] for s in live} == created
        assert len(live) == 2
        assert h.sims.graph.counters.routes["POST /v1.0/subscriptions"]["requests"] == 2


async def test_renewal_at_half_life_and_recreation_after_404(tmp_path: Path) -> None:
    async with (
        running_harness(small_tenant(seed=22), tmp_path) as h,
        sim_admin(h) as admin,
        running_daemon(h.config_path(QUIET)) as daemon,
    ):
        assert daemon.rt is not None and daemon.subs is not None
        # drop the daemon's long-lived subscriptions; manage short-lived ones with a test clock
        assert (await delete_recorded(daemon.rt.subscriptions_api, daemon.rt.mirror)).deleted == 2
        assert await admin.subscriptions() == []
        clock = Clock()
        lifetime = timedelta(minutes=20)
        manager = SubscriptionManager(
            daemon.rt.subscriptions_api,
            daemon.rt.mirror,
            notification_url=daemon.subs.notification_url,
            lifecycle_url=daemon.subs.lifecycle_url,
            client_state=h.client_state,
            lifetime=lifetime,
            now=clock,
        )
        ids = await manager.ensure()
        remote = {s["id"]: s for s in await admin.subscriptions()}
        assert set(remote) == set(ids.values())
        expiry = {i: _parse_time(remote[i]["expirationDateTime"]) for i in ids.values()}

        clock.advance(timedelta(minutes=9))  # 11 min left of 20: not yet due
        assert await manager.renew_due() == 0
        clock.advance(timedelta(minutes=2))  # 9 min left: past half of the lifetime
        assert await manager.renew_due() == 2
        remote = {s["id"]: s for s in await admin.subscriptions()}
        assert set(remote) == set(ids.values())  # renewed in place
        for sub_id in ids.values():
            renewed = _parse_time(remote[sub_id]["expirationDateTime"])
            before = expiry[sub_id]
            assert renewed is not None and before is not None
            assert renewed - before > timedelta(minutes=10)
        assert await manager.renew_due() == 0  # fresh again

        # Graph loses the users subscription behind the daemon's back (the mirror still has it)
        lost = ids["users"]
        await daemon.rt.subscriptions_api.delete(lost)
        clock.advance(timedelta(minutes=11))
        assert await manager.renew_due() == 2
        live = await admin.subscriptions()
        by_resource = {s["resource"]: s["id"] for s in live}
        assert sorted(by_resource) == ["groups", "users"] and len(live) == 2
        assert by_resource["users"] != lost
        assert by_resource["groups"] == ids["groups"]
        stored = {r["resource"]: r["id"] for r in await daemon.rt.mirror.list_subscriptions()}
        assert stored == by_resource


async def test_subscriptions_cli_list_and_delete(tmp_path: Path) -> None:
    async with running_harness(small_tenant(seed=23), tmp_path) as h, sim_admin(h) as admin:
        async with running_daemon(h.config_path(QUIET)) as daemon:
            ids = dict(daemon.state.subscriptions)
        # the daemon is stopped (the CLI needs the mirror); its subscriptions stay in Graph
        config = h.config_path(QUIET | {"log": {"level": "WARNING", "format": "json"}})
        listed = await run_cli("subscriptions", "list", config=config)
        out = listed.out + listed.err
        assert listed.code == 0, out
        lines = [ln for ln in out.splitlines() if "[syncd]" in ln]
        assert len(lines) == 2, out
        for resource, sub_id in ids.items():
            assert any(ln.startswith(sub_id) and f"  {resource}  " in ln for ln in lines), out
        assert h.client_state not in out

        deleted = await run_cli("subscriptions", "delete", config=config)
        out = deleted.out + deleted.err
        assert deleted.code == 0, out
        assert "deleted 2 subscription(s)" in out
        assert await admin.subscriptions() == []


async def test_a_create_whose_answer_is_lost_leaves_no_duplicate(tmp_path: Path) -> None:
    async with running_harness(small_tenant(seed=24), tmp_path) as h, sim_admin(h) as admin:
        # Graph creates the users subscription, then the connection drops before the 201
        await admin.faults(drop_response_next=1, drop_response_path="POST /v1.0/subscriptions")
        async with running_daemon(h.config_path(QUIET)) as daemon:
            ids = dict(daemon.state.subscriptions)
        live = await admin.subscriptions()
        assert sorted(s["resource"] for s in live) == ["groups", "users"]  # one each, nothing twice
        assert {s["resource"]: s["id"] for s in live} == ids
        assert h.sims.graph.counters.routes["POST /v1.0/subscriptions"]["requests"] == 2
        assert h.sims.graph.faults.drop_response_next == 0  # the answer really was lost


async def test_subscriptions_graph_has_but_the_mirror_lost_are_adopted_or_deleted(tmp_path: Path) -> None:
    async with running_harness(small_tenant(seed=25), tmp_path) as h, sim_admin(h) as admin:
        async with running_daemon(h.config_path(QUIET)) as daemon:
            assert daemon.rt is not None and daemon.subs is not None
            ours = dict(daemon.state.subscriptions)
            # a crash right after a create: Graph has the subscription, the mirror does not
            for record in await daemon.rt.mirror.list_subscriptions():
                await daemon.rt.mirror.delete_subscription(str(record["id"]))
            # ... and one more leftover whose clientState cannot be ours (a duplicate to remove)
            stranger = await daemon.rt.subscriptions_api.create(
                "users",
                "updated,deleted",
                daemon.subs.notification_url,
                daemon.subs.lifecycle_url,
                "an-old-client-state",
                datetime.now(UTC) + timedelta(days=2),
            )
        posts = h.sims.graph.counters.routes["POST /v1.0/subscriptions"]["requests"]
        async with running_daemon(h.config_path(QUIET)) as again:
            assert again.state.subscriptions == ours  # adopted, not recreated
        live = await admin.subscriptions()
        assert {s["resource"]: s["id"] for s in live} == ours and len(live) == 2
        assert stranger["id"] not in {s["id"] for s in live}
        assert h.sims.graph.counters.routes["POST /v1.0/subscriptions"]["requests"] == posts


async def test_a_reused_subscription_is_reauthorized_at_once(tmp_path: Path) -> None:
    tenant = small_tenant(seed=26)
    uid = next(str(u["id"]) for u in tenant.list("users") if u.get("accountEnabled"))
    async with running_harness(tenant, tmp_path) as h, sim_admin(h) as admin:
        async with running_daemon(h.config_path(QUIET)) as first:
            ids = dict(first.state.subscriptions)
        # down long enough for the authorizing token to expire: Graph holds notifications back
        for sub_id in ids.values():
            sub = h.sims.graph.subscriptions.get(sub_id)
            assert sub is not None
            sub.authorized_until = 0.0
        await admin.faults(reauth_on_token_cadence=False)  # and no challenge comes to help
        async with running_daemon(h.config_path(QUIET)) as again:
            assert again.state.subscriptions == ids
            assert set(ids.values()) <= set(await admin.reauthorized())
            await admin.patch_user(uid, displayName="Notified After A Restart")
            await until_in_j1(h, uid, "displayName", "Notified After A Restart", 4)
        assert h.sims.graph.notifier.stats["paused"] == 0
