"""Opening: clear MirrorErrors for corrupt, locked, unwritable or too-new files; migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syncd.mirror import Mirror, MirrorError
from syncd.mirror.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from tests.mirror.helpers import ent


async def test_creates_wal_mirror_with_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state" / "mirror.db"
    m = await Mirror.open(path)
    await m.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_garbage_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    path.write_bytes(b"this is not a database" * 500)
    with pytest.raises(MirrorError, match=r"is corrupt.*move it away to start over or restore a backup"):
        await Mirror.open(path)
    assert path.read_bytes().startswith(b"this is not")  # never silently reset


async def test_damaged_pages_are_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    m = await Mirror.open(path)
    r = await m.begin_round("users", full=False)
    for i in range(2000):
        await r.stage(f"u{i}", [ent(f"user-{i:08d}", pad="x" * 200)])
    await r.commit()
    await m.close()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(3 * page, len(data) - page, 7 * page):  # scribble over some b-tree pages
        data[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(MirrorError, match="corrupt"):
        await Mirror.open(path)


async def test_second_daemon_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    m = await Mirror.open(path)
    try:
        with pytest.raises(MirrorError, match="in use by another process"):
            await Mirror.open(path)
    finally:
        await m.close()
    m2 = await Mirror.open(path)  # released on close
    await m2.close()


async def test_sqlite_lock_held_elsewhere(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    await (await Mirror.open(path)).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(MirrorError, match="locked by another process"):
            await Mirror.open(path, busy_timeout=0.2)
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(MirrorError, match=r"cannot create the mirror in .*writable"):
        await Mirror.open(blocker / "mirror.db")


async def test_migrates_an_older_schema(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, MIGRATIONS[:1]) == 1
    conn.execute(
        "INSERT INTO entities (key, type, data, hash, origin, owner, updated_at)"
        " VALUES ('user-00000001', 'azure_user', '{}', 'h', 'users', 'user-00000001', 0)"
    )
    conn.execute("INSERT INTO cursors (name, value, origin, updated_at) VALUES ('users', 'link', 'users', 0)")
    conn.close()
    m = await Mirror.open(path)
    try:
        assert await m.count_entities() == 1 and await m.get_cursor("users") == "link"
        assert await m.alert_depth() == 0  # the table v2 added exists
    finally:
        await m.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(MirrorError, match="newer than this syncd supports"):
        await Mirror.open(path)
