"""Suite-wide fixtures: every test runs under the repository read guard (tests/repo_guard.py);
small real HTTP(S) servers on loopback and a client session for the tests that need them."""

from __future__ import annotations

import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

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


Serve = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """serve(app, ssl_context=None) -> base URL of the app on 127.0.0.1 (cleaned up after, without
    waiting for handlers that hang on purpose)."""
    runners: list[web.AppRunner] = []

    async def _serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> str:
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        runners.append(runner)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    yield _serve
    for runner in runners:
        await runner.cleanup()

