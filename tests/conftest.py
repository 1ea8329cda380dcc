"""Suite-wide fixtures: every test runs under the repository read guard (tests/repo_guard.py)."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.repo_guard import install

GUARD = install()  # at import: collection-time reads are guarded too


@pytest.fixture(autouse=True)
def _reads_stay_in_the_repository() -> Iterator[None]:
    """Fail the test that touched a file outside the repository, even if its code caught the error."""
    before = len(GUARD.violations)
    yield
    outside = GUARD.violations[before:]
    if outside:
        pytest.fail("read outside the repository (see tests/repo_guard.py): " + "; ".join(outside[:5]))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session, closed after the test."""
    async with aiohttp.ClientSession() as s:
        yield s


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
