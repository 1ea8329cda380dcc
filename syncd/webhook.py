"""The daemon's HTTP side: Graph change and lifecycle notifications, `/healthz` and `/metrics`.

A notification is a hint, never data: a valid one only asks for a delta round of its resource.
Answers are fast (202 once the hint is recorded) and never reflect input as HTML.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from syncd import metrics

log = structlog.get_logger(__name__)

MAX_VALIDATION_TOKEN = 4096
RESOURCE_ORIGINS = {"users": "users", "user": "users", "groups": "groups", "group": "groups"}


@dataclass
class WebhookHooks:
    """What the webhook server calls; the daemon provides these."""

    wake: Callable[[str], Awaitable[None]]
    """Record a hint for an origin (durably) and schedule its round."""
    lifecycle: Callable[[str, str], Awaitable[None]]
    """(subscription id, lifecycle event)."""
    health: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
    notified: Callable[[str, list[str]], Awaitable[None]] | None = None
    """(origin, object ids) of accepted change notifications, before the wake-up: the daemon
    looks again for changes that delta does not show yet (replication delay)."""


HOOKS_KEY = web.AppKey("syncd_webhook_hooks", WebhookHooks)
SETTINGS_KEY = web.AppKey("syncd_webhook_settings", dict)


def create_webhook_app(
    hooks: WebhookHooks,
    *,
    client_state: str | None,
    tenant_id: str,
    max_body_bytes: int = 1_000_000,
    path_prefix: str = "",
) -> web.Application:
    """The aiohttp app. Routes exist at `/notifications` and `/lifecycle`, and under `path_prefix`."""
    app = web.Application(client_max_size=max_body_bytes)
    app[HOOKS_KEY] = hooks
    app[SETTINGS_KEY] = {
        "client_state": client_state,
        "tenant_id": tenant_id.lower(),
        "max_body_bytes": max_body_bytes,
    }
    prefixes = {""} | ({path_prefix.rstrip("/")} if path_prefix.strip("/") else set())
    for prefix in prefixes:
        app.router.add_post(f"{prefix}/notifications", handle_notifications)
        app.router.add_post(f"{prefix}/lifecycle", handle_lifecycle)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/metrics", metrics.metrics_handler())
    return app


def _text(body: str, status: int = 200) -> web.Response:
    """Plain text that a browser will not sniff into HTML."""
    resp = web.Response(text=body, status=status, content_type="text/plain", charset="utf-8")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _validation(request: web.Request) -> web.Response | None:
    """Graph's subscription handshake: echo the decoded `validationToken` as text/plain."""
    if "validationToken" not in request.query:
        return None
    token = request.query["validationToken"]
    if len(token) > MAX_VALIDATION_TOKEN or any(ord(c) < 32 or ord(c) == 127 for c in token):
        metrics.NOTIFICATIONS.labels(result="bad_validation_token").inc()
        return _text("invalid validationToken", status=400)
    metrics.NOTIFICATIONS.labels(result="validation").inc()
    return _text(token)


async def _read_items(request: web.Request) -> list[Any] | web.Response:
    """The `value` array of a notification body, or the 4xx answer for a bad body."""
    settings = request.app[SETTINGS_KEY]
    ctype = request.content_type.lower()
    if ctype not in ("application/json", "text/json") and not ctype.endswith("+json"):
        metrics.NOTIFICATIONS.labels(result="unsupported_media_type").inc()
        return _text("expected application/json", status=415)
    if request.content_length is not None and request.content_length > settings["max_body_bytes"]:
        metrics.NOTIFICATIONS.labels(result="too_large").inc()
        return _text("body too large", status=413)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.NOTIFICATIONS.labels(result="too_large").inc()
        return _text("body too large", status=413)
    if len(raw) > settings["max_body_bytes"]:
        metrics.NOTIFICATIONS.labels(result="too_large").inc()
        return _text("body too large", status=413)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        metrics.NOTIFICATIONS.labels(result="malformed").inc()
        return _text("malformed JSON", status=400)
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list):
        metrics.NOTIFICATIONS.labels(result="malformed").inc()
        return _text("expected an object with a value array", status=400)
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


async def _trusted_items(request: web.Request) -> list[dict[str, Any]] | web.Response:
    """The body's items that carry our clientState and tenant; the answer for a bad body."""
    items = await _read_items(request)
    if isinstance(items, web.Response):
        return items
    settings = request.app[SETTINGS_KEY]
    trusted: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            metrics.NOTIFICATIONS.labels(result="malformed").inc()
        elif not _client_state_ok(item, settings["client_state"]):
            metrics.NOTIFICATIONS.labels(result="rejected_client_state").inc()
            log.warning(
                "notification with a wrong clientState ignored",
                subscription_id=str(item.get("subscriptionId"))[:64],
            )
        elif not _tenant_ok(item, settings["tenant_id"]):
            metrics.NOTIFICATIONS.labels(result="rejected_tenant").inc()
            log.warning("notification for another tenant ignored")
        else:
            trusted.append(item)
    return trusted


async def _lifecycle_event(hooks: WebhookHooks, item: dict[str, Any]) -> None:
    event = item.get("lifecycleEvent")
    sub_id = item.get("subscriptionId")
    if not isinstance(event, str) or not isinstance(sub_id, str):
        metrics.NOTIFICATIONS.labels(result="malformed").inc()
        return
    metrics.NOTIFICATIONS.labels(result="lifecycle").inc()
    await hooks.lifecycle(sub_id, event)


async def handle_notifications(request: web.Request) -> web.Response:
    """Change notifications (and lifecycle events when no separate lifecycle URL was given)."""
    validation = _validation(request)
    if validation is not None:
        return validation
    items = await _trusted_items(request)
    if isinstance(items, web.Response):
        return items
    hooks = request.app[HOOKS_KEY]
    origins: dict[str, list[str]] = {}
    for item in items:
        if "lifecycleEvent" in item:
            await _lifecycle_event(hooks, item)
            continue
        origin = origin_of(item)
        if origin is None:
            metrics.NOTIFICATIONS.labels(result="unknown_resource").inc()
            continue
        metrics.NOTIFICATIONS.labels(result="accepted").inc()
        ids = origins.setdefault(origin, [])
        object_id = object_id_of(item)
        if object_id is not None:
            ids.append(object_id)
    for origin, ids in sorted(origins.items()):
        if hooks.notified is not None:
            await hooks.notified(origin, ids)
        await hooks.wake(origin)
    return web.Response(status=202)


async def handle_lifecycle(request: web.Request) -> web.Response:
    validation = _validation(request)
    if validation is not None:
        return validation
    items = await _trusted_items(request)
    if isinstance(items, web.Response):
        return items
    hooks = request.app[HOOKS_KEY]
    for item in items:
        await _lifecycle_event(hooks, item)
    return web.Response(status=202)


async def handle_healthz(request: web.Request) -> web.Response:
    healthy, details = await request.app[HOOKS_KEY].health()
    return web.json_response(
        {"status": "ok" if healthy else "unhealthy", **details}, status=200 if healthy else 503
    )
