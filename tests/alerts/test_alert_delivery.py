"""Delivery: outbox rows, retries with backoff against a real local receiver, formats, command hook."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from syncd.alerts import (
    ALERT_ID_HEADER,
    Alert,
    AlertDispatcher,
    AlertTarget,
    CommandTarget,
    SlackTarget,
    TargetError,
    WebhookTarget,
    alerts_to_rows,
    slack_payload,
    teams_payload,
)

if TYPE_CHECKING:
    from tests.alerts.conftest import Clock, MemoryStore


def make_alert(n: int = 1, severity: str = "high") -> Alert:
    return Alert(
        alert_id=f"{n:064x}",
        rule_id="user-disabled",
        severity=severity,
        message=f"User disabled: Alice <{n}> & co",
        change={
            "kind": "entity",
            "type": "microsoft_365_user",
            "key": f"user-{n:08d}",
            "op": "updated",
            "displayName": "Alice",
            "changes": {"accountEnabled": {"old": True, "new": False}},
        },
        timestamp=1_700_000_000.0,
        description="d",
    )


def hook(name: str, url: str, kind: str = "webhook", **extra: Any) -> AlertTarget:
    return AlertTarget.from_mapping(name, {"kind": kind, "url": url, "timeout": 2, **extra})


def dispatcher(
    store: MemoryStore, targets: list[AlertTarget], session: aiohttp.ClientSession, clock: Clock, **kw: Any
) -> AlertDispatcher:
    opts: dict[str, Any] = {
        "backoff_base": 10.0,
        "backoff_cap": 100.0,
        "jitter": 0.0,
        "clock": clock,
        "max_attempts": 5,
    }
    opts.update(kw)
    return AlertDispatcher(store, targets, session, **opts)


# --- rows --------------------------------------------------------------------------------------


def test_alerts_to_rows_one_per_target_and_logged() -> None:
    targets = [
        WebhookTarget("a", url="http://127.0.0.1:9/x"),
        SlackTarget("b", url="http://127.0.0.1:9/y", min_severity="high"),
        CommandTarget("c", argv=("true",), min_severity="critical"),
    ]
    with capture_logs() as logs:
        rows = alerts_to_rows([make_alert(1, "high"), make_alert(2, "low")], targets)
    assert [(r["alert_id"][-1], r["target"]) for r in rows] == [("1", "a"), ("1", "b"), ("2", "a")]
    assert rows[0]["payload"]["alert_id"] == rows[0]["alert_id"]
    assert rows[0]["payload"]["change"]["changes"] == {"accountEnabled": {"old": True, "new": False}}
    events = [e for e in logs if e["event"] == "alert"]
    assert [e["rule_id"] for e in events] == ["user-disabled", "user-disabled"]
    assert events[0]["log_level"] == "warning" and events[1]["log_level"] == "info"
    assert alerts_to_rows([make_alert()], []) == []


def test_target_validation_and_secret_url_not_in_repr() -> None:
    t = hook("slack", "https://hooks.slack.test/services/T000/SECRET", kind="slack")
    assert "SECRET" not in repr(t)
    for bad in (
        {"kind": "pager"},
        {"kind": "webhook", "url": "ftp://x"},
        {"kind": "command", "argv": "rm -rf"},
        {"kind": "webhook", "url": "http://x", "timeout": 0},
        {"kind": "webhook", "url": "http://x", "min_severity": "urgent"},
    ):
        with pytest.raises(TargetError):
            AlertTarget.from_mapping("t", bad)


# --- retries -----------------------------------------------------------------------------------


async def test_retries_with_backoff_then_delivered_once(
    store: MemoryStore, clock: Clock, session: Any, receiver_factory: Any
) -> None:
    rec = await receiver_factory(plan=[500, 500])
    target = hook("generic", rec.url)
    await store.enqueue_alerts(alerts_to_rows([make_alert()], [target]))
    d = dispatcher(store, [target], session, clock)

    assert await d.run_once() == 0
    (row,) = store.rows.values()
    assert (
        row["attempts"] == 1 and row["next_attempt"] == clock.now + 10.0 and row["last_error"] == "HTTP 500"
    )
    assert await d.run_once() == 0  # not due yet: backoff honoured, nothing sent
    assert len(rec.requests) == 1

    clock.now += 10.0
    assert await d.run_once() == 0
    (row,) = store.rows.values()
    assert row["attempts"] == 2 and row["next_attempt"] == clock.now + 20.0  # exponential
    clock.now += 19.0
    assert await d.run_once() == 0 and len(rec.requests) == 2
    clock.now += 1.0
    with capture_logs() as logs:
        assert await d.run_once() == 1
    assert store.rows == {} and store.acked == [1]
    assert len(rec.requests) == 3
    assert {r["headers"][ALERT_ID_HEADER] for r in rec.requests} == {make_alert().alert_id}
    assert all(r["json"]["alert_id"] == make_alert().alert_id for r in rec.requests)
    assert rec.requests[0]["json"]["message"] == make_alert().message
    delivered = [e for e in logs if e["event"] == "alert_delivered"]
    assert delivered[0]["attempts"] == 3
    assert await d.run_once() == 0 and len(rec.requests) == 3  # delivered exactly once


async def test_gives_up_after_max_attempts(
    store: MemoryStore, clock: Clock, session: Any, receiver_factory: Any
) -> None:
    rec = await receiver_factory(plan=[503] * 10)
    target = hook("generic", rec.url)
    await store.enqueue_alerts(alerts_to_rows([make_alert()], [target]))
    d = dispatcher(store, [target], session, clock, max_attempts=3, backoff_cap=15.0)
    with capture_logs() as logs:
        for _ in range(5):
            await d.run_once()
            clock.now += 1000
    assert len(rec.requests) == 3
    assert store.rows == {}
    assert len(store.retries) == 2
    gave_up = [e for e in logs if e["event"] == "alert_delivery_gave_up"]
    assert len(gave_up) == 1 and gave_up[0]["attempts"] == 3 and gave_up[0]["error"] == "HTTP 503"
    assert "secret-token" not in json.dumps(logs, default=str)


async def test_backoff_is_capped_and_honours_retry_after(
    store: MemoryStore, clock: Clock, session: Any, receiver_factory: Any
) -> None:
    rec = await receiver_factory(plan=[429], headers={"Retry-After": "42"})
    target = hook("generic", rec.url)
    await store.enqueue_alerts(alerts_to_rows([make_alert()], [target]))
    d = dispatcher(store, [target], session, clock)
    await d.run_once()
    assert store.retries[0][1] == clock.now + 42.0
    assert d.backoff(1) == 10.0 and d.backoff(3) == 40.0 and d.backoff(30) == 100.0
    jittery = dispatcher(store, [target], session, clock, jitter=0.2)
    assert all(8.0 <= jittery.backoff(1) <= 12.0 for _ in range(50))


async def test_client_error_is_permanent(
    store: MemoryStore, clock: Clock, session: Any, receiver_factory: Any
) -> None:
    rec = await receiver_factory(plan=[404])
    target = hook("generic", rec.url)
    await store.enqueue_alerts(alerts_to_rows([make_alert()], [target]))
    with capture_logs() as logs:
        assert await dispatcher(store, [target], session, clock).run_once() == 0
    assert store.rows == {} and store.retries == []
    assert any(e["event"] == "alert_delivery_gave_up" and e["permanent"] for e in logs)


async def test_receiver_down_does_not_block_other_targets(
    store: MemoryStore, clock: Clock, session: Any, receiver_factory: Any
) -> None:
    hanging = await receiver_factory(delay=5.0)
    good = await receiver_factory()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    targets = [
        AlertTarget.from_mapping("slow", {"url": hanging.url, "timeout": 0.5}),
        AlertTarget.from_mapping("refused", {"url": f"http://127.0.0.1:{closed_port}/x", "timeout": 2}),
        AlertTarget.from_mapping("good", {"url": good.url, "timeout": 2}),
    ]
    await store.enqueue_alerts(alerts_to_rows([make_alert(1), make_alert(2)], targets))
    d = dispatcher(store, targets, session, clock)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await d.run_once() == 2
    elapsed = loop.time() - start
    assert elapsed < 3.0  # bounded by the slow target's timeout, not its 5 s delay
    assert len(good.requests) == 2 and max(good.times) - start < 0.4  # not waiting behind the slow one
    errors = sorted(e for _, _, e in store.retries)
    assert errors[:2] == ["ClientConnectorError", "ClientConnectorError"]
    assert errors[2:] == ["timeout after 0.5s", "timeout after 0.5s"]
    assert {r["target"] for r in store.rows.values()} == {"slow", "refused"}


async def test_unknown_target_rows_are_dropped(store: MemoryStore, clock: Clock, session: Any) -> None:
    await store.enqueue_alerts(
        alerts_to_rows([make_alert()], [WebhookTarget("gone", url="http://x/")])
    )
    with capture_logs() as logs:
        assert await dispatcher(store, [], session, clock).run_once() == 0
    assert store.rows == {} and logs[0]["event"] == "alert_target_unknown"


async def test_run_forever_wakes_on_event(store: MemoryStore, session: Any, receiver_factory: Any) -> None:
    rec = await receiver_factory()
    target = hook("generic", rec.url)
    d = AlertDispatcher(store, [target], session, poll_interval=30.0)
    wake = asyncio.Event()
    task = asyncio.create_task(d.run_forever(wake))
    try:
        await asyncio.sleep(0.05)
        await store.enqueue_alerts(alerts_to_rows([make_alert()], [target]))
        wake.set()
        for _ in range(100):
            if store.acked:
                break
            await asyncio.sleep(0.02)
        assert store.acked == [1] and len(rec.requests) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_sync_store_methods_are_accepted(clock: Clock, session: Any, receiver_factory: Any) -> None:
    rec = await receiver_factory()

    class SyncStore:
        def __init__(self) -> None:
            self.rows = [
                {
                    "row_id": 7,
                    "alert_id": "a" * 64,
                    "rule_id": "r",
                    "severity": "low",
                    "target": "generic",
                    "payload": json.dumps(make_alert().to_dict()),
                    "attempts": 0,
                }
            ]
            self.acked: list[int] = []

        def enqueue_alerts(self, rows: list[Any]) -> int:
            return 0

        def due_alerts(self, now: float, limit: int) -> list[dict[str, Any]]:
            return [r for r in self.rows if r["row_id"] not in self.acked]

        def ack_alert(self, row_id: int) -> None:
            self.acked.append(row_id)

        def retry_alert(self, row_id: int, next_attempt: float, error: str) -> None:
            raise AssertionError("no retry expected")

    s = SyncStore()
    assert await AlertDispatcher(s, [hook("generic", rec.url)], session, clock=clock).run_once() == 1
    assert s.acked == [7]


# --- formats -----------------------------------------------------------------------------------


async def test_slack_and_teams_shapes_on_the_wire(
    store: MemoryStore, clock: Clock, session: Any, receiver_factory: Any
) -> None:
    slack_rx, teams_rx, card_rx = (
        await receiver_factory(),
        await receiver_factory(),
        await receiver_factory(),
    )
    targets = [
        hook("slack", slack_rx.url, kind="slack"),
        hook("teams", teams_rx.url, kind="teams"),
        hook("legacy", card_rx.url, kind="teams", teams_format="messagecard"),
    ]
    await store.enqueue_alerts(alerts_to_rows([make_alert()], targets))
    assert await dispatcher(store, targets, session, clock).run_once() == 3

    slack = slack_rx.requests[0]["json"]
    assert slack["text"] == "[HIGH] User disabled: Alice &lt;1&gt; &amp; co"
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "section", "context"]
    assert make_alert().alert_id in slack["blocks"][-1]["elements"][0]["text"]
    assert slack_rx.requests[0]["headers"][ALERT_ID_HEADER] == make_alert().alert_id

    teams = teams_rx.requests[0]["json"]
    assert teams["type"] == "message"
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    body = card["content"]["body"]
    assert body[1]["inlines"] == [{"type": "TextRun", "text": "User disabled: Alice <1> & co"}]
    facts = {b["inlines"][0]["text"].removesuffix(": "): b["inlines"][1]["text"] for b in body[2:]}
    assert facts["Alert id"] == make_alert().alert_id and facts["Severity"] == "HIGH"
    assert facts["Changed"] == "accountEnabled: true → false"

    legacy = card_rx.requests[0]["json"]
    assert legacy["@type"] == "MessageCard" and legacy["themeColor"] == "E67E22"
    assert {f["name"] for f in legacy["sections"][0]["facts"]} >= {"Rule", "Alert id"}


HOSTILE = (
    "[Re-authenticate](https://evil.example/login) <https://evil.example|Open> <!channel> "
    "**urgent** <b>bold</b> & `code`"
)
LINK = "[Re-authenticate](https://evil.example/login)"


def _hostile_alert() -> dict[str, Any]:
    alert = make_alert()
    payload = alert.to_dict()
    payload["message"] = f"Guest user created: {HOSTILE}"
    payload["change"] = {
        **payload["change"],
        "key": HOSTILE,
        "changes": {"displayName": {"old": "Bob", "new": HOSTILE}},
    }
    return payload


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(json path, string) for every string in a payload."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in _strings(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in _strings(v, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) else []


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every JSON object in a payload, nested ones included."""
    if isinstance(node, dict):
        return [node, *(o for v in node.values() for o in _objects(v))]
    if isinstance(node, list):
        return [o for v in node for o in _objects(v)]
    return []


def test_slack_shows_hostile_names_as_text() -> None:
    payload = slack_payload(_hostile_alert())
    assert payload["mrkdwn"] is False and payload["unfurl_links"] is False
    texts = _strings(payload)
    for path, text in texts:
        assert "<" not in text and ">" not in text, (path, text)  # no <url|label>, <!channel>, <@U..>
    mrkdwn = [t for t in _objects(payload["blocks"]) if t.get("type") == "mrkdwn"]
    assert len(mrkdwn) >= 3 and all(t["verbatim"] is True for t in mrkdwn)  # no auto-linked URLs
    section = payload["blocks"][1]["text"]["text"]
    assert "&lt;https://evil.example|Open&gt; &lt;!channel&gt;" in section and "&amp; `code`" in section
    assert any("&lt;!channel&gt;" in t["text"] for t in payload["blocks"][2]["fields"])


def test_teams_adaptive_card_keeps_hostile_names_out_of_markdown() -> None:
    card = teams_payload(_hostile_alert())["attachments"][0]["content"]
    markdown = [  # the Adaptive Card fields Teams renders as Markdown
        (p, t) for p, t in _strings(card) if p.endswith(".text") and ".inlines[" not in p
    ]
    assert markdown and all(LINK not in t and "evil.example" not in t for _, t in markdown), markdown
    assert not any(b["type"] in ("FactSet", "ColumnSet") for b in card["body"])
    runs = [r for b in card["body"] if b["type"] == "RichTextBlock" for r in b["inlines"]]
    assert all(r["type"] == "TextRun" for r in runs)
    assert runs[0]["text"] == f"Guest user created: {HOSTILE}"  # shown exactly, as plain text
    assert any(HOSTILE in r["text"] for r in runs[1:])


def test_teams_message_card_escapes_markdown_and_html() -> None:
    card = teams_payload(_hostile_alert(), "messagecard")
    rendered = [card["title"], card["text"], *(f["value"] for f in card["sections"][0]["facts"])]
    link = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")  # an unescaped [label]( starts a link
    for text in rendered:
        assert not link.search(text), text
        assert "<" not in text and ">" not in text, text
    assert "\\[Re\\-authenticate\\]\\(https://evil\\.example/login\\)" in card["text"]
    assert "\\*\\*urgent\\*\\*" in card["text"] and "&lt;b&gt;bold&lt;/b&gt; &amp;" in card["text"]


def test_payload_builders_tolerate_sparse_payloads() -> None:
    assert slack_payload({})["text"] == "[] "
    assert teams_payload({}, "messagecard")["title"] == "syncd alert: "


# --- command hook ------------------------------------------------------------------------------


async def test_command_hook_gets_json_on_stdin(
    store: MemoryStore, clock: Clock, session: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    script = (
        "import json,os,sys; d=json.load(sys.stdin); "
        "d['env']=os.environ.get('SYNCD_ALERT_ID'); d['leak']=os.environ.get('LEAKY');"
        f"open({str(out)!r},'w').write(json.dumps(d))"
    )
    target = AlertTarget.from_mapping(
        "cmd", {"kind": "command", "argv": [sys.executable, "-c", script], "timeout": 10}
    )
    await store.enqueue_alerts(alerts_to_rows([make_alert()], [target]))
    os.environ["LEAKY"] = "secret"
    try:
        assert await dispatcher(store, [target], session, clock).run_once() == 1
    finally:
        del os.environ["LEAKY"]
    got = json.loads(out.read_text())
    assert got["alert_id"] == make_alert().alert_id and got["env"] == make_alert().alert_id
    assert got["leak"] is None  # minimal environment: no config secrets passed on


async def test_command_hook_failure_and_timeout_are_retried(
    store: MemoryStore, clock: Clock, session: Any
) -> None:
    failing = AlertTarget.from_mapping(
        "fail",
        {
            "kind": "command",
            "timeout": 10,
            "argv": [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"],
        },
    )
    slow = AlertTarget.from_mapping(
        "slow",
        {"kind": "command", "timeout": 0.5, "argv": [sys.executable, "-c", "import time; time.sleep(30)"]},
    )
    missing = AlertTarget.from_mapping("missing", {"kind": "command", "argv": ["/nonexistent/hook"]})
    await store.enqueue_alerts(alerts_to_rows([make_alert()], [failing, slow, missing]))
    start = time.monotonic()
    assert await dispatcher(store, [failing, slow, missing], session, clock).run_once() == 0
    assert time.monotonic() - start < 5
    errors = {store.rows[r]["target"]: e for r, _, e in store.retries}
    assert errors["fail"] == "exit 3: boom"
    assert errors["slow"] == "timeout after 0.5s"
    assert errors["missing"].startswith("cannot run '/nonexistent/hook'")
