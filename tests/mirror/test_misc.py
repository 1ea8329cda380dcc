"""Cursors, run history/status, subscriptions, alert outbox, key/value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.mirror import AlertRow, Mirror


async def test_cursor_without_round(mirror: Mirror) -> None:
    assert await mirror.get_cursor("intune:managedDevices") is None
    await mirror.set_cursor("intune:managedDevices", "2024-01-01T00:00:00Z", origin="intune:managedDevices")
    assert await mirror.get_cursor("intune:managedDevices") == "2024-01-01T00:00:00Z"


async def test_runs_and_origin_status(mirror: Mirror) -> None:
    await mirror.set_cursor("users", "link", origin="users")
    await mirror.record_run("users", 100.0, 101.0, "ok", {"entities_created": 3}, None)
    await mirror.record_run("users", 200.0, 201.0, "error", {}, "Graph 503 after 5 retries")
    await mirror.record_run(
        "groups", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 0, 1, tzinfo=UTC), "ok", {}, None
    )
    await mirror.set_origin_flag("intune:deviceCompliancePolicies", True, "403: missing permission")
    status = {s["origin"]: s for s in await mirror.origin_status()}
    users = status["users"]
    assert users["last_status"] == "error" and users["last_success"] == 101.0
    assert users["last_error"] == "Graph 503 after 5 retries" and users["last_error_at"] == 201.0
    assert users["cursor_age_s"] is not None and users["cursor_age_s"] < 60
    assert status["groups"]["last_success"] == datetime(2024, 1, 1, 0, 1, tzinfo=UTC).timestamp()
    flagged = status["intune:deviceCompliancePolicies"]
    assert flagged["partial"] is True and flagged["reason"] == "403: missing permission"
    await mirror.set_origin_flag("intune:deviceCompliancePolicies", False, None)
    status = {s["origin"]: s for s in await mirror.origin_status()}
    assert status["intune:deviceCompliancePolicies"]["partial"] is False


async def test_subscriptions(mirror: Mirror) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    later = soon + timedelta(days=1)
    await mirror.save_subscription("sub-2", "/groups", later, "hash-b")
    await mirror.save_subscription("sub-1", "/users", soon, "hash-a")
    subs = await mirror.list_subscriptions()
    assert [s["id"] for s in subs] == ["sub-1", "sub-2"]
    assert subs[0]["expiration"] == soon and subs[0]["client_state_hash"] == "hash-a"
    await mirror.save_subscription("sub-1", "/users", later + timedelta(days=1), "hash-a")  # renewal
    assert [s["id"] for s in await mirror.list_subscriptions()] == ["sub-2", "sub-1"]
    await mirror.delete_subscription("sub-2")
    assert [s["id"] for s in await mirror.list_subscriptions()] == ["sub-1"]


def alert(alert_id: str, target: str = "slack") -> AlertRow:
    return {
        "alert_id": alert_id,
        "rule_id": "r",
        "severity": "high",
        "target": target,
        "payload": {"id": alert_id},
    }


async def test_alert_outbox(mirror: Mirror) -> None:
    assert await mirror.enqueue_alerts([alert("a1"), alert("a1", "email"), alert("a2")]) == 3
    assert await mirror.enqueue_alerts([alert("a1")]) == 0  # stable id: deduped
    due = await mirror.due_alerts(now=1e12, limit=10)
    assert [(a.alert_id, a.target) for a in due] == [("a1", "slack"), ("a1", "email"), ("a2", "slack")]
    assert due[0].payload == {"id": "a1"} and due[0].attempts == 0
    await mirror.ack_alert(due[0].row_id)
    await mirror.retry_alert(due[1].row_id, next_attempt=5e12, error="HTTP 500")
    assert await mirror.alert_depth() == 2
    due = await mirror.due_alerts(now=1e12, limit=10)
    assert [a.alert_id for a in due] == ["a2"]
    (retried,) = [a for a in await mirror.due_alerts(now=6e12, limit=10) if a.target == "email"]
    assert retried.attempts == 1 and retried.last_error == "HTTP 500"
    assert await mirror.enqueue_alerts([alert("a1")]) == 0  # delivered ones still dedupe


async def test_key_value(mirror: Mirror) -> None:
    assert await mirror.get_value("last_full_push") is None
    await mirror.set_value("last_full_push", {"at": 1.5, "seq": 7})
    assert await mirror.get_value("last_full_push") == {"at": 1.5, "seq": 7}
    await mirror.delete_value("last_full_push")
    assert await mirror.get_value("last_full_push") is None
