"""The SQLite mirror: the daemon's durable state and the heart of its crash safety.

One thread owns the write connection and runs every write in order (so there is exactly one
writer and the event loop never blocks); a second thread owns a read-only connection for status
and streaming reads, so they never wait behind a big commit. WAL mode lets both run together.
An exclusive ``<path>.lock`` (fcntl) keeps a second daemon off the same file.
"""

# ruff: noqa: S608 -- table names in f-strings are internal constants or stage_<int> names, never input

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar, cast

from sqlite_utils import Database

from syncd.mirror import keyhash
from syncd.mirror import outbox as outbox_sql
from syncd.mirror import partition_state as pstate
from syncd.mirror.round import RoundWriter
from syncd.mirror.schema import migrate
from syncd.mirror.sql import insert_alerts, transaction, upsert_cursor
from syncd.mirror.stage import StageTables, create_stage_tables
from syncd.mirror.thread import SQLiteThread
from syncd.mirror.types import AlertRow, MirrorError, QueuedAlert, StoredRow

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT = 5.0
RUNS_KEPT_PER_ORIGIN = 500
DELIVERED_ALERTS_KEPT_S = 30 * 86400.0
SUCCESS = "ok"
"""``record_run`` status of a successful round; anything else counts as a failure."""


def _epoch(value: float | datetime) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def describe_error(exc: BaseException, path: Path, doing: str, busy_timeout: float) -> MirrorError:
    """Turn a SQLite/OS error into a message that says what happened and what to do."""
    text = str(exc)
    low = text.lower()
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in low:
        return MirrorError(
            f"the disk holding the mirror {path} is full ({doing}); nothing was half-written "
            f"(the change was rolled back). Free space on {path.parent} and syncd will carry on"
        )
    if "locked" in low or "busy" in low:
        return MirrorError(
            f"the mirror {path} is locked by another process ({doing}; waited {busy_timeout:g}s). "
            "Stop the other program using it (another syncd, or an sqlite3 shell) and retry"
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return MirrorError(
            f"the mirror {path} is corrupt ({text}); move it away to start over or restore a backup"
        )
    if "readonly" in low or "read-only" in low or "unable to open" in low or isinstance(exc, PermissionError):
        return MirrorError(
            f"the mirror {path} cannot be written ({doing}: {text}); check that {path.parent} "
            "exists and is writable by the syncd user"
        )
    if "disk i/o" in low:
        return MirrorError(f"I/O error on the mirror {path} ({doing}): check the disk and the file system")
    return MirrorError(f"mirror {path}: SQLite error while {doing}: {text}")


_UPSERT_KV = (
    "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
    " SET value = excluded.value, updated_at = excluded.updated_at"
)

class Mirror:
    """Async facade over the mirror file; create with ``await Mirror.open(path)``."""

    def __init__(self, path: Path, lock_file: IO[str], busy_timeout: float) -> None:
        self.path = path
        self._lock_file: IO[str] | None = lock_file
        self._busy_timeout = busy_timeout
        self._writer = SQLiteThread(f"mirror-writer:{path.name}")
        self._reader = SQLiteThread(f"mirror-reader:{path.name}")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._next_round = 1
        self._rounds: dict[str, RoundWriter] = {}
        self._closed = False
        self._stage_path = path.with_name(path.name + "-stage")

    # --- open / close ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path | str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Mirror:
        """Open (creating if needed) the mirror, check it, migrate it; raise ``MirrorError`` if unusable."""
        path = Path(path)
        lock_file = _take_lock(path)
        mirror = cls(path, lock_file, busy_timeout)
        try:
            await mirror._writer.run(mirror._open_writer)
            await mirror._reader.run(mirror._open_reader)
        except BaseException:
            await mirror._shutdown(checkpoint=False)
            raise
        return mirror

    def _open_writer(self) -> None:
        """Writer thread: connect, verify integrity, WAL, migrate, drop unfinished rounds' stages."""
        doing = "opening"
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=self._busy_timeout, isolation_level=None, check_same_thread=True
            )
        except sqlite3.Error as exc:
            raise describe_error(exc, self.path, doing, self._busy_timeout) from exc
        self._wconn = conn
        try:
            doing = "checking integrity"
            result = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
            if result != ["ok"]:
                raise MirrorError(
                    f"the mirror {self.path} is corrupt (quick_check: {'; '.join(map(str, result[:3]))}); "
                    "move it away to start over or restore a backup"
                )
            doing = "enabling WAL"
            db = Database(conn, execute_plugins=False)
            db.enable_wal()
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA cache_size = -65536")
            conn.execute("PRAGMA temp_store = FILE")
            # Mapped pages count in the resident set: 64 MB keeps a 100k-user resync under 400 MB.
            conn.execute("PRAGMA mmap_size = 67108864")
            keyhash.register(conn)
            doing = "migrating the schema"
            try:
                migrate(conn)
            except ValueError as exc:
                raise MirrorError(f"the mirror {self.path}: {exc}") from exc
            doing = "taking the write lock"
            conn.execute("BEGIN IMMEDIATE")  # fails now, not at the first commit, if someone holds it
            conn.execute("ROLLBACK")
            doing = "creating the stage file"
            # Staging is scratch: it lives in its own file without durability (fast, and it keeps
            # the main WAL small). Unfinished rounds' stages are simply thrown away here.
            self._stage_path.unlink(missing_ok=True)
            Path(f"{self._stage_path}-journal").unlink(missing_ok=True)
            conn.execute("ATTACH DATABASE ? AS stage", (str(self._stage_path),))
            # On disk, not MEMORY: a round's commit rewrites stage pages freed by earlier rounds, and
            # an in-memory journal of them grew to ~400 MB on a 100k-user full round.
            conn.execute("PRAGMA stage.journal_mode = TRUNCATE")
            conn.execute("PRAGMA stage.synchronous = OFF")
            conn.execute("PRAGMA stage.cache_size = -65536")
            # Scratch written once and read once per round: memory-mapping it only adds its size
            # (hundreds of MB on a full round of a large tenant) to the process's resident set.
            conn.execute("PRAGMA stage.mmap_size = 0")
        except sqlite3.Error as exc:
            raise describe_error(exc, self.path, doing, self._busy_timeout) from exc

    def _open_reader(self) -> None:
        """Reader thread: a read-only connection; WAL gives it a consistent snapshot per query."""
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            self._rconn = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise describe_error(exc, self.path, "opening the read connection", self._busy_timeout) from exc

    async def close(self) -> None:
        """Finish queued work, checkpoint the WAL, close connections and release the lock."""
        if self._closed:
            return
        for round_writer in list(self._rounds.values()):
            await round_writer.discard()
        await self._shutdown(checkpoint=True)

    async def _shutdown(self, *, checkpoint: bool) -> None:
        self._closed = True

        def close_writer() -> None:
            if self._wconn is not None:
                if checkpoint:
                    with contextlib.suppress(sqlite3.Error):
                        self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._wconn.close()
                self._wconn = None
                with contextlib.suppress(OSError):
                    self._stage_path.unlink(missing_ok=True)
                    Path(f"{self._stage_path}-journal").unlink(missing_ok=True)

        def close_reader() -> None:
            if self._rconn is not None:
                self._rconn.close()
                self._rconn = None

        try:
            await self._reader.stop(close_reader)
            await self._writer.stop(close_writer)
        finally:
            if self._lock_file is not None:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    async def ping_writer(self) -> None:
        """Return once the writer thread has run everything queued before this call.

        The watchdog's probe: a writer stuck in SQLite never answers, and syncd is stalled.
        """
        await self._writer.run(_noop)

    async def __aenter__(self) -> Mirror:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- thread plumbing ------------------------------------------------------------------------

    async def _write(self, doing: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(write connection)`` on the writer thread; SQLite errors become ``MirrorError``."""
        return await self._on(self._writer, lambda: self._wconn, doing, fn)

    async def _read(self, doing: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(read-only connection)`` on the reader thread."""
        return await self._on(self._reader, lambda: self._rconn, doing, fn)

    async def _on(
        self,
        thread: SQLiteThread,
        connection: Callable[[], sqlite3.Connection | None],
        doing: str,
        fn: Callable[[sqlite3.Connection], T],
    ) -> T:
        """Run ``fn`` with the thread's connection on that thread; errors say what was being done."""
        if self._closed:
            raise MirrorError(f"the mirror {self.path} is closed")

        def task() -> T:
            conn = connection()
            assert conn is not None
            try:
                return fn(conn)
            except (sqlite3.Error, OSError) as exc:
                raise describe_error(exc, self.path, doing, self._busy_timeout) from exc

        return await thread.run(task)

    async def _transact(self, doing: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`_write` with ``fn`` in a transaction of its own: all of it is applied, or none."""

        def work(conn: sqlite3.Connection) -> T:
            with transaction(conn):
                return fn(conn)

        return await self._write(doing, work)

    async def _execute(self, doing: str, sql: str, params: Sequence[object] = ()) -> None:
        """One write statement in a transaction of its own."""
        await self._transact(doing, lambda c: c.execute(sql, params))

    async def read_with(self, doing: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``fn(connection)`` on the reader thread (status views)."""
        return await self._read(doing, fn)

    # --- rounds ---------------------------------------------------------------------------------

    async def begin_round(self, origin: str, *, full: bool) -> RoundWriter:
        """Start staging a round of ``origin``; an unfinished earlier round of it is discarded."""
        previous = self._rounds.get(origin)
        if previous is not None:
            await previous.discard()
        tables = StageTables.of_round(self._next_round)
        self._next_round += 1
        await self._write("starting a round", lambda c: create_stage_tables(c, tables))
        round_writer = RoundWriter(self._write, tables, origin, full, self._round_ended)
        self._rounds[origin] = round_writer
        return round_writer

    def _round_ended(self, round_writer: RoundWriter) -> None:
        if self._rounds.get(round_writer.origin) is round_writer:
            del self._rounds[round_writer.origin]

    # --- outbox ---------------------------------------------------------------------------------

    async def partition_snapshot(self, part: str, lo: int, hi: int) -> outbox_sql.PartitionSnapshot:
        """One J1 partition's rows and pending outbox keys, read between commits (writer thread)."""
        return await self._write(
            "reading a J1 partition", lambda c: outbox_sql.read_snapshot(c, part, lo, hi)
        )

    async def ack_partition(self, ack: outbox_sql.PartitionAck) -> None:
        """J1 finished (and syncd verified) a job on a partition: record what J1 now holds."""
        await self._write("acknowledging a J1 job", lambda c: outbox_sql.ack_partition(c, ack))

    async def pending_buckets(self, part: str, bits: int) -> list[int]:
        """Partitions (buckets of ``2 ** bits``) of kind ``part`` that have outbox rows."""
        return await self._read("reading the outbox", lambda c: outbox_sql.pending_buckets(c, part, bits))

    async def outbox_depth(self) -> int:
        """Pending outbox rows (not yet acknowledged by J1)."""
        return await self._read("counting the outbox", lambda c: _scalar(c, "SELECT count(*) FROM outbox"))

    async def object_counts(self) -> tuple[int, int]:
        """(objects of entity partitions, explicit relationships) the desired graph holds."""
        return await self._read("counting objects", outbox_sql.object_counts)

    async def fullest_partition(self, part: str, bits: int) -> int:
        return await self._read("sizing partitions", lambda c: outbox_sql.fullest_partition(c, part, bits))

    # --- J1 partitions, jobs in flight, refused objects ---------------------------------------------

    async def mark_partitions(
        self, parts: Sequence[pstate.PartitionRef], *, needs_diff: bool, uncertain: bool
    ) -> int:
        return await self._write(
            "flagging J1 partitions",
            lambda c: pstate.mark(c, parts, needs_diff=needs_diff, uncertain=uncertain),
        )

    async def partition_states(self, *, needs_diff_only: bool = False) -> list[pstate.PartitionState]:
        return await self._read(
            "reading J1 partitions", lambda c: pstate.states(c, needs_diff_only=needs_diff_only)
        )

    async def partition_state(self, scope: str) -> pstate.PartitionState | None:
        return await self._write("reading a J1 partition", lambda c: pstate.get(c, scope))

    async def record_partition_failure(
        self, part: pstate.PartitionRef, failure: pstate.PartitionFailure
    ) -> None:
        await self._write("recording a J1 failure", lambda c: pstate.record_failure(c, part, failure))

    async def forget_other_partition_scopes(self, keep: Sequence[str]) -> None:
        await self._write("dropping old J1 partitions", lambda c: pstate.forget_other_scopes(c, keep))

    async def record_job(self, job_id: str, scope: str, mode: str) -> None:
        await self._write("recording a J1 job", lambda c: pstate.record_job(c, job_id, scope, mode))

    async def forget_job(self, job_id: str) -> None:
        await self._transact("forgetting a J1 job", lambda c: pstate.forget_job(c, job_id))

    async def jobs_in_flight(self) -> list[tuple[str, str, str, float]]:
        return await self._read("reading J1 jobs", pstate.jobs_in_flight)

    async def set_aside(self, objects: Sequence[pstate.RefusedObject]) -> int:
        return await self._write("setting refused objects aside", lambda c: pstate.set_aside(c, objects))

    async def refused_objects(self, limit: int = 100) -> list[pstate.RefusedObject]:
        return await self._read("reading refused objects", lambda c: pstate.refused(c, limit))

    async def clear_refused(self) -> int:
        return await self._write("clearing refused objects", pstate.clear_refused)

    async def refused_count(self) -> int:
        return await self._read("counting refused objects", pstate.refused_count)

    # --- cursors ----------------------------------------------------------------------------------

    async def get_cursor(self, name: str) -> str | None:
        """The stored cursor (deltaLink or poll watermark), or None."""
        row = await self._read(
            "reading a cursor",
            lambda c: c.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone(),
        )
        return cast(str | None, row[0]) if row else None

    async def set_cursor(self, name: str, value: str | None, *, origin: str | None = None) -> None:
        """Store a cursor outside a round (a round without data); rounds pass cursors to commit."""
        await self._transact("saving a cursor", lambda c: upsert_cursor(c, name, value, origin, time.time()))

    # --- runs and status ----------------------------------------------------------------------------

    async def record_run(
        self,
        origin: str,
        started: float | datetime,
        finished: float | datetime,
        status: str,
        counts: dict[str, Any],
        error: str | None,
    ) -> None:
        """Append a round to the run history (status ``"ok"`` = success); old runs are pruned."""
        row = (origin, _epoch(started), _epoch(finished), status, json.dumps(counts, sort_keys=True), error)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO runs (origin, started, finished, status, counts, error)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
            conn.execute(
                "DELETE FROM runs WHERE origin = ? AND id <= (SELECT id FROM runs WHERE origin = ?"
                " ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (origin, origin, RUNS_KEPT_PER_ORIGIN),
            )

        await self._transact("recording a run", work)

    async def set_origin_flag(
        self, origin: str, partial: bool, reason: str | None, *, disabled: bool = False
    ) -> None:
        """Mark an origin partial (e.g. a permission is missing) or disabled, with the reason."""
        await self._execute(
            "saving an origin flag",
            "INSERT INTO origin_flags (origin, partial, disabled, reason, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(origin) DO UPDATE SET partial = excluded.partial, disabled = excluded.disabled,"
            " reason = excluded.reason, updated_at = excluded.updated_at",
            (origin, int(partial), int(disabled), reason, time.time()),
        )

    async def origin_status(self, now: float | None = None) -> list[dict[str, Any]]:
        """Per origin: last run, last success, last error, cursor age, partial/disabled flags."""
        at = time.time() if now is None else now
        return await self._read("reading the status", lambda c: _origin_status(c, at))

    # --- subscriptions --------------------------------------------------------------------------------

    async def save_subscription(
        self, id: str, resource: str, expiration: datetime, client_state_hash: str
    ) -> None:
        """Store (or renew) a Graph subscription; only a hash of its clientState is kept."""
        if expiration.tzinfo is None:
            expiration = expiration.replace(tzinfo=UTC)
        await self._execute(
            "saving a subscription",
            "INSERT INTO subscriptions (id, resource, expiration, client_state_hash, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET resource = excluded.resource,"
            " expiration = excluded.expiration, client_state_hash = excluded.client_state_hash,"
            " updated_at = excluded.updated_at",
            (id, resource, expiration.isoformat(), client_state_hash, time.time()),
        )

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        """All stored subscriptions, soonest expiry first; ``expiration`` is an aware datetime."""

        def work(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT id, resource, expiration, client_state_hash FROM subscriptions ORDER BY expiration"
            ).fetchall()
            return [
                {
                    "id": i,
                    "resource": r,
                    "expiration": datetime.fromisoformat(e),
                    "client_state_hash": h,
                }
                for i, r, e, h in rows
            ]

        return await self._read("reading subscriptions", work)

    async def delete_subscription(self, id: str) -> None:
        """Forget a subscription (deleted or expired)."""
        await self._execute("deleting a subscription", "DELETE FROM subscriptions WHERE id = ?", (id,))

    # --- alert outbox -----------------------------------------------------------------------------------

    async def enqueue_alerts(self, rows: Sequence[AlertRow]) -> int:
        """Queue alerts outside a commit; duplicates (same alert_id and target) are ignored."""
        return await self._transact("queueing alerts", lambda c: insert_alerts(c, rows, time.time()))

    async def due_alerts(self, now: float, limit: int = 100) -> list[QueuedAlert]:
        """Undelivered alerts whose next attempt is due, in insertion order."""

        def work(conn: sqlite3.Connection) -> list[QueuedAlert]:
            rows = conn.execute(
                "SELECT id, alert_id, rule_id, severity, target, payload, attempts, last_error, created_at,"
                " next_attempt FROM alerts WHERE delivered_at IS NULL AND next_attempt <= ?"
                " ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
            return [
                QueuedAlert(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9])
                for r in rows
            ]

        return await self._write("reading due alerts", work)

    async def ack_alert(self, row_id: int) -> None:
        """Delivered: kept (to dedupe a re-evaluation) until it ages out."""

        def work(conn: sqlite3.Connection) -> None:
            now = time.time()
            conn.execute("UPDATE alerts SET delivered_at = ? WHERE id = ?", (now, row_id))
            conn.execute(
                "DELETE FROM alerts WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                (now - DELIVERED_ALERTS_KEPT_S,),
            )

        await self._transact("acknowledging an alert", work)

    async def retry_alert(self, row_id: int, next_attempt: float, error: str) -> None:
        """Delivery failed: count the attempt and schedule the next one."""
        await self._execute(
            "rescheduling an alert",
            "UPDATE alerts SET attempts = attempts + 1, next_attempt = ?, last_error = ? WHERE id = ?",
            (next_attempt, error, row_id),
        )

    async def alert_depth(self) -> int:
        """Alerts not yet delivered."""
        return await self._read(
            "counting alerts", lambda c: _scalar(c, "SELECT count(*) FROM alerts WHERE delivered_at IS NULL")
        )

    # --- key/value --------------------------------------------------------------------------------------

    async def get_value(self, key: str) -> Any:
        """A small JSON value stored under ``key`` (None if absent)."""
        row = await self._read(
            "reading a value", lambda c: c.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        )
        return json.loads(row[0]) if row else None

    async def set_value(self, key: str, value: Any) -> None:
        """Store a small JSON value (never a secret: the mirror is not a secret store)."""
        text = json.dumps(value, sort_keys=True)
        await self._execute("saving a value", _UPSERT_KV, (key, text, time.time()))

    async def delete_value(self, key: str) -> None:
        """Forget a key/value entry."""
        await self._execute("deleting a value", "DELETE FROM kv WHERE key = ?", (key,))

    async def set_values(
        self, values: dict[str, Any], *, flag: Sequence[pstate.PartitionRef] = (), uncertain: bool = False
    ) -> None:
        """Store (or, for None, delete) several key/value entries and flag ``flag`` partitions for a
        DIFF, all in one transaction: a J1 layout change is recorded whole or not at all."""
        now = time.time()

        def work(conn: sqlite3.Connection) -> None:
            for key, value in values.items():
                if value is None:
                    conn.execute("DELETE FROM kv WHERE key = ?", (key,))
                else:
                    conn.execute(_UPSERT_KV, (key, json.dumps(value, sort_keys=True), now))
            pstate.mark_in_transaction(conn, flag, needs_diff=True, uncertain=uncertain)

        await self._transact("saving values", work)

    # --- read helpers (tests, status) --------------------------------------------------------------------

    async def get_entity(self, key: str) -> dict[str, Any] | None:
        """The entity as stored, or None if absent or deleted."""
        row = await self.get_entity_row(key)
        return row.data if row is not None and not row.deleted else None

    async def get_entity_row(self, key: str) -> StoredRow | None:
        """The entity row with its bookkeeping (tombstones included)."""

        def work(conn: sqlite3.Connection) -> StoredRow | None:
            r = conn.execute(
                "SELECT key, type, data, hash, origin, owner, deleted, pushed_hash FROM entities"
                " WHERE key = ?",
                (key,),
            ).fetchone()
            if r is None:
                return None
            return StoredRow(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], bool(r[6]), r[7])

        return await self._read("reading an entity", work)

    async def get_relationship_row(self, key: str) -> StoredRow | None:
        """The relationship row with its bookkeeping; ``live`` = in the desired J1 graph."""

        def work(conn: sqlite3.Connection) -> StoredRow | None:
            r = conn.execute(
                "SELECT key, type, data, hash, origin, owner, deleted, pushed_hash, from_key,"
                " to_key, ends_live"
                " FROM relationships WHERE key = ?",
                (key,),
            ).fetchone()
            if r is None:
                return None
            return StoredRow(
                r[0],
                r[1],
                json.loads(r[2]),
                r[3],
                r[4],
                r[5],
                bool(r[6]),
                r[7],
                r[8],
                r[9],
                bool(r[10]) and not r[6],
            )

        return await self._read("reading a relationship", work)

    async def get_raw(self, resource: str, id: str) -> dict[str, Any] | None:
        """A raw Graph object as last fetched, or None."""
        row = await self._read(
            "reading a raw object",
            lambda c: c.execute(
                "SELECT data FROM raw WHERE resource = ? AND id = ?", (resource, id)
            ).fetchone(),
        )
        return cast(dict[str, Any], json.loads(row[0])) if row else None

    async def raw_field_values(self, resource: str, field: str) -> dict[str, Any]:
        """id → one top-level property of every raw object of ``resource`` (stamps, lookups)."""
        if not field.replace("_", "").isalnum():
            raise ValueError(f"not a plain property name: {field!r}")
        rows = await self._read(
            "reading raw properties",
            lambda c: c.execute(
                "SELECT id, json_extract(data, ?) FROM raw WHERE resource = ?", (f"$.{field}", resource)
            ).fetchall(),
        )
        return {r[0]: r[1] for r in rows}

    async def raw_ids(self, resource: str) -> list[str]:
        """Ids of the raw objects stored for ``resource``."""
        rows = await self._read(
            "listing raw objects",
            lambda c: c.execute("SELECT id FROM raw WHERE resource = ? ORDER BY id", (resource,)).fetchall(),
        )
        return [r[0] for r in rows]

    async def count_entities(self, type: str | None = None) -> int:
        """Entities present (tombstones excluded), optionally of one ``_type``."""
        return await self._count("entities", type, "")

    async def count_relationships(self, type: str | None = None, *, live_only: bool = False) -> int:
        """Relationship rows present (tombstones excluded); ``live_only`` = in the desired J1 graph."""
        return await self._count("relationships", type, " AND ends_live = 1" if live_only else "")

    async def _count(self, table: str, type_: str | None, extra: str) -> int:
        sql = f"SELECT count(*) FROM {table} WHERE deleted = 0{extra}"
        params: tuple[str, ...] = ()
        if type_ is not None:
            sql += " AND type = ?"
            params = (type_,)
        return await self._read(f"counting {table}", lambda c: _scalar(c, sql, params))

    async def entity_keys_of_type(self, type: str) -> list[str]:
        """Keys of present entities of one ``_type``, sorted."""
        rows = await self._read(
            "listing entities",
            lambda c: c.execute(
                "SELECT key FROM entities WHERE type = ? AND deleted = 0 ORDER BY key", (type,)
            ).fetchall(),
        )
        return [r[0] for r in rows]


def _scalar(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def _origin_status(conn: sqlite3.Connection, now: float) -> list[dict[str, Any]]:
    """Gather per-origin status from runs, cursors and flags (all small tables)."""
    db = Database(conn, execute_plugins=False, recursive_triggers=False)
    status: dict[str, dict[str, Any]] = {}

    def entry(origin: str) -> dict[str, Any]:
        return status.setdefault(
            origin,
            {
                "origin": origin,
                "last_status": None,
                "last_started": None,
                "last_finished": None,
                "last_success": None,
                "last_error": None,
                "last_error_at": None,
                "cursor_age_s": None,
                "partial": False,
                "disabled": False,
                "reason": None,
            },
        )

    for row in db.query(
        "SELECT origin, status, started, finished, error FROM runs WHERE id IN"
        " (SELECT max(id) FROM runs GROUP BY origin)"
    ):
        e = entry(row["origin"])
        e.update(last_status=row["status"], last_started=row["started"], last_finished=row["finished"])
    for row in db.query(
        "SELECT origin, max(finished) AS at FROM runs WHERE status = ? GROUP BY origin", [SUCCESS]
    ):
        entry(row["origin"])["last_success"] = row["at"]
    for row in db.query(
        "SELECT origin, error, finished FROM runs WHERE id IN"
        " (SELECT max(id) FROM runs WHERE status != ? GROUP BY origin)",
        [SUCCESS],
    ):
        entry(row["origin"]).update(last_error=row["error"], last_error_at=row["finished"])
    for row in db.query(
        "SELECT origin, max(updated_at) AS at FROM cursors WHERE origin IS NOT NULL AND value IS NOT NULL"
        " GROUP BY origin"
    ):
        entry(row["origin"])["cursor_age_s"] = max(0.0, now - row["at"])
    for row in db.query("SELECT origin, partial, disabled, reason FROM origin_flags"):
        entry(row["origin"]).update(
            partial=bool(row["partial"]), disabled=bool(row["disabled"]), reason=row["reason"]
        )
    return [status[k] for k in sorted(status)]


def _noop() -> None:
    return None


def own_files(path: Path) -> list[Path]:
    """Every file a mirror at ``path`` may leave in its directory (and nothing else there)."""
    stage = path.with_name(path.name + "-stage")
    return [
        path,
        path.with_name(path.name + "-wal"),
        path.with_name(path.name + "-shm"),
        path.with_name(path.name + "-journal"),
        stage,
        stage.with_name(stage.name + "-journal"),
        path.with_name(path.name + ".lock"),
    ]


def _take_lock(path: Path) -> IO[str]:
    """Create the state directory if needed and hold ``<path>.lock`` exclusively (fcntl)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_file = open(lock_path, "a+")  # noqa: SIM115 - held open for the mirror's lifetime
    except OSError as exc:
        raise MirrorError(
            f"cannot create the mirror in {path.parent} ({exc.strerror or exc}); check that the state "
            "directory exists and is writable by the syncd user"
        ) from exc
    if not os.access(path.parent, os.W_OK):
        lock_file.close()
        raise MirrorError(f"the state directory {path.parent} is not writable by the syncd user")
    try:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock_file.seek(0)
        holder = lock_file.read().strip() or "unknown"
        lock_file.close()
        raise MirrorError(
            f"the mirror {path} is in use by another process (pid {holder} holds {lock_path}); "
            "two daemons must never share one mirror: stop the other one or use another state directory"
        ) from exc
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(f"{os.getpid()}\n")
    lock_file.flush()
    return lock_file
