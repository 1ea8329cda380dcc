"""The SQLite mirror: state, staging, outbox, cursors, runs, subscriptions, alerts (see mirror.py)."""

from syncd.mirror.mirror import Mirror
from syncd.mirror.outbox import UNKNOWN_HASH, PartitionAck, PartitionSnapshot, SnapshotRow
from syncd.mirror.partition_state import PartitionFailure, PartitionRef, PartitionState, RefusedObject
from syncd.mirror.round import RoundWriter
from syncd.mirror.types import (
    AlertRow,
    Change,
    ChangeHook,
    CommitResult,
    MirrorError,
    QueuedAlert,
    StoredRow,
)

__all__ = [
    "UNKNOWN_HASH",
    "AlertRow",
    "Change",
    "ChangeHook",
    "CommitResult",
    "Mirror",
    "MirrorError",
    "PartitionAck",
    "PartitionFailure",
    "PartitionRef",
    "PartitionSnapshot",
    "PartitionState",
    "QueuedAlert",
    "RefusedObject",
    "RoundWriter",
    "SnapshotRow",
    "StoredRow",
]
