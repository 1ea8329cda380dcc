"""sd_notify against real datagram sockets the tests bind, as systemd would."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from syncd import sdnotify


def _drain(sock: socket.socket) -> list[str]:
    """Every datagram waiting on ``sock``, decoded."""
    got: list[str] = []
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except BlockingIOError:
            return got


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"syncd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        yield sock
    finally:
        sock.close()


def test_noop_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.ready() is False
    assert sdnotify.watchdog() is False


def test_unreachable_socket_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/dir/notify")
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "not-a-path")
    assert sdnotify.notify("READY=1") is False


def test_ready_status_watchdog_stopping(path_socket: socket.socket) -> None:
    assert sdnotify.ready("mirror open, listening on 127.0.0.1:8080")
    assert sdnotify.status("users: delta round")
    assert sdnotify.watchdog()
    assert sdnotify.stopping("draining the outbox")
    assert _drain(path_socket) == [
        "READY=1\nSTATUS=mirror open, listening on 127.0.0.1:8080",
        "STATUS=users: delta round",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=draining the outbox",
    ]


def test_abstract_namespace(abstract_socket: socket.socket) -> None:
    assert sdnotify.ready()
    assert sdnotify.status("ok")
    assert sdnotify.watchdog()
    assert sdnotify.stopping()
    assert _drain(abstract_socket) == ["READY=1", "STATUS=ok", "WATCHDOG=1", "STOPPING=1"]


def test_newlines_cannot_inject_fields(path_socket: socket.socket) -> None:
    assert sdnotify.status("line one\nREADY=1")
    assert _drain(path_socket) == ["STATUS=line one READY=1"]


def test_reloading_and_extend_timeout(path_socket: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert sdnotify.reloading()
    assert sdnotify.extend_timeout(12.5)
    reload_msg, extend_msg = _drain(path_socket)
    first, second = reload_msg.split("\n")
    assert first == "RELOADING=1"
    assert second.startswith("MONOTONIC_USEC=")
    assert int(second.split("=")[1]) >= before
    assert extend_msg == "EXTEND_TIMEOUT_USEC=12500000"


def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert sdnotify.watchdog_interval() == 60.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_interval() == 60.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert sdnotify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", "x")
    assert sdnotify.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "-5", "abc", ""):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert sdnotify.watchdog_interval() is None
