"""`/subscriptions`: create (with the validation handshake), get, list, renew, delete, reauthorize.

Validation is strict like Graph: HTTPS URLs only (unless `allow_http_notification_url`), max
lifetime 41,760 minutes for directory resources, clientState <= 128 chars, per app+tenant quota.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from syncd.sim.graph.keys import APP_ID, GRAPH_SIM, TOKEN_EXPIRY
from syncd.sim.graph.odata import GraphError, context_url, json_response, read_json

if TYPE_CHECKING:
    from syncd.sim.graph.app import GraphSim

_RESOURCE = re.compile(r"^/?(users|groups)(?:/([0-9a-fA-F-]{36}))?$")
_CHANGE_TYPES = {"created", "updated", "deleted"}


@dataclass
class Subscription:
    """One webhook subscription."""

    id: str
    resource: str
    resource_key: str
    resource_id: str | None
    change_types: set[str]
    change_type_raw: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires_at: float
    app_id: str
    tls_version: str
    lifecycle_sent: bool = False
    authorized_until: float = float("inf")
    """Expiry of the access token that created, last reauthorized or renewed the subscription."""
    last_challenge: float = 0.0
    """When the last reauthorizationRequired of the access-token cadence was sent."""

    def paused(self, now: float) -> bool:
        """Delivery stops once the authorizing token expired without a reauthorization."""
        return now >= self.authorized_until

    def expiration_iso(self) -> str:
        """Graph's 7-digit fraction UTC format."""
        return datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"

    def to_json(self) -> dict[str, Any]:
        """The subscription resource as Graph returns it."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": self.change_type_raw,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": self.expiration_iso(),
            "creatorId": self.app_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": self.tls_version,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


class SubscriptionStore:
    """Live subscriptions by id."""

    def __init__(self, sim: GraphSim) -> None:
        self.sim = sim
        self._subs: dict[str, Subscription] = {}

    def get(self, sub_id: str) -> Subscription | None:
        """A live (unexpired) subscription."""
        sub = self._subs.get(sub_id)
        if sub is not None and sub.expires_at <= self.sim.clock():
            return None
        return sub

    def all(self) -> Iterable[Subscription]:
        """Every stored subscription, expired or not."""
        return list(self._subs.values())

    def live(self) -> list[Subscription]:
        """Unexpired subscriptions."""
        now = self.sim.clock()
        return [s for s in self._subs.values() if s.expires_at > now]

    def add(self, sub: Subscription) -> None:
        """Store a new subscription."""
        self._subs[sub.id] = sub

    def remove(self, sub_id: str) -> bool:
        """Delete; False if unknown."""
        return self._subs.pop(sub_id, None) is not None

    def clear(self) -> None:
        """Drop everything."""
        self._subs.clear()


def _parse_dt(raw: Any) -> float | None:
    if not isinstance(raw, str):
        return None
    s = raw.strip().replace("Z", "+00:00")
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _check_url(sim: GraphSim, url: Any, name: str) -> str:
    """A notification URL Graph accepts: https with a host (http only under the fault switch)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    http_ok = sim.faults.allow_http_notification_url
    if (
        parts is None
        or not parts.hostname
        or not (parts.scheme == "https" or (parts.scheme == "http" and http_ok))
    ):
        raise GraphError(400, "InvalidRequest", f"The {name} must be an HTTPS URL.")
    return str(url)


async def _handshake(sim: GraphSim, url: str) -> None:
    """The validation handshake with a notification URL; its failure refuses the request."""
    problem = await sim.notifier.validate(url)
    if problem is not None:
        raise GraphError(400, "InvalidRequest", problem)


def _check_expiry(sim: GraphSim, raw: Any) -> float:
    exp = _parse_dt(raw)
    if exp is None:
        raise GraphError(
            400,
            "InvalidRequest",
            "expirationDateTime is required and must be a valid ISO 8601 UTC date-time.",
        )
    now = sim.clock()
    if exp <= now:
        raise GraphError(400, "InvalidRequest", "Subscription expiration must be in the future.")
    limit = sim.faults.max_subscription_minutes
    if exp > now + limit * 60:
        raise GraphError(
            400, "InvalidRequest", f"Subscription expiration can only be {limit} minutes in the future."
        )
    return exp


def _entity(request: web.Request, sub: Subscription, status: int = 200) -> web.Response:
    """The subscription resource as a response."""
    return json_response(
        {"@odata.context": context_url(request, "subscriptions/$entity"), **sub.to_json()}, status=status
    )


async def create_subscription(request: web.Request) -> web.Response:
    """POST /subscriptions."""
    sim = request.app[GRAPH_SIM]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    resource = body.get("resource")
    m = _RESOURCE.match(resource) if isinstance(resource, str) else None
    if m is None:
        raise GraphError(
            400,
            "InvalidRequest",
            f"Resource '{resource}' is not supported for change notifications by the simulator.",
        )
    raw_ct = body.get("changeType")
    cts = {c.strip() for c in raw_ct.split(",")} if isinstance(raw_ct, str) else set()
    if not cts or not cts <= _CHANGE_TYPES:
        raise GraphError(400, "InvalidRequest", f"Invalid changeType '{raw_ct}'.")
    if "created" in cts and not sim.faults.accept_created_change_type:
        raise GraphError(
            400,
            "InvalidRequest",
            f"The changeType 'created' is not supported for resource '{resource}'. "
            "Supported change types: updated, deleted.",
        )
    url = _check_url(sim, body.get("notificationUrl"), "notificationUrl")
    lifecycle = body.get("lifecycleNotificationUrl")
    if lifecycle is not None:
        lifecycle = _check_url(sim, lifecycle, "lifecycleNotificationUrl")
    client_state = body.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
        raise GraphError(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
    tls = body.get("latestSupportedTlsVersion", "v1_2")
    if tls not in ("v1_0", "v1_1", "v1_2", "v1_3"):
        raise GraphError(400, "InvalidRequest", f"Invalid latestSupportedTlsVersion '{tls}'.")
    if body.get("includeResourceData"):
        raise GraphError(
            400,
            "InvalidRequest",
            "Rich notifications (includeResourceData) are not supported for this resource.",
        )
    exp = _check_expiry(sim, body.get("expirationDateTime"))
    app_id = request[APP_ID]
    mine = [s for s in sim.subscriptions.live() if s.app_id == app_id]
    if len(mine) >= sim.faults.subscription_quota:
        raise GraphError(
            403,
            "Forbidden",
            f"Subscription quota exceeded: at most {sim.faults.subscription_quota} subscriptions "
            "per application and tenant for directory resources.",
        )
    for target in [url] + ([lifecycle] if lifecycle else []):
        await _handshake(sim, target)
    sub = Subscription(
        id=str(uuid.uuid4()),
        resource=str(resource),
        resource_key=m.group(1),
        resource_id=m.group(2),
        change_types=cts,
        change_type_raw=str(raw_ct),
        notification_url=url,
        lifecycle_url=lifecycle or None,
        client_state=client_state,
        expires_at=exp,
        app_id=app_id,
        tls_version=str(tls),
        authorized_until=request[TOKEN_EXPIRY],
        last_challenge=sim.clock(),
    )
    sim.subscriptions.add(sub)
    return _entity(request, sub, status=201)


def _own(request: web.Request) -> Subscription:
    """The calling app's live subscription named by the path (404 for anyone else's)."""
    sub_id = request.match_info["id"]
    sub = request.app[GRAPH_SIM].subscriptions.get(sub_id)
    if sub is None or sub.app_id != request[APP_ID]:
        raise GraphError(404, "ResourceNotFound", f"The object was not found: subscription {sub_id}.")
    return sub


async def list_subscriptions(request: web.Request) -> web.Response:
    """GET /subscriptions (the calling app's)."""
    sim = request.app[GRAPH_SIM]
    subs = [s.to_json() for s in sim.subscriptions.live() if s.app_id == request[APP_ID]]
    return json_response({"@odata.context": context_url(request, "subscriptions"), "value": subs})


async def get_subscription(request: web.Request) -> web.Response:
    """GET /subscriptions/{id}."""
    return _entity(request, _own(request))


async def patch_subscription(request: web.Request) -> web.Response:
    """PATCH /subscriptions/{id}: renew (expirationDateTime), optionally notificationUrl."""
    sim = request.app[GRAPH_SIM]
    sub = _own(request)
    body = await read_json(request)
    if not isinstance(body, dict) or not body:
        raise GraphError(400, "BadRequest", "Empty PATCH payload.")
    if "lifecycleNotificationUrl" in body:
        raise GraphError(
            400,
            "InvalidRequest",
            "lifecycleNotificationUrl can only be set when the subscription is created.",
        )
    unknown = set(body) - {"expirationDateTime", "notificationUrl"}
    if unknown:
        raise GraphError(
            400, "InvalidRequest", f"Property '{sorted(unknown)[0]}' cannot be updated on a subscription."
        )
    if "notificationUrl" in body:
        url = _check_url(sim, body["notificationUrl"], "notificationUrl")
        await _handshake(sim, url)
        sub.notification_url = url
    if "expirationDateTime" in body:
        sub.expires_at = _check_expiry(sim, body["expirationDateTime"])
        sub.lifecycle_sent = False
        sub.authorized_until = request[TOKEN_EXPIRY]  # renewing also reauthorizes
    return _entity(request, sub)


async def delete_subscription(request: web.Request) -> web.Response:
    """DELETE /subscriptions/{id} → 204."""
    sub = _own(request)
    request.app[GRAPH_SIM].subscriptions.remove(sub.id)
    return web.Response(status=204)


async def reauthorize_subscription(request: web.Request) -> web.Response:
    """POST /subscriptions/{id}/reauthorize → 204 (recorded so tests can see it)."""
    sub = _own(request)
    request.app[GRAPH_SIM].reauthorized.append(sub.id)
    sub.authorized_until = request[TOKEN_EXPIRY]
    return web.Response(status=204)


def register_subscription_routes(app: web.Application) -> None:
    """Routes under both version roots."""
    for ver in ("v1.0", "beta"):
        r = app.router
        r.add_post(f"/{ver}/subscriptions", create_subscription)
        r.add_get(f"/{ver}/subscriptions", list_subscriptions)
        r.add_get(f"/{ver}/subscriptions/{{id}}", get_subscription)
        r.add_patch(f"/{ver}/subscriptions/{{id}}", patch_subscription)
        r.add_delete(f"/{ver}/subscriptions/{{id}}", delete_subscription)
        r.add_post(f"/{ver}/subscriptions/{{id}}/reauthorize", reauthorize_subscription)
