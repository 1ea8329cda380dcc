"""The daemon as a service: the sd_notify messages it sends, its health listener and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from syncd.sim.harness import SimHarness


class NotifySocket:
    """A local `$NOTIFY_SOCKET` (AF_UNIX datagram) that records every sd_notify message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                data = self.sock.recv(65536)
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))

    def lines(self) -> list[str]:
        return [line for _, msg in self.messages for line in msg.split("\n")]

    def seen(self, line: str) -> bool:
        return line in self.lines()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        self.path.unlink(missing_ok=True)


async def health_get(h: SimHarness, path: str) -> tuple[int, str]:
    """GET on the daemon's health listener (`/healthz`, `/metrics`)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{h.health_url}{path}", timeout=aiohttp.ClientTimeout(total=10)) as resp,
    ):
        return resp.status, await resp.text()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels...}` from a Prometheus text page (labels: a subset that must match;
    the samples that match are summed), None when there is none."""
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(values) if values else None
