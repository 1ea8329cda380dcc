"""Logging pipeline: JSON lines for journald, console on a TTY, and no secret ever printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from syncd import log

SECRET = "Sup3r-s3cret/Value+=="
API_KEY = "j1-api-key-0123456789abcdef"
CLIENT_STATE = "client-state-c0ffee"


class FakeTty(io.StringIO):
    """A stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in log.NOISY_LOGGERS}
    log.clear_secrets()
    yield
    log.clear_secrets()
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, lvl in noisy.items():
        logging.getLogger(name).setLevel(lvl)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line]
    return [json.loads(line) for line in lines]  # every line must be valid JSON on its own


def _json_setup(level: str = "DEBUG") -> io.StringIO:
    out = io.StringIO()
    log.configure_logging(level, "json", out)
    log.register_secrets([SECRET, API_KEY, CLIENT_STATE])
    return out


def test_json_lines_have_timestamp_level_and_logger() -> None:
    out = _json_setup("INFO")
    log.get_logger("syncd.engine").info("round done", resource="users", changes=3)
    logging.getLogger("syncd.stdlib").warning("pages: %d", 7)
    first, second = _json_lines(out.getvalue())
    assert first["event"] == "round done"
    assert first["level"] == "info"
    assert first["logger"] == "syncd.engine"
    assert first["resource"] == "users" and first["changes"] == 3
    assert datetime.fromisoformat(first["timestamp"]).utcoffset() is not None
    assert second == {**second, "event": "pages: 7", "level": "warning", "logger": "syncd.stdlib"}


def test_secrets_in_events_values_and_keys_are_redacted_at_debug() -> None:
    out = _json_setup("DEBUG")
    logger = log.get_logger("syncd.graph.auth")
    logger.debug(f"token request with {SECRET}", body=f"client_id=x&client_secret={SECRET}&scope=y")
    logger.debug(
        "headers",
        headers={"Authorization": "Bearer abc.def.ghi", "X-Api-Key": API_KEY, "Accept": "application/json"},
    )
    logger.debug(
        "config",
        client_secret="anything",
        api_key=API_KEY,
        client_state=CLIENT_STATE,
        password="hunter22",
        nested=[{"clientState": CLIENT_STATE}, f"k={API_KEY}"],
    )
    logger.debug("notification", validationToken="Validation: Testing client application reachability")
    text = out.getvalue()
    for secret in (SECRET, API_KEY, CLIENT_STATE, "hunter22", "abc.def.ghi"):
        assert secret not in text
    lines = _json_lines(text)
    assert lines[0]["event"] == "token request with [REDACTED]"
    assert "client_secret=[REDACTED]" in lines[0]["body"]
    assert lines[1]["headers"] == {
        "Authorization": "[REDACTED]",
        "X-Api-Key": "[REDACTED]",
        "Accept": "application/json",
    }
    assert lines[2]["client_secret"] == "[REDACTED]"
    assert lines[2]["nested"] == [{"clientState": "[REDACTED]"}, "k=[REDACTED]"]
    # validation tokens are a public challenge, not a secret: they stay readable
    assert lines[3]["validationToken"] == "Validation: Testing client application reachability"


def test_exception_text_and_traceback_are_redacted() -> None:
    out = _json_setup("DEBUG")
    logger = log.get_logger("syncd.j1.client")

    def call_api(key: str) -> None:
        raise RuntimeError(f"401 from J1 using key {key}; Authorization: Bearer eyJhbGciOiJI.eyJzdWIi.sig")

    try:
        try:
            call_api(API_KEY)
        except RuntimeError as exc:
            raise ConnectionError(f"giving up with secret {SECRET}") from exc
    except ConnectionError:
        logger.debug("push failed", exc_info=True)
        logger.exception("push failed again", error=ConnectionError(CLIENT_STATE))

    text = out.getvalue()
    for secret in (SECRET, API_KEY, CLIENT_STATE, "eyJhbGciOiJI"):
        assert secret not in text
    first, second = _json_lines(text)
    assert "Traceback" in first["exception"]
    assert (
        "RuntimeError: 401 from J1 using key [REDACTED]; Authorization: Bearer [REDACTED]"
        in first["exception"]
    )
    assert "ConnectionError: giving up with secret [REDACTED]" in first["exception"]
    assert second["error"] == "ConnectionError: [REDACTED]"
    assert second["level"] == "error"


def test_stdlib_loggers_are_redacted_and_noise_is_quiet() -> None:
    out = _json_setup("DEBUG")
    logging.getLogger("aiohttp.client").info("noise %s", "ignored")
    logging.getLogger("msal.application").debug("token cache %s", SECRET)
    logging.getLogger("aiohttp.client").warning("retrying with %s", SECRET)
    try:
        raise ValueError(f"bad {API_KEY}")
    except ValueError:
        logging.getLogger("apscheduler.executors").exception("job failed")
    lines = _json_lines(out.getvalue())
    assert [line["logger"] for line in lines] == ["aiohttp.client", "apscheduler.executors"]
    assert lines[0]["event"] == "retrying with [REDACTED]"
    assert "ValueError: bad [REDACTED]" in lines[1]["exception"]
    assert API_KEY not in out.getvalue() and SECRET not in out.getvalue()


def test_encoded_forms_of_a_secret_are_redacted() -> None:
    out = _json_setup("DEBUG")
    from urllib.parse import quote, quote_plus

    logger = log.get_logger("syncd.test")
    logger.debug("encoded", url=quote(SECRET, safe=""), form=quote_plus(SECRET), rep=repr(SECRET))
    line = _json_lines(out.getvalue())[0]
    assert line["url"] == line["form"] == "[REDACTED]"
    assert line["rep"] == "'[REDACTED]'"


def test_console_on_a_tty_is_redacted_too() -> None:
    out = FakeTty()
    log.configure_logging("DEBUG", "auto", out)
    log.register_secret(SECRET)
    try:
        raise KeyError(SECRET)
    except KeyError:
        log.get_logger("syncd.console").exception("oops", token=SECRET, detail=f"x {SECRET} y")
    text = out.getvalue()
    assert SECRET not in text
    assert "[REDACTED]" in text
    assert "Traceback" in text
    assert "oops" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])  # console format, not JSON


def test_auto_is_json_when_not_a_tty() -> None:
    out = io.StringIO()
    log.configure_logging("INFO", "auto", out)
    log.get_logger("syncd.x").info("hello")
    assert _json_lines(out.getvalue())[0]["event"] == "hello"


def test_level_filtering_and_reconfigure_replaces_handler() -> None:
    first = io.StringIO()
    log.configure_logging("WARNING", "json", first)
    log.get_logger("syncd.x").info("hidden")
    second = io.StringIO()
    log.configure_logging("INFO", "json", second)
    log.get_logger("syncd.x").info("shown")
    assert first.getvalue() == ""
    assert [line["event"] for line in _json_lines(second.getvalue())] == ["shown"]


def test_reopen_after_rotation_and_level_switch(tmp_path: Path) -> None:
    path = tmp_path / "syncd.log"
    log.configure_logging("INFO", "json", path)
    logger = log.get_logger("syncd.x")
    logger.info("before rotation")
    rotated = tmp_path / "syncd.log.1"
    path.rename(rotated)
    log.reopen(level="WARNING")
    logger.info("filtered out")
    logger.warning("after rotation")
    assert [line["event"] for line in _json_lines(rotated.read_text())] == ["before rotation"]
    assert [line["event"] for line in _json_lines(path.read_text())] == ["after rotation"]
    log.reopen()  # on a plain stream path too: nothing breaks
    log.configure_logging("INFO", "json", io.StringIO())  # closes the file handler's stream


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        log.configure_logging("LOUD", "json", io.StringIO())
    with pytest.raises(ValueError):
        log.configure_logging("INFO", "xml", io.StringIO())


def test_short_values_are_not_registered() -> None:
    log.register_secret("ab")
    assert log.redact_text("abc ab") == "abc ab"
    log.register_secret("  long-enough  ")
    assert log.redact_text("x long-enough y") == "x [REDACTED] y"


def test_redact_text_patterns() -> None:
    assert log.redact_text("Authorization: Bearer abc-123.xyz") == "Authorization: Bearer [REDACTED]"
    assert log.redact_text("basic dXNlcjpwYXNz") == "basic [REDACTED]"
    assert log.redact_text('{"clientState": "abc", "id": "1"}') == '{"clientState": "[REDACTED]", "id": "1"}'
    assert log.redact_text("deltatoken=abc&$skiptoken=def") == "deltatoken=abc&$skiptoken=def"
