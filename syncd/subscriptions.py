"""Keeps Graph change-notification subscriptions for users and groups alive.

Ids and expiry live in the mirror so a restart reuses them (no duplicates). A subscription is
renewed at about half its lifetime, recreated when Graph says 404, and reauthorized when Graph
sends `reauthorizationRequired`. The clientState itself is never stored, only its hash.

Creation never leaves duplicates behind: a create whose answer was lost (timeout, dropped
connection, 5xx) may have worked, so Graph's list is searched for it before trying again; and a
subscription of ours that Graph has but the mirror does not (a crash between the create and its
save) is adopted when its clientState proves it ours, else deleted, before a new one is made.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from syncd import metrics
from syncd.graph.errors import GraphAuthError, GraphError, GraphTransportError, NotFound
from syncd.graph.subscriptions import SubscriptionsApi, max_expiration
from syncd.mirror import Mirror

log = structlog.get_logger(__name__)

CHANGE_TYPE = "updated,deleted"
RESOURCES = ("users", "groups")
CREATE_ATTEMPTS = 3
CREATE_BACKOFF = 2.0
MATCH_EXPIRY = timedelta(minutes=2)
"""A listed subscription whose expiry is this close to what a lost create asked for is that create."""


def _answer_lost(exc: GraphError) -> bool:
    """No answer, or one that does not say whether the request was processed."""
    return isinstance(exc, GraphTransportError) or exc.status in (500, 502, 503, 504)


def _same_resource(a: object, b: str) -> bool:
    return isinstance(a, str) and a.strip("/").lower() == b.strip("/").lower()


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, tail = text.partition(".")
        frac = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(frac) :]
        text = f"{head}.{frac[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Deletion:
    """What deleting the recorded subscriptions did."""

    deleted: int = 0
    failures: list[tuple[str, GraphError | GraphAuthError]] = field(default_factory=list)
    """(subscription id, why) for each one Graph did not delete; its record is kept."""


async def delete_recorded(api: SubscriptionsApi, mirror: Mirror) -> Deletion:
    """Delete every subscription the mirror records: on Graph, then its record.

    One already gone on Graph (404: expired, deleted by hand) counts as deleted. One that failed
    keeps its record, so running again retries it; a token failure stops at once (every other
    delete would fail the same way). `syncd uninstall` and `syncd subscriptions delete` both go
    through here.
    """
    result = Deletion()
    for record in await mirror.list_subscriptions():
        sub_id = str(record["id"])
        try:
            await api.delete(sub_id)
        except NotFound:
            pass
        except GraphAuthError as exc:
            result.failures.append((sub_id, exc))
            break
        except GraphError as exc:
            result.failures.append((sub_id, exc))
            continue
        await mirror.delete_subscription(sub_id)
        result.deleted += 1
    return result


class SubscriptionManager:
    """Create, reuse, renew and reauthorize the daemon's subscriptions."""

    def __init__(
        self,
        api: SubscriptionsApi,
        mirror: Mirror,
        *,
        notification_url: str,
        lifecycle_url: str,
        client_state: str,
        resources: Sequence[str] = RESOURCES,
        lifetime: timedelta | None = None,
        on_wake: Callable[[str], Awaitable[None]] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.mirror = mirror
        self.notification_url = notification_url
        self.lifecycle_url = lifecycle_url
        self._client_state = client_state
        self.client_state_hash = hashlib.sha256(client_state.encode()).hexdigest()
        self.resources = list(resources)
        self.lifetime = lifetime
        self.on_wake = on_wake
        self.now = now

    def _lifetime(self, resource: str) -> timedelta:
        limit = max_expiration(resource) - timedelta(minutes=5)
        return min(self.lifetime, limit) if self.lifetime else limit

    async def ensure(self) -> dict[str, str]:
        """One live subscription per resource: reuse the stored one if Graph still has it."""
        stored = {s["resource"]: s for s in await self.mirror.list_subscriptions()}
        result: dict[str, str] = {}
        for resource in self.resources:
            record = stored.get(resource)
            sub_id = await self._reuse(record) if record else None
            if sub_id is None:
                sub_id = await self._create(resource)
            result[resource] = sub_id
        await self.update_metrics()
        return result

    async def _reuse(self, record: dict[str, Any]) -> str | None:
        sub_id = str(record["id"])
        expires = _parse_time(record.get("expiration"))
        if (
            record.get("client_state_hash") != self.client_state_hash
            or expires is None
            or expires <= self.now()
        ):
            await self._replace(sub_id)
            return None
        try:
            remote = await self.api.get(sub_id)
        except NotFound:
            await self.mirror.delete_subscription(sub_id)
            return None
        if remote.get("notificationUrl") != self.notification_url:
            await self._replace(sub_id)
            return None
        # While we were down its authorization may have lapsed (Graph then holds notifications
        # back until a reauthorization): reauthorize now rather than at the next challenge.
        try:
            await self.api.reauthorize(sub_id)
        except NotFound:
            await self.mirror.delete_subscription(sub_id)
            return None
        except GraphError as exc:
            log.warning("subscription reauthorization failed", subscription_id=sub_id, status=exc.status)
        log.info("subscription reused", resource=record["resource"], subscription_id=sub_id)
        return sub_id

    async def _create(self, resource: str) -> str:
        adopted = await self._adopt_leftover(resource)
        if adopted is not None:
            return adopted
        expiration = self.now() + self._lifetime(resource)
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                created = await self.api.create(
                    resource,
                    CHANGE_TYPE,
                    self.notification_url,
                    self.lifecycle_url,
                    self._client_state,
                    expiration,
                )
                break
            except GraphError as exc:
                if not _answer_lost(exc):
                    raise
                found = await self._find_created(resource, expiration)
                if found is not None:
                    log.info("subscription create answered nothing, but it worked", resource=resource)
                    created = found
                    break
                if attempt == CREATE_ATTEMPTS:
                    raise
                log.warning(
                    "subscription create failed without an answer; retrying",
                    resource=resource,
                    error=str(exc)[:200],
                )
                await asyncio.sleep(CREATE_BACKOFF * attempt)
        sub_id = str(created["id"])
        actual = _parse_time(created.get("expirationDateTime")) or expiration
        await self.mirror.save_subscription(sub_id, resource, actual, self.client_state_hash)
        log.info(
            "subscription created", resource=resource, subscription_id=sub_id, expires=actual.isoformat()
        )
        return sub_id

    async def _ours_on_graph(self, resource: str) -> list[dict[str, Any]]:
        """Graph's subscriptions for `resource` to our URL that the mirror does not know."""
        stored = {str(r["id"]) for r in await self.mirror.list_subscriptions()}
        return [
            sub
            for sub in await self.api.list()
            if _same_resource(sub.get("resource"), resource)
            and sub.get("notificationUrl") == self.notification_url
            and str(sub.get("id")) not in stored
        ]

    async def _find_created(self, resource: str, expiration: datetime) -> dict[str, Any] | None:
        """The subscription a create without an answer made, if Graph has it."""
        for sub in await self._ours_on_graph(resource):
            expires = _parse_time(sub.get("expirationDateTime"))
            if expires is not None and abs(expires - expiration) <= MATCH_EXPIRY:
                return sub
        return None

    def _client_state_is_ours(self, sub: dict[str, Any]) -> bool:
        given = sub.get("clientState")
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self._client_state.encode())

    async def _adopt_leftover(self, resource: str) -> str | None:
        """A subscription of ours that Graph has but the mirror lost: adopt one, delete the rest."""
        leftovers = await self._ours_on_graph(resource)
        keep: dict[str, Any] | None = None
        for sub in leftovers:
            expires = _parse_time(sub.get("expirationDateTime"))
            fresh = expires is not None and expires - self.now() > self._lifetime(resource) / 2
            if keep is None and fresh and self._client_state_is_ours(sub):
                keep = sub
                continue
            # Graph does not show its clientState (or it is another one, or about to expire):
            # a duplicate we cannot trust. Delete it rather than receive everything twice.
            log.info("deleting a leftover subscription", resource=resource, subscription_id=sub.get("id"))
            try:
                await self.api.delete(str(sub.get("id")))
            except GraphError as exc:
                log.debug("leftover delete failed", subscription_id=sub.get("id"), status=exc.status)
        if keep is None:
            return None
        sub_id = str(keep["id"])
        expires = _parse_time(keep.get("expirationDateTime"))
        assert expires is not None
        await self.mirror.save_subscription(sub_id, resource, expires, self.client_state_hash)
        log.info("subscription adopted", resource=resource, subscription_id=sub_id)
        return sub_id

    async def _replace(self, sub_id: str) -> None:
        """A stored subscription we will not reuse: delete it (best effort) and its record."""
        try:
            await self.api.delete(sub_id)
        except GraphError as exc:
            log.debug("subscription delete failed", subscription_id=sub_id, status=exc.status)
        await self.mirror.delete_subscription(sub_id)

    async def renew_due(self) -> int:
        """Renew subscriptions past half of their lifetime; recreate the ones Graph lost; create
        the ones that could not be created before (Graph down at start)."""
        renewed = 0
        records = await self.mirror.list_subscriptions()
        for record in records:
            resource = str(record["resource"])
            expires = _parse_time(record.get("expiration"))
            if expires is not None and expires - self.now() > self._lifetime(resource) / 2:
                continue
            renewed += 1
            await self.renew(str(record["id"]), resource)
        for resource in set(self.resources) - {str(r["resource"]) for r in records}:
            await self._create(resource)
            if self.on_wake:  # changes made while there was no subscription
                await self.on_wake(resource)
        await self.update_metrics()
        return renewed

    async def renew(self, sub_id: str, resource: str) -> str:
        expiration = self.now() + self._lifetime(resource)
        try:
            updated = await self.api.renew(sub_id, expiration)
        except NotFound:
            log.warning("subscription vanished, recreating", resource=resource, subscription_id=sub_id)
            await self.mirror.delete_subscription(sub_id)
            return await self._create(resource)
        actual = _parse_time(updated.get("expirationDateTime")) or expiration
        await self.mirror.save_subscription(sub_id, resource, actual, self.client_state_hash)
        log.info("subscription renewed", resource=resource, subscription_id=sub_id)
        return sub_id

    async def handle_lifecycle(self, sub_id: str, event: str) -> str | None:
        """`reauthorizationRequired`: reauthorize (or renew); `subscriptionRemoved`: recreate;
        `missed`: notifications were lost. Always wake the resource: its delta round catches up
        whatever happened while notifications were paused, removed or lost. Returns the resource
        (None for a subscription that is not ours)."""
        records = {str(r["id"]): r for r in await self.mirror.list_subscriptions()}
        record = records.get(sub_id)
        if record is None:
            log.warning(
                "lifecycle event for an unknown subscription", subscription_id=sub_id[:64], event=event
            )
            return None
        resource = str(record["resource"])
        if event == "reauthorizationRequired":
            try:
                await self.api.reauthorize(sub_id)
                log.info("subscription reauthorized", resource=resource, subscription_id=sub_id)
            except NotFound:
                await self.mirror.delete_subscription(sub_id)
                await self._create(resource)
            except GraphError:
                await self.renew(sub_id, resource)
        elif event == "subscriptionRemoved":
            await self.mirror.delete_subscription(sub_id)
            await self._create(resource)
        elif event == "missed":
            log.info("Graph could not deliver some change notifications: catching up", resource=resource)
        if self.on_wake:
            await self.on_wake(resource)
        return resource

    async def update_metrics(self) -> None:
        for record in await self.mirror.list_subscriptions():
            expires = _parse_time(record.get("expiration"))
            if expires is not None:
                metrics.set_subscription_expiry(str(record["resource"]), expires.timestamp())
