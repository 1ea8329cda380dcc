"""A round's staging: its own ``stage_<id>_*`` tables, written as pages arrive.

Staging writes only to the round's stage tables (in the stage file, see ``Mirror``), so memory
stays flat and the mirror's state is untouched until the commit (``syncd.mirror.commit``).
Objects staged again under the same key are merged (later keys win); deletes cancel what the
round staged before them. Every function here runs on the writer thread.
"""

# ruff: noqa: S608 -- table names in f-strings are stage_<int> names, never input

from __future__ import annotations

import json
import sqlite3
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from syncd.mirror.canonical import canonical_json, content_hash
from syncd.mirror.sql import transaction


@dataclass(frozen=True)
class StageTables:
    """The names of one round's stage tables, ``stage_<round id>_<what>`` (dropped when the round
    ends, or at the next open)."""

    round_id: int
    entities: str
    relationships: str
    owners: str
    raw: str
    raw_deletes: str
    relationship_deletes: str

    @classmethod
    def of_round(cls, round_id: int) -> StageTables:
        names = [f"stage_{round_id}_{what}" for what in ("entity", "rel", "owner", "raw", "rawdel", "reldel")]
        return cls(round_id, *names)

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


K = TypeVar("K", bound=Hashable)

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
    target: dict[K, tuple[str, dict[str, Any]]], key: K, owner: str, obj: Mapping[str, Any]
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
