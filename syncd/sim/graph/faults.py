"""Switchable faults and knobs, plus per-route request counters.

Every fault is off by default and rate-controlled; decisions come from one seeded RNG so a test
run with the same seed and request order sees the same faults.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from syncd.sim.switches import apply_changes

DAY = 86400.0

DeltaTop = Literal["reject", "ignore"]
"""`$top` on users/groups delta: refused (the overview: "not supported") or silently ignored."""
DeltaSelectError = Literal["400", "400-bare", "501"]
"""How delta refuses a `$select` it does not support: a 400 naming the properties, a bare 400, or
the older overview's 501."""
ForcedFault = Literal["reset_next", "throttle_next", "error_next", "drop_response_next"]
"""The `*_next` counters: how many of the next requests get that fault for sure."""
LifecycleVariant = Literal["documented", "observed"]
"""Lifecycle notification shape: the documented one (`tenantId`) or the observed one."""


@dataclass
class Faults:
    """All runtime-switchable behaviour of the Graph simulator (`PUT /_sim/faults`)."""

    seed: int = 0
    # throttling: 429 with this Retry-After (fractional allowed) at this rate, or for the next N requests
    throttle_rate: float = 0.0
    retry_after: str = "1.5"
    throttle_next: int = 0
    # 5xx: random 503/504 (503 carries Retry-After when error_retry_after is set)
    error_rate: float = 0.0
    error_statuses: list[int] = field(default_factory=lambda: [503, 504])
    error_retry_after: str | None = "2"
    error_next: int = 0
    # transport
    latency_ms: float = 0.0
    reset_rate: float = 0.0
    reset_next: int = 0
    # lost answers: the request IS processed, then the connection drops before the response
    # (a create whose 201 never arrives); optionally only for requests whose "METHOD /path"
    # contains the filter (e.g. "POST /v1.0/subscriptions")
    drop_response_next: int = 0
    drop_response_path: str | None = None
    # delta
    delta_page_size: int = 200
    members_slice: int = 100
    empty_page_rate: float = 0.0
    replay_rate: float = 0.0
    delta_token_ttl_seconds: float = 7 * DAY
    resync_410: bool = False
    # replication delay ("Processing delays" in the delta overview): each change becomes visible
    # to delta after a random delay drawn per change from [min, max] seconds; its change
    # notification is sent at once, so it can arrive before delta shows the change
    replication_delay_min: float = 0.0
    replication_delay_max: float = 0.0
    # `$top` on users/groups delta: the overview says "not supported" -> 400 ("reject", the
    # strict reading); an observed reading is that it is silently ignored ("ignore")
    delta_top: DeltaTop = "reject"
    # how delta refuses an unsupported `$select` property: "400" (names them, microsoft-graph.md
    # addendum), "400-bare" (a 400 that does not name them) or "501" (the older overview's
    # NotImplemented "This operation target is not yet supported.")
    delta_select_error: DeltaSelectError = "400"
    # auth
    access_token_ttl: int = 3599
    # subscriptions / notifications
    allow_http_notification_url: bool = False
    accept_created_change_type: bool = False
    subscription_quota: int = 100
    max_subscription_minutes: int = 41760
    validation_timeout: float = 10.0
    notify_drop_rate: float = 0.0
    notify_delay_seconds: float = 0.0
    lifecycle_variant: LifecycleVariant = "documented"  # or "observed" (organizationId, not tenantId)
    lifecycle_lead_seconds: float = 600.0
    # reauthorizationRequired on the access-token cadence: while the access token that created
    # (or last reauthorized/renewed) a subscription expires within `reauth_lead_seconds`, a
    # challenge is sent every `reauth_repeat_seconds` (the lifecycle doc's example: every 15 min
    # in the token's last hour); once that token expired without a reauthorization, change
    # notifications of the subscription are paused (lost) until one comes
    reauth_on_token_cadence: bool = True
    reauth_lead_seconds: float = 3600.0
    reauth_repeat_seconds: float = 900.0
    reauth_pause: bool = True
    # a `missed` lifecycle event is sent when change notifications of a subscription could not
    # be delivered (dropped, slow endpoint, gave up)
    missed_on_drop: bool = True

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Apply a partial update; returns unknown keys (rejected by the admin API)."""
        return apply_changes(self, changes)

    def to_json(self) -> dict[str, Any]:
        """Current settings as JSON."""
        return dataclasses.asdict(self)


class FaultInjector:
    """Decides per request whether to inject a fault (seeded, deterministic for a request order)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)

    def reseed(self) -> None:
        """Restart the decision sequence from the configured seed."""
        self.rng = random.Random(self.faults.seed)

    def chance(self, rate: float) -> bool:
        """True with probability `rate` (no RNG draw when the rate is 0, keeping sequences stable)."""
        return rate > 0 and self.rng.random() < rate

    def take_next(self, name: ForcedFault) -> bool:
        """Consume one forced fault from a `*_next` counter."""
        n = int(getattr(self.faults, name))
        if n > 0:
            setattr(self.faults, name, n - 1)
            return True
        return False

    def drop_response(self, method: str, path: str) -> bool:
        """Whether this (processed) request loses its answer: `drop_response_next` on matching ones."""
        f = self.faults
        if f.drop_response_path and f.drop_response_path not in f"{method.upper()} {path}":
            return False
        return self.take_next("drop_response_next")

    def decide(self) -> str | None:
        """Which fault (reset, 429, 5xx) hits this request, if any."""
        f = self.faults
        if self.take_next("reset_next") or self.chance(f.reset_rate):
            return "reset"
        if self.take_next("throttle_next") or self.chance(f.throttle_rate):
            return "429"
        if self.take_next("error_next") or self.chance(f.error_rate):
            statuses = f.error_statuses or [503]
            return str(statuses[self.rng.randrange(len(statuses))])
        return None


class Counters:
    """Request counts per route (method + route pattern) and per status."""

    def __init__(self) -> None:
        self.routes: dict[str, dict[str, int]] = {}

    def count(self, route: str, status: int) -> None:
        """Record one answered request."""
        c = self.routes.setdefault(route, {"requests": 0, "throttled": 0})
        c["requests"] += 1
        if status == 429:
            c["throttled"] += 1
        key = str(status)
        c[key] = c.get(key, 0) + 1

    def total(self, key: str = "requests") -> int:
        """Sum of one counter over all routes."""
        return sum(c.get(key, 0) for c in self.routes.values())

    def reset(self) -> None:
        """Forget all counts."""
        self.routes.clear()
