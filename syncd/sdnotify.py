"""systemd ``sd_notify`` protocol in plain stdlib, so the daemon needs no libsystemd binding.

Every function is a harmless no-op (returning False) when ``$NOTIFY_SOCKET`` is unset, so the same
code runs under systemd, in a terminal and in tests. Sending never blocks and never raises:
a broken notification channel must not take the daemon down (the watchdog will notice instead).
"""

from __future__ import annotations

import os
import socket
import time

__all__ = [
    "extend_timeout",
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval",
]


def _address(raw: str) -> str | None:
    """Socket address from ``$NOTIFY_SOCKET``: a path, or ``@name`` for the abstract namespace."""
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None  # vsock:/other schemes are not used for a local service


def notify(*lines: str) -> bool:
    """Send ``KEY=VALUE`` lines in one datagram; True if systemd got them, False if not under systemd."""
    raw = os.environ.get("NOTIFY_SOCKET", "")
    address = _address(raw) if raw else None
    if address is None or not lines:
        return False
    payload = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)  # a full receive queue must not stall the event loop
            sock.connect(address)
            sock.send(payload)
    except OSError:
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """Tell systemd start-up is done (``Type=notify`` units stay "activating" until then)."""
    lines = ["READY=1"]
    if status_text is not None:
        lines.append(f"STATUS={status_text}")
    return notify(*lines)


def reloading() -> bool:
    """Mark a SIGHUP reload in progress; follow it with :func:`ready` when done."""
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def stopping(status_text: str | None = None) -> bool:
    """Tell systemd shutdown has begun, so it doesn't read the exit as a crash in progress."""
    lines = ["STOPPING=1"]
    if status_text is not None:
        lines.append(f"STATUS={status_text}")
    return notify(*lines)


def status(text: str) -> bool:
    """One line shown by ``systemctl status`` (must never contain a secret)."""
    return notify(f"STATUS={text}")


def watchdog() -> bool:
    """One watchdog keep-alive ping."""
    return notify("WATCHDOG=1")


def extend_timeout(seconds: float) -> bool:
    """Ask for more start/stop time (e.g. a long first mirror open) instead of being killed."""
    return notify(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")


def watchdog_interval() -> float | None:
    """``WatchdogSec=`` in seconds when systemd expects pings from this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None  # inherited by a child: the pings are the main process's job
        except ValueError:
            return None
    return value / 1_000_000
