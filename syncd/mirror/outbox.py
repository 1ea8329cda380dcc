"""The J1 outbox: which keys J1 must hear about, coalesced into their CURRENT state.

``pushed_hash`` records what J1 has. An ack records the truth about J1 (the hash sent, or that
the key is gone), then drops the outbox rows the batch covered; any key still out of step with
J1 afterwards (it changed, or changed back, while the batch was in flight) gets a fresh row, so
no change is ever lost between read and ack.
"""

# ruff: noqa: S608 -- table names in f-strings are internal constants or stage_<int> names, never input

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, cast

from syncd.mirror.canonical import canonical_json
from syncd.mirror.round import ENDS_LIVE, ENTITY_NEEDS_PUSH, REL_NEEDS_PUSH
from syncd.mirror.sql import json_list, transaction
from syncd.mirror.types import OutboxBatch

UNKNOWN_HASH = "!unknown"
"""pushed_hash of a key whose J1 state is unknown after a full push raced a commit: forces a push."""


def _dict(text: str) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(text))


def read_outbox(conn: sqlite3.Connection, limit: int) -> OutboxBatch:
    """Writer thread: the first ``limit`` rows in seq order, coalesced by key into current state."""
    rows = conn.execute("SELECT seq, kind, key FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
    if not rows:
        return OutboxBatch()
    entity_keys = list(dict.fromkeys(key for _, kind, key in rows if kind == "entity"))
    rel_keys = list(dict.fromkeys(key for _, kind, key in rows if kind == "relationship"))
    batch = OutboxBatch(
        max_seq=int(rows[-1][0]), rows=len(rows), entity_keys=entity_keys, relationship_keys=rel_keys
    )
    entities = {
        key: (data, hash_, deleted, pushed)
        for key, data, hash_, deleted, pushed in conn.execute(
            "SELECT key, data, hash, deleted, pushed_hash FROM entities WHERE key IN (SELECT"
            " value FROM json_each(?))",
            (json_list(entity_keys),),
        )
    }
    # A key with an unacknowledged outbox row may be in J1 even if `pushed_hash` says it never was
    # (a crash after J1 finished a job but before its ack committed): a key that is gone or
    # tombstoned is therefore always deleted in J1. An unknown key only costs J1 a no-op.
    for key in entity_keys:
        found = entities.get(key)
        if found is None:
            batch.entity_deletes.append(key)
            continue
        data, hash_, deleted, pushed = found
        if not deleted and hash_ != pushed:
            batch.entity_upserts.append(_dict(data))
            batch.entity_hashes[key] = hash_
        elif deleted:
            batch.entity_deletes.append(key)
    relationships = {
        key: (data, hash_, deleted, pushed, ends_live)
        for key, data, hash_, deleted, pushed, ends_live in conn.execute(
            "SELECT key, data, hash, deleted, pushed_hash, ends_live FROM relationships"
            " WHERE key IN (SELECT value FROM json_each(?))",
            (json_list(rel_keys),),
        )
    }
    for key in rel_keys:
        found_rel = relationships.get(key)
        if found_rel is None:
            batch.relationship_deletes.append(key)  # as for entities: it may be in J1 unacknowledged
            continue
        data, hash_, deleted, pushed, ends_live = found_rel
        if not ends_live:
            continue  # an endpoint is gone: J1 cascades its delete, nothing to send for this key
        if not deleted and hash_ != pushed:
            batch.relationship_upserts.append(_dict(data))
            batch.relationship_hashes[key] = hash_
        elif deleted:
            batch.relationship_deletes.append(key)
    return batch


def ack_outbox(conn: sqlite3.Connection, batch: OutboxBatch) -> None:
    """Writer thread: J1 accepted ``batch``; record J1's state and drop the rows it covered."""
    if batch.rows == 0:
        return
    now = time.time()
    with transaction(conn):
        cascaded = _record_entities(conn, batch, now)
        _record_relationships(conn, batch, now)
        rel_keys = json_list(dict.fromkeys([*batch.relationship_keys, *cascaded]))
        # a relationship tombstone whose endpoint row is gone entirely can never be cascaded: purge
        conn.execute(
            "DELETE FROM relationships WHERE key IN (SELECT value FROM json_each(?)) AND deleted = 1"
            " AND ends_live = 0 AND (NOT EXISTS (SELECT 1 FROM entities f WHERE f.key ="
            " relationships.from_key)"
            " OR (to_key IS NOT NULL AND NOT EXISTS (SELECT 1 FROM entities g WHERE g.key ="
            " relationships.to_key)))",
            (rel_keys,),
        )
        conn.execute("DELETE FROM outbox WHERE seq <= ?", (batch.max_seq,))
        # keys still out of step with J1 and without a pending row get one again
        conn.execute(
            "INSERT INTO outbox (kind, key) SELECT 'entity', e.key FROM entities e"
            f" WHERE e.key IN (SELECT value FROM json_each(?)) AND {ENTITY_NEEDS_PUSH}"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = e.key AND o.kind = 'entity')",
            (json_list(batch.entity_keys),),
        )
        conn.execute(
            "INSERT INTO outbox (kind, key) SELECT 'relationship', r.key FROM relationships r"
            f" WHERE r.key IN (SELECT value FROM json_each(?)) AND {REL_NEEDS_PUSH}"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = r.key AND o.kind = 'relationship')",
            (rel_keys,),
        )


def _record_entities(conn: sqlite3.Connection, batch: OutboxBatch, now: float) -> list[str]:
    """J1 now has the sent entities and lacks the deleted ones (and, by cascade, their relationships).

    Returns the keys of relationships touched by the cascade.
    """
    sent = {e["_key"]: e for e in batch.entity_upserts}
    conn.executemany(
        "UPDATE entities SET pushed_hash = ? WHERE key = ?", [(h, k) for k, h in batch.entity_hashes.items()]
    )
    present = {
        k
        for (k,) in conn.execute(
            "SELECT key FROM entities WHERE key IN (SELECT value FROM json_each(?))", (json_list(sent),)
        )
    }
    # removed while in flight and never pushed before: J1 has it now, so keep a tombstone to delete it
    conn.executemany(
        "INSERT INTO entities (key, type, data, hash, origin, owner, deleted, pushed_hash, updated_at)"
        " VALUES (?, ?, ?, ?, '', '', 1, ?, ?)",
        [
            (k, obj["_type"], canonical_json(obj), batch.entity_hashes[k], batch.entity_hashes[k], now)
            for k, obj in sent.items()
            if k not in present
        ],
    )
    if not batch.entity_deletes:
        return []
    deleted = json_list(batch.entity_deletes)
    conn.execute(
        "UPDATE entities SET pushed_hash = NULL WHERE key IN (SELECT value FROM json_each(?))", (deleted,)
    )
    conn.execute(
        "DELETE FROM entities WHERE key IN (SELECT value FROM json_each(?)) AND deleted = 1", (deleted,)
    )
    cascaded = [
        k
        for (k,) in conn.execute(
            "SELECT key FROM relationships WHERE from_key IN (SELECT value FROM json_each(?))"
            " UNION SELECT key FROM relationships WHERE to_key IN (SELECT value FROM json_each(?))",
            (deleted, deleted),
        )
    ]
    keys = json_list(cascaded)
    conn.execute(
        "UPDATE relationships SET pushed_hash = NULL WHERE key IN (SELECT value FROM json_each(?))", (keys,)
    )
    conn.execute(
        "DELETE FROM relationships WHERE key IN (SELECT value FROM json_each(?)) AND deleted = 1", (keys,)
    )
    return cascaded


def _record_relationships(conn: sqlite3.Connection, batch: OutboxBatch, now: float) -> None:
    """J1 now has the sent relationships and lacks the deleted ones."""
    sent = {r["_key"]: r for r in batch.relationship_upserts}
    conn.executemany(
        "UPDATE relationships SET pushed_hash = ? WHERE key = ?",
        [(h, k) for k, h in batch.relationship_hashes.items()],
    )
    present = {
        k
        for (k,) in conn.execute(
            "SELECT key FROM relationships WHERE key IN (SELECT value FROM json_each(?))", (json_list(sent),)
        )
    }
    missing = [k for k in sent if k not in present]
    for key in missing:
        obj = sent[key]
        mapping = obj.get("_mapping")
        from_key = obj.get("_fromEntityKey") or (mapping or {}).get("sourceEntityKey", "")
        to_key = obj.get("_toEntityKey") if mapping is None else None
        h = batch.relationship_hashes[key]
        conn.execute(
            "INSERT INTO relationships (key, type, data, hash, origin, owner, from_key, to_key, deleted,"
            " ends_live, pushed_hash, updated_at) VALUES (?, ?, ?, ?, '', '', ?, ?, 1, 0, ?, ?)",
            (key, obj["_type"], canonical_json(obj), h, from_key, to_key, h, now),
        )
    if missing:
        conn.execute(
            f"UPDATE relationships SET ends_live = {ENDS_LIVE} WHERE key IN (SELECT value FROM json_each(?))",
            (json_list(missing),),
        )
    if batch.relationship_deletes:
        keys = json_list(batch.relationship_deletes)
        conn.execute(
            "UPDATE relationships SET pushed_hash = NULL WHERE key IN (SELECT value FROM json_each(?))",
            (keys,),
        )
        conn.execute(
            "DELETE FROM relationships WHERE key IN (SELECT value FROM json_each(?)) AND deleted = 1", (keys,)
        )


def outbox_max_seq(conn: sqlite3.Connection) -> int:
    """The highest seq ever issued (0 if none): read it BEFORE streaming a full push."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return int(row[0]) if row else 0


def mark_all_pushed(conn: sqlite3.Connection, max_seq: int) -> None:
    """Writer thread: a full DIFF push FINISHED; J1 holds the desired graph as of ``max_seq``.

    Keys with outbox rows after ``max_seq`` changed while the push streamed, so J1 may hold either
    version: they are marked unknown and pushed again by the outbox.
    """
    with transaction(conn):
        conn.execute("DROP TABLE IF EXISTS stage.m_fe")
        conn.execute("DROP TABLE IF EXISTS stage.m_fr")
        conn.execute(
            "CREATE TABLE stage.m_fe AS SELECT DISTINCT key FROM outbox WHERE seq > ? AND kind = 'entity'",
            (max_seq,),
        )
        conn.execute(
            "CREATE TABLE stage.m_fr AS SELECT DISTINCT key FROM outbox WHERE seq > ? AND"
            " kind = 'relationship'",
            (max_seq,),
        )
        conn.execute(
            "UPDATE entities SET pushed_hash = hash WHERE deleted = 0 AND pushed_hash IS NOT hash"
            " AND key NOT IN (SELECT key FROM m_fe)"
        )
        conn.execute("DELETE FROM entities WHERE deleted = 1 AND key NOT IN (SELECT key FROM m_fe)")
        conn.execute(
            "UPDATE entities SET pushed_hash = ? WHERE key IN (SELECT key FROM m_fe)", (UNKNOWN_HASH,)
        )
        conn.execute(
            "UPDATE relationships SET pushed_hash = CASE WHEN deleted = 0 AND ends_live = 1 THEN hash END"
            " WHERE pushed_hash IS NOT (CASE WHEN deleted = 0 AND ends_live = 1 THEN hash END)"
            " AND key NOT IN (SELECT key FROM m_fr)"
        )
        conn.execute("DELETE FROM relationships WHERE deleted = 1 AND key NOT IN (SELECT key FROM m_fr)")
        conn.execute(
            "UPDATE relationships SET pushed_hash = CASE WHEN ends_live = 1 THEN ? END"
            " WHERE key IN (SELECT key FROM m_fr)",
            (UNKNOWN_HASH,),
        )
        conn.execute(
            "DELETE FROM relationships WHERE deleted = 1 AND pushed_hash IS NULL AND key IN"
            " (SELECT key FROM m_fr)"
        )
        conn.execute("DELETE FROM outbox WHERE seq <= ?", (max_seq,))
    conn.execute("DROP TABLE IF EXISTS stage.m_fe")
    conn.execute("DROP TABLE IF EXISTS stage.m_fr")
