"""Alert evaluation on a round's diff, inside the mirror commit (so alerts are never lost).

The hook runs in the mirror's writer thread within the round's transaction: the alert outbox rows
are committed together with the state change, and a crash loses neither or both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.alerts.rules import RuleSet
    from syncd.alerts.targets import AlertTarget
    from syncd.alerts.types import Lookup
    from syncd.config import Settings
    from syncd.mirror import ChangeHook, Mirror
    from syncd.mirror.types import AlertRow, Change
    from syncd.sources.base import SourceContext



@dataclass
class AlertPipeline:
    """The loaded rules and delivery targets."""

    rules: RuleSet
    targets: Sequence[AlertTarget]

    def rows(self, changes: list[Change], lookup: Lookup) -> list[AlertRow]:
        from syncd.alerts.delivery import alerts_to_rows

        if not changes:
            return []
        return list(alerts_to_rows(self.rules.evaluate(changes, lookup), self.targets))


def change_hook_for(ctx: SourceContext) -> ChangeHook | None:
    """The commit hook for a non-baseline round, or None when alerts are off."""
    pipeline = ctx.alerts
    if pipeline is None:
        return None
    return pipeline.rows


class MirrorAlertStore:
    """The alert outbox of the mirror, in the shape the alert dispatcher reads (plain dicts)."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror

    async def enqueue_alerts(self, rows: list[AlertRow]) -> int:
        return await self.mirror.enqueue_alerts(rows)

    async def due_alerts(self, now: float, limit: int) -> list[dict[str, Any]]:
        return [dataclasses.asdict(row) for row in await self.mirror.due_alerts(now, limit)]

    async def ack_alert(self, row_id: int) -> None:
        await self.mirror.ack_alert(row_id)

    async def retry_alert(self, row_id: int, next_attempt: float, error: str) -> None:
        await self.mirror.retry_alert(row_id, next_attempt, error)


def build_alert_pipeline(settings: Settings) -> AlertPipeline | None:
    """Rules (the configured file or the built-in defaults) and targets, or None when alerts are off."""
    if not settings.alerts.enabled:
        return None
    from syncd.alerts.rules import RuleSet
    from syncd.alerts.targets import targets_from_config

    params: dict[str, Any] = {}
    privileged: dict[str, Any] = {}
    if settings.alerts.privileged_group_names:
        privileged["names"] = list(settings.alerts.privileged_group_names)
    if settings.alerts.privileged_group_ids:
        privileged["ids"] = list(settings.alerts.privileged_group_ids)
    if privileged:
        params["privileged_groups"] = privileged
    if settings.alerts.rules_file:
        rules = RuleSet.load(Path(settings.alerts.rules_file), params=params or None)
    else:
        rules = RuleSet.default(params=params or None)
    return AlertPipeline(rules=rules, targets=targets_from_config(settings.alerts.targets))
