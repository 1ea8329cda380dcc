"""One source round: stage pages as they arrive, then apply them all in ONE transaction.

Staging writes only to the round's own ``stage_<id>_*`` tables, so memory stays flat and state is
untouched until ``commit()``. The commit is set-based SQL (INSERT ... SELECT, UPDATE ... WHERE key
IN (SELECT ...)) so a full round of 100k entities and 500k relationships is applied by SQLite, not
by a Python loop. Changes, outbox rows, cursors and alert rows land in the same transaction.
"""

# ruff: noqa: S608 -- table names in f-strings are internal constants or stage_<int> names, never input

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, cast

from syncd.mirror.canonical import canonical_json, content_hash
from syncd.mirror.keyhash import SQL_FUNCTION, relationship_khash_sql
from syncd.mirror.sql import insert_alerts, transaction
from syncd.mirror.types import AlertRow, Change, CommitResult, MirrorError
from syncd.pausepoints import pause_point_blocking

T = TypeVar("T")

ChangeHook = Callable[[list[Change], Callable[[str], dict[str, Any] | None]], list[AlertRow]]
"""Called in the writer thread inside the commit's transaction with the changes and a lookup of the
current (post-commit) entity by key, e.g. a relationship's endpoints for alert rules."""


class WriteRunner(Protocol):
    """What a round needs from the mirror: run a function on the writer thread."""

    def __call__(self, doing: str, fn: Callable[[sqlite3.Connection], T]) -> Awaitable[T]: ...


@dataclass(frozen=True)
class StageTables:
    """The names of one round's stage tables (dropped when the round ends or at the next open)."""

    round_id: int

    @property
    def prefix(self) -> str:
        return f"stage_{self.round_id}_"

    @property
    def entities(self) -> str:
        return f"stage_{self.round_id}_entity"

    @property
    def relationships(self) -> str:
        return f"stage_{self.round_id}_rel"

    @property
    def owners(self) -> str:
        return f"stage_{self.round_id}_owner"

    @property
    def raw(self) -> str:
        return f"stage_{self.round_id}_raw"

    @property
    def raw_deletes(self) -> str:
        return f"stage_{self.round_id}_rawdel"

    @property
    def relationship_deletes(self) -> str:
        return f"stage_{self.round_id}_reldel"

    def all(self) -> list[str]:
        return [
            self.entities,
            self.relationships,
            self.owners,
            self.raw,
            self.raw_deletes,
            self.relationship_deletes,
        ]


def create_stage_tables(conn: sqlite3.Connection, t: StageTables) -> None:
    """Empty stage tables for a new round."""
    with transaction(conn):
        conn.execute(
            f"CREATE TABLE stage.{t.entities} (key TEXT PRIMARY KEY, owner TEXT NOT NULL, type TEXT NOT NULL,"
            " data TEXT NOT NULL, hash TEXT NOT NULL)"
        )
        conn.execute(
            f"CREATE TABLE stage.{t.relationships} (key TEXT PRIMARY KEY, owner TEXT NOT"
            " NULL, type TEXT NOT NULL,"
            " from_key TEXT NOT NULL, to_key TEXT, data TEXT NOT NULL, hash TEXT NOT NULL)"
        )
        conn.execute(
            f"CREATE TABLE stage.{t.owners} (owner TEXT PRIMARY KEY, staged INTEGER NOT NULL DEFAULT 0,"
            " replace_all INTEGER NOT NULL DEFAULT 0, kept INTEGER NOT NULL DEFAULT 0,"
            " deleted INTEGER NOT NULL DEFAULT 0)"
        )
        conn.execute(
            f"CREATE TABLE stage.{t.raw} (resource TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL,"
            " hash TEXT NOT NULL, PRIMARY KEY (resource, id))"
        )
        conn.execute(
            f"CREATE TABLE stage.{t.raw_deletes} (resource TEXT NOT NULL, id TEXT NOT NULL, PRIMARY"
            " KEY (resource, id))"
        )
        conn.execute(f"CREATE TABLE stage.{t.relationship_deletes} (key TEXT PRIMARY KEY)")


def drop_stage_tables(conn: sqlite3.Connection, t: StageTables) -> None:
    """Forget a round's staging (discard, or cleanup after commit)."""
    with transaction(conn):
        for name in t.all():
            conn.execute(f"DROP TABLE IF EXISTS stage.{name}")


# --- staging ------------------------------------------------------------------------------------


FLUSH_ROWS = 5000
"""Staged rows buffered in memory before they are written to the stage tables in one transaction."""


def _entity_key(obj: Mapping[str, Any]) -> str:
    key = obj.get("_key")
    if not isinstance(key, str) or not key:
        raise ValueError(f"staged object has no string _key: {sorted(obj)!r}")
    if not isinstance(obj.get("_type"), str):
        raise ValueError(f"staged object {key!r} has no string _type")
    return key


def _endpoints(rel: Mapping[str, Any]) -> tuple[str, str | None]:
    """(from_key, to_key); a mapped relationship has no to_key (J1 resolves ``_mapping``)."""
    mapping = rel.get("_mapping")
    from_key = rel.get("_fromEntityKey")
    if from_key is None and isinstance(mapping, dict):
        from_key = mapping.get("sourceEntityKey")
    if not isinstance(from_key, str):
        raise ValueError(f"relationship {rel.get('_key')!r} has no _fromEntityKey")
    to_key = rel.get("_toEntityKey")
    if to_key is None and mapping is None:
        raise ValueError(f"relationship {rel.get('_key')!r} has neither _toEntityKey nor _mapping")
    return from_key, (to_key if isinstance(to_key, str) and mapping is None else None)


def _raw_id(obj: Mapping[str, Any]) -> str:
    raw_id = obj.get("id")
    if not isinstance(raw_id, str) or not raw_id:
        raise ValueError(f"raw object has no string id: {sorted(obj)!r}")
    return raw_id


def _merge_into(
    target: dict[Any, tuple[str, dict[str, Any]]], key: Any, owner: str, obj: Mapping[str, Any]
) -> None:
    """Later keys update earlier ones; the latest owner wins."""
    previous = target.get(key)
    target[key] = (owner, {**previous[1], **obj} if previous is not None else dict(obj))


@dataclass
class StageBuffer:
    """Pages staged since the last flush, merged by key in memory; bounded by ``FLUSH_ROWS``.

    Batching many small ``stage()`` calls (one per owner) into one transaction is what keeps
    staging 100k owners fast; deletes flush first so operations keep their order.
    """

    owners: dict[str, bool] = field(default_factory=dict)
    entities: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    relationships: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    raw: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    rows: int = 0

    def add(
        self,
        owner: str,
        entities: Sequence[Mapping[str, Any]],
        relationships: Sequence[Mapping[str, Any]],
        replace: bool,
    ) -> None:
        self.owners[owner] = self.owners.get(owner, False) or replace
        for obj in entities:
            _merge_into(self.entities, _entity_key(obj), owner, obj)
        for obj in relationships:
            _merge_into(self.relationships, _entity_key(obj), owner, obj)
        self.rows += 1 + len(entities) + len(relationships)

    def add_raw(self, resource: str, objects: Sequence[Mapping[str, Any]]) -> None:
        for obj in objects:
            _merge_into(self.raw, (resource, _raw_id(obj)), resource, obj)
        self.rows += len(objects)

    def take(self) -> StageBuffer:
        """Hand the contents over to a flush and start empty."""
        taken = StageBuffer(self.owners, self.entities, self.relationships, self.raw, self.rows)
        self.owners, self.entities, self.relationships, self.raw, self.rows = {}, {}, {}, {}, 0
        return taken


def flush_buffer(conn: sqlite3.Connection, t: StageTables, buf: StageBuffer) -> None:
    """Writer thread: merge buffered objects with what the round staged before, hash, store."""
    with transaction(conn):
        conn.executemany(
            f"INSERT INTO {t.owners} (owner, staged, replace_all) VALUES (?, 1, ?)"
            " ON CONFLICT(owner) DO UPDATE SET staged = 1,"
            " replace_all = max(replace_all, excluded.replace_all)",
            [(o, int(r)) for o, r in buf.owners.items()],
        )
        if buf.entities:
            _merge_staged(conn, t.entities, buf.entities)
            entity_rows = []
            for key, (owner, obj) in buf.entities.items():
                text = canonical_json(obj)
                entity_rows.append((key, owner, obj["_type"], text, content_hash(text)))
            conn.executemany(f"INSERT OR REPLACE INTO {t.entities} VALUES (?, ?, ?, ?, ?)", entity_rows)
        if buf.relationships:
            _merge_staged(conn, t.relationships, buf.relationships)
            rel_rows = []
            for key, (owner, obj) in buf.relationships.items():
                from_key, to_key = _endpoints(obj)
                text = canonical_json(obj)
                rel_rows.append((key, owner, obj["_type"], from_key, to_key, text, content_hash(text)))
            conn.executemany(
                f"INSERT OR REPLACE INTO {t.relationships} VALUES (?, ?, ?, ?, ?, ?, ?)", rel_rows
            )
        if buf.raw:
            pairs = json.dumps([list(k) for k in buf.raw])
            for resource, raw_id, data in conn.execute(
                f"SELECT resource, id, data FROM {t.raw} WHERE (resource, id) IN"
                " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
                (pairs,),
            ):
                owner, obj = buf.raw[(resource, raw_id)]
                buf.raw[(resource, raw_id)] = (owner, {**json.loads(data), **obj})
            raw_rows = []
            for (resource, raw_id), (_, obj) in buf.raw.items():
                text = canonical_json(obj)
                raw_rows.append((resource, raw_id, text, content_hash(text)))
            conn.executemany(f"INSERT OR REPLACE INTO {t.raw} VALUES (?, ?, ?, ?)", raw_rows)


def _merge_staged(conn: sqlite3.Connection, table: str, items: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Objects staged by an earlier flush of this round are the base the new keys update."""
    for key, data in conn.execute(
        f"SELECT key, data FROM {table} WHERE key IN (SELECT value FROM json_each(?))",
        (json.dumps(list(items)),),
    ):
        owner, obj = items[key]
        items[key] = (owner, {**json.loads(data), **obj})


def stage_raw_deletes(conn: sqlite3.Connection, t: StageTables, resource: str, ids: Sequence[str]) -> None:
    """Writer thread: a delete cancels what this round staged before it; a later stage re-adds."""
    with transaction(conn):
        conn.executemany(f"INSERT OR IGNORE INTO {t.raw_deletes} VALUES (?, ?)", [(resource, i) for i in ids])
        conn.execute(
            f"DELETE FROM {t.raw} WHERE resource = ? AND id IN (SELECT value FROM json_each(?))",
            (resource, json.dumps(list(ids))),
        )


def stage_owner_deletes(conn: sqlite3.Connection, t: StageTables, owners: Sequence[str]) -> None:
    """Writer thread: the owners are gone; whatever was staged for them earlier this round too."""
    ids = json.dumps(list(owners))
    with transaction(conn):
        conn.executemany(
            f"INSERT INTO {t.owners} (owner, deleted) VALUES (?, 1) ON CONFLICT(owner) DO UPDATE"
            " SET staged = 0, replace_all = 0, kept = 0, deleted = 1",
            [(o,) for o in owners],
        )
        for table in (t.entities, t.relationships):
            conn.execute(f"DELETE FROM {table} WHERE owner IN (SELECT value FROM json_each(?))", (ids,))
        conn.execute(f"DELETE FROM {t.raw} WHERE id IN (SELECT value FROM json_each(?))", (ids,))


def stage_relationship_deletes(conn: sqlite3.Connection, t: StageTables, keys: Sequence[str]) -> None:
    """Writer thread: remove relationships by key (e.g. a ``members@delta`` removal)."""
    with transaction(conn):
        conn.executemany(f"INSERT OR IGNORE INTO {t.relationship_deletes} VALUES (?)", [(k,) for k in keys])
        conn.execute(
            f"DELETE FROM {t.relationships} WHERE key IN (SELECT value FROM json_each(?))",
            (json.dumps(list(keys)),),
        )


def stage_keeps(conn: sqlite3.Connection, t: StageTables, owners: Sequence[str]) -> None:
    """Writer thread: owners unchanged and not re-fetched survive a full round's sweep."""
    with transaction(conn):
        conn.executemany(
            f"INSERT INTO {t.owners} (owner, kept) VALUES (?, 1) ON CONFLICT(owner) DO UPDATE SET kept = 1",
            [(o,) for o in owners],
        )


# --- commit -------------------------------------------------------------------------------------

_TEMP_TABLES = ("m_de", "m_dr", "m_ce", "m_cr", "m_orph", "m_ex", "m_ar")

# A relationship needs a J1 write when both ends exist and J1's copy differs from ours.
REL_NEEDS_PUSH = (
    "r.ends_live = 1 AND ((r.deleted = 0 AND r.hash IS NOT r.pushed_hash)"
    " OR (r.deleted = 1 AND r.pushed_hash IS NOT NULL))"
)
ENTITY_NEEDS_PUSH = (
    "((e.deleted = 0 AND e.hash IS NOT e.pushed_hash) OR (e.deleted = 1 AND e.pushed_hash IS NOT NULL))"
)
OUTBOX_PART_SQL = "CASE WHEN r.to_key IS NULL THEN 'e' ELSE 'r' END"
"""The J1 partition kind of relationship row ``r``: a mapped one lives with its source entity."""
STAGED_ENDS_LIVE = (
    "(EXISTS (SELECT 1 FROM entities f WHERE f.key = s.from_key AND f.deleted = 0)"
    " AND (s.to_key IS NULL OR EXISTS (SELECT 1 FROM entities g WHERE g.key = s.to_key AND g.deleted = 0)))"
)
ENDS_LIVE = (
    "(EXISTS (SELECT 1 FROM entities f WHERE f.key = relationships.from_key AND f.deleted = 0)"
    " AND (relationships.to_key IS NULL"
    " OR EXISTS (SELECT 1 FROM entities g WHERE g.key = relationships.to_key AND g.deleted = 0)))"
)


def _create_temp_tables(conn: sqlite3.Connection) -> None:
    for name in _TEMP_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS stage.{name}")
    conn.execute("CREATE TABLE stage.m_de (key TEXT PRIMARY KEY)")
    conn.execute("CREATE TABLE stage.m_dr (key TEXT PRIMARY KEY)")
    conn.execute("CREATE TABLE stage.m_ce (key TEXT PRIMARY KEY, op TEXT, type TEXT, old TEXT)")
    conn.execute(
        "CREATE TABLE stage.m_cr (key TEXT PRIMARY KEY, op TEXT, type TEXT, old TEXT,"
        " from_key TEXT, to_key TEXT)"
    )
    conn.execute("CREATE TABLE stage.m_orph (key TEXT PRIMARY KEY)")
    conn.execute("CREATE TABLE stage.m_ex (key TEXT PRIMARY KEY)")
    conn.execute("CREATE TABLE stage.m_ar (key TEXT PRIMARY KEY)")


def drop_temp_tables(conn: sqlite3.Connection) -> None:
    """Free the per-commit scratch tables (they can hold a full round's keys)."""
    for name in _TEMP_TABLES:
        conn.execute(f"DROP TABLE IF EXISTS stage.{name}")


def _removals(
    conn: sqlite3.Connection, t: StageTables, table: str, scratch: str, stage: str, full: bool, origin: str
) -> None:
    """Fill ``scratch`` with live keys this round removes: deleted owners, replaced owners' leftovers,
    and (full rounds) the sweep of owners neither staged nor kept. Keys staged again are upserts."""
    conn.execute(
        f"INSERT OR IGNORE INTO {scratch} SELECT x.key FROM {t.owners} o CROSS JOIN {table} x"
        " ON x.origin = ? AND x.owner = o.owner WHERE (o.deleted = 1 OR o.replace_all = 1) AND x.deleted = 0",
        (origin,),
    )
    if full:
        conn.execute(
            f"INSERT OR IGNORE INTO {scratch} SELECT x.key FROM {table} x WHERE x.origin = ?"
            " AND x.deleted = 0"
            f" AND NOT EXISTS (SELECT 1 FROM {t.owners} o WHERE o.owner = x.owner AND"
            " (o.staged = 1 OR o.kept = 1))",
            (origin,),
        )
    conn.execute(f"DELETE FROM {scratch} WHERE key IN (SELECT key FROM {stage})")


def _remove(conn: sqlite3.Connection, table: str, keys_sql: str, now: float) -> None:
    """Delete rows J1 never had; tombstone the rest so the delete can be pushed."""
    conn.execute(f"DELETE FROM {table} WHERE key IN ({keys_sql}) AND pushed_hash IS NULL")
    conn.execute(f"UPDATE {table} SET deleted = 1, updated_at = ? WHERE key IN ({keys_sql})", (now,))


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
    """Writer thread: apply a staged round, its outbox rows, cursors and alerts in ONE transaction."""
    now = time.time()
    collect = int(collect_changes or change_hook is not None)
    with transaction(conn):
        _create_temp_tables(conn)

        # entities -------------------------------------------------------------------------
        _removals(conn, t, "entities", "m_de", t.entities, full, origin)
        conn.execute(
            "INSERT INTO m_ce SELECT s.key,"
            " CASE WHEN e.key IS NULL OR e.deleted = 1 THEN 'created' ELSE 'updated' END, s.type,"
            " CASE WHEN ? AND e.deleted = 0 THEN e.data END"
            f" FROM {t.entities} s LEFT JOIN entities e ON e.key = s.key"
            " WHERE e.key IS NULL OR e.deleted = 1 OR e.hash != s.hash",
            (collect,),
        )
        conn.execute(
            "INSERT INTO m_ce SELECT e.key, 'deleted', e.type, CASE WHEN ? THEN e.data END"
            " FROM m_de d JOIN entities e ON e.key = d.key",
            (collect,),
        )
        conn.execute(
            "INSERT INTO entities (key, type, data, hash, origin, owner, deleted, pushed_hash, updated_at,"
            " khash)"
            f" SELECT s.key, s.type, s.data, s.hash, ?, s.owner, 0, NULL, ?, {SQL_FUNCTION}(s.key)"
            f" FROM {t.entities} s"
            " WHERE NOT EXISTS (SELECT 1 FROM entities e WHERE e.key = s.key AND e.hash = s.hash"
            " AND e.deleted = 0 AND e.origin = ? AND e.owner = s.owner)"
            " ON CONFLICT(key) DO UPDATE SET type = excluded.type, data = excluded.data,"
            " hash = excluded.hash,"
            " origin = excluded.origin, owner = excluded.owner, deleted = 0, updated_at ="
            " excluded.updated_at",
            (origin, now, origin),
        )
        _remove(conn, "entities", "SELECT key FROM m_de", now)

        # relationships --------------------------------------------------------------------
        _removals(conn, t, "relationships", "m_dr", t.relationships, full, origin)
        conn.execute(
            f"INSERT OR IGNORE INTO m_dr SELECT r.key FROM {t.relationship_deletes} d"
            f" CROSS JOIN relationships r ON r.key = d.key WHERE r.deleted = 0"
            f" AND r.key NOT IN (SELECT key FROM {t.relationships})"
        )
        conn.execute(
            "INSERT INTO m_cr SELECT s.key,"
            " CASE WHEN r.key IS NULL OR r.deleted = 1 THEN 'created' ELSE 'updated' END, s.type,"
            " CASE WHEN ? AND r.deleted = 0 THEN r.data END, s.from_key, s.to_key"
            f" FROM {t.relationships} s LEFT JOIN relationships r ON r.key = s.key"
            " WHERE r.key IS NULL OR r.deleted = 1 OR r.hash != s.hash",
            (collect,),
        )
        conn.execute(
            "INSERT INTO m_cr SELECT r.key, 'deleted', r.type, CASE WHEN ? THEN r.data END,"
            " r.from_key, r.to_key"
            " FROM m_dr d JOIN relationships r ON r.key = d.key",
            (collect,),
        )
        conn.execute(
            "INSERT INTO relationships (key, type, data, hash, origin, owner, from_key, to_key, deleted,"
            " ends_live, pushed_hash, updated_at, khash)"
            " SELECT s.key, s.type, s.data, s.hash, ?, s.owner, s.from_key, s.to_key, 0,"
            f" {STAGED_ENDS_LIVE}, NULL, ?, {relationship_khash_sql('s.')}"
            f" FROM {t.relationships} s"
            " WHERE NOT EXISTS (SELECT 1 FROM relationships r WHERE r.key = s.key AND r.hash = s.hash"
            " AND r.deleted = 0 AND r.origin = ? AND r.owner = s.owner)"
            " ON CONFLICT(key) DO UPDATE SET type = excluded.type, data = excluded.data,"
            " hash = excluded.hash,"
            " origin = excluded.origin, owner = excluded.owner, from_key = excluded.from_key,"
            " to_key = excluded.to_key, deleted = 0, ends_live = excluded.ends_live,"
            " updated_at = excluded.updated_at, khash = excluded.khash",
            (origin, now, origin),
        )
        _remove(conn, "relationships", "SELECT key FROM m_dr", now)

        # orphan rules: member entities nobody points to any more -----------------------------
        for entity_type, rel_type in orphan_rules.items():
            conn.execute(
                "INSERT OR IGNORE INTO m_orph SELECT e.key"
                f" FROM (SELECT key FROM {t.entities} WHERE type = ?"
                " UNION SELECT to_key FROM m_cr WHERE type = ? AND to_key IS NOT NULL) touched"
                " CROSS JOIN entities e ON e.key = touched.key"
                " WHERE e.type = ? AND e.deleted = 0"
                " AND NOT EXISTS (SELECT 1 FROM relationships r WHERE r.to_key = e.key AND r.type = ?"
                " AND r.deleted = 0)",
                (entity_type, rel_type, entity_type, rel_type),
            )
        if orphan_rules:
            conn.execute("DELETE FROM m_ce WHERE op = 'created' AND key IN (SELECT key FROM m_orph)")
            conn.execute(
                "UPDATE m_ce SET op = 'deleted' WHERE op = 'updated' AND key IN (SELECT key FROM m_orph)"
            )
            conn.execute(
                "INSERT OR IGNORE INTO m_ce SELECT e.key, 'deleted', e.type, CASE WHEN ? THEN e.data END"
                " FROM m_orph o JOIN entities e ON e.key = o.key",
                (collect,),
            )
            _remove(conn, "entities", "SELECT key FROM m_orph", now)

        # liveness: relationships whose row changed or whose endpoint appeared/disappeared -----
        conn.execute(
            "INSERT INTO m_ex SELECT key FROM m_ce WHERE op = 'deleted'"
            " UNION SELECT key FROM m_ce WHERE op = 'created' UNION SELECT key FROM m_orph"
        )
        # rows (re)written this round already got ends_live at insert, except for orphan endpoints
        for end in ("from_key", "to_key"):
            conn.execute(
                f"INSERT OR IGNORE INTO m_ar SELECT r.key FROM relationships r WHERE r.{end} IN"
                " (SELECT key FROM m_ex) AND r.key NOT IN (SELECT key FROM m_cr WHERE op != 'deleted')"
            )
            conn.execute(
                f"INSERT OR IGNORE INTO m_ar SELECT r.key FROM relationships r WHERE r.{end} IN"
                " (SELECT key FROM m_orph)"
            )
        conn.execute(
            f"UPDATE relationships SET ends_live = {ENDS_LIVE} WHERE key IN (SELECT key FROM m_ar)"
            f" AND ends_live IS NOT {ENDS_LIVE}"  # writes only rows whose liveness flipped
        )
        conn.execute("INSERT OR IGNORE INTO m_ar SELECT key FROM m_cr")

        # outbox: keys whose desired J1 state now differs from what J1 has -----------------------
        outbox_added = conn.execute(
            "INSERT INTO outbox (kind, key, part, khash) SELECT 'entity', c.key, 'e', e.khash FROM m_ce c"
            " JOIN entities e ON e.key = c.key"
            f" WHERE {ENTITY_NEEDS_PUSH} ORDER BY c.rowid"
        ).rowcount
        outbox_added += conn.execute(
            "INSERT INTO outbox (kind, key, part, khash) SELECT 'relationship', a.key,"
            f" {OUTBOX_PART_SQL}, r.khash FROM m_ar a"
            f" JOIN relationships r ON r.key = a.key WHERE {REL_NEEDS_PUSH} ORDER BY a.rowid"
        ).rowcount

        # raw objects ----------------------------------------------------------------------------
        raw_deleted = conn.execute(
            f"DELETE FROM raw WHERE (resource, id) IN (SELECT resource, id FROM {t.raw_deletes})"
            f" AND (resource, id) NOT IN (SELECT resource, id FROM {t.raw})"
        ).rowcount
        raw_deleted += conn.execute(
            "DELETE FROM raw WHERE origin = ?"
            f" AND id IN (SELECT owner FROM {t.owners} WHERE deleted = 1)"
            f" AND (resource, id) NOT IN (SELECT resource, id FROM {t.raw})",
            (origin,),
        ).rowcount
        if full:
            raw_deleted += conn.execute(
                "DELETE FROM raw WHERE origin = ?"
                f" AND (resource, id) NOT IN (SELECT resource, id FROM {t.raw})"
                f" AND id NOT IN (SELECT owner FROM {t.owners} WHERE staged = 1 OR kept = 1)",
                (origin,),
            ).rowcount
        raw_upserted = conn.execute(
            "INSERT INTO raw (resource, id, origin, data, hash, updated_at)"
            f" SELECT s.resource, s.id, ?, s.data, s.hash, ? FROM {t.raw} s"
            " WHERE NOT EXISTS (SELECT 1 FROM raw w WHERE w.resource = s.resource AND w.id = s.id"
            " AND w.hash = s.hash AND w.origin = ?)"
            " ON CONFLICT(resource, id) DO UPDATE SET origin = excluded.origin, data = excluded.data,"
            " hash = excluded.hash, updated_at = excluded.updated_at",
            (origin, now, origin),
        ).rowcount

        # cursors --------------------------------------------------------------------------------
        for name, value in cursors.items():
            upsert_cursor(conn, name, value, origin, now)

        # counts, changes, alerts ----------------------------------------------------------------
        counts: dict[str, int] = {
            f"{kind}_{op}": 0
            for kind in ("entities", "relationships")
            for op in ("created", "updated", "deleted")
        }
        for kind, scratch in (("entities", "m_ce"), ("relationships", "m_cr")):
            for op, n in conn.execute(f"SELECT op, count(*) FROM {scratch} GROUP BY op"):
                counts[f"{kind}_{op}"] = int(n)
        counts["raw_upserted"] = raw_upserted
        counts["raw_deleted"] = raw_deleted

        changes = _collect_changes(conn) if collect else []
        if change_hook is not None:
            alerts = change_hook(changes, _entity_lookup(conn))
            counts["alerts_added"] = insert_alerts(conn, alerts, now)
        pause_point_blocking("mirror.commit")
        result = CommitResult(
            changes=changes if collect_changes else [], counts=counts, outbox_added=outbox_added
        )
    return result


def _entity_lookup(conn: sqlite3.Connection) -> Callable[[str], dict[str, Any] | None]:
    """Reads an entity as this transaction sees it (tombstones are absent)."""

    def lookup(key: str) -> dict[str, Any] | None:
        row = conn.execute("SELECT data FROM entities WHERE key = ? AND deleted = 0", (key,)).fetchone()
        return _load(row[0]) if row else None

    return lookup


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


def _load(text: str | None) -> dict[str, Any] | None:
    return cast(dict[str, Any], json.loads(text)) if text is not None else None


def _collect_changes(conn: sqlite3.Connection) -> list[Change]:
    """Row-level changes with old and new objects, entities first, in staging order."""
    changes: list[Change] = []
    for key, op, type_, old, new in conn.execute(
        "SELECT c.key, c.op, c.type, c.old, CASE WHEN c.op != 'deleted' THEN e.data END"
        " FROM m_ce c LEFT JOIN entities e ON e.key = c.key ORDER BY c.rowid"
    ):
        changes.append(Change("entity", cast(_Op, op), type_, key, _load(old), _load(new)))
    for key, op, type_, old, new, from_key, to_key in conn.execute(
        "SELECT c.key, c.op, c.type, c.old, CASE WHEN c.op != 'deleted' THEN r.data END, c.from_key, c.to_key"
        " FROM m_cr c LEFT JOIN relationships r ON r.key = c.key ORDER BY c.rowid"
    ):
        changes.append(
            Change("relationship", cast(_Op, op), type_, key, _load(old), _load(new), from_key, to_key)
        )
    return changes


_Op = Literal["created", "updated", "deleted"]


class RoundWriter:
    """Stages one round of one origin; nothing changes in the mirror until ``commit()``."""

    def __init__(
        self,
        run: WriteRunner,
        tables: StageTables,
        origin: str,
        full: bool,
        on_end: Callable[[RoundWriter], None],
    ) -> None:
        self._run = run
        self.tables = tables
        self.origin = origin
        self.full = full
        self._state: Literal["open", "committing", "committed", "discarded"] = "open"
        self._on_end = on_end
        self._buffer = StageBuffer()

    def _check_open(self) -> None:
        if self._state != "open":
            raise MirrorError(f"round {self.tables.round_id} of {self.origin!r} is already {self._state}")

    async def stage(
        self,
        owner: str,
        entities: Sequence[Mapping[str, Any]] = (),
        relationships: Sequence[Mapping[str, Any]] = (),
        *,
        replace: bool = False,
    ) -> None:
        """Stage derived rows of one owner; ``replace`` makes them exactly the owner's rows."""
        self._check_open()
        self._buffer.add(owner, entities, relationships, replace)
        if self._buffer.rows >= FLUSH_ROWS:
            await self._flush()

    async def stage_raw(self, resource: str, objects: Sequence[Mapping[str, Any]]) -> None:
        """Stage raw Graph objects (by ``id``) for the raw table."""
        self._check_open()
        self._buffer.add_raw(resource, objects)
        if self._buffer.rows >= FLUSH_ROWS:
            await self._flush()

    async def delete_raw(self, resource: str, ids: Sequence[str]) -> None:
        """Remove raw objects by id at commit."""
        self._check_open()
        await self._flush()
        t = self.tables
        await self._run("staging raw deletes", lambda c: stage_raw_deletes(c, t, resource, list(ids)))

    async def delete_owners(self, ids: Sequence[str]) -> None:
        """Remove every row of this origin owned by these owners (and their raw objects) at commit."""
        self._check_open()
        await self._flush()
        t = self.tables
        await self._run("staging owner deletes", lambda c: stage_owner_deletes(c, t, list(ids)))

    async def delete_relationships(self, keys: Sequence[str]) -> None:
        """Remove relationships by key at commit."""
        self._check_open()
        await self._flush()
        t = self.tables
        await self._run(
            "staging relationship deletes", lambda c: stage_relationship_deletes(c, t, list(keys))
        )

    async def keep(self, owners: Sequence[str]) -> None:
        """Full rounds: these owners were not re-fetched; their rows survive the sweep."""
        self._check_open()
        t = self.tables
        await self._run("staging keeps", lambda c: stage_keeps(c, t, list(owners)))

    async def commit(
        self,
        *,
        cursors: Mapping[str, str | None] | None = None,
        orphan_rules: Mapping[str, str] | None = None,
        change_hook: ChangeHook | None = None,
        collect_changes: bool = True,
    ) -> CommitResult:
        """Apply the round, its outbox rows, cursors and alert rows in ONE transaction."""
        self._check_open()
        self._state = "committing"
        t = self.tables
        buffered = self._buffer.take()
        origin, full = self.origin, self.full
        cursor_map = dict(cursors or {})
        rules = dict(orphan_rules or {})

        def work(conn: sqlite3.Connection) -> CommitResult:
            try:
                if buffered.rows:
                    flush_buffer(conn, t, buffered)
                return apply_round(conn, t, origin, full, cursor_map, rules, change_hook, collect_changes)
            finally:
                with contextlib.suppress(sqlite3.Error):  # leftovers are dropped at the next open
                    drop_temp_tables(conn)
                    drop_stage_tables(conn, t)

        try:
            result = await self._run(f"committing round of {origin!r}", work)
        except BaseException:
            self._state = "discarded"
            self._on_end(self)
            raise
        self._state = "committed"
        self._on_end(self)
        return result

    async def discard(self) -> None:
        """Forget the staging; the mirror is unchanged. Safe to call twice or after commit."""
        if self._state != "open":
            return
        self._state = "discarded"
        self._on_end(self)
        self._buffer.take()
        t = self.tables
        await self._run("discarding a round", lambda c: drop_stage_tables(c, t))

    async def _flush(self) -> None:
        """Write buffered pages to the stage tables (one transaction on the writer thread)."""
        if not self._buffer.rows and not self._buffer.owners:
            return
        buffered = self._buffer.take()
        t = self.tables
        await self._run("staging", lambda c: flush_buffer(c, t, buffered))
