"""The SQLite mirror: state, staging, outbox, cursors, runs, subscriptions, alerts (see mirror.py)."""

from syncd.mirror.mirror import Mirror
from syncd.mirror.round import ChangeHook, RoundWriter
from syncd.mirror.types import (
    AlertRow,
    Change,
    CommitResult,
    MirrorError,
    OutboxBatch,
    QueuedAlert,
    StoredRow,
)

__all__ = [
    "AlertRow",
    "Change",
    "ChangeHook",
    "CommitResult",
    "Mirror",
    "MirrorError",
    "OutboxBatch",
    "QueuedAlert",
    "RoundWriter",
    "StoredRow",
]
