"""The stable key hash that places every object in a J1 partition (see syncd/j1/partitions.py).

It lives in the mirror because the mirror stores it (``khash`` columns, indexed) so that one
partition's rows are a range scan, and SQL that inserts rows computes it with ``syncd_khash()``,
a function registered on the write connection only.
"""

from __future__ import annotations

import hashlib
import sqlite3

SQL_FUNCTION = "syncd_khash"


def key_hash(key: str) -> int:
    """A stable 32-bit hash of a key (the same on every machine and Python version)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "big")


def relationship_hash(key: str, from_key: str, to_key: str | None) -> int:
    """A mapped relationship (no ``to_key``) lives with its source entity; others by their own key."""
    return key_hash(from_key if to_key is None else key)


RELATIONSHIP_KHASH_SQL = "{fn}(CASE WHEN {p}to_key IS NULL THEN {p}from_key ELSE {p}key END)"
"""SQL for ``relationship_hash`` over a row alias prefix, e.g. ``.format(fn=SQL_FUNCTION, p="s.")``."""


def relationship_khash_sql(prefix: str = "") -> str:
    return RELATIONSHIP_KHASH_SQL.format(fn=SQL_FUNCTION, p=prefix)


def register(conn: sqlite3.Connection) -> None:
    """Make ``syncd_khash(text)`` available to SQL on this connection."""

    def khash(value: object) -> int | None:
        return key_hash(value) if isinstance(value, str) else None

    conn.create_function(SQL_FUNCTION, 1, khash, deterministic=True)
