"""The J1 outbox and what the mirror believes J1 holds, one partition at a time.

Every entity and relationship row has ``pushed_hash``: the hash J1 holds for it (NULL: J1 does
not have it; ``UNKNOWN_HASH``: J1 may hold some version of it). The outbox names the keys whose
``hash`` and ``pushed_hash`` may differ; each row carries its J1 partition (``part`` = ``e`` or
``r`` and the key hash ``khash``), so one partition's rows are one index range.

A push reads a *snapshot* of one partition (its rows, its pending outbox rows, and what the
writer needs to decide what to upload), sends a job, and on success *acks* it: the ack records
the truth about J1 (what was sent, what J1 no longer has), drops the outbox rows the snapshot
covered, and gives a fresh row to any key still out of step with J1 (it changed while the job
was in flight), so no change is lost between snapshot and ack.
"""

# ruff: noqa: S608 -- table names in f-strings are internal constants, never input

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from syncd.mirror import partition_state
from syncd.mirror.canonical import canonical_json
from syncd.mirror.commit import ENDS_LIVE, ENTITY_NEEDS_PUSH, OUTBOX_PART_SQL
from syncd.mirror.keyhash import key_hash, relationship_hash
from syncd.mirror.sql import json_list, transaction

UNKNOWN_HASH = "!unknown"
"""pushed_hash of a key J1 may or may not hold (e.g. a relationship whose endpoint J1 deleted
without the cascade being proven): forces the next push of its partition to settle it."""

Kind = Literal["entity", "relationship"]
ObjectId = tuple[Kind, str]
TABLES: dict[Kind, str] = {"entity": "entities", "relationship": "relationships"}


@dataclass(frozen=True)
class SnapshotRow:
    """One entity or relationship row of a partition, as stored."""

    kind: Kind
    key: str
    type: str
    data: str
    hash: str
    deleted: bool
    pushed_hash: str | None
    from_key: str | None = None
    to_key: str | None = None
    ends_live: bool = True
    pushed_props: tuple[str, ...] = ()
    """Entities: the property names J1 holds (a PATCH sends null for those no longer set)."""

    @property
    def mapped(self) -> bool:
        return self.kind == "relationship" and self.to_key is None

    def object(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.data))


@dataclass
class PartitionSnapshot:
    """A consistent read of one partition (taken on the writer thread, between commits)."""

    part: str
    lo: int
    hi: int
    max_seq: int
    rows: list[SnapshotRow] = field(default_factory=list)
    pending: set[ObjectId] = field(default_factory=set)
    """Keys with outbox rows (seq <= max_seq) in this partition."""
    gone: set[ObjectId] = field(default_factory=set)
    """Pending keys with no row at all: J1 may still hold them (a crash before their ack)."""
    refused: dict[ObjectId, str] = field(default_factory=dict)
    """Keys J1 refused, with the hash it refused: left out while the hash is the same."""
    present_in_j1: set[str] = field(default_factory=set)
    """Relationship partitions: endpoints J1 holds (pushed_hash set), so a relationship to them resolves."""

    def is_refused(self, row: SnapshotRow) -> bool:
        return self.refused.get((row.kind, row.key)) == row.hash


@dataclass
class PartitionAck:
    """What J1 holds for one partition after a FINISHED, verified job."""

    part: str
    lo: int
    hi: int
    max_seq: int
    scope: str
    gen: int = 0
    """The partition state's generation seen at snapshot: a DIFF clears it only if unchanged."""
    job_id: str | None = None
    sent: dict[ObjectId, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    """key → (hash, object) now in J1."""
    absent: set[ObjectId] = field(default_factory=set)
    """Keys J1 no longer holds (deleted by this job, or never had)."""
    settled: set[ObjectId] | None = None
    """Outbox rows to drop; None: every row of the partition up to ``max_seq`` (a DIFF)."""
    cascade: bool | None = None
    """Whether J1 deletes an entity's relationships in other scopes with it (the probe's finding):
    True, they are gone; False, they dangle in J1 and are queued to be deleted; None (unknown), they
    are marked unknown and queued, so their partition's DIFF settles them."""


def _rows(conn: sqlite3.Connection, sql: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
    return list(conn.execute(sql, tuple(params)))


def outbox_max_seq(conn: sqlite3.Connection) -> int:
    """The highest seq ever issued (0 if none)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(row[0]) if row else 0


_ENTITY_ROWS = (
    "SELECT 'entity', e.key, e.type, e.data, e.hash, e.deleted, e.pushed_hash, NULL, NULL, 1, p.names"
    " FROM entities e LEFT JOIN prop_sets p ON p.id = e.pushed_props WHERE e.khash BETWEEN ? AND ?"
)
_RELATIONSHIP_ROWS = (
    "SELECT 'relationship', key, type, data, hash, deleted, pushed_hash, from_key, to_key, ends_live,"
    " NULL FROM relationships WHERE khash BETWEEN ? AND ? AND to_key IS {null}"
)
"""A partition's rows in `SnapshotRow` field order: entities (entity partitions), and mapped
(``to_key IS NULL``, entity partitions) or explicit (``IS NOT NULL``) relationships."""


def _snapshot_row(row: tuple[Any, ...]) -> SnapshotRow:
    kind, key, type_, data, hash_, deleted, pushed, from_key, to_key, ends_live, prop_names = row
    return SnapshotRow(
        kind,
        key,
        type_,
        data,
        hash_,
        bool(deleted),
        pushed,
        from_key,
        to_key,
        bool(ends_live),
        tuple(json.loads(prop_names)) if prop_names else (),
    )


def read_snapshot(conn: sqlite3.Connection, part: str, lo: int, hi: int) -> PartitionSnapshot:
    """Writer thread: one partition's rows and pending outbox keys, as of now."""
    snap = PartitionSnapshot(part=part, lo=lo, hi=hi, max_seq=outbox_max_seq(conn))
    if part == "e":
        queries = [_ENTITY_ROWS, _RELATIONSHIP_ROWS.format(null="NULL")]
    else:
        queries = [_RELATIONSHIP_ROWS.format(null="NOT NULL")]
    for sql in queries:
        snap.rows.extend(_snapshot_row(row) for row in _rows(conn, sql, (lo, hi)))
    for kind, key in _rows(
        conn,
        "SELECT DISTINCT kind, key FROM outbox WHERE part = ? AND khash BETWEEN ? AND ? AND seq <= ?",
        (part, lo, hi, snap.max_seq),
    ):
        snap.pending.add((kind, key))
    known = {(r.kind, r.key) for r in snap.rows}
    snap.gone = {k for k in snap.pending if k not in known}
    for kind, key, hash_ in _rows(
        conn,
        "SELECT kind, key, hash FROM j1_refused WHERE key IN (SELECT value FROM json_each(?))",
        (json_list([r.key for r in snap.rows]),),
    ):
        snap.refused[(kind, key)] = hash_
    if part == "r":
        ends = {end for r in snap.rows for end in (r.from_key, r.to_key) if end}
        snap.present_in_j1 = _present_in_j1(conn, ends)
    return snap


def _present_in_j1(conn: sqlite3.Connection, keys: set[str]) -> set[str]:
    """The entities among ``keys`` J1 holds (pushed, live, not refused in their current version)."""
    return {
        key
        for (key,) in _rows(
            conn,
            "SELECT key FROM entities WHERE key IN (SELECT value FROM json_each(?))"
            " AND deleted = 0 AND pushed_hash IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM j1_refused x WHERE x.kind = 'entity' AND x.key ="
            " entities.key AND x.hash = entities.hash)",
            (json_list(keys),),
        )
    }


def pending_buckets(conn: sqlite3.Connection, part: str, bits: int) -> list[int]:
    """Buckets (of ``2 ** bits``) of a partition kind that have outbox rows."""
    return [
        int(b)
        for (b,) in conn.execute(
            "SELECT DISTINCT khash >> ? FROM outbox WHERE part = ?", (32 - bits, part)
        ).fetchall()
    ]


def ack_partition(conn: sqlite3.Connection, ack: PartitionAck, now: float | None = None) -> None:
    """Writer thread: J1 finished (and we verified) a job on this partition; record it."""
    now = time.time() if now is None else now
    with transaction(conn):
        # 1. What J1 holds now (and what that means for relationships in other partitions).
        newly_present = _record_sent(conn, ack, now)
        removed_entities = _record_absent(conn, ack)
        if removed_entities:
            _after_entity_removal(conn, removed_entities, ack.cascade)
        # 2. The outbox rows the snapshot covered are done; a key that changed meanwhile (or
        #    that the job could not settle) gets a fresh row.
        _drop_settled_rows(conn, ack)
        conn.executemany(
            "DELETE FROM j1_refused WHERE kind = ? AND key = ?", [(k, key) for k, key in ack.sent]
        )
        _requeue_out_of_step(conn, set(ack.sent) | ack.absent | (ack.settled or set()))
        if newly_present:
            _requeue_relationships_of(conn, newly_present)
        # 3. The partition's own bookkeeping: back-off ended, DIFF done, job no longer in flight.
        partition_state.settle(conn, ack.scope, ack.gen, diff=ack.settled is None)
        if ack.job_id is not None:
            partition_state.forget_job(conn, ack.job_id)


def _drop_settled_rows(conn: sqlite3.Connection, ack: PartitionAck) -> None:
    """The outbox rows up to the snapshot's seq: all of the partition's (a DIFF), else those of
    the settled keys."""
    if ack.settled is None:
        conn.execute(
            "DELETE FROM outbox WHERE part = ? AND khash BETWEEN ? AND ? AND seq <= ?",
            (ack.part, ack.lo, ack.hi, ack.max_seq),
        )
        return
    conn.executemany(
        "DELETE FROM outbox WHERE kind = ? AND key = ? AND seq <= ?",
        [(kind, key, ack.max_seq) for kind, key in ack.settled],
    )


def _record_sent(conn: sqlite3.Connection, ack: PartitionAck, now: float) -> list[str]:
    """pushed_hash := what was sent. Returns entity keys J1 did not hold before (newly present)."""
    newly_present: list[str] = []
    for (kind, key), (hash_, obj) in ack.sent.items():
        table = TABLES[kind]
        row = conn.execute(f"SELECT pushed_hash FROM {table} WHERE key = ?", (key,)).fetchone()
        if row is None:
            # removed while in flight and never pushed before: J1 has it now, keep a tombstone
            _insert_tombstone(conn, kind, key, hash_, obj, now)
            continue
        if kind == "entity" and row[0] is None:
            newly_present.append(key)
        if kind == "entity":
            conn.execute(
                "UPDATE entities SET pushed_hash = ?, pushed_props = ? WHERE key = ?",
                (hash_, _prop_set(conn, obj), key),
            )
        else:
            conn.execute("UPDATE relationships SET pushed_hash = ? WHERE key = ?", (hash_, key))
    return newly_present


def _prop_set(conn: sqlite3.Connection, obj: dict[str, Any]) -> int:
    """Id of the set of property names of ``obj`` (a handful of distinct sets per entity type)."""
    names = json.dumps(sorted(obj), separators=(",", ":"))
    row = conn.execute("SELECT id FROM prop_sets WHERE names = ?", (names,)).fetchone()
    if row is not None:
        return int(row[0])
    return int(conn.execute("INSERT INTO prop_sets (names) VALUES (?)", (names,)).lastrowid or 0)


def _insert_tombstone(
    conn: sqlite3.Connection, kind: Kind, key: str, hash_: str, obj: dict[str, Any], now: float
) -> None:
    if kind == "entity":
        conn.execute(
            "INSERT INTO entities (key, type, data, hash, origin, owner, deleted, pushed_hash, updated_at,"
            " khash) VALUES (?, ?, ?, ?, '', '', 1, ?, ?, ?)",
            (key, obj["_type"], canonical_json(obj), hash_, hash_, now, key_hash(key)),
        )
        return
    mapping = obj.get("_mapping")
    from_key = str(obj.get("_fromEntityKey") or (mapping or {}).get("sourceEntityKey", ""))
    to_key = obj.get("_toEntityKey") if mapping is None else None
    conn.execute(
        "INSERT INTO relationships (key, type, data, hash, origin, owner, from_key, to_key, deleted,"
        " ends_live, pushed_hash, updated_at, khash) VALUES (?, ?, ?, ?, '', '', ?, ?, 1, 0, ?, ?, ?)",
        (
            key,
            obj["_type"],
            canonical_json(obj),
            hash_,
            from_key,
            to_key,
            hash_,
            now,
            relationship_hash(key, from_key, to_key),
        ),
    )
    conn.execute(f"UPDATE relationships SET ends_live = {ENDS_LIVE} WHERE key = ?", (key,))


def _record_absent(conn: sqlite3.Connection, ack: PartitionAck) -> list[str]:
    """pushed_hash := NULL and tombstones purged. Returns entity keys J1 held and now does not."""
    removed: list[str] = []
    for kind, key in ack.absent:
        table = TABLES[kind]
        row = conn.execute(f"SELECT pushed_hash FROM {table} WHERE key = ?", (key,)).fetchone()
        if kind == "entity" and (row is None or row[0] is not None):
            removed.append(key)  # a gone row may have been in J1 (crash before its ack)
        if row is None:
            continue
        extra = ", pushed_props = NULL" if kind == "entity" else ""
        conn.execute(f"UPDATE {table} SET pushed_hash = NULL{extra} WHERE key = ?", (key,))
        conn.execute(f"DELETE FROM {table} WHERE key = ? AND deleted = 1", (key,))
    return removed


def _after_entity_removal(conn: sqlite3.Connection, keys: list[str], cascade: bool | None) -> None:
    """J1 deleted these entities; their explicit relationships live in other partitions (see
    ``PartitionAck.cascade``)."""
    attached = (
        "SELECT key FROM relationships WHERE to_key IS NOT NULL AND from_key IN (SELECT value FROM"
        " json_each(:keys)) UNION SELECT key FROM relationships WHERE to_key IN (SELECT value FROM"
        " json_each(:keys))"
    )
    params = {"keys": json_list(keys), "unknown": UNKNOWN_HASH}
    if cascade is True:
        conn.execute(
            f"UPDATE relationships SET pushed_hash = NULL WHERE key IN ({attached})"
            " AND pushed_hash IS NOT NULL",
            params,
        )
        conn.execute(f"DELETE FROM relationships WHERE key IN ({attached}) AND deleted = 1", params)
        return
    if cascade is None:
        conn.execute(
            f"UPDATE relationships SET pushed_hash = :unknown WHERE key IN ({attached})"
            " AND pushed_hash IS NOT NULL",
            params,
        )
    _queue_relationships(conn, f"r.key IN ({attached}) AND r.pushed_hash IS NOT NULL", params)


ENTITY_OUT_OF_STEP = (
    f"{ENTITY_NEEDS_PUSH}"
    " AND NOT EXISTS (SELECT 1 FROM j1_refused x WHERE x.kind = 'entity' AND x.key = e.key"
    " AND x.hash = e.hash AND e.deleted = 0)"
)
"""An entity differs from what J1 holds, and J1 did not refuse its current version."""
RELATIONSHIP_OUT_OF_STEP = (
    "((r.deleted = 0 AND r.ends_live = 1 AND r.hash IS NOT r.pushed_hash"
    "  AND EXISTS (SELECT 1 FROM entities f WHERE f.key = r.from_key AND f.pushed_hash IS NOT NULL)"
    "  AND (r.to_key IS NULL OR EXISTS (SELECT 1 FROM entities g WHERE g.key = r.to_key"
    "       AND g.pushed_hash IS NOT NULL)))"
    " OR ((r.deleted = 1 OR r.ends_live = 0) AND r.pushed_hash IS NOT NULL))"
    " AND NOT EXISTS (SELECT 1 FROM j1_refused x WHERE x.kind = 'relationship' AND x.key = r.key"
    " AND x.hash = r.hash AND r.deleted = 0)"
)
"""A relationship needs a push when J1's copy differs and both endpoints are in J1 (else it waits
for them: the ack that brings an endpoint into J1 queues it), or when J1 may still hold a
relationship that is gone or whose endpoint is gone."""


def _requeue_out_of_step(conn: sqlite3.Connection, touched: set[ObjectId]) -> None:
    """Keys the ack touched that are still out of step with J1 and have no pending row get one."""
    entity_keys = json_list(k for kind, k in touched if kind == "entity")
    rel_keys = json_list(k for kind, k in touched if kind == "relationship")
    conn.execute(
        "INSERT INTO outbox (kind, key, part, khash) SELECT 'entity', e.key, 'e', e.khash FROM entities e"
        f" WHERE e.key IN (SELECT value FROM json_each(?)) AND {ENTITY_OUT_OF_STEP}"
        " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = e.key AND o.kind = 'entity')",
        (entity_keys,),
    )
    _queue_relationships(
        conn, f"r.key IN (SELECT value FROM json_each(?)) AND {RELATIONSHIP_OUT_OF_STEP}", (rel_keys,)
    )


def _requeue_relationships_of(conn: sqlite3.Connection, entity_keys: list[str]) -> None:
    """Entities J1 now holds for the first time: relationships that waited for them are queued."""
    _queue_relationships(
        conn,
        "r.key IN (SELECT key FROM relationships WHERE from_key IN (SELECT value FROM json_each(?1))"
        " UNION SELECT key FROM relationships WHERE to_key IN (SELECT value FROM json_each(?1)))"
        f" AND {RELATIONSHIP_OUT_OF_STEP}",
        (json_list(entity_keys),),
    )


def _queue_relationships(conn: sqlite3.Connection, where: str, params: Any) -> None:
    """An outbox row for each relationship ``r`` matching ``where`` that has none pending."""
    conn.execute(
        f"INSERT INTO outbox (kind, key, part, khash) SELECT 'relationship', r.key, {OUTBOX_PART_SQL},"
        f" r.khash FROM relationships r WHERE {where}"
        " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = r.key AND o.kind = 'relationship')",
        params,
    )


# --- sizing ----------------------------------------------------------------------------------------


def object_counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(objects of entity partitions: live entities + mapped relationships, explicit relationships)."""
    entities = conn.execute("SELECT count(*) FROM entities WHERE deleted = 0").fetchone()[0]
    mapped, explicit = conn.execute(
        "SELECT coalesce(sum(to_key IS NULL), 0), coalesce(sum(to_key IS NOT NULL), 0) FROM relationships"
        " WHERE deleted = 0 AND ends_live = 1"
    ).fetchone()
    return int(entities) + int(mapped), int(explicit)


def fullest_partition(conn: sqlite3.Connection, part: str, bits: int) -> int:
    """Objects in the fullest partition of a kind at ``2 ** bits`` partitions."""
    shift = 32 - bits
    if part == "e":
        sql = (
            f"SELECT max(n) FROM (SELECT b, sum(c) AS n FROM (SELECT khash >> {shift} AS b, count(*) AS c"
            " FROM entities WHERE deleted = 0 GROUP BY b UNION ALL SELECT khash >> "
            f"{shift} AS b, count(*) AS c FROM relationships WHERE deleted = 0 AND ends_live = 1"
            " AND to_key IS NULL GROUP BY b) GROUP BY b)"
        )
    else:
        sql = (
            f"SELECT max(c) FROM (SELECT khash >> {shift} AS b, count(*) AS c FROM relationships"
            " WHERE deleted = 0 AND ends_live = 1 AND to_key IS NOT NULL GROUP BY b)"
        )
    row = conn.execute(sql).fetchone()
    return int(row[0] or 0)
