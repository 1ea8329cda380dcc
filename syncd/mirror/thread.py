"""A dedicated thread that runs SQLite work in order and hands results back as asyncio futures.

SQLite calls block; running them here keeps the event loop free. One ``SQLiteThread`` owns the
write connection (so there is exactly one writer and writes are serialised by the queue), another
owns a read-only connection so status reads never wait behind a big commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Task = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _resolve(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Runs on the loop: the awaiting task may have been cancelled meanwhile."""
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class SQLiteThread:
    """Drains a queue of callables on one thread; ``run`` awaits a callable's result."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name=name, daemon=True)
        self._stopped = False
        self._thread.start()

    def _drain(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            fn, fut, loop = task
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting coroutine
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, fut, result, error)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the thread after everything queued before it; return its result.

        Cancelling the awaiting task does not stop ``fn`` once queued (SQLite cannot be
        interrupted safely mid-transaction); its result is then dropped.
        """
        if self._stopped:
            raise RuntimeError("the mirror is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, fut, loop))
        return await fut

    async def stop(self, final: Callable[[], None] | None = None) -> None:
        """Run ``final`` (e.g. close the connection) after queued work, then end the thread."""
        if self._stopped:
            return
        if final is not None:
            try:
                await self.run(final)
            finally:
                self._stopped = True
                self._queue.put(None)
        else:
            self._stopped = True
            self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
