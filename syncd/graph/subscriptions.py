"""Change-notification subscriptions (webhooks) for users and groups.

Only directory resources (users, groups) support them among what we sync; Intune and Entra
devices are polled/delta'd instead. ``clientState`` is a secret: it is sent, never logged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from syncd.graph.client import GraphClient

AUTHORIZING_TOKEN_LIFETIME = 1800.0
"""Renew and reauthorize with an access token valid for at least this long (seconds): Graph keeps
the subscription authorized until that token expires, then pauses its notifications."""
DIRECTORY_MAX = timedelta(minutes=41_760)
"""Users, groups and other directory resources: 41,760 minutes (29 days; docs say "under 29 days")."""

_MAX_BY_KIND: list[tuple[tuple[str, ...], timedelta]] = [
    (("/messages", "/events", "/contacts", "/mailfolders"), timedelta(minutes=4_230)),
    (("presence",), timedelta(minutes=60)),
    (("/drive", "/lists"), timedelta(minutes=42_300)),
]


def max_expiration(resource: str) -> timedelta:
    """The longest lifetime Graph allows for a subscription on ``resource``.

    Stay a few minutes below it when creating or renewing: clocks differ and Graph rejects
    (or will reject) anything beyond the maximum.
    """
    lowered = "/" + resource.strip("/").lower()
    for needles, limit in _MAX_BY_KIND:
        if any(n in lowered for n in needles):
            return limit
    return DIRECTORY_MAX


def format_expiration(when: datetime) -> str:
    """UTC ISO 8601 with a Z; naive datetimes are taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


class SubscriptionsApi:
    """``/subscriptions`` CRUD; 404 surfaces as :class:`~syncd.graph.errors.NotFound`."""

    def __init__(self, client: GraphClient) -> None:
        self._client = client

    async def create(
        self,
        resource: str,
        change_type: str,
        notification_url: str,
        lifecycle_url: str | None,
        client_state: str,
        expiration: datetime,
        *,
        tls_version: str = "v1_2",
    ) -> dict[str, Any]:
        """Create a subscription (Graph validates the notification URLs before answering).

        ``lifecycleNotificationUrl`` can only be set here, never added later by PATCH. Never
        retried blindly: when the answer is lost (timeout, dropped connection, 5xx) Graph may have
        created it, so the error is raised and the caller looks before it tries again.
        """
        body: dict[str, Any] = {
            "changeType": change_type,
            "notificationUrl": notification_url,
            "resource": resource,
            "expirationDateTime": format_expiration(expiration),
            "clientState": client_state,
            "latestSupportedTlsVersion": tls_version,
        }
        if lifecycle_url:
            body["lifecycleNotificationUrl"] = lifecycle_url
        await self._client.ensure_token_lifetime(AUTHORIZING_TOKEN_LIFETIME)
        return await self._client.post("/subscriptions", body, retry_ambiguous=False)

    async def get(self, subscription_id: str) -> dict[str, Any]:
        """One subscription; NotFound once Graph deleted it (expired)."""
        return await self._client.get(f"/subscriptions/{quote(subscription_id, safe='')}")

    async def list(self) -> list[dict[str, Any]]:
        """Every subscription of this app in this tenant (all pages)."""
        return [item async for item in self._client.iter_items("/subscriptions")]

    async def renew(self, subscription_id: str, expiration: datetime) -> dict[str, Any]:
        """Push the expiry out (also reauthorizes)."""
        await self._client.ensure_token_lifetime(AUTHORIZING_TOKEN_LIFETIME)
        return await self._client.patch(
            f"/subscriptions/{quote(subscription_id, safe='')}",
            {"expirationDateTime": format_expiration(expiration)},
        )

    async def reauthorize(self, subscription_id: str) -> None:
        """Answer a ``reauthorizationRequired`` lifecycle event without changing the expiry."""
        await self._client.ensure_token_lifetime(AUTHORIZING_TOKEN_LIFETIME)
        await self._client.post(f"/subscriptions/{quote(subscription_id, safe='')}/reauthorize", None)

    async def delete(self, subscription_id: str) -> None:
        """Delete; NotFound if it was already gone."""
        await self._client.delete(f"/subscriptions/{quote(subscription_id, safe='')}")
