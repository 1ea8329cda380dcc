"""What every source round shares: its context, its report, and what a source is to the engine."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from syncd.mirror.types import CHANGE_COUNTS

if TYPE_CHECKING:
    from syncd.engine import Engine
    from syncd.graph.client import GraphClient
    from syncd.mirror import Mirror
    from syncd.model.convert.common import ConvertContext
    from syncd.sources.alerting import AlertPipeline


@dataclass
class SourceContext:
    """Everything a round needs, injected so rounds stay testable."""

    graph: GraphClient
    mirror: Mirror
    convert: ConvertContext
    alerts: AlertPipeline | None = None


@dataclass
class RoundReport:
    """What one round did: logged as one structured event, fed to metrics and status."""

    origin: str
    kind: str
    """"delta", "full" or "poll"."""
    pages: int = 0
    objects: int = 0
    removed: int = 0
    changes: int = 0
    outbox_added: int = 0
    alerts: int = 0
    started: float = field(default_factory=time.time)
    duration: float = 0.0
    changed_ids: list[str] = field(default_factory=list)
    """Ids of changed raw objects, for follow-ups (Entra device → managed device re-fetch)."""
    baseline: bool = False
    skip_reason: str | None = None
    """Set on a "skipped" round: why the origin is switched off (e.g. the tenant has no Intune)."""
    absent: bool = False
    """A "skipped" round because Graph said definitively that the tenant has no such data (400
    "Request not applicable to target tenant." for Intune), not a 403 or an outage: after a
    grace period the origin's data is removed from J1 (see `Engine.absent_grace`)."""

    def count_changes(self, counts: dict[str, int]) -> None:
        """Changes from a commit's counts (commits do not keep Change objects: memory)."""
        self.changes = sum(counts.get(key, 0) for key in CHANGE_COUNTS)

    def as_log(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "kind": self.kind,
            "pages": self.pages,
            "objects": self.objects,
            "removed": self.removed,
            "changes": self.changes,
            "outbox_added": self.outbox_added,
            "alerts": self.alerts,
            "baseline": self.baseline,
            "duration_s": round(self.duration, 3),
        }


RoundWork = Callable[[SourceContext], Awaitable[RoundReport]]
"""A round's work: what `Engine.run_as_round` runs under an origin's lock (a poll, a re-fetch)."""


class Source(Protocol):
    """A round unit: the engine runs its rounds one at a time and records their outcome."""

    @property
    def origin(self) -> str:
        """The mirror origin its rounds write (and the lock they hold)."""
        ...

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Origins whose committed rounds it reads (lookups, device stamps): a concurrent resync
        runs it after them."""
        ...

    async def run(self, ctx: SourceContext, *, force_full: bool = False) -> RoundReport:
        """One round: delta, poll, or (``force_full``) a full round that sweeps what is gone."""
        ...


@runtime_checkable
class FollowsEntraDevices(Protocol):
    """A source that re-fetches its objects of changed Entra devices at once (Intune managed
    devices): the daemon calls it after a devices delta round that changed a few devices."""

    async def refetch_for_entra_devices(
        self, engine: Engine, entra_device_ids: Sequence[str]
    ) -> RoundReport | None:
        """The re-fetch round (its alerts wake the dispatcher), None when nothing was read."""
        ...
