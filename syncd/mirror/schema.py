"""Mirror schema and its migrations.

``PRAGMA user_version`` is the number of migrations applied. A migration is a function of the
write connection; each runs in its own transaction together with the version bump, so a crash
mid-upgrade leaves the previous version intact. Append new migrations; never edit old ones.
"""

# ruff: noqa: S608 -- SQL built only from constant function names

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from syncd.mirror.keyhash import SQL_FUNCTION, relationship_khash_sql

Migration = Callable[[sqlite3.Connection], None]


def _v1_core(conn: sqlite3.Connection) -> None:
    """State, raw objects, outbox, cursors, runs, subscriptions, key/value."""
    _run_script(
        conn,
        """
        CREATE TABLE entities (
            key TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            hash TEXT NOT NULL,
            origin TEXT NOT NULL,
            owner TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0,
            pushed_hash TEXT,
            updated_at REAL NOT NULL
        );
        CREATE INDEX entities_origin_owner ON entities(origin, owner);
        CREATE INDEX entities_type ON entities(type);

        CREATE TABLE relationships (
            key TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            data TEXT NOT NULL,
            hash TEXT NOT NULL,
            origin TEXT NOT NULL,
            owner TEXT NOT NULL,
            from_key TEXT NOT NULL,
            to_key TEXT,
            deleted INTEGER NOT NULL DEFAULT 0,
            ends_live INTEGER NOT NULL DEFAULT 0,
            pushed_hash TEXT,
            updated_at REAL NOT NULL
        );
        CREATE INDEX relationships_origin_owner ON relationships(origin, owner);
        CREATE INDEX relationships_from ON relationships(from_key);
        CREATE INDEX relationships_to ON relationships(to_key);

        CREATE TABLE raw (
            resource TEXT NOT NULL,
            id TEXT NOT NULL,
            origin TEXT NOT NULL,
            data TEXT NOT NULL,
            hash TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (resource, id)
        );
        CREATE INDEX raw_origin ON raw(origin, id);

        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('entity', 'relationship')),
            key TEXT NOT NULL
        );
        CREATE INDEX outbox_key ON outbox(key);

        CREATE TABLE cursors (
            name TEXT PRIMARY KEY,
            value TEXT,
            origin TEXT,
            updated_at REAL NOT NULL
        );

        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            origin TEXT NOT NULL,
            started REAL NOT NULL,
            finished REAL NOT NULL,
            status TEXT NOT NULL,
            counts TEXT NOT NULL,
            error TEXT
        );
        CREATE INDEX runs_origin ON runs(origin, id);

        CREATE TABLE subscriptions (
            id TEXT PRIMARY KEY,
            resource TEXT NOT NULL,
            expiration TEXT NOT NULL,
            client_state_hash TEXT NOT NULL,
            updated_at REAL NOT NULL
        );

        CREATE TABLE kv (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        """,
    )


def _v2_alerts_and_flags(conn: sqlite3.Connection) -> None:
    """Alert outbox (deduped by stable alert id per target) and per-origin partial/disabled flags."""
    _run_script(
        conn,
        """
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT NOT NULL,
            rule_id TEXT NOT NULL,
            severity TEXT NOT NULL,
            target TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at REAL NOT NULL,
            next_attempt REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            delivered_at REAL,
            UNIQUE (alert_id, target)
        );
        CREATE INDEX alerts_due ON alerts(delivered_at, next_attempt);

        CREATE TABLE origin_flags (
            origin TEXT PRIMARY KEY,
            partial INTEGER NOT NULL DEFAULT 0,
            disabled INTEGER NOT NULL DEFAULT 0,
            reason TEXT,
            updated_at REAL NOT NULL
        );
        """,
    )


def _v3_j1_partitions(conn: sqlite3.Connection) -> None:
    """J1 partitions: every row's key hash (its partition is a hash range), the partitions that
    need a DIFF or failed, the J1 jobs in flight (aborted if a crash leaves them), and the objects
    J1 refused (set aside until they change)."""
    _run_script(
        conn,
        f"""
        ALTER TABLE entities ADD COLUMN khash INTEGER;
        ALTER TABLE relationships ADD COLUMN khash INTEGER;
        ALTER TABLE outbox ADD COLUMN part TEXT;
        ALTER TABLE outbox ADD COLUMN khash INTEGER;
        UPDATE entities SET khash = {SQL_FUNCTION}(key);
        UPDATE relationships SET khash = {relationship_khash_sql()};
        UPDATE outbox SET part = 'e', khash = {SQL_FUNCTION}(key) WHERE kind = 'entity';
        UPDATE outbox SET part = CASE WHEN r.to_key IS NULL THEN 'e' ELSE 'r' END, khash = r.khash
            FROM relationships r WHERE outbox.kind = 'relationship' AND r.key = outbox.key;
        UPDATE outbox SET part = 'r', khash = {SQL_FUNCTION}(key)
            WHERE kind = 'relationship' AND khash IS NULL;
        CREATE INDEX entities_khash ON entities(khash);
        CREATE INDEX relationships_khash ON relationships(khash);
        CREATE INDEX outbox_part ON outbox(part, khash);

        CREATE TABLE j1_partitions (
            scope TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            bits INTEGER NOT NULL,
            bucket INTEGER NOT NULL,
            needs_diff INTEGER NOT NULL DEFAULT 0,
            uncertain INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL DEFAULT 0,
            last_error TEXT,
            gen INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL
        );
        CREATE INDEX j1_partitions_due ON j1_partitions(needs_diff, next_attempt);

        CREATE TABLE prop_sets (
            id INTEGER PRIMARY KEY,
            names TEXT NOT NULL UNIQUE
        );
        ALTER TABLE entities ADD COLUMN pushed_props INTEGER;

        CREATE TABLE j1_jobs (
            job_id TEXT PRIMARY KEY,
            scope TEXT NOT NULL,
            mode TEXT NOT NULL,
            created_at REAL NOT NULL
        );

        CREATE TABLE j1_refused (
            kind TEXT NOT NULL CHECK (kind IN ('entity', 'relationship')),
            key TEXT NOT NULL,
            hash TEXT NOT NULL,
            type TEXT NOT NULL,
            scope TEXT NOT NULL,
            code TEXT,
            message TEXT NOT NULL,
            since REAL NOT NULL,
            PRIMARY KEY (kind, key)
        )
        """,
    )


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statement by statement: ``executescript`` would COMMIT the migration's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: list[Migration] = [_v1_core, _v2_alerts_and_flags, _v3_j1_partitions]
"""Index i upgrades user_version i to i + 1."""

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> int:
    """Apply pending migrations, each atomically with its version bump; return the final version.

    Raises ``ValueError`` when the file was written by a newer syncd: downgrading is not safe.
    """
    steps = MIGRATIONS if migrations is None else migrations
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(steps):
        raise ValueError(
            f"schema version {version} is newer than this syncd supports ({len(steps)}); upgrade syncd"
        )
    for index in range(version, len(steps)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            steps[index](conn)
            conn.execute(f"PRAGMA user_version = {index + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return len(steps)
