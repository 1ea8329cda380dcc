"""The daemon's public HTTP side: Graph change and lifecycle notifications, nothing else.

A notification is a hint, never data: a valid one only asks for a delta round of its resource.
Answers are fast (202 once the hint is recorded) and never reflect input as HTML.

Anyone can POST here, so the work one request may cause is bounded before it starts: the body
is read within ``read_timeout`` and ``max_body_bytes``; its JSON structure (the commas, colons
and brackets that parsing costs) must fit a budget proportional to that size, numbers are never
converted, and at most ``MAX_ITEMS`` items are looked at. One request therefore holds the event
loop for a few milliseconds at most, whatever it contains, and leaves one summary log line.
`/healthz` and `/metrics` live on their own listener (syncd.health).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from syncd import metrics
from syncd.listener import read_body

log = structlog.get_logger(__name__)

MAX_VALIDATION_TOKEN = 4096
RESOURCE_ORIGINS = {"users": "users", "user": "users", "groups": "groups", "group": "groups"}
MAX_ITEMS = 200
"""Items looked at per body; the rest are counted as ``over_limit`` and ignored. Graph documents
no maximum batch size; a user or group notification is 550-700 bytes (the clientState is up to 128
characters), so the default body limit (128 KiB) holds about 200 of them, and one accepted item
already triggers the round that covers every change of its resource."""
BYTES_PER_TOKEN = 16
"""Structure budget: one `,` `:` `[` or `{` per this many bytes of the body limit. Graph items
have one per ~21 bytes; denser bodies (thousands of empty objects, nested arrays) are refused
with 413 before parsing, because parse time grows with structure, not with bytes."""
_STRUCTURE = (b",", b":", b"[", b"{")
_DECODER = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=str)
"""Numbers are kept as text: nothing here uses them, and converting a 4,000-digit integer or
a long float costs far more than reading it."""


@dataclass
class WebhookHooks:
    """What the webhook server calls; the daemon provides these."""

    wake: Callable[[str], Awaitable[None]]
    """Record a hint for an origin and schedule its round."""
    lifecycle: Callable[[str, str], Awaitable[None]]
    """(subscription id, lifecycle event)."""
    notified: Callable[[str, list[str]], Awaitable[None]] | None = None
    """(origin, object ids) of accepted change notifications, before the wake-up: the daemon
    looks again for changes that delta does not show yet (replication delay)."""


@dataclass(frozen=True)
class WebhookLimits:
    client_state: str | None
    tenant_id: str
    max_body_bytes: int = 131_072
    read_timeout: float = 10.0

    @property
    def max_structure(self) -> int:
        return max(64, self.max_body_bytes // BYTES_PER_TOKEN)


HOOKS_KEY = web.AppKey("syncd_webhook_hooks", WebhookHooks)
LIMITS_KEY = web.AppKey("syncd_webhook_limits", WebhookLimits)
TURN_KEY = web.AppKey("syncd_webhook_turn", asyncio.Lock)
"""Requests are finished one at a time, each step in its own loop iteration."""


def create_webhook_app(
    hooks: WebhookHooks,
    *,
    client_state: str | None,
    tenant_id: str,
    max_body_bytes: int = 131_072,
    read_timeout: float = 10.0,
    path_prefix: str = "",
) -> web.Application:
    """The aiohttp app. Routes exist at `/notifications` and `/lifecycle`, and under `path_prefix`."""
    app = web.Application(client_max_size=max_body_bytes)
    app[HOOKS_KEY] = hooks
    app[LIMITS_KEY] = WebhookLimits(client_state, tenant_id.lower(), max_body_bytes, read_timeout)
    app[TURN_KEY] = asyncio.Lock()
    prefixes = {""} | ({path_prefix.rstrip("/")} if path_prefix.strip("/") else set())
    for prefix in prefixes:
        app.router.add_post(f"{prefix}/notifications", handle_notifications)
        app.router.add_post(f"{prefix}/lifecycle", handle_lifecycle)
    return app


def _text(body: str, status: int = 200) -> web.Response:
    """Plain text that a browser will not sniff into HTML."""
    resp = web.Response(text=body, status=status, content_type="text/plain", charset="utf-8")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'"
    resp.headers["Cache-Control"] = "no-store"
    return resp


@dataclass
class _Outcome:
    """What one request amounted to: counted once, logged once."""

    counts: Counter[str] = field(default_factory=Counter)
    origins: set[str] = field(default_factory=set)
    object_ids: dict[str, list[str]] = field(default_factory=dict)
    """origin → ids of the changed objects the notifications name."""
    lifecycle: dict[tuple[str, str], None] = field(default_factory=dict)
    """(subscription id, event) in arrival order, each once."""

    def finish(self, request: web.Request, status: int, refused: str | None = None) -> None:
        if refused is not None:
            self.counts[refused] += 1
        for result, n in self.counts.items():
            metrics.NOTIFICATIONS.labels(result=result).inc(n)
        ignored = sum(n for r, n in self.counts.items() if r not in ("accepted", "lifecycle", "validation"))
        emit = log.warning if ignored else log.debug
        emit(
            "notification request",
            path=request.path,
            status=status,
            origins=sorted(self.origins),
            **{k: self.counts[k] for k in sorted(self.counts)},
        )


def _validation(request: web.Request, outcome: _Outcome) -> web.Response:
    """Graph's subscription handshake: echo the decoded `validationToken` as text/plain."""
    token = request.query["validationToken"]
    if len(token) > MAX_VALIDATION_TOKEN or any(ord(c) < 32 or ord(c) == 127 for c in token):
        outcome.finish(request, 400, "bad_validation_token")
        return _text("invalid validationToken", status=400)
    outcome.finish(request, 200, "validation")
    return _text(token)


@dataclass(frozen=True)
class _Refusal:
    """A 4xx answer and the result it is counted under."""

    status: int
    result: str
    text: str


async def _receive(request: web.Request) -> bytes | _Refusal:
    """The raw body within the time, size and structure limits, or why it is refused."""
    limits = request.app[LIMITS_KEY]
    ctype = request.content_type.lower()
    if ctype not in ("application/json", "text/json") and not ctype.endswith("+json"):
        return _Refusal(415, "unsupported_media_type", "expected application/json")
    try:
        raw = await read_body(request, limits.max_body_bytes, limits.read_timeout)
    except TimeoutError:
        return _Refusal(408, "read_timeout", "request body too slow")
    if raw is None:
        return _Refusal(413, "too_large", "body too large")
    if sum(raw.count(token) for token in _STRUCTURE) > limits.max_structure:
        return _Refusal(413, "too_complex", "body too complex")
    return raw


def _decode(raw: bytes, outcome: _Outcome) -> list[Any] | _Refusal:
    """The `value` array (at most ``MAX_ITEMS`` of it), or why the body is refused."""
    try:
        body = _DECODER.decode(raw.decode(json.detect_encoding(raw)))
    except (ValueError, RecursionError):
        return _Refusal(400, "malformed", "malformed JSON")
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return _Refusal(400, "malformed", "expected an object with a value array")
    if len(items) > MAX_ITEMS:
        outcome.counts["over_limit"] += len(items) - MAX_ITEMS
        del items[MAX_ITEMS:]
    return items


def _client_state_ok(item: dict[str, Any], expected: str | None) -> bool:
    given = item.get("clientState")
    if expected is None:
        return True
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def _tenant_ok(item: dict[str, Any], tenant_id: str) -> bool:
    """Graph sends `tenantId` (newer) or `organizationId` (older); absent is tolerated."""
    given = item.get("tenantId") or item.get("organizationId")
    if given is None:
        resource_data = item.get("resourceData")
        if isinstance(resource_data, dict):
            given = resource_data.get("organizationId") or resource_data.get("tenantId")
    if given is None or not tenant_id:
        return True
    return isinstance(given, str) and given.lower() == tenant_id


def origin_of(item: dict[str, Any]) -> str | None:
    """`Users/<id>`, `users/<id>`, `/users`, `Groups/...` → the origin to refresh."""
    resource = item.get("resource")
    if not isinstance(resource, str):
        return None
    head = resource.strip("/").split("/", 1)[0].split("(", 1)[0].lower()
    return RESOURCE_ORIGINS.get(head)


def object_id_of(item: dict[str, Any]) -> str | None:
    """The changed object's id: `resourceData.id`, else the segment after `Users/` in `resource`."""
    data = item.get("resourceData")
    found = data.get("id") if isinstance(data, dict) else None
    if not isinstance(found, str) or not found:
        resource = item.get("resource")
        parts = resource.strip("/").split("/") if isinstance(resource, str) else []
        found = parts[1] if len(parts) >= 2 else None
    if not isinstance(found, str) or not 0 < len(found) <= 128:
        return None
    return found.lower()


def _sort_item(item: Any, limits: WebhookLimits, outcome: _Outcome, *, lifecycle_only: bool) -> None:
    """Count one item under its result; a trusted one adds its origin or lifecycle event."""
    if not isinstance(item, dict):
        outcome.counts["malformed"] += 1
    elif not _client_state_ok(item, limits.client_state):
        outcome.counts["rejected_client_state"] += 1
    elif not _tenant_ok(item, limits.tenant_id):
        outcome.counts["rejected_tenant"] += 1
    elif lifecycle_only or "lifecycleEvent" in item:
        event, sub_id = item.get("lifecycleEvent"), item.get("subscriptionId")
        if isinstance(event, str) and isinstance(sub_id, str):
            outcome.counts["lifecycle"] += 1
            outcome.lifecycle[sub_id[:128], event[:64]] = None
        else:
            outcome.counts["malformed"] += 1
    else:
        origin = origin_of(item)
        if origin is None:
            outcome.counts["unknown_resource"] += 1
        else:
            outcome.counts["accepted"] += 1
            outcome.origins.add(origin)
            object_id = object_id_of(item)
            if object_id is not None:
                outcome.object_ids.setdefault(origin, []).append(object_id)


async def _handle(request: web.Request, *, lifecycle_only: bool) -> web.Response:
    outcome = _Outcome()
    handshake = "validationToken" in request.query  # Graph's subscription validation: no body
    received = None if handshake else await _receive(request)
    limits, hooks = request.app[LIMITS_KEY], request.app[HOOKS_KEY]
    async with request.app[TURN_KEY]:
        # Decoding, sorting and even refusing (a log line, counters, the answer) each get a loop
        # iteration of their own: requests or timeouts that arrive together queue here instead of
        # adding their costs up into one stall.
        await asyncio.sleep(0)
        if received is None:
            return _validation(request, outcome)
        items = received if isinstance(received, _Refusal) else _decode(received, outcome)
        if isinstance(items, _Refusal):
            outcome.finish(request, items.status, items.result)
            return _text(items.text, status=items.status)
        await asyncio.sleep(0)
        for item in items:
            _sort_item(item, limits, outcome, lifecycle_only=lifecycle_only)
        for sub_id, event in outcome.lifecycle:
            await hooks.lifecycle(sub_id, event)
        for origin in sorted(outcome.origins):
            if hooks.notified is not None:
                await hooks.notified(origin, outcome.object_ids.get(origin, []))
            await hooks.wake(origin)
        outcome.finish(request, 202)
    return web.Response(status=202)


async def handle_notifications(request: web.Request) -> web.Response:
    """Change notifications (and lifecycle events when no separate lifecycle URL was given)."""
    return await _handle(request, lifecycle_only=False)


async def handle_lifecycle(request: web.Request) -> web.Response:
    return await _handle(request, lifecycle_only=True)
