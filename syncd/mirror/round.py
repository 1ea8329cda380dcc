"""One source round: stage pages as they arrive, then apply them all in ONE transaction.

`RoundWriter` is what a source holds during a round: it buffers staged pages in memory and
writes them to the round's stage tables (``syncd.mirror.stage``) on the writer thread; `commit()`
applies the whole round, its outbox rows, cursors and alert rows in one transaction
(``syncd.mirror.commit``, set-based SQL, so a full round of 100k entities and 500k relationships
is applied by SQLite, not by a Python loop).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

from syncd.mirror.commit import apply_round, drop_scratch_tables
from syncd.mirror.stage import (
    FLUSH_ROWS,
    StageBuffer,
    StageTables,
    drop_stage_tables,
    flush_buffer,
    stage_keeps,
    stage_owner_deletes,
    stage_raw_deletes,
    stage_relationship_deletes,
)
from syncd.mirror.types import ChangeHook, CommitResult, MirrorError

__all__ = ["ChangeHook", "RoundWriter", "WriteRunner"]

T = TypeVar("T")


class WriteRunner(Protocol):
    """What a round needs from the mirror: run a function on the writer thread."""

    def __call__(self, doing: str, fn: Callable[[sqlite3.Connection], T]) -> Awaitable[T]: ...


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
                    drop_scratch_tables(conn)
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
