"""Alert targets: one class per kind, registered by its ``kind`` name.

A kind's class is the whole of it: the config keys it takes (``options``), the body it sends
(``render``) and how it sends it (``deliver``). ``AlertTarget.from_mapping`` picks the class by
the ``kind`` of an ``[alerts.targets.<name>]`` table, so adding a kind is adding one subclass
with a ``kind`` (docs/alerts.md lists the kinds). The always-on structured log line is not a
target: it needs no config and no outbox row (``syncd.alerts.delivery.log_alert``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp

from syncd import __version__
from syncd.alerts.formats import slack_payload, teams_payload
from syncd.alerts.types import SEVERITIES
from syncd.retry import parse_retry_after

ALERT_ID_HEADER = "X-Syncd-Alert-Id"
_RETRYABLE_4XX = frozenset({408, 425, 429})
_MAX_ERROR_CHARS = 300
_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")

TARGET_KINDS: dict[str, type[AlertTarget]] = {}
"""kind name → its class, in definition order (the order error messages list them in)."""


class TargetError(ValueError):
    """An invalid `[alerts]` target definition (named, never showing the URL: it is often a secret)."""


@dataclass(frozen=True)
class DeliveryOutcome:
    """One delivery attempt: ``ok``, or why not and whether trying again can help."""

    ok: bool
    error: str = ""
    permanent: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class AlertTarget(ABC):
    """Where alerts go. ``name`` is what the outbox rows record; secrets stay out of repr and logs."""

    kind: ClassVar[str]
    name: str
    timeout: float = field(default=10.0, kw_only=True)
    min_severity: str = field(default="info", kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            TARGET_KINDS[cls.kind] = cls

    @staticmethod
    def from_mapping(name: str, data: Mapping[str, Any]) -> AlertTarget:
        """Build and validate one target from config: {kind, timeout, min_severity, ...its own keys}."""
        kind = data.get("kind", "webhook")
        cls = TARGET_KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise TargetError(f"alert target {name!r}: kind must be one of {'|'.join(TARGET_KINDS)}")
        timeout = data.get("timeout", 10.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise TargetError(f"alert target {name!r}: timeout must be a number of seconds in (0, 300]")
        min_sev = data.get("min_severity", "info")
        if min_sev not in SEVERITIES:
            raise TargetError(f"alert target {name!r}: min_severity must be one of {'|'.join(SEVERITIES)}")
        return cls(name, timeout=float(timeout), min_severity=str(min_sev), **cls.options(name, data))

    @classmethod
    @abstractmethod
    def options(cls, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """This kind's own keys of a config table, validated: keyword arguments of the class."""

    def render(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The body this target receives; the generic form unless the kind has its own."""
        return dict(payload)

    @abstractmethod
    async def deliver(self, payload: Mapping[str, Any], session: aiohttp.ClientSession) -> DeliveryOutcome:
        """Send one alert (its generic payload), within ``timeout``; never raises for a failure."""


def targets_from_config(data: Mapping[str, Mapping[str, Any]]) -> list[AlertTarget]:
    """`{name: {kind, url, ...}}` (the `[alerts.targets.<name>]` tables) to targets."""
    return [AlertTarget.from_mapping(name, spec) for name, spec in data.items()]


@dataclass(frozen=True, kw_only=True)
class HttpTarget(AlertTarget, ABC):
    """A POST of JSON to ``url`` (often a secret: Slack and Teams URLs carry their token)."""

    url: str = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def options(cls, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        url = data.get("url", "")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise TargetError(f"alert target {name!r}: url must be an http(s) URL")
        headers = data.get("headers", {})
        if not isinstance(headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise TargetError(f"alert target {name!r}: headers must map strings to strings")
        return {"url": str(url), "headers": dict(headers)}

    async def deliver(self, payload: Mapping[str, Any], session: aiohttp.ClientSession) -> DeliveryOutcome:
        body = json.dumps(self.render(payload), separators=(",", ":"), default=str)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"syncd/{__version__}",
            **self.headers,
            ALERT_ID_HEADER: str(payload.get("alert_id", "")),
        }
        try:
            async with session.post(
                self.url,
                data=body.encode("utf-8"),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                await resp.content.read(65536)
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except TimeoutError:
            return DeliveryOutcome(False, f"timeout after {self.timeout}s")
        except aiohttp.ClientError as exc:
            # The exception text may carry the URL (Slack/Teams URLs are secrets): keep only the type.
            return DeliveryOutcome(False, type(exc).__name__)
        if 200 <= status < 300:
            return DeliveryOutcome(True)
        error = f"HTTP {status}"
        if status >= 500 or status in _RETRYABLE_4XX:
            return DeliveryOutcome(False, error, retry_after=retry_after)
        return DeliveryOutcome(False, error, permanent=True)  # 3xx, other 4xx: retrying cannot help


@dataclass(frozen=True, kw_only=True)
class WebhookTarget(HttpTarget):
    """The generic JSON (``Alert.to_dict()``) to any receiver."""

    kind: ClassVar[str] = "webhook"


@dataclass(frozen=True, kw_only=True)
class SlackTarget(HttpTarget):
    """A Slack incoming webhook (Block Kit body)."""

    kind: ClassVar[str] = "slack"

    def render(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return slack_payload(payload)


@dataclass(frozen=True, kw_only=True)
class TeamsTarget(HttpTarget):
    """A Teams incoming webhook: an Adaptive Card (Workflows) or a legacy MessageCard."""

    kind: ClassVar[str] = "teams"
    teams_format: Literal["adaptive", "messagecard"] = "adaptive"

    @classmethod
    def options(cls, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        options = super().options(name, data)
        fmt = data.get("teams_format", "adaptive")
        if fmt not in ("adaptive", "messagecard"):
            raise TargetError(f"alert target {name!r}: teams_format must be adaptive or messagecard")
        return {**options, "teams_format": fmt}

    def render(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return teams_payload(payload, self.teams_format)


@dataclass(frozen=True, kw_only=True)
class CommandTarget(AlertTarget):
    """A local program: ``argv`` run directly (never a shell), the alert JSON on its stdin."""

    kind: ClassVar[str] = "command"
    argv: tuple[str, ...]

    @classmethod
    def options(cls, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
        raw = data.get("argv")
        if not isinstance(raw, list | tuple) or not raw or not all(isinstance(a, str) and a for a in raw):
            raise TargetError(f"alert target {name!r}: argv must be a non-empty list of strings")
        return {"argv": tuple(raw)}

    async def deliver(self, payload: Mapping[str, Any], session: aiohttp.ClientSession) -> DeliveryOutcome:
        """Exit 0 means delivered. A minimal environment: no config secret is passed on."""
        env = {k: os.environ[k] for k in _ENV_PASSTHROUGH if k in os.environ}
        env.update(
            {
                "SYNCD_ALERT_ID": str(payload.get("alert_id", "")),
                "SYNCD_ALERT_RULE": str(payload.get("rule_id", "")),
                "SYNCD_ALERT_SEVERITY": str(payload.get("severity", "")),
                "SYNCD_ALERT_TARGET": self.name,
            }
        )
        data = json.dumps(self.render(payload), separators=(",", ":"), default=str).encode("utf-8")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            return DeliveryOutcome(False, f"cannot run {self.argv[0]!r}: {why}")
        try:
            _, err = await asyncio.wait_for(proc.communicate(data), timeout=self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: children die too
            await proc.wait()
            return DeliveryOutcome(False, f"timeout after {self.timeout}s")
        if proc.returncode == 0:
            return DeliveryOutcome(True)
        tail = err.decode("utf-8", "replace").strip()[-_MAX_ERROR_CHARS:]
        status = f"exit {proc.returncode}"
        return DeliveryOutcome(False, f"{status}: {tail}" if tail else status)
