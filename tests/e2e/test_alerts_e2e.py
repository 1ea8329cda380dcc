"""Change alerts end to end: the daemon (in-process) on the simulators with notifications on,
alerts delivered to a real local aiohttp receiver; plus the `syncd alerts` CLI."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from syncd.alerts.targets import ALERT_ID_HEADER
from syncd.cli import main as syncd_main
from syncd.sim.alert_receiver import AlertReceiver
from syncd.sim.harness import PRIVILEGED_GROUP_ID, free_port
from syncd.sources.alerting import MirrorAlertStore
from tests.e2e.notify_helpers import (
    running_daemon,
    sim_admin,
    sim_harness,
    small_tenant,
    until,
)

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "syncd" / "alerts" / "default_rules.yaml"
SYNCD = str(Path(sys.executable).with_name("syncd"))


def _config(url: str) -> dict[str, dict[str, object]]:
    return {
        "sync": {"safety_net_interval": 3600, "sources": ["users", "groups"]},
        "alerts": {"targets": {"local": {"kind": "webhook", "url": url, "timeout": 2.0}}},
    }


def _people(tenant_users: list[dict[str, object]], n: int) -> list[str]:
    return [str(u["id"]) for u in tenant_users if u.get("accountEnabled") and u.get("userType") != "Guest"][
        :n
    ]


async def test_baseline_is_silent_and_changes_alert_with_a_stable_id(tmp_path: Path) -> None:
    tenant = small_tenant(seed=31, privileged_group=True)
    victim, promoted = _people(list(tenant.list("users")), 2)
    receiver = AlertReceiver()
    await receiver.start()
    try:
        async with (
            sim_harness(tenant, tmp_path) as h,
            sim_admin(h) as admin,
            running_daemon(h, _config(receiver.url)) as daemon,
        ):
            assert daemon.rt is not None
            store = MirrorAlertStore(daemon.rt.mirror)
            # the initial full sync created every user and group: no alert rows at all
            assert await store.due_alerts(time.time() + 86400, 100) == []
            await asyncio.sleep(0.5)
            assert receiver.alerts == []

            await admin.patch_user(victim, accountEnabled=False)
            await until(lambda: "user-disabled" in receiver.rule_ids(), timeout=8, what="user-disabled alert")
            i = receiver.rule_ids().index("user-disabled")
            alert = receiver.alerts[i]
            assert alert["source"] == "syncd"
            assert alert["change"]["key"] == victim
            assert receiver.header_of(i) == alert["alert_id"]
            assert len(alert["alert_id"]) >= 32

            await admin.call("POST", f"/_sim/groups/{PRIVILEGED_GROUP_ID}/members", {"id": promoted})
            await until(
                lambda: "privileged-group-member-added" in receiver.rule_ids(),
                timeout=8,
                what="privileged-group alert",
            )
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
            await until(lambda: "guest-user-created" in receiver.rule_ids(), timeout=8, what="guest alert")
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
        async with (
            sim_harness(tenant, tmp_path) as h,
            sim_admin(h) as admin,
            running_daemon(h, _config(receiver.url)) as daemon,
        ):
            assert daemon.rt is not None
            await admin.patch_user(victim, accountEnabled=False)
            # J1 is updated while the receiver is down
            await until(
                lambda: h.j1_graph()[0].get(victim, {}).get("accountEnabled") is False,
                timeout=5,
                what="J1 update with the receiver down",
            )

            async def failed_once() -> bool:
                rows = await daemon.rt.mirror.due_alerts(time.time() + 86400, 100)  # type: ignore[union-attr]
                return any(r.attempts >= 1 for r in rows)

            started = time.monotonic()
            while not await failed_once():
                assert time.monotonic() - started < 8, "the first delivery attempt never failed"
                await asyncio.sleep(0.05)
            assert receiver.alerts == []

            await receiver.start()  # back up: the retry (backoff ~5 s) delivers it
            await until(lambda: "user-disabled" in receiver.rule_ids(), timeout=20, what="retried alert")
            i = receiver.rule_ids().index("user-disabled")
            assert receiver.header_of(i) == receiver.alerts[i]["alert_id"]
            assert receiver.alerts[i]["change"]["key"] == victim
    finally:
        await receiver.stop()


def _disabled_change() -> dict[str, object]:
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
    quiet["new"] = {**quiet["old"], "jobTitle": "CTO"}  # type: ignore[dict-item]
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
    proc = await asyncio.create_subprocess_exec(
        SYNCD, "alerts", "test", str(DEFAULT_RULES), "--change", str(change), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    assert [a["rule_id"] for a in json.loads(out)] == ["user-disabled"]
    assert ALERT_ID_HEADER == "X-Syncd-Alert-Id"
