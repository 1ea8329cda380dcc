"""Value types the mirror hands to the rest of syncd (engine, J1 writer, alerts, status)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict


class MirrorError(Exception):
    """The mirror cannot be used as asked; the message says why and what to do, in plain words."""


@dataclass(frozen=True)
class Change:
    """One row-level difference applied by a commit; alert rules evaluate these."""

    kind: Literal["entity", "relationship"]
    op: Literal["created", "updated", "deleted"]
    type: str
    key: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    from_key: str | None = None
    to_key: str | None = None


class AlertRow(TypedDict):
    """An alert to deliver; (alert_id, target) is unique so a re-evaluated alert is not sent twice."""

    alert_id: str
    rule_id: str
    severity: str
    target: str
    payload: dict[str, Any]


ChangeHook = Callable[[list[Change], Callable[[str], dict[str, Any] | None]], list[AlertRow]]
"""Called in the writer thread inside the commit's transaction with the changes and a lookup of the
current (post-commit) entity by key, e.g. a relationship's endpoints for alert rules."""


@dataclass(frozen=True)
class QueuedAlert:
    """An alert outbox row that is due for (re)delivery."""

    row_id: int
    alert_id: str
    rule_id: str
    severity: str
    target: str
    payload: dict[str, Any]
    attempts: int
    last_error: str | None
    created_at: float
    next_attempt: float


CHANGE_COUNTS: tuple[str, ...] = tuple(
    f"{kind}_{op}" for kind in ("entities", "relationships") for op in ("created", "updated", "deleted")
)
"""The keys of `CommitResult.counts` that count changed rows (every commit sets all of them)."""


@dataclass
class CommitResult:
    """What a round's commit changed: the changes (if collected), counts per op, outbox rows added."""

    changes: list[Change]
    counts: dict[str, int]
    outbox_added: int


@dataclass(frozen=True)
class StoredRow:
    """An entity or relationship row with its bookkeeping, for tests and status."""

    key: str
    type: str
    data: dict[str, Any]
    hash: str
    origin: str
    owner: str
    deleted: bool
    pushed_hash: str | None
    from_key: str | None = None
    to_key: str | None = None
    live: bool | None = None
