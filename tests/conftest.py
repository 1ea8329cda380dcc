"""Fixtures shared by the unit tests."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def path_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    # A short directory: AF_UNIX paths are limited to 108 bytes and pytest's tmp_path can be long.
    with tempfile.TemporaryDirectory(prefix="sdn", dir="/tmp") as tmp:
        path = Path(tmp) / "notify"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        try:
            yield sock
        finally:
            sock.close()
