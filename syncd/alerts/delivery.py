"""Alert outputs: a structured log event always, then webhooks / Slack / Teams / a command hook.

Alerts are written to the mirror's alert outbox in the same transaction as the diff, and a
separate task drains it: delivery is at-least-once, survives restarts, and a receiver that is down
never holds up the J1 push (or the other receivers: each target has its own concurrency slots).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
import json
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
import structlog

from syncd import __version__
from syncd.alerts.types import SEVERITIES, Alert
from syncd.mirror.types import AlertRow
from syncd.retry import backoff, parse_retry_after

log = structlog.get_logger(__name__)

ALERT_ID_HEADER = "X-Syncd-Alert-Id"
TargetKind = Literal["webhook", "slack", "teams", "command"]
TARGET_KINDS: tuple[str, ...] = ("webhook", "slack", "teams", "command")
_RETRYABLE_STATUS = {408, 425, 429}
_MAX_ERROR_CHARS = 300
_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
_SEVERITY_COLOR = {
    "info": "808080",
    "low": "2E86C1",
    "medium": "F1C40F",
    "high": "E67E22",
    "critical": "C0392B",
}
_SEVERITY_LOG_LEVEL = {
    "info": "info",
    "low": "info",
    "medium": "warning",
    "high": "warning",
    "critical": "error",
}

T = TypeVar("T")


class AlertStore(Protocol):
    """The mirror's alert outbox. Methods may be plain or ``async``; both are accepted.

    ``due_alerts`` returns rows ``{row_id, alert_id, rule_id, severity, target, payload, attempts}``
    whose next attempt is due; ``attempts`` counts failed attempts so far (``retry_alert`` adds one).
    """

    def enqueue_alerts(self, rows: list[AlertRow]) -> int | Awaitable[int]: ...
    def due_alerts(
        self, now: float, limit: int
    ) -> list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]: ...
    def ack_alert(self, row_id: int) -> Awaitable[None] | None: ...
    def retry_alert(self, row_id: int, next_attempt: float, error: str) -> Awaitable[None] | None: ...


async def _maybe_await(value: T | Awaitable[T]) -> T:
    if inspect.isawaitable(value):
        return await value
    return value


class TargetError(ValueError):
    """An invalid `[alerts]` target definition (named, never showing the URL: it is often a secret)."""


@dataclass(frozen=True)
class AlertTarget:
    """Where alerts go. ``name`` is what the outbox rows record; URLs stay out of repr and logs."""

    name: str
    kind: TargetKind
    url: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    argv: tuple[str, ...] = ()
    timeout: float = 10.0
    min_severity: str = "info"
    teams_format: Literal["adaptive", "messagecard"] = "adaptive"

    @classmethod
    def from_mapping(cls, name: str, data: Mapping[str, Any]) -> AlertTarget:
        """Build and validate one target from config: {kind, url | argv, timeout, min_severity, ...}."""
        kind = data.get("kind", "webhook")
        if kind not in TARGET_KINDS:
            raise TargetError(f"alert target {name!r}: kind must be one of {'|'.join(TARGET_KINDS)}")
        timeout = data.get("timeout", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise TargetError(f"alert target {name!r}: timeout must be a number of seconds in (0, 300]")
        min_sev = data.get("min_severity", "info")
        if min_sev not in SEVERITIES:
            raise TargetError(f"alert target {name!r}: min_severity must be one of {'|'.join(SEVERITIES)}")
        url = data.get("url", "")
        argv: tuple[str, ...] = ()
        if kind == "command":
            raw = data.get("argv")
            if not isinstance(raw, list | tuple) or not raw or not all(isinstance(a, str) and a for a in raw):
                raise TargetError(f"alert target {name!r}: argv must be a non-empty list of strings")
            argv = tuple(raw)
        else:
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                raise TargetError(f"alert target {name!r}: url must be an http(s) URL")
        headers = data.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise TargetError(f"alert target {name!r}: headers must map strings to strings")
        fmt = data.get("teams_format", "adaptive")
        if fmt not in ("adaptive", "messagecard"):
            raise TargetError(f"alert target {name!r}: teams_format must be adaptive or messagecard")
        return cls(
            name=name,
            kind=kind,
            url=str(url),
            headers=dict(headers),
            argv=argv,
            timeout=float(timeout),
            min_severity=str(min_sev),
            teams_format=fmt,
        )


def targets_from_config(data: Mapping[str, Mapping[str, Any]]) -> list[AlertTarget]:
    """`{name: {kind, url, ...}}` (the `[alerts.targets.<name>]` tables) to targets."""
    return [AlertTarget.from_mapping(name, spec) for name, spec in data.items()]


def severity_at_least(severity: str, minimum: str) -> bool:
    """Severity order: info < low < medium < high < critical (unknown counts as info)."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return rank.get(severity, 0) >= rank.get(minimum, 0)


def log_alert(alert: Alert) -> None:
    """The always-on output: one structured log event per alert."""
    level = _SEVERITY_LOG_LEVEL.get(alert.severity, "warning")
    getattr(log, level)(
        "alert",
        alert_id=alert.alert_id,
        rule_id=alert.rule_id,
        severity=alert.severity,
        message=alert.message,
        change=alert.change,
    )


def alerts_to_rows(alerts: Sequence[Alert], targets: Sequence[AlertTarget]) -> list[AlertRow]:
    """Log every alert, then one outbox row per (alert, target whose min_severity it reaches)."""
    rows: list[AlertRow] = []
    for alert in alerts:
        log_alert(alert)
        payload = alert.to_dict()
        for target in targets:
            if severity_at_least(alert.severity, target.min_severity):
                rows.append(
                    AlertRow(
                        alert_id=alert.alert_id,
                        rule_id=alert.rule_id,
                        severity=alert.severity,
                        target=target.name,
                        payload=payload,
                    )
                )
    return rows


# --- payload formats ---------------------------------------------------------------------------
# Alert texts carry names an attacker can choose (a guest's or a device's display name): each
# format gets them in a form its renderer shows as text, never as a link, mention or markup.

_TEAMS_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def _slack_escape(text: str) -> str:
    """Slack's three control characters (`&`, `<`, `>`): no link, mention or channel ping can form."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_text(text: str) -> dict[str, Any]:
    """A mrkdwn text object that Slack shows verbatim: no auto-linked URLs or names."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _teams_markdown_escape(text: str) -> str:
    """For MessageCard fields, which Teams renders as Markdown (and some HTML): every Markdown
    control character backslash-escaped, `&`, `<`, `>` as entities; a `[x](url)` stays text."""
    return _TEAMS_MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))


def _text_run(text: str, **style: Any) -> dict[str, Any]:
    """Adaptive Card TextRun: its text is never read as Markdown (TextBlock and FactSet are)."""
    return {"type": "TextRun", "text": text, **style}


def _facts(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    change = payload.get("change") or {}
    facts = [
        ("Severity", str(payload.get("severity", "")).upper()),
        ("Rule", str(payload.get("rule_id", ""))),
        ("Change", f"{change.get('op', '')} {change.get('type', '')}".strip()),
        ("Key", str(change.get("key", ""))),
    ]
    changes = change.get("changes") or {}
    if isinstance(changes, Mapping) and changes:
        shown = [
            f"{k}: {json.dumps(v.get('old'))} → {json.dumps(v.get('new'))}"
            for k, v in list(changes.items())[:10]
            if isinstance(v, Mapping)
        ]
        facts.append(("Changed", "; ".join(shown)))
    facts.append(("Alert id", str(payload.get("alert_id", ""))))
    return facts


def slack_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook body: `text` (fallback/notification) plus Block Kit `blocks`."""
    sev = str(payload.get("severity", "")).upper()
    message = _slack_escape(str(payload.get("message", "")))
    facts = _facts(payload)
    return {
        "text": f"[{sev}] {message}",
        "mrkdwn": False,
        "unfurl_links": False,
        "unfurl_media": False,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"syncd alert: {sev}"[:150]}},
            {"type": "section", "text": _slack_text(message[:2900] or " ")},
            {
                "type": "section",
                "fields": [
                    _slack_text(f"*{name}*\n{_slack_escape(value)[:1900] or '-'}")
                    for name, value in facts[:10]
                    if name != "Alert id"
                ],
            },
            {
                "type": "context",
                "elements": [_slack_text(f"alert id `{_slack_escape(str(payload.get('alert_id', '')))}`")],
            },
        ],
    }


def teams_payload(payload: Mapping[str, Any], fmt: str = "adaptive") -> dict[str, Any]:
    """Teams incoming webhook: an Adaptive Card message (Workflows) or a legacy MessageCard."""
    sev = str(payload.get("severity", "")).lower()
    title = f"syncd alert: {sev.upper()}"
    message = str(payload.get("message", ""))
    facts = _facts(payload)
    if fmt == "messagecard":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": message[:200] or title,  # the notification preview: plain text
            "themeColor": _SEVERITY_COLOR.get(sev, "808080"),
            "title": _teams_markdown_escape(title),
            "text": _teams_markdown_escape(message),
            "sections": [
                {"facts": [{"name": n, "value": _teams_markdown_escape(v)} for n, v in facts]}
            ],
        }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "size": "Medium",
                            "weight": "Bolder",
                            "text": title,
                            "color": "Attention" if sev in ("high", "critical") else "Default",
                        },
                        {"type": "RichTextBlock", "inlines": [_text_run(message)]},
                        *(
                            {
                                "type": "RichTextBlock",
                                "spacing": "None",
                                "inlines": [_text_run(f"{name}: ", weight="Bolder"), _text_run(value)],
                            }
                            for name, value in facts
                        ),
                    ],
                },
            }
        ],
    }


def render_payload(target: AlertTarget, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The body a target receives; the outbox keeps the generic form so formats can evolve."""
    if target.kind == "slack":
        return slack_payload(payload)
    if target.kind == "teams":
        return teams_payload(payload, target.teams_format)
    return dict(payload)


# --- dispatcher --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    error: str = ""
    permanent: bool = False
    retry_after: float | None = None


class AlertDispatcher:
    """Drains the alert outbox: ack on success, retry with capped exponential backoff, give up after N."""

    def __init__(
        self,
        store: AlertStore,
        targets: Sequence[AlertTarget],
        session: aiohttp.ClientSession,
        *,
        max_attempts: int = 8,
        backoff_base: float = 5.0,
        backoff_cap: float = 900.0,
        jitter: float = 0.1,
        batch_size: int = 100,
        per_target_concurrency: int = 4,
        poll_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_attempts < 1 or batch_size < 1 or per_target_concurrency < 1:
            raise ValueError("max_attempts, batch_size and per_target_concurrency must be >= 1")
        self.store = store
        self.targets = {t.name: t for t in targets}
        self.session = session
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.jitter = jitter
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.clock = clock
        self._slots = {name: asyncio.Semaphore(per_target_concurrency) for name in self.targets}
        self._last_fetched = 0

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Delay before attempt ``attempts + 1``: base·2^(attempts-1), jittered, ≥ Retry-After, capped."""
        delay = backoff(
            attempts, base=self.backoff_base, cap=self.backoff_cap, low=1 - self.jitter, high=1 + self.jitter
        )
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.backoff_cap)

    async def run_once(self) -> int:
        """Deliver every due row once (targets in parallel); returns how many were delivered."""
        rows = await _maybe_await(self.store.due_alerts(self.clock(), self.batch_size))
        self._last_fetched = len(rows)
        if not rows:
            return 0
        results = await asyncio.gather(*(self._handle(row) for row in rows))
        return sum(1 for r in results if r)

    async def run_forever(self, wake: asyncio.Event) -> None:
        """Run until cancelled; between passes wait for `wake` (new alerts) or poll_interval (retries)."""
        while True:
            wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("alert_dispatch_failed", error=type(exc).__name__)
                self._last_fetched = 0
            if self._last_fetched >= self.batch_size:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.poll_interval)

    async def _handle(self, row: Mapping[str, Any]) -> bool:
        ctx = {"alert_id": row.get("alert_id"), "rule_id": row.get("rule_id"), "target": row.get("target")}
        try:
            row_id = row["row_id"]
            target = self.targets.get(str(row.get("target")))
            if target is None:
                log.warning("alert_target_unknown", **ctx)
                await _maybe_await(self.store.ack_alert(row_id))
                return False
            payload = row.get("payload") or {}
            if isinstance(payload, str | bytes):
                payload = json.loads(payload)
            async with self._slots[target.name]:
                outcome = await self._send(target, payload)
            attempts = int(row.get("attempts") or 0) + 1
            if outcome.ok:
                await _maybe_await(self.store.ack_alert(row_id))
                log.info("alert_delivered", attempts=attempts, **ctx)
                return True
            if outcome.permanent or attempts >= self.max_attempts:
                log.error(
                    "alert_delivery_gave_up",
                    attempts=attempts,
                    error=outcome.error,
                    permanent=outcome.permanent,
                    **ctx,
                )
                give_up = getattr(self.store, "give_up_alert", None)
                if callable(give_up):
                    await _maybe_await(give_up(row_id, outcome.error))
                else:
                    await _maybe_await(self.store.ack_alert(row_id))
                return False
            delay = self.backoff(attempts, outcome.retry_after)
            await _maybe_await(self.store.retry_alert(row_id, self.clock() + delay, outcome.error))
            log.warning(
                "alert_delivery_retry", attempts=attempts, next_in=round(delay, 3), error=outcome.error, **ctx
            )
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("alert_dispatch_row_failed", error=type(exc).__name__, **ctx)
            return False

    async def _send(self, target: AlertTarget, payload: Mapping[str, Any]) -> _Outcome:
        if target.kind == "command":
            return await run_command_hook(target, payload)
        return await self._post(target, payload)

    async def _post(self, target: AlertTarget, payload: Mapping[str, Any]) -> _Outcome:
        body = json.dumps(render_payload(target, payload), separators=(",", ":"), default=str)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"syncd/{__version__}",
            **target.headers,
            ALERT_ID_HEADER: str(payload.get("alert_id", "")),
        }
        try:
            async with self.session.post(
                target.url,
                data=body.encode("utf-8"),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=target.timeout),
            ) as resp:
                await resp.content.read(65536)
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            return _Outcome(False, f"timeout after {target.timeout}s")
        except aiohttp.ClientError as exc:
            # The exception text may carry the URL (Slack/Teams URLs are secrets): keep only the type.
            return _Outcome(False, type(exc).__name__)
        if 200 <= status < 300:
            return _Outcome(True)
        error = f"HTTP {status}"
        if status >= 500 or status in _RETRYABLE_STATUS:
            return _Outcome(False, error, retry_after=retry_after)
        return _Outcome(False, error, permanent=True)


async def run_command_hook(target: AlertTarget, payload: Mapping[str, Any]) -> _Outcome:
    """Run ``argv`` (never a shell) with the alert JSON on stdin; exit 0 means delivered."""
    env = {k: os.environ[k] for k in _ENV_PASSTHROUGH if k in os.environ}
    env.update(
        {
            "SYNCD_ALERT_ID": str(payload.get("alert_id", "")),
            "SYNCD_ALERT_RULE": str(payload.get("rule_id", "")),
            "SYNCD_ALERT_SEVERITY": str(payload.get("severity", "")),
            "SYNCD_ALERT_TARGET": target.name,
        }
    )
    data = json.dumps(dict(payload), separators=(",", ":"), default=str).encode("utf-8")
    try:
        proc = await asyncio.create_subprocess_exec(
            *target.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        return _Outcome(False, f"cannot run {target.argv[0]!r}: {exc.strerror or type(exc).__name__}")
    try:
        _, err = await asyncio.wait_for(proc.communicate(data), timeout=target.timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: children die too
        await proc.wait()
        return _Outcome(False, f"timeout after {target.timeout}s")
    if proc.returncode == 0:
        return _Outcome(True)
    tail = err.decode("utf-8", "replace").strip()[-_MAX_ERROR_CHARS:]
    return _Outcome(False, f"exit {proc.returncode}: {tail}" if tail else f"exit {proc.returncode}")
