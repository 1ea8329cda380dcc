"""Bookkeeping of the J1 writer that must survive a crash: partitions that need a DIFF (or are
failing, with their back-off), J1 jobs in flight (so a crash never leaves one open), and objects
J1 refused (set aside until they change). Writer-thread functions over the write connection.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.mirror.sql import json_list, transaction


@dataclass(frozen=True)
class PartitionState:
    """A partition with something to remember: a pending DIFF, doubtful J1 state, or failures."""

    scope: str
    kind: str
    bits: int
    bucket: int
    needs_diff: bool
    uncertain: bool
    attempts: int
    next_attempt: float
    last_error: str | None
    gen: int


@dataclass(frozen=True)
class PartitionRef:
    """Which partition a scope is (stored so a state row needs no scope parsing)."""

    scope: str
    kind: str
    bits: int
    bucket: int


@dataclass(frozen=True)
class PartitionFailure:
    """A failed job on a partition: its back-off, and what its next job must be."""

    attempts: int
    """Consecutive failures, this one included."""
    next_attempt: float
    error: str
    needs_diff: bool
    """The next job must be a DIFF (the failed one was, or it relied on an undocumented behaviour)."""
    uncertain: bool
    """J1's state of the partition is unknown (a job finished but did not do what was sent)."""


@dataclass(frozen=True)
class RefusedObject:
    """An object J1 refused; it is left out of uploads until its content changes."""

    kind: str
    key: str
    hash: str
    type: str
    scope: str
    code: str | None
    message: str
    since: float


_COLUMNS = "scope, kind, bits, bucket, needs_diff, uncertain, attempts, next_attempt, last_error, gen"


def _state(row: Sequence[Any]) -> PartitionState:
    scope, kind, bits, bucket, needs_diff, uncertain, attempts, next_attempt, last_error, gen = row
    return PartitionState(
        scope=str(scope),
        kind=str(kind),
        bits=int(bits),
        bucket=int(bucket),
        needs_diff=bool(needs_diff),
        uncertain=bool(uncertain),
        attempts=int(attempts),
        next_attempt=float(next_attempt),
        last_error=None if last_error is None else str(last_error),
        gen=int(gen),
    )


def mark(
    conn: sqlite3.Connection, parts: Iterable[PartitionRef], *, needs_diff: bool, uncertain: bool
) -> int:
    """Flag partitions (a full resync, a verification mismatch, a crash-left job); returns rows."""
    with transaction(conn):
        return mark_in_transaction(conn, parts, needs_diff=needs_diff, uncertain=uncertain)


def mark_in_transaction(
    conn: sqlite3.Connection, parts: Iterable[PartitionRef], *, needs_diff: bool, uncertain: bool
) -> int:
    """`mark` inside the caller's transaction. Flags only ever go up here (a DIFF clears them,
    `settle`), and every mark moves ``gen`` so a DIFF planned before it does not clear it."""
    now = time.time()
    rows = [(p.scope, p.kind, p.bits, p.bucket, int(needs_diff), int(uncertain), now) for p in parts]
    conn.executemany(
        "INSERT INTO j1_partitions (scope, kind, bits, bucket, needs_diff, uncertain, gen, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT(scope) DO UPDATE SET"
        " needs_diff = max(needs_diff, excluded.needs_diff),"
        " uncertain = max(uncertain, excluded.uncertain),"
        " gen = gen + 1, updated_at = excluded.updated_at",
        rows,
    )
    return len(rows)


def states(conn: sqlite3.Connection, *, needs_diff_only: bool = False) -> list[PartitionState]:
    """Every partition with something to remember (or only those waiting for a DIFF)."""
    where = " WHERE needs_diff = 1" if needs_diff_only else ""
    return [
        _state(r)
        for r in conn.execute(f"SELECT {_COLUMNS} FROM j1_partitions{where} ORDER BY kind, bits, bucket")  # noqa: S608
    ]


def get(conn: sqlite3.Connection, scope: str) -> PartitionState | None:
    """One partition's state; None when there is nothing to remember about it."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM j1_partitions WHERE scope = ?", (scope,)).fetchone()  # noqa: S608
    return None if row is None else _state(row)


def record_failure(conn: sqlite3.Connection, part: PartitionRef, failure: PartitionFailure) -> None:
    """A job on this partition failed: remember the back-off (and whether a DIFF must follow)."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO j1_partitions (scope, kind, bits, bucket, needs_diff, uncertain, attempts,"
            " next_attempt, last_error, gen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)"
            " ON CONFLICT(scope) DO UPDATE SET needs_diff = max(needs_diff, excluded.needs_diff),"
            " uncertain = max(uncertain, excluded.uncertain), attempts = excluded.attempts,"
            " next_attempt = excluded.next_attempt, last_error = excluded.last_error,"
            " updated_at = excluded.updated_at",
            (
                part.scope,
                part.kind,
                part.bits,
                part.bucket,
                int(failure.needs_diff),
                int(failure.uncertain),
                failure.attempts,
                failure.next_attempt,
                failure.error[:500],
                time.time(),
            ),
        )


def settle(conn: sqlite3.Connection, scope: str, gen: int, *, diff: bool) -> None:
    """Inside an ack: a job succeeded. A DIFF settles the partition unless it was flagged again
    since its snapshot (``gen`` moved); any success ends the back-off."""
    if diff:
        conn.execute(
            "UPDATE j1_partitions SET needs_diff = 0, uncertain = 0 WHERE scope = ? AND gen = ?", (scope, gen)
        )
    conn.execute(
        "UPDATE j1_partitions SET attempts = 0, next_attempt = 0, last_error = NULL WHERE scope = ?", (scope,)
    )
    conn.execute(
        "DELETE FROM j1_partitions WHERE scope = ? AND needs_diff = 0 AND uncertain = 0 AND attempts = 0",
        (scope,),
    )


def forget_other_scopes(conn: sqlite3.Connection, keep: Iterable[str]) -> None:
    """After a layout change: partition rows of scopes no longer written are dropped."""
    with transaction(conn):
        conn.execute(
            "DELETE FROM j1_partitions WHERE scope NOT IN (SELECT value FROM json_each(?))",
            (json_list(keep),),
        )


# --- jobs in flight ---------------------------------------------------------------------------------


def record_job(conn: sqlite3.Connection, job_id: str, scope: str, mode: str) -> None:
    """Before the first upload: a crash from here on leaves a job the next start must close."""
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO j1_jobs (job_id, scope, mode, created_at) VALUES (?, ?, ?, ?)",
            (job_id, scope, mode, time.time()),
        )


def forget_job(conn: sqlite3.Connection, job_id: str) -> None:
    """The job ended (acknowledged, aborted or closed at start): inside the caller's transaction."""
    conn.execute("DELETE FROM j1_jobs WHERE job_id = ?", (job_id,))


def jobs_in_flight(conn: sqlite3.Connection) -> list[tuple[str, str, str, float]]:
    """(job id, scope, mode, created at) of every job recorded and not yet forgotten, oldest first."""
    return [
        (str(j), str(s), str(m), float(c))
        for j, s, m, c in conn.execute(
            "SELECT job_id, scope, mode, created_at FROM j1_jobs ORDER BY created_at"
        )
    ]


# --- refused objects --------------------------------------------------------------------------------


def set_aside(conn: sqlite3.Connection, objects: Iterable[RefusedObject]) -> int:
    """Remember refused objects (a later refusal of the same key replaces the earlier one)."""
    rows = [(o.kind, o.key, o.hash, o.type, o.scope, o.code, o.message[:500], o.since) for o in objects]
    with transaction(conn):
        conn.executemany(
            "INSERT INTO j1_refused (kind, key, hash, type, scope, code, message, since)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(kind, key) DO UPDATE SET hash = excluded.hash,"
            " type = excluded.type, scope = excluded.scope, code = excluded.code,"
            " message = excluded.message",
            rows,
        )
    return len(rows)


def refused(conn: sqlite3.Connection, limit: int = 100) -> list[RefusedObject]:
    """The oldest refusals first (`syncd status`)."""
    return [
        RefusedObject(str(k), str(key), str(h), str(t), str(s), c, str(m), float(since))
        for k, key, h, t, s, c, m, since in conn.execute(
            "SELECT kind, key, hash, type, scope, code, message, since FROM j1_refused"
            " ORDER BY since LIMIT ?",
            (limit,),
        )
    ]


def clear_refused(conn: sqlite3.Connection) -> int:
    """Forget every refusal (a full resync tries the objects again)."""
    with transaction(conn):
        return conn.execute("DELETE FROM j1_refused").rowcount


def refused_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM j1_refused").fetchone()[0])
