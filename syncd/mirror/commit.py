"""A round's commit: the staged round applied to the mirror in ONE transaction, by set-based SQL.

A commit works on sets of keys. Each step below computes one set into a scratch table (in the
stage file, dropped after the commit) from the staged round and the mirror as the earlier steps
left it, then applies it (in the step docstrings ``|`` is union and ``-`` difference). In order:

1. ``removed_entities``: live entities of this origin the round removes; ``entity_changes``: every
   entity that is created, updated or deleted, and how. The staged entities are upserted and the
   removed ones deleted (never pushed) or tombstoned (J1 has them).
2. The same for relationships (``removed_relationships``, ``relationship_changes``); a
   relationship written now gets ``ends_live`` (both endpoints exist) at once.
3. ``orphaned_entities``: shared member entities no membership points to any more; removed, and
   ``entity_changes`` corrected.
4. ``entities_appeared_or_gone``: entities created, deleted or orphaned, whose relationships'
   ``ends_live`` may flip; ``relationships_to_recheck``: those relationships (recomputed), then
   every changed relationship: the relationship keys whose J1 state may now differ.
5. The outbox gets the changed entities and rechecked relationships whose row differs from what
   J1 holds; raw objects, cursors, counts and alert rows follow in the same transaction.

Every step is a few statements over whole sets, joined on indexed keys: SQLite applies a full
round of 100k entities and 500k relationships, not a Python loop (bench/mirror_bench.py).
"""

# ruff: noqa: S608 -- table names in f-strings are internal constants or stage_<int> names, never input

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from syncd.mirror.keyhash import SQL_FUNCTION, relationship_khash_sql
from syncd.mirror.sql import insert_alerts, transaction, upsert_cursor
from syncd.mirror.stage import StageTables
from syncd.mirror.types import CHANGE_COUNTS, Change, ChangeHook, CommitResult
from syncd.pausepoints import pause_point_blocking

# --- predicates over one row (also used by the outbox acks) -------------------------------------


def ends_live_sql(row: str) -> str:
    """SQL: both endpoints of relationship row ``row`` exist (a mapped one has no ``to_key``)."""
    return (
        f"(EXISTS (SELECT 1 FROM entities f WHERE f.key = {row}.from_key AND f.deleted = 0)"
        f" AND ({row}.to_key IS NULL"
        f" OR EXISTS (SELECT 1 FROM entities g WHERE g.key = {row}.to_key AND g.deleted = 0)))"
    )


def differs_from_j1_sql(row: str) -> str:
    """SQL: row ``row`` differs from what J1 holds (J1 lacks it or has another version, or J1
    has it and it is deleted here)."""
    return (
        f"(({row}.deleted = 0 AND {row}.hash IS NOT {row}.pushed_hash)"
        f" OR ({row}.deleted = 1 AND {row}.pushed_hash IS NOT NULL))"
    )


ENDS_LIVE = ends_live_sql("relationships")
"""`ends_live_sql` of the row an ``UPDATE relationships`` statement is at."""
ENTITY_NEEDS_PUSH = differs_from_j1_sql("e")
"""Entity row ``e`` needs a J1 write."""
REL_NEEDS_PUSH = f"r.ends_live = 1 AND {differs_from_j1_sql('r')}"
"""Relationship row ``r`` needs a J1 write: both ends exist and J1's copy differs from ours."""
OUTBOX_PART_SQL = "CASE WHEN r.to_key IS NULL THEN 'e' ELSE 'r' END"
"""The J1 partition kind of relationship row ``r``: a mapped one lives with its source entity."""


# --- scratch tables -------------------------------------------------------------------------------

SCRATCH_TABLES: dict[str, str] = {
    "removed_entities": "key TEXT PRIMARY KEY",
    "removed_relationships": "key TEXT PRIMARY KEY",
    "entity_changes": "key TEXT PRIMARY KEY, op TEXT, type TEXT, old TEXT",
    "relationship_changes": "key TEXT PRIMARY KEY, op TEXT, type TEXT, old TEXT, from_key TEXT, to_key TEXT",
    "orphaned_entities": "key TEXT PRIMARY KEY",
    "entities_appeared_or_gone": "key TEXT PRIMARY KEY",
    "relationships_to_recheck": "key TEXT PRIMARY KEY",
}
"""Name → columns of the per-commit scratch tables (see the module docstring). A change row's
``old`` is the object before the commit, kept only when changes are collected; its rowid is the
staging order."""


def drop_scratch_tables(conn: sqlite3.Connection) -> None:
    """Free the per-commit scratch tables (they can hold a full round's keys)."""
    for name in SCRATCH_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS stage.{name}")


def _create_scratch_tables(conn: sqlite3.Connection) -> None:
    drop_scratch_tables(conn)
    for name, columns in SCRATCH_TABLES.items():
        conn.execute(f"CREATE TABLE stage.{name} ({columns})")


# --- the commit -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Commit:
    """What every step of one commit reads: the write connection, the round and its clock."""

    conn: sqlite3.Connection
    t: StageTables
    origin: str
    full: bool
    now: float
    collect: int
    """1 when change rows keep the old object (changes collected, or an alert hook reads them)."""


def apply_round(
    conn: sqlite3.Connection,
    t: StageTables,
    origin: str,
    full: bool,
    cursors: Mapping[str, str | None],
    orphan_rules: Mapping[str, str],
    change_hook: ChangeHook | None,
    collect_changes: bool,
) -> CommitResult:
    """Writer thread: apply a staged round, its outbox rows, cursors and alerts in ONE transaction
    (the steps and the sets they compute: see the module docstring)."""
    c = _Commit(conn, t, origin, full, time.time(), int(collect_changes or change_hook is not None))
    with transaction(conn):
        _create_scratch_tables(conn)
        _apply_entities(c)
        _apply_relationships(c)
        if orphan_rules:
            _remove_orphans(c, orphan_rules)
        _recheck_ends_live(c)
        outbox_added = _queue_outbox(conn)
        raw_upserted, raw_deleted = _apply_raw(c)
        for name, value in cursors.items():
            upsert_cursor(conn, name, value, origin, c.now)
        counts = _change_counts(conn)
        counts["raw_upserted"] = raw_upserted
        counts["raw_deleted"] = raw_deleted
        changes = _collect_changes(conn) if c.collect else []
        if change_hook is not None:
            alerts = change_hook(changes, _entity_lookup(conn))
            counts["alerts_added"] = insert_alerts(conn, alerts, c.now)
        pause_point_blocking("mirror.commit")
        result = CommitResult(
            changes=changes if collect_changes else [], counts=counts, outbox_added=outbox_added
        )
    return result


def _collect_removals(c: _Commit, table: str, removed: str, staged: str) -> None:
    """removed := (live rows of this origin whose owner was deleted, or staged with ``replace``:
                its rows are exactly what it staged)
               | (full rounds: live rows of this origin whose owner was neither staged nor kept)
               - staged keys (staged again: an upsert, not a removal)."""
    c.conn.execute(
        f"INSERT OR IGNORE INTO {removed} SELECT x.key FROM {c.t.owners} o CROSS JOIN {table} x"
        " ON x.origin = ? AND x.owner = o.owner WHERE (o.deleted = 1 OR o.replace_all = 1) AND x.deleted = 0",
        (c.origin,),
    )
    if c.full:
        c.conn.execute(
            f"INSERT OR IGNORE INTO {removed} SELECT x.key FROM {table} x WHERE x.origin = ?"
            " AND x.deleted = 0"
            f" AND NOT EXISTS (SELECT 1 FROM {c.t.owners} o WHERE o.owner = x.owner AND"
            " (o.staged = 1 OR o.kept = 1))",
            (c.origin,),
        )
    c.conn.execute(f"DELETE FROM {removed} WHERE key IN (SELECT key FROM {staged})")


ENDPOINTS = ("from_key", "to_key")
"""The extra columns of a relationship change row."""


def _record_changes(
    c: _Commit, table: str, changes: str, staged: str, removed: str, extra: tuple[str, ...] = ()
) -> None:
    """changes := staged rows that are new, revived or differ in content ('created' / 'updated')
    | removed rows ('deleted'), each with its type, the old object (if collected) and ``extra``."""
    staged_extra = "".join(f", s.{col}" for col in extra)
    row_extra = "".join(f", x.{col}" for col in extra)
    c.conn.execute(
        f"INSERT INTO {changes} SELECT s.key,"
        " CASE WHEN x.key IS NULL OR x.deleted = 1 THEN 'created' ELSE 'updated' END, s.type,"
        f" CASE WHEN ? AND x.deleted = 0 THEN x.data END{staged_extra}"
        f" FROM {staged} s LEFT JOIN {table} x ON x.key = s.key"
        " WHERE x.key IS NULL OR x.deleted = 1 OR x.hash != s.hash",
        (c.collect,),
    )
    c.conn.execute(
        f"INSERT INTO {changes} SELECT x.key, 'deleted', x.type, CASE WHEN ? THEN x.data END{row_extra}"
        f" FROM {removed} d JOIN {table} x ON x.key = d.key",
        (c.collect,),
    )


_STAGED_COLUMNS: dict[str, str] = {
    "key": "s.key",
    "type": "s.type",
    "data": "s.data",
    "hash": "s.hash",
    "origin": ":origin",
    "owner": "s.owner",
    "deleted": "0",
    "pushed_hash": "NULL",
    "updated_at": ":now",
}
"""Column → value of an upserted row of staged row ``s`` (both tables)."""


def _upsert_staged(
    c: _Commit, table: str, staged: str, values: Mapping[str, str], *, on_conflict: Sequence[str]
) -> None:
    """Write the staged rows: new keys get ``values``; existing ones take the ``on_conflict``
    columns (never ``pushed_hash``: what J1 holds does not change here). Rows identical in
    content, origin and owner are not rewritten."""
    updates = ", ".join(f"{col} = excluded.{col}" for col in on_conflict)
    c.conn.execute(
        f"INSERT INTO {table} ({', '.join(values)}) SELECT {', '.join(values.values())} FROM {staged} s"
        f" WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE x.key = s.key AND x.hash = s.hash"
        " AND x.deleted = 0 AND x.origin = :origin AND x.owner = s.owner)"
        f" ON CONFLICT(key) DO UPDATE SET {updates}",
        {"origin": c.origin, "now": c.now},
    )


def _remove(c: _Commit, table: str, keys_sql: str) -> None:
    """Delete rows J1 never had; tombstone the rest so the delete can be pushed."""
    c.conn.execute(f"DELETE FROM {table} WHERE key IN ({keys_sql}) AND pushed_hash IS NULL")
    c.conn.execute(f"UPDATE {table} SET deleted = 1, updated_at = ? WHERE key IN ({keys_sql})", (c.now,))


def _apply_entities(c: _Commit) -> None:
    """Step 1. removed_entities (`_collect_removals`); entity_changes (`_record_changes`); then
    upsert the staged entities and remove the removed ones."""
    _collect_removals(c, "entities", "removed_entities", c.t.entities)
    _record_changes(c, "entities", "entity_changes", c.t.entities, "removed_entities")
    _upsert_staged(
        c,
        "entities",
        c.t.entities,
        {**_STAGED_COLUMNS, "khash": f"{SQL_FUNCTION}(s.key)"},
        on_conflict=("type", "data", "hash", "origin", "owner", "deleted", "updated_at"),
    )
    _remove(c, "entities", "SELECT key FROM removed_entities")


def _apply_relationships(c: _Commit) -> None:
    """Step 2. removed_relationships := `_collect_removals` | (live keys deleted by key, e.g.
    ``members@delta`` removals, - staged keys); relationship_changes (`_record_changes`); then
    upsert the staged (``ends_live`` over the entities of step 1) and remove the removed."""
    _collect_removals(c, "relationships", "removed_relationships", c.t.relationships)
    c.conn.execute(
        f"INSERT OR IGNORE INTO removed_relationships SELECT r.key FROM {c.t.relationship_deletes} d"
        " CROSS JOIN relationships r ON r.key = d.key WHERE r.deleted = 0"
        f" AND r.key NOT IN (SELECT key FROM {c.t.relationships})"
    )
    _record_changes(
        c, "relationships", "relationship_changes", c.t.relationships, "removed_relationships", ENDPOINTS
    )
    _upsert_staged(
        c,
        "relationships",
        c.t.relationships,
        {
            **_STAGED_COLUMNS,
            "from_key": "s.from_key",
            "to_key": "s.to_key",
            "ends_live": ends_live_sql("s"),
            "khash": relationship_khash_sql("s."),
        },
        on_conflict=(
            "type", "data", "hash", "origin", "owner", "from_key", "to_key", "deleted", "ends_live",
            "updated_at", "khash",
        ),
    )
    _remove(c, "relationships", "SELECT key FROM removed_relationships")


def _remove_orphans(c: _Commit, orphan_rules: Mapping[str, str]) -> None:
    """Step 3. For each rule (member entity type → membership relationship type):
    orphaned_entities |= live entities of that type touched this round (staged, or the target of a
    changed membership) that no live membership points to. Then in entity_changes: created and
    orphaned → no change at all; updated and orphaned → 'deleted'; others orphaned → 'deleted'
    added; and the orphans are removed."""
    for entity_type, rel_type in orphan_rules.items():
        c.conn.execute(
            "INSERT OR IGNORE INTO orphaned_entities SELECT e.key"
            f" FROM (SELECT key FROM {c.t.entities} WHERE type = ?"
            " UNION SELECT to_key FROM relationship_changes WHERE type = ? AND to_key IS NOT NULL) touched"
            " CROSS JOIN entities e ON e.key = touched.key"
            " WHERE e.type = ? AND e.deleted = 0"
            " AND NOT EXISTS (SELECT 1 FROM relationships r WHERE r.to_key = e.key AND r.type = ?"
            " AND r.deleted = 0)",
            (entity_type, rel_type, entity_type, rel_type),
        )
    c.conn.execute(
        "DELETE FROM entity_changes WHERE op = 'created' AND key IN (SELECT key FROM orphaned_entities)"
    )
    c.conn.execute(
        "UPDATE entity_changes SET op = 'deleted' WHERE op = 'updated'"
        " AND key IN (SELECT key FROM orphaned_entities)"
    )
    c.conn.execute(
        "INSERT OR IGNORE INTO entity_changes SELECT e.key, 'deleted', e.type, CASE WHEN ? THEN e.data END"
        " FROM orphaned_entities o JOIN entities e ON e.key = o.key",
        (c.collect,),
    )
    _remove(c, "entities", "SELECT key FROM orphaned_entities")


def _recheck_ends_live(c: _Commit) -> None:
    """Step 4. entities_appeared_or_gone := entity_changes created or deleted | orphaned_entities.
    relationships_to_recheck := relationships with an endpoint in it, except those (re)written in
    step 2 (their ``ends_live`` is already current) | relationships with an orphaned endpoint
    (removed after step 2); their ``ends_live`` is recomputed where it flipped. Then
    relationships_to_recheck |= relationship_changes: the relationship outbox candidates."""
    c.conn.execute(
        "INSERT INTO entities_appeared_or_gone SELECT key FROM entity_changes WHERE op = 'deleted'"
        " UNION SELECT key FROM entity_changes WHERE op = 'created' UNION SELECT key FROM orphaned_entities"
    )
    for end in ("from_key", "to_key"):
        c.conn.execute(
            "INSERT OR IGNORE INTO relationships_to_recheck SELECT r.key FROM relationships r"
            f" WHERE r.{end} IN (SELECT key FROM entities_appeared_or_gone)"
            " AND r.key NOT IN (SELECT key FROM relationship_changes WHERE op != 'deleted')"
        )
        c.conn.execute(
            "INSERT OR IGNORE INTO relationships_to_recheck SELECT r.key FROM relationships r"
            f" WHERE r.{end} IN (SELECT key FROM orphaned_entities)"
        )
    c.conn.execute(
        f"UPDATE relationships SET ends_live = {ENDS_LIVE}"
        " WHERE key IN (SELECT key FROM relationships_to_recheck)"
        f" AND ends_live IS NOT {ENDS_LIVE}"  # writes only rows whose liveness flipped
    )
    c.conn.execute("INSERT OR IGNORE INTO relationships_to_recheck SELECT key FROM relationship_changes")


def _queue_outbox(conn: sqlite3.Connection) -> int:
    """Step 5. outbox += entity_changes whose row differs from J1 (`ENTITY_NEEDS_PUSH`)
    + relationships_to_recheck that need a J1 write (`REL_NEEDS_PUSH`), in staging order.
    Returns the rows added."""
    added = conn.execute(
        "INSERT INTO outbox (kind, key, part, khash) SELECT 'entity', c.key, 'e', e.khash"
        " FROM entity_changes c JOIN entities e ON e.key = c.key"
        f" WHERE {ENTITY_NEEDS_PUSH} ORDER BY c.rowid"
    ).rowcount
    added += conn.execute(
        "INSERT INTO outbox (kind, key, part, khash) SELECT 'relationship', a.key,"
        f" {OUTBOX_PART_SQL}, r.khash FROM relationships_to_recheck a"
        f" JOIN relationships r ON r.key = a.key WHERE {REL_NEEDS_PUSH} ORDER BY a.rowid"
    ).rowcount
    return added


def _apply_raw(c: _Commit) -> tuple[int, int]:
    """Raw objects: delete those deleted by id, those of deleted owners and (full round) those of
    this origin whose owner was neither staged nor kept, unless staged again; upsert the staged.
    Returns (upserted, deleted)."""
    conn, t = c.conn, c.t
    deleted = conn.execute(
        f"DELETE FROM raw WHERE (resource, id) IN (SELECT resource, id FROM {t.raw_deletes})"
        f" AND (resource, id) NOT IN (SELECT resource, id FROM {t.raw})"
    ).rowcount
    deleted += conn.execute(
        "DELETE FROM raw WHERE origin = ?"
        f" AND id IN (SELECT owner FROM {t.owners} WHERE deleted = 1)"
        f" AND (resource, id) NOT IN (SELECT resource, id FROM {t.raw})",
        (c.origin,),
    ).rowcount
    if c.full:
        deleted += conn.execute(
            "DELETE FROM raw WHERE origin = ?"
            f" AND (resource, id) NOT IN (SELECT resource, id FROM {t.raw})"
            f" AND id NOT IN (SELECT owner FROM {t.owners} WHERE staged = 1 OR kept = 1)",
            (c.origin,),
        ).rowcount
    upserted = conn.execute(
        "INSERT INTO raw (resource, id, origin, data, hash, updated_at)"
        f" SELECT s.resource, s.id, ?, s.data, s.hash, ? FROM {t.raw} s"
        " WHERE NOT EXISTS (SELECT 1 FROM raw w WHERE w.resource = s.resource AND w.id = s.id"
        " AND w.hash = s.hash AND w.origin = ?)"
        " ON CONFLICT(resource, id) DO UPDATE SET origin = excluded.origin, data = excluded.data,"
        " hash = excluded.hash, updated_at = excluded.updated_at",
        (c.origin, c.now, c.origin),
    ).rowcount
    return upserted, deleted


def _change_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """``<entities|relationships>_<op>`` → rows, every key present."""
    counts = dict.fromkeys(CHANGE_COUNTS, 0)
    for kind, scratch in (("entities", "entity_changes"), ("relationships", "relationship_changes")):
        for op, n in conn.execute(f"SELECT op, count(*) FROM {scratch} GROUP BY op"):
            counts[f"{kind}_{op}"] = int(n)
    return counts


# --- what the alert hook reads ------------------------------------------------------------------

_Op = Literal["created", "updated", "deleted"]


def _load(text: str | None) -> dict[str, Any] | None:
    return cast(dict[str, Any], json.loads(text)) if text is not None else None


def _entity_lookup(conn: sqlite3.Connection) -> Callable[[str], dict[str, Any] | None]:
    """Reads an entity as this transaction sees it (tombstones are absent)."""

    def lookup(key: str) -> dict[str, Any] | None:
        row = conn.execute("SELECT data FROM entities WHERE key = ? AND deleted = 0", (key,)).fetchone()
        return _load(row[0]) if row else None

    return lookup


def _collect_changes(conn: sqlite3.Connection) -> list[Change]:
    """Row-level changes with old and new objects, entities first, in staging order."""
    changes: list[Change] = []
    for key, op, type_, old, new in conn.execute(
        "SELECT c.key, c.op, c.type, c.old, CASE WHEN c.op != 'deleted' THEN e.data END"
        " FROM entity_changes c LEFT JOIN entities e ON e.key = c.key ORDER BY c.rowid"
    ):
        changes.append(Change("entity", cast(_Op, op), type_, key, _load(old), _load(new)))
    for key, op, type_, old, new, from_key, to_key in conn.execute(
        "SELECT c.key, c.op, c.type, c.old, CASE WHEN c.op != 'deleted' THEN r.data END, c.from_key, c.to_key"
        " FROM relationship_changes c LEFT JOIN relationships r ON r.key = c.key ORDER BY c.rowid"
    ):
        changes.append(
            Change("relationship", cast(_Op, op), type_, key, _load(old), _load(new), from_key, to_key)
        )
    return changes
