"""Value shapes of the alerts package: the Change it reads and the Alert it produces.

``Change`` belongs to the mirror (``syncd.mirror.types``); alerts only read it, so they code
against a structural Protocol and keep working whatever module ends up defining it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
OPS: tuple[str, ...] = ("created", "updated", "deleted")

Lookup = Callable[[str], Mapping[str, Any] | None]
"""Current entity by ``_key`` (None when unknown): used for relationship endpoint conditions."""


class ChangeLike(Protocol):
    """The shape of ``syncd.mirror.types.Change`` (docs/architecture.md), read-only."""

    @property
    def kind(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def old(self) -> Mapping[str, Any] | None: ...
    @property
    def new(self) -> Mapping[str, Any] | None: ...
    @property
    def from_key(self) -> str | None: ...
    @property
    def to_key(self) -> str | None: ...


@dataclass(frozen=True)
class SampleChange:
    """A concrete Change for offline use (``syncd alerts test``, tests): same fields as the mirror's."""

    kind: str
    op: str
    type: str
    key: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    from_key: str | None = None
    to_key: str | None = None


@dataclass(frozen=True)
class Alert:
    """One fired rule for one change. ``alert_id`` is stable across replays so receivers can dedupe."""

    alert_id: str
    rule_id: str
    severity: str
    message: str
    change: dict[str, Any]
    """Summary: kind, type, key, op, displayName, changed properties (old/new); never raw objects."""
    timestamp: float
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the generic webhook body and the alert outbox payload."""
        return {
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "severity": self.severity,
            "message": self.message,
            "description": self.description,
            "change": self.change,
            "timestamp": self.timestamp,
            "source": "syncd",
        }
