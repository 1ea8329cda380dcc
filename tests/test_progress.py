"""The watchdog ping depends on progress: a blocked loop, a mute writer thread, hung work."""

from __future__ import annotations

import asyncio
import socket
import time

from syncd import metrics
from syncd.progress import Progress


def _pings(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            assert sock.recv(4096) == b"WATCHDOG=1"
        except BlockingIOError:
            return n
        n += 1


class Writer:
    """A stand-in for the mirror's writer thread that can be made to hang."""

    def __init__(self) -> None:
        self.free = asyncio.Event()
        self.free.set()
        self.calls = 0

    async def ping(self) -> None:
        self.calls += 1
        await self.free.wait()


async def _run(progress: Progress, watchdog: float) -> asyncio.Task[None]:
    task = asyncio.create_task(progress.run(watchdog))
    await asyncio.sleep(0)
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_pings_every_half_period_and_none_while_the_loop_is_blocked(
    path_socket: socket.socket,
) -> None:
    writer = Writer()
    progress = Progress(writer.ping, dict, writer_timeout=5, work_timeout=5)
    task = await _run(progress, 0.2)  # a ping every 0.1 s
    try:
        await asyncio.sleep(0.35)
        assert _pings(path_socket) >= 3
        time.sleep(0.4)  # a blocked event loop: systemd must stop hearing from us
        assert _pings(path_socket) == 0
        await asyncio.sleep(0.25)
        assert _pings(path_socket) >= 1
        assert writer.calls >= 3  # every check sends the writer a probe
    finally:
        await _stop(task)


async def test_a_mute_writer_thread_withholds_the_ping_and_says_why(path_socket: socket.socket) -> None:
    writer = Writer()
    changes: list[str | None] = []
    progress = Progress(writer.ping, dict, writer_timeout=0.3, work_timeout=60, on_change=changes.append)
    task = await _run(progress, 0.1)
    try:
        await asyncio.sleep(0.2)
        assert _pings(path_socket) >= 2 and progress.problem is None
        writer.free.clear()  # the next probe never comes back
        await asyncio.sleep(0.6)
        assert progress.problem is not None and "mirror writer thread has not answered" in progress.problem
        assert metrics.STALLED._value.get() == 1
        _pings(path_socket)
        await asyncio.sleep(0.3)
        assert _pings(path_socket) == 0  # no ping while stalled
        writer.free.set()
        await asyncio.sleep(0.2)
        assert progress.problem is None and _pings(path_socket) >= 1
        assert metrics.STALLED._value.get() == 0
        assert changes[0] is not None and changes[-1] is None
    finally:
        await _stop(task)


async def test_hung_work_withholds_the_ping_until_it_ends(path_socket: socket.socket) -> None:
    writer = Writer()
    in_flight: dict[str, float] = {}
    progress = Progress(writer.ping, lambda: in_flight, writer_timeout=60, work_timeout=0.3)
    task = await _run(progress, 0.1)
    try:
        in_flight["round:users"] = time.monotonic()
        await asyncio.sleep(0.15)
        assert progress.problem is None  # running, not yet hung
        await asyncio.sleep(0.35)
        assert progress.problem is not None and progress.problem.startswith("round:users has been running")
        _pings(path_socket)
        await asyncio.sleep(0.2)
        assert _pings(path_socket) == 0
        del in_flight["round:users"]
        await asyncio.sleep(0.15)
        assert progress.problem is None and _pings(path_socket) >= 1
    finally:
        await _stop(task)
