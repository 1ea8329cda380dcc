"""Small SQL helpers shared by the mirror's modules (all run on the writer thread)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator

from syncd.mirror.types import AlertRow


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: nothing is ever half-applied."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def insert_alerts(conn: sqlite3.Connection, alerts: Iterable[AlertRow], now: float) -> int:
    """Append alert rows; an (alert_id, target) already queued or delivered is ignored (dedupe)."""
    rows = [
        (
            a["alert_id"],
            a["rule_id"],
            a["severity"],
            a["target"],
            json.dumps(a["payload"], sort_keys=True),
            now,
            now,
        )
        for a in alerts
    ]
    before = conn.total_changes
    conn.executemany(
        "INSERT OR IGNORE INTO alerts (alert_id, rule_id, severity, target, payload,"
        " created_at, next_attempt)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return conn.total_changes - before


def json_list(values: Iterable[str]) -> str:
    """A JSON array parameter for ``IN (SELECT value FROM json_each(?))``: one bind for any size."""
    return json.dumps(list(values))


def upsert_cursor(
    conn: sqlite3.Connection, name: str, value: str | None, origin: str | None, now: float
) -> None:
    """Store a cursor (deltaLink or poll watermark); ``None`` forgets it (forces a full round)."""
    conn.execute(
        "INSERT INTO cursors (name, value, origin, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(name)"
        " DO UPDATE SET value = excluded.value, origin = coalesce(excluded.origin, cursors.origin),"
        " updated_at = excluded.updated_at",
        (name, value, origin, now),
    )
