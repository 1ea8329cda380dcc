"""Change alerts end to end: the daemon (in-process) on the simulators with notifications on,
alerts delivered to a real local aiohttp receiver; plus the `syncd alerts` CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.kit.daemon import run_cli
from bench.kit.sim_admin import SimAdmin, sim_admin
from bench.kit.tenants import small_tenant
from bench.kit.truth import until_in_j1
from bench.kit.waiting import wait_for
from syncd.alerts.targets import ALERT_ID_HEADER
from syncd.cli import main as syncd_main
from syncd.runtime import Runtime
from syncd.sim.alert_receiver import AlertReceiver
from syncd.sim.harness import PRIVILEGED_GROUP_ID, SimHarness, free_port
from syncd.sim.tenant import Tenant
from syncd.sources.alerting import MirrorAlertStore
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import running_daemon

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "syncd" / "alerts" / "default_rules.yaml"


def _config(url: str) -> dict[str, dict[str, object]]:
    return {
        "sync": {"safety_net_interval": 3600, "sources": ["users", "groups"]},
        "alerts": {"targets": {"local": {"kind": "webhook", "url": url, "timeout": 2.0}}},
    }


async def _alerted(receiver: AlertReceiver, rule: str, timeout: float) -> None:
    """Until an alert of `rule` reached the receiver (looked for every 10 ms)."""
    await wait_for(lambda: rule in receiver.rule_ids(), timeout, f"a {rule} alert", interval=0.01)


def _people(tenant_users: list[dict[str, object]], n: int) -> list[str]:
    return [str(u["id"]) for u in tenant_users if u.get("accountEnabled") and u.get("userType") != "Guest"][
        :n
    ]


@asynccontextmanager
async def _alerting(
    tenant: Tenant, state_dir: Path, receiver: AlertReceiver
) -> AsyncIterator[tuple[SimHarness, SimAdmin, Runtime]]:
    """Simulators, their admin API and a ready daemon whose one alert target is `receiver`."""
    async with (
        running_harness(tenant, state_dir) as h,
        sim_admin(h) as admin,
        running_daemon(h.config_path(_config(receiver.url))) as daemon,
    ):
        assert daemon.rt is not None
        yield h, admin, daemon.rt


async def test_baseline_is_silent_and_changes_alert_with_a_stable_id(tmp_path: Path) -> None:
    tenant = small_tenant(seed=31, privileged_group=True)
    victim, promoted = _people(list(tenant.list("users")), 2)
    receiver = AlertReceiver()
    await receiver.start()
    try:
        async with _alerting(tenant, tmp_path, receiver) as (_h, admin, rt):
            store = MirrorAlertStore(rt.mirror)
            # the initial full sync created every user and group: no alert rows at all
            assert await store.due_alerts(time.time() + 86400, 100) == []
            await asyncio.sleep(0.5)
            assert receiver.alerts == []

            await admin.patch_user(victim, accountEnabled=False)
            await _alerted(receiver, "user-disabled", 8)
            i = receiver.rule_ids().index("user-disabled")
            alert = receiver.alerts[i]
            assert alert["source"] == "syncd"
            assert alert["change"]["key"] == victim
            assert receiver.header_of(i) == alert["alert_id"]
            assert len(alert["alert_id"]) >= 32

            await admin.call("POST", f"/_sim/groups/{PRIVILEGED_GROUP_ID}/members", {"id": promoted})
            await _alerted(receiver, "privileged-group-member-added", 8)
            i = receiver.rule_ids().index("privileged-group-member-added")
            assert receiver.alerts[i]["severity"] == "high"
            assert "Global Administrators" in receiver.alerts[i]["message"]
            assert receiver.header_of(i) == receiver.alerts[i]["alert_id"]

            await admin.call(
                "POST",
                "/_sim/users",
                {
                    "displayName": "Eve External",
                    "userType": "Guest",
                    "accountEnabled": True,
                    "userPrincipalName": "eve_example.com#EXT#@simorg31.onmicrosoft.com",
                    "mail": "eve@example.com",
                },
            )
            await _alerted(receiver, "guest-user-created", 8)
            # each alert delivered once (acked), ids distinct
            await asyncio.sleep(0.3)
            ids = [a["alert_id"] for a in receiver.alerts]
            assert len(ids) == len(set(ids))
            assert await store.due_alerts(time.time() + 86400, 100) == []
    finally:
        await receiver.stop()


async def test_receiver_down_does_not_block_j1_and_gets_the_alert_later(tmp_path: Path) -> None:
    tenant = small_tenant(seed=32)
    victim = _people(list(tenant.list("users")), 1)[0]
    receiver = AlertReceiver(port=free_port())  # not started yet: connection refused
    try:
        async with _alerting(tenant, tmp_path, receiver) as (h, admin, rt):
            await admin.patch_user(victim, accountEnabled=False)
            # J1 is updated while the receiver is down
            await until_in_j1(h, victim, "accountEnabled", False, 5)

            async def failed_once() -> bool:
                rows = await rt.mirror.due_alerts(time.time() + 86400, 100)
                return any(r.attempts >= 1 for r in rows)

            await wait_for(failed_once, 8, "the first delivery attempt to fail", interval=0.05)
            assert receiver.alerts == []

            await receiver.start()  # back up: the retry (backoff ~5 s) delivers it
            await _alerted(receiver, "user-disabled", 20)
            i = receiver.rule_ids().index("user-disabled")
            assert receiver.header_of(i) == receiver.alerts[i]["alert_id"]
            assert receiver.alerts[i]["change"]["key"] == victim
    finally:
        await receiver.stop()


def _disabled_change() -> dict[str, Any]:
    old = {
        "_key": "11111111-1111-1111-1111-111111111111",
        "_type": "microsoft_365_user",
        "_class": "User",
        "displayName": "Ada Lovelace",
        "userPrincipalName": "ada@example.com",
        "accountEnabled": True,
    }
    return {"kind": "entity", "op": "updated", "old": old, "new": {**old, "accountEnabled": False}}


def test_alerts_test_cli_fires_the_matching_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    change = tmp_path / "change.json"
    change.write_text(json.dumps(_disabled_change()))
    assert syncd_main(["alerts", "test", str(DEFAULT_RULES), "--change", str(change)]) == 0
    fired = json.loads(capsys.readouterr().out)
    assert [a["rule_id"] for a in fired] == ["user-disabled"]
    assert fired[0]["message"] == "User disabled: Ada Lovelace (ada@example.com)"

    quiet = _disabled_change()
    quiet["new"] = {**quiet["old"], "jobTitle": "CTO"}
    change.write_text(json.dumps(quiet))
    assert syncd_main(["alerts", "test", str(DEFAULT_RULES), "--change", str(change)]) == 0
    assert json.loads(capsys.readouterr().out) == []

    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "rules:\n  - id: x\n    severity: high\n    when: {type: microsoft_365_usr}\n    message: m\n"
    )
    assert syncd_main(["alerts", "test", str(bad), "--change", str(change)]) == 2
    assert "rules.yaml:4" in capsys.readouterr().err


def test_j1_rules_cli_prints_j1_rule_definitions(capsys: pytest.CaptureFixture[str]) -> None:
    assert syncd_main(["alerts", "j1-rules"]) == 0
    rules = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rules}
    assert "syncd-user-disabled" in by_name and "syncd-privileged-group-member-added" in by_name
    query = by_name["syncd-user-disabled"]["question"]["queries"][0]
    assert query["query"].startswith("FIND microsoft_365_user WITH accountEnabled = false")
    actions = [a["type"] for a in by_name["syncd-user-disabled"]["operations"][0]["actions"]]
    assert "CREATE_ALERT" in actions


async def test_alerts_cli_as_a_command(tmp_path: Path) -> None:
    change = tmp_path / "change.json"
    change.write_text(json.dumps(_disabled_change()))
    res = await run_cli("alerts", "test", str(DEFAULT_RULES), "--change", str(change))
    assert res.code == 0
    assert [a["rule_id"] for a in json.loads(res.out)] == ["user-disabled"]
    assert ALERT_ID_HEADER == "X-Syncd-Alert-Id"
