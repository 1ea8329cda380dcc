"""Alert evaluation on a round's diff, inside the mirror commit (so alerts are never lost).

The hook runs in the mirror's writer thread within the round's transaction: the alert outbox rows
are committed together with the state change, and a crash loses neither or both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.alerts.delivery import AlertTarget
    from syncd.alerts.rules import RuleSet
    from syncd.mirror.types import AlertRow, Change
    from syncd.sources.base import SourceContext

Lookup = Callable[[str], Mapping[str, Any] | None]
ChangeHook = Callable[[list["Change"], Lookup], list["AlertRow"]]


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
