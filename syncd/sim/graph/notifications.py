"""Change-notification and lifecycle-notification delivery.

Real Graph: 3 s client timeout; undelivered notifications are retried with ~10 min backoff for up
to 4 hours; an endpoint answering slower than 2,900 ms for >= 10 % of the last window (flushed
every 10 min, judged after 100 notifications) is throttled (delayed 10 min) and at >= 15 % its
notifications are dropped. The same rules apply here with time values scaled down by default
(see `DeliveryConfig`) so tests finish in seconds; `DeliveryConfig.real()` gives the real schedule.

Lifecycle events (change-notifications-lifecycle-events.md): `reauthorizationRequired` before the
subscription expires and on the access-token cadence (while the token that authorized the
subscription expires within the hour, every 15 min; once it expired without a reauthorization,
change notifications are paused and lost), and `missed` when change notifications could not be
delivered (dropped, slow endpoint, retries exhausted).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

if TYPE_CHECKING:
    from syncd.sim.graph.app import GraphSim
    from syncd.sim.graph.subscriptions import Subscription

_KIND_TO_CHANGE = {
    "created": "updated",
    "updated": "updated",
    "soft_deleted": "updated",
    "restored": "updated",
    "members_changed": "updated",
    "hard_deleted": "deleted",
}
"""Creation and soft-delete of users/groups fire `updated` (supported-resources doc)."""

_ODATA = {"users": ("Users", "#Microsoft.Graph.User"), "groups": ("Groups", "#Microsoft.Graph.Group")}


@dataclass
class DeliveryConfig:
    """Delivery timing; defaults are the real values scaled down for tests (real values in comments)."""

    timeout: float = 3.0  # real: 3 s
    retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)  # real: ~10 min backoff, give up after 4 h
    slow_seconds: float = 2.9  # real: 2,900 ms
    window_seconds: float = 60.0  # real: 10 min
    min_samples: int = 100  # real: 100
    delay_ratio: float = 0.10  # real: 10 %
    drop_ratio: float = 0.15  # real: 15 %
    throttled_delay: float = 2.0  # real: 10 min
    batch_window: float = 0.05
    tick: float = 0.25

    @classmethod
    def real(cls) -> DeliveryConfig:
        """The documented production schedule."""
        return cls(retry_delays=tuple([600.0] * 24), window_seconds=600.0, throttled_delay=600.0, tick=5.0)


@dataclass
class EndpointStats:
    """Slow-response samples of one notification URL within the window."""

    samples: deque[tuple[float, bool]] = field(default_factory=deque)

    def add(self, now: float, slow: bool, window: float) -> None:
        self.samples.append((now, slow))
        self.trim(now, window)

    def trim(self, now: float, window: float) -> None:
        while self.samples and now - self.samples[0][0] > window:
            self.samples.popleft()

    def slow_ratio(self, min_samples: int) -> float:
        if len(self.samples) < min_samples:
            return 0.0
        return sum(1 for _, s in self.samples if s) / len(self.samples)


class Notifier:
    """Turns tenant changes into webhook POSTs for matching subscriptions."""

    def __init__(
        self, sim: GraphSim, config: DeliveryConfig | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.sim = sim
        self.config = config or DeliveryConfig()
        self.ssl_context = ssl_context
        self.session: aiohttp.ClientSession | None = None
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[bool]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.endpoints: dict[str, EndpointStats] = {}
        self.stats: dict[str, int] = {
            "queued": 0,
            "delivered": 0,
            "failed_attempts": 0,
            "retried": 0,
            "dropped": 0,
            "dropped_slow": 0,
            "delayed_slow": 0,
            "gave_up": 0,
            "lifecycle_sent": 0,
            "expired_subscriptions": 0,
            "paused": 0,
            "missed_sent": 0,
            "reauth_challenges": 0,
        }
        self.log: deque[dict[str, Any]] = deque(maxlen=1000)
        self._seq = int(time.time() * 1e7)

    # ---------------------------------------------------------------- lifecycle of the worker
    async def start(self) -> None:
        """Open the client session and the expiry/lifecycle ticker."""
        connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else True)
        self.session = aiohttp.ClientSession(connector=connector)
        self._ticker = asyncio.create_task(self._tick_loop())
        if self._pending:
            self._schedule_flush()

    async def stop(self) -> None:
        """Cancel outstanding deliveries and close the session."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        tasks = list(self._tasks) + ([self._ticker] if self._ticker else [])
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
            self.session = None

    # ---------------------------------------------------------------- change intake
    def on_change(self, resource: str, kind: str, obj_id: str) -> None:
        """Tenant listener: queue one notification per live matching subscription."""
        change = _KIND_TO_CHANGE.get(kind)
        if change is None or resource not in _ODATA:
            return
        seg, odata_type = _ODATA[resource]
        tid = self.sim.tenant.tenant_id
        now = self.sim.clock()
        for sub in self.sim.subscriptions.live():
            if sub.resource_key != resource or change not in sub.change_types:
                continue
            if sub.resource_id is not None and sub.resource_id != obj_id:
                continue
            if self.sim.faults.reauth_pause and sub.paused(now):
                self.stats["paused"] += 1  # lost: the app must catch up by delta after reauthorizing
                continue
            self._seq += 1
            note: dict[str, Any] = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": sub.expiration_iso(),
                "changeType": change,
                "resource": f"{seg}/{obj_id}",
                "resourceData": {
                    "@odata.type": odata_type,
                    "@odata.id": f"{seg}/{obj_id}",
                    "id": obj_id,
                    "organizationId": tid,
                    "sequenceNumber": self._seq,
                },
                "clientState": sub.client_state,
                "tenantId": tid,
            }
            self._pending.setdefault(sub.id, []).append(note)
            self.stats["queued"] += 1
        if self._pending:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_handle is not None or self.session is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._flush_handle = loop.call_later(self.config.batch_window, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        pending, self._pending = self._pending, {}
        for sub_id, notes in pending.items():
            sub = self.sim.subscriptions.get(sub_id)
            if sub is None:
                continue
            self._spawn(self._deliver(sub.notification_url, notes))

    def _spawn(self, coro: Coroutine[Any, Any, bool]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- delivery
    async def _deliver(self, url: str, notes: list[dict[str, Any]], *, lifecycle: bool = False) -> bool:
        faults = self.sim.faults
        inj = self.sim.injector
        if not lifecycle and faults.notify_drop_rate > 0:
            kept = [n for n in notes if not inj.chance(faults.notify_drop_rate)]
            self.stats["dropped"] += len(notes) - len(kept)
            self._missed([n for n in notes if n not in kept])
            notes = kept
            if not notes:
                return False
        if faults.notify_delay_seconds > 0:
            await asyncio.sleep(faults.notify_delay_seconds)
        cfg = self.config
        attempt = 0
        while True:
            ep = self.endpoints.setdefault(url, EndpointStats())
            now = time.monotonic()
            ep.trim(now, cfg.window_seconds)
            ratio = ep.slow_ratio(cfg.min_samples)
            if ratio >= cfg.drop_ratio:
                self.stats["dropped_slow"] += len(notes)
                self._log(url, notes, "dropped_slow", attempt)
                if not lifecycle:
                    self._missed(notes)
                return False
            if ratio >= cfg.delay_ratio:
                self.stats["delayed_slow"] += len(notes)
                await asyncio.sleep(cfg.throttled_delay)
            ok, elapsed, status = await self._post(url, {"value": notes})
            ep.add(time.monotonic(), elapsed > cfg.slow_seconds, cfg.window_seconds)
            self._log(url, notes, "delivered" if ok else "failed", attempt, status, elapsed)
            if ok:
                self.stats["lifecycle_sent" if lifecycle else "delivered"] += len(notes)
                return True
            self.stats["failed_attempts"] += 1
            if attempt >= len(cfg.retry_delays):
                self.stats["gave_up"] += len(notes)
                if not lifecycle:
                    self._missed(notes)
                return False
            await asyncio.sleep(cfg.retry_delays[attempt])
            attempt += 1
            self.stats["retried"] += 1
            notes = [n for n in notes if self.sim.subscriptions.get(str(n["subscriptionId"])) is not None]
            if not notes:
                return False

    async def _post(self, url: str, payload: dict[str, Any]) -> tuple[bool, float, int | None]:
        assert self.session is not None
        start = time.monotonic()
        try:
            async with self.session.post(
                url,
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            ) as resp:
                await resp.read()
                return 200 <= resp.status < 300, time.monotonic() - start, resp.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False, time.monotonic() - start, None

    def _log(
        self,
        url: str,
        notes: list[dict[str, Any]],
        outcome: str,
        attempt: int,
        status: int | None = None,
        elapsed: float = 0.0,
    ) -> None:
        self.log.append(
            {
                "url": url,
                "outcome": outcome,
                "attempt": attempt,
                "status": status,
                "elapsed": round(elapsed, 4),
                "count": len(notes),
                "subscriptionIds": sorted({str(n.get("subscriptionId")) for n in notes}),
            }
        )

    def _missed(self, notes: list[dict[str, Any]]) -> None:
        """One `missed` lifecycle event per subscription whose change notifications were lost."""
        if not self.sim.faults.missed_on_drop or not notes:
            return
        for sub_id in sorted({str(n.get("subscriptionId")) for n in notes}):
            sub = self.sim.subscriptions.get(sub_id)
            if sub is not None and sub.lifecycle_url:
                self.stats["missed_sent"] += 1
                self._spawn(self.send_lifecycle(sub, "missed"))

    # ---------------------------------------------------------------- validation handshake
    async def validate(self, url: str) -> str | None:
        """POST url?validationToken=…; None if the endpoint echoed it correctly, else the error message."""
        if self.session is None:
            return "Subscription validation request failed. Notification endpoint is not reachable."
        token = (
            f"Validation: Testing client application reachability for subscription Request-Id: {self._seq}"
        )
        self._seq += 1
        sep = "&" if "?" in url else "?"
        target = f"{url}{sep}validationToken={quote(token, safe='')}"
        try:
            async with self.session.post(
                target,
                data=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=self.sim.faults.validation_timeout),
            ) as resp:
                body = await resp.text()
                if resp.status != 200:
                    return (
                        "Subscription validation request failed. Notification endpoint must respond with "
                        "200 OK to validation request."
                    )
                if resp.content_type != "text/plain":
                    return (
                        "Subscription validation request failed. Response must be of content type text/plain."
                    )
                if body != token:
                    return (
                        "Subscription validation request failed. Response must exactly match "
                        "validationToken query parameter."
                    )
                return None
        except TimeoutError:
            return "Subscription validation request timed out."
        except (aiohttp.ClientError, OSError):
            return (
                "Subscription validation request failed. Notification endpoint must respond with 200 OK "
                "to validation request."
            )

    # ---------------------------------------------------------------- lifecycle notifications
    def lifecycle_payload(self, sub: Subscription, event: str) -> dict[str, Any]:
        """Documented shape (tenantId) or the observed one (organizationId, extra nulls)."""
        tid = self.sim.tenant.tenant_id
        if self.sim.faults.lifecycle_variant == "observed":
            item: dict[str, Any] = {
                "lifecycleEvent": event,
                "subscriptionId": sub.id,
                "resource": "",
                "clientState": sub.client_state,
                "sequence": None,
                "resourceData": None,
                "encryptedContent": None,
                "organizationId": tid,
                "subscriptionExpirationDateTime": sub.expiration_iso(),
            }
        else:
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": sub.expiration_iso(),
                "tenantId": tid,
                "clientState": sub.client_state,
                "lifecycleEvent": event,
            }
        return {"value": [item]}

    async def send_lifecycle(self, sub: Subscription, event: str = "reauthorizationRequired") -> bool:
        """POST a lifecycle notification to the subscription's lifecycleNotificationUrl."""
        if not sub.lifecycle_url:
            return False
        payload = self.lifecycle_payload(sub, event)
        return await self._deliver(sub.lifecycle_url, payload["value"], lifecycle=True)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick)
            self.tick()

    def tick(self) -> None:
        """Delete expired subscriptions; send reauthorizationRequired shortly before expiry and
        on the access-token cadence."""
        now = self.sim.clock()
        faults = self.sim.faults
        subs = self.sim.subscriptions
        for sub in list(subs.all()):
            if sub.expires_at <= now:
                subs.remove(sub.id)
                self.stats["expired_subscriptions"] += 1
            elif (
                sub.lifecycle_url
                and not sub.lifecycle_sent
                and sub.expires_at - now <= faults.lifecycle_lead_seconds
            ):
                sub.lifecycle_sent = True
                sub.last_challenge = now
                self._spawn(self.send_lifecycle(sub))
            elif (
                sub.lifecycle_url
                and faults.reauth_on_token_cadence
                and sub.authorized_until - now <= faults.reauth_lead_seconds
                and now - sub.last_challenge >= faults.reauth_repeat_seconds
            ):
                sub.last_challenge = now
                self.stats["reauth_challenges"] += 1
                self._spawn(self.send_lifecycle(sub))
