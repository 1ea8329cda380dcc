"""What every source round shares: its context and its report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        self.changes = sum(
            counts.get(f"{kind}_{op}", 0)
            for kind in ("entities", "relationships")
            for op in ("created", "updated", "deleted")
        )

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
