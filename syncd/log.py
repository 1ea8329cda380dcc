"""structlog set-up for syncd, with secret redaction on every line that leaves the process.

One pipeline for everything: structlog loggers and stdlib loggers (aiohttp, apscheduler, msal)
both end in the same :class:`structlog.stdlib.ProcessorFormatter`, so both get timestamps, levels,
logger names and, last before rendering, :func:`redact`. Redaction runs after exceptions are
rendered to text, so a secret inside an exception message or traceback is caught too.

Output: JSON lines when the stream is not a terminal (journald under systemd), a console
renderer on a terminal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "clear_secrets",
    "configure_logging",
    "get_logger",
    "redact",
    "redact_text",
    "register_secret",
    "register_secrets",
    "reopen",
]

REDACTED = "[REDACTED]"

NOISY_LOGGERS = (
    "aiohttp",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.server",
    "apscheduler",
    "msal",
    "urllib3",
    "sqlite_utils",
)
"""Third-party loggers kept at WARNING or above: their INFO/DEBUG is noise (and msal's may echo
request details)."""

_MIN_SECRET_LENGTH = 4
"""Shorter values are not registered: redacting every "abc" would garble the logs."""

# Keys whose values are always secret, compared after lower-casing and dropping everything that
# is not a letter or digit ("X-Api-Key", "client_secret" and "clientSecret" all match).
# Graph's validationToken is deliberately absent: it is a public challenge, not a secret.
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
        "clientsecret",
        "clientstate",
        "clientassertion",
        "clientcertificatekey",
        "apikey",
        "xapikey",
        "j1apikey",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "token",
        "password",
        "passwd",
        "secret",
        "privatekey",
    }
)
_SECRET_KEY_SUFFIXES = ("secret", "password", "apikey", "accesstoken", "refreshtoken", "privatekey")

_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values, wherever they appear in text.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE), rf"\1 {REDACTED}"),
    # A JWT (access/id tokens) even without "Bearer".
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"), REDACTED),
    # form/query encoded secrets: client_secret=...&
    (
        re.compile(
            r"\b(client_secret|client_assertion|access_token|refresh_token|id_token|api_key|password)"
            r"=[^&\s\"',;]+",
            re.IGNORECASE,
        ),
        rf"\1={REDACTED}",
    ),
    # JSON/repr encoded secrets: "clientState": "..."
    (
        re.compile(
            r"([\"'](?:client_?secret|client_?state|api_?key|access_?token|refresh_?token|password)[\"']"
            r"\s*:\s*)([\"'])(?:(?!\2).)*\2",
            re.IGNORECASE,
        ),
        rf"\1\2{REDACTED}\2",
    ),
)

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def _variants(value: str) -> set[str]:
    """The forms a secret takes when printed: raw, URL-encoded, JSON- and repr-escaped."""
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1], repr(value)[1:-1]}
    return {f for f in forms if len(f) >= _MIN_SECRET_LENGTH}


def register_secret(value: str) -> None:
    """Never print ``value`` again: every log line is scrubbed of it (and its encoded forms)."""
    global _secret_pattern
    value = value.strip() if isinstance(value, str) else ""
    if len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        _secrets.update(_variants(value))
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_pattern = re.compile("|".join(re.escape(s) for s in ordered))


def register_secrets(values: Iterable[str]) -> None:
    """:func:`register_secret` for each value (e.g. ``Settings.secrets()``)."""
    for value in values:
        register_secret(value)


def clear_secrets() -> None:
    """Forget registered secrets (tests only)."""
    global _secret_pattern
    with _lock:
        _secrets.clear()
        _secret_pattern = None


def _is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    norm = re.sub(r"[^a-z0-9]", "", key.lower())
    return norm in _SECRET_KEYS or norm.endswith(_SECRET_KEY_SUFFIXES)


def redact_text(text: str) -> str:
    """``text`` with registered secrets, Bearer/Basic credentials, JWTs and key=value secrets masked."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _TEXT_PATTERNS:
        text = regex.sub(replacement, text)
    return text


def _redact_value(value: Any, depth: int = 0) -> Any:
    """Scrub one value; containers recursively, unknown objects via their ``str``."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if depth > 8:
        return REDACTED  # deep enough to be suspicious; don't risk it
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if _is_secret_key(k) and v not in (None, "") else _redact_value(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    return redact_text(str(value))


def redact(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret-named keys and any secret text in any value."""
    for key in list(event_dict):
        value = event_dict[key]
        if _is_secret_key(key) and value not in (None, ""):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(value)
    return event_dict


def _capture_exc_info(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Resolve ``exc_info=True`` while still inside the ``except`` block."""
    if event_dict.get("exc_info") is True:
        event_dict["exc_info"] = sys.exc_info()
    return event_dict


class _State:
    """What :func:`reopen` needs to find again."""

    handler: logging.StreamHandler[TextIO] | None = None
    path: Path | None = None
    level: int = logging.INFO


_state = _State()


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level: {level!r}")
    return number


def _apply_level(level: int) -> None:
    _state.level = level
    logging.getLogger().setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def configure_logging(
    level: str = "INFO", fmt: str = "auto", stream: TextIO | str | Path | None = None
) -> None:
    """Install the logging pipeline (idempotent: calling again replaces the previous set-up).

    ``fmt``: ``json``, ``console`` or ``auto`` (console on a TTY, JSON otherwise).
    ``stream``: a text stream (default: the current ``sys.stdout``) or a file path, opened for
    appending and reopened by :func:`reopen` (logrotate).
    """
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format: {fmt!r} (auto, json or console)")
    level_no = _level_number(level)
    path: Path | None = None
    if isinstance(stream, str | Path):
        path = Path(stream)
        out: TextIO = path.open("a", encoding="utf-8")
    else:
        out = sys.stdout if stream is None else stream
    use_console = fmt == "console" or (fmt == "auto" and _is_tty(out))

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    if use_console:
        renderer = structlog.dev.ConsoleRenderer(colors=_is_tty(out))
    else:
        renderer = structlog.processors.JSONRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,  # last before rendering: sees the rendered traceback text
            renderer,
        ],
    )

    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    old = _state.handler
    if old is not None:
        root.removeHandler(old)
        if _state.path is not None:
            old.close()
            old.stream.close()
    root.addHandler(handler)
    _state.handler = handler
    _state.path = path
    _apply_level(level_no)
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            _capture_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def reopen(level: str | None = None) -> None:
    """SIGHUP: reopen the log file (after logrotate) and optionally switch level; flush a stream."""
    handler = _state.handler
    if handler is not None:
        handler.acquire()
        try:
            if _state.path is not None:
                old = handler.setStream(_state.path.open("a", encoding="utf-8"))
                if old is not None:
                    old.close()
            else:
                handler.flush()
        finally:
            handler.release()
    if level is not None:
        _apply_level(_level_number(level))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to ``name`` (the stdlib logger name shown in each line)."""
    return structlog.stdlib.get_logger(name)
