"""Settings: a TOML file, overridden by ``SYNCD_<SECTION>_<KEY>`` variables and credential files.

Every problem is reported at once, one line each, and no message ever contains a secret value.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from syncd.graph.clouds import CLOUDS
from syncd.model.schema import ALL_SOURCES
from syncd.pausepoints import ENV_MARKER, ENV_POINT
from syncd.tenant import default_scope, is_guid

NOT_SETTINGS = frozenset({"SYNCD_CONFIG", ENV_POINT, ENV_MARKER})
"""`SYNCD_*` variables that are not `SYNCD_<SECTION>_<KEY>` overrides."""

CREDENTIAL_FILES: dict[tuple[str, str], str] = {
    ("graph", "client_secret"): "client_secret",
    ("graph", "client_certificate_key"): "client_certificate_key",
    ("j1", "api_key"): "j1_api_key",
    ("webhook", "client_state"): "client_state",
}
"""Which `$CREDENTIALS_DIRECTORY` file (systemd `LoadCredential=`) may hold which secret."""

J1Strategy = Literal["auto", "documented"]
IncrementalMode = Literal["", "patch", "diff"]
SignInMode = Literal["auto", "on", "off"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["auto", "json", "console"]
CHOICES: dict[str, tuple[str, ...]] = {
    "J1Strategy": get_args(J1Strategy),
    "IncrementalMode": get_args(IncrementalMode),
    "SignInMode": get_args(SignInMode),
    "LogLevel": get_args(LogLevel),
    "LogFormat": get_args(LogFormat),
}
"""The modes a setting may take, by the name of its annotation: read as a string at load, checked
once in `_finish` (the settings hold only these values afterwards)."""


class Secret:
    """A string that never shows itself in repr, str or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class ConfigError(Exception):
    """Invalid configuration: ``problems`` holds one human line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class GraphSettings:
    tenant_id: str = ""
    client_id: str = ""
    client_secret: Secret | None = None
    client_certificate: str | None = None
    client_certificate_key: Secret | None = None
    cloud: str = "global"
    authority_host: str = ""
    base_url: str = ""
    request_timeout: float = 60.0


@dataclass
class J1Settings:
    account_id: str = ""
    api_key: Secret | None = None
    base_url: str = "https://api.us.jupiterone.io"
    graphql_url: str = ""
    """J1's query API (J1QL), used only by the capability probe; default ``<base_url>/graphql``."""
    scope: str = ""
    """Base name of syncd's J1 scopes (each partition is ``<scope>-e<n>-<i>`` / ``-r<n>-<i>``)."""
    account_name: str = ""
    tag_with_account_name: bool = False
    strategy: J1Strategy = "auto"
    """``auto``: documented writes, plus the faster ones the probe proved on this account;
    ``documented``: never rely on undocumented J1 behaviour."""
    concurrency: int = 16
    """J1 jobs in flight at once (different partitions)."""
    probe_wait: float = 30.0
    """How long the capability probe waits for J1QL to show a job's effect (J1QL may lag)."""
    incremental_mode: IncrementalMode = ""
    """Deprecated (before partitions): ``diff`` now means ``strategy = "documented"``."""
    map_users_to_persons: bool = True
    person_match_keys: list[str] = field(default_factory=lambda: ["email"])
    person_skip_target_creation: bool = True
    job_timeout: float = 600.0
    request_timeout: float = 60.0
    mapping_interval: float = 0.0
    """Deprecated and ignored: mapped relationships now travel with their partition."""


CLIENT_STATE_MIN = 32
"""Shortest accepted clientState: it is the only proof that a notification came from Graph."""


@dataclass
class WebhookSettings:
    public_url: str = ""
    listen: str = "127.0.0.1:8080"
    client_state: Secret | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    max_body_bytes: int = 131_072
    """Larger notification bodies get 413 (a Graph item is ~600 bytes: this holds ~200 of them)."""
    read_timeout: float = 10.0
    """Seconds a client has to send its request line, headers and body (Graph sends at once)."""
    keepalive_timeout: float = 5.0
    """Seconds an idle keep-alive connection stays open."""
    max_connections: int = 256
    """Open connections beyond this are closed at once (the unit's LimitNOFILE leaves room)."""


DEFAULT_STATE_DIR = "state"
"""Where the mirror goes when neither `[state] dir` nor `$STATE_DIRECTORY` says (a terminal run)."""


@dataclass
class StateSettings:
    dir: str = ""
    """Empty: `$STATE_DIRECTORY` (systemd's StateDirectory=), else ./state (`Settings.state_dir`)."""


@dataclass
class TlsSettings:
    ca_file: str | None = None


@dataclass
class SyncSettings:
    sources: list[str] = field(default_factory=lambda: list(ALL_SOURCES))
    safety_net_interval: float = 300.0
    devices_delta_interval: float = 2.0
    """Entra devices have no change notifications: their delta is polled this often (one request
    when nothing changed: 1,800 an hour at 2 s), and a changed device triggers an early re-fetch of
    its Intune managed device, so a compliance alert lands within about this interval + 1 s."""
    full_resync_interval: float = 86400.0
    debounce: float = 1.0
    drain_interval: float = 5.0
    intune_devices_interval: float = 900.0
    intune_policies_interval: float = 3600.0
    intune_full_pass_every: int = 6
    intune_concurrency: int = 4
    intune_requests_per_20s: int = 800
    sign_in_activity: SignInMode = "auto"
    """Users' last sign-in (``lastSignInOn``): "auto" (collected when the app has AuditLog.Read.All
    and the tenant Entra ID P1/P2; off after the first 403), "on" (a 403 fails the poll), "off"."""
    sign_in_interval: float = 3600.0
    """Seconds between polls of the users' sign-in activity (delta does not track it)."""


@dataclass
class HealthSettings:
    listen: str = "127.0.0.1:8081"
    """`/healthz` and `/metrics`: their own listener, loopback unless an operator opens it."""
    max_lag: float = 900.0
    outbox_stuck_after: float = 600.0
    writer_timeout: float = 300.0
    """The mirror's writer thread must answer a no-op within this (seconds), or syncd is stalled."""
    work_timeout: float = 3600.0
    """A round or a J1 push running longer than this (seconds) is hung: syncd is stalled."""


@dataclass
class AlertsSettings:
    enabled: bool = True
    rules_file: str | None = None
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """`[alerts.targets.<name>]` tables: kind (webhook|slack|teams|command), url or argv, ..."""
    privileged_group_names: list[str] = field(default_factory=list)
    privileged_group_ids: list[str] = field(default_factory=list)


@dataclass
class LogSettings:
    level: LogLevel = "INFO"
    format: LogFormat = "auto"


@dataclass
class Settings:
    graph: GraphSettings = field(default_factory=GraphSettings)
    j1: J1Settings = field(default_factory=J1Settings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    state: StateSettings = field(default_factory=StateSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    alerts: AlertsSettings = field(default_factory=AlertsSettings)
    log: LogSettings = field(default_factory=LogSettings)

    @property
    def state_dir(self) -> Path:
        return Path(self.state.dir or DEFAULT_STATE_DIR)

    @property
    def state_dir_given(self) -> bool:
        """True when `[state] dir` or `$STATE_DIRECTORY` named the state directory (no fallback)."""
        return bool(self.state.dir)

    @property
    def mirror_path(self) -> Path:
        return self.state_dir / "mirror.sqlite"

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction."""
        found = [
            self.graph.client_secret,
            self.graph.client_certificate_key,
            self.j1.api_key,
            self.webhook.client_state,
        ]
        return [s.get() for s in found if s]

    def listen_address(self) -> tuple[str, int]:
        return split_listen(self.webhook.listen)

    def health_address(self) -> tuple[str, int]:
        return split_listen(self.health.listen)


def split_listen(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 in brackets) → (host, port)."""
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1: traffic that never leaves the machine."""
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


SECTIONS: dict[str, type] = {
    f.name: f.type if isinstance(f.type, type) else globals()[str(f.type)] for f in fields(Settings)
}


def _expected(section_cls: type, key: str) -> str:
    """The annotation of a settings field, as written (``str | None``, ``SignInMode``...)."""
    hints = {f.name: f.type for f in fields(section_cls)}
    return str(hints[key])


def _coerce(value: Any, annotation: str, where: str, problems: list[str], secret: bool) -> Any:
    """Turn a TOML or environment value into the declared type, or record a problem."""
    ann = annotation.replace(" ", "")
    optional = ann.endswith("|None")
    base = ann.removesuffix("|None")
    shown = "a secret value" if secret else repr(value)
    if value is None and optional:
        return None
    if base == "Secret":
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return Secret(value.strip())
        problems.append(f"{where}: must be a string")
        return None
    if base == "str" or base in CHOICES:
        if isinstance(value, str):
            return value
        problems.append(f"{where}: expected a string, got {shown}")
        return None
    if base == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        problems.append(f"{where}: expected true or false, got {shown}")
        return None
    if base in ("int", "float"):
        if isinstance(value, bool):
            problems.append(f"{where}: expected a number, got {shown}")
            return None
        try:
            number = int(value) if base == "int" else float(value)
        except (TypeError, ValueError):
            problems.append(f"{where}: expected a number, got {shown}")
            return None
        if number < 0:
            problems.append(f"{where}: must not be negative")
        return number
    if base.startswith("dict["):
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            problems.append(f"{where}: expected tables")
            return None
        return value
    if base.startswith("list["):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {shown}")
            return None
        if base == "list[str]" and not all(isinstance(v, str) for v in value):
            problems.append(f"{where}: expected a list of strings")
            return None
        return value
    return value


def _check_url(value: str, where: str, problems: list[str], *, https: bool = False) -> None:
    """A valid http(s) URL; with ``https``, plain http only to a loopback host (the simulators)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{where}: not a valid http(s) URL: {value!r}")
    elif https and parts.scheme != "https" and not is_loopback(parts.hostname):
        problems.append(f"{where}: must use https:// (plain http only to a loopback host) ({value!r})")


def _check_choice(where: str, value: str, allowed: tuple[str, ...], problems: list[str]) -> None:
    """A mode setting holds one of the values of its `Literal` type."""
    if value not in allowed:
        problems.append(f"{where}: one of {', '.join(allowed)} (got {value!r})")


def _check_listen(value: str, where: str, problems: list[str]) -> None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        problems.append(f"{where}: expected host:port (got {value!r})")


def load_settings(
    path: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    require_credentials: bool = True,
) -> Settings:
    """Load, merge and validate; raise ConfigError listing every problem."""
    env = dict(os.environ if environ is None else environ)
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"config file not found: {path}"]) from None
        except PermissionError:
            raise ConfigError([f"config file not readable: {path}"]) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None

    settings = Settings()
    for section_name, section_cls in SECTIONS.items():
        section_obj = getattr(settings, section_name)
        given = raw.get(section_name, {})
        if not isinstance(given, dict):
            problems.append(f"[{section_name}]: must be a table")
            continue
        known = {f.name for f in fields(section_cls)}
        for key in given:
            if key not in known:
                problems.append(f"[{section_name}] {key}: unknown key (known: {', '.join(sorted(known))})")
        for key in known:
            annotation = _expected(section_cls, key)
            secret = "Secret" in annotation
            where = f"[{section_name}] {key}"
            value: Any = given.get(key, ...)
            env_name = f"SYNCD_{section_name.upper()}_{key.upper()}"
            if env_name in env:
                value, where = env[env_name], f"{env_name}"
            cred_name = CREDENTIAL_FILES.get((section_name, key))
            cred_dir = env.get("CREDENTIALS_DIRECTORY")
            if value is ... and cred_name and cred_dir:
                cred_path = Path(cred_dir) / cred_name
                if cred_path.is_file():
                    try:
                        value = cred_path.read_text(encoding="utf-8").strip()
                        where = f"credential {cred_name}"
                    except OSError as exc:
                        problems.append(f"credential {cred_name}: cannot read ({exc.strerror})")
            if value is ...:
                continue
            before = len(problems)
            coerced = _coerce(value, annotation, where, problems, secret)
            if len(problems) == before:
                setattr(section_obj, key, coerced)
    for name in env:
        if name.startswith("SYNCD_") and name not in NOT_SETTINGS:
            rest = name[len("SYNCD_") :].lower()
            section, _, key = rest.partition("_")
            if section not in SECTIONS or key not in {f.name for f in fields(SECTIONS[section])}:
                problems.append(f"{name}: unknown setting")
    _finish(settings, env, problems, require_credentials)
    if problems:
        raise ConfigError(problems)
    return settings


def _finish(s: Settings, env: Mapping[str, str], problems: list[str], require_credentials: bool) -> None:
    """Defaults that depend on other keys, then cross-field checks."""
    g = s.graph
    if g.cloud not in CLOUDS:
        problems.append(f"[graph] cloud: must be one of {', '.join(CLOUDS)} (got {g.cloud!r})")
    else:
        cloud = CLOUDS[g.cloud]
        g.authority_host = (g.authority_host or cloud.authority_host).rstrip("/")
        g.base_url = (g.base_url or cloud.graph_base_url).rstrip("/")
    _check_url(g.authority_host, "[graph] authority_host", problems, https=True)
    _check_url(g.base_url, "[graph] base_url", problems, https=True)
    if require_credentials:
        for key in ("tenant_id", "client_id"):
            if not getattr(g, key):
                problems.append(f"[graph] {key}: required")
        if g.tenant_id.lower() in ("common", "organizations", "consumers"):
            problems.append(
                "[graph] tenant_id: must be your directory (tenant) id or domain, not "
                f"{g.tenant_id!r}: client credentials need a specific business tenant"
            )
        if not g.client_secret and not (g.client_certificate and g.client_certificate_key):
            problems.append(
                "[graph] client_secret: required (or client_certificate + client_certificate_key)"
            )
        if not s.j1.account_id:
            problems.append("[j1] account_id: required")
        if not s.j1.api_key:
            problems.append("[j1] api_key: required")
    if bool(g.client_certificate) != bool(g.client_certificate_key):
        problems.append("[graph] client_certificate and client_certificate_key go together")
    _check_url(s.j1.base_url, "[j1] base_url", problems, https=True)
    if s.j1.incremental_mode not in get_args(IncrementalMode):
        problems.append(f"[j1] incremental_mode: must be 'patch' or 'diff' (got {s.j1.incremental_mode!r})")
    elif s.j1.incremental_mode == "diff":
        s.j1.strategy = "documented"
    _check_choice("[j1] strategy", s.j1.strategy, get_args(J1Strategy), problems)
    if s.j1.concurrency < 1:
        problems.append("[j1] concurrency: at least 1")
    if s.j1.graphql_url:
        _check_url(s.j1.graphql_url, "[j1] graphql_url", problems, https=True)
    s.j1.graphql_url = (s.j1.graphql_url or s.j1.base_url.rstrip("/") + "/graphql").rstrip("/")
    if not s.j1.scope and is_guid(g.tenant_id):
        s.j1.scope = default_scope(g.tenant_id.strip().lower())
    # A tenant given as a domain: the scope is named after its GUID once that is resolved
    # (`syncd.runtime.open_runtime`), so the same tenant always writes to the same scope.
    if s.webhook.public_url:
        _check_url(s.webhook.public_url, "[webhook] public_url", problems)
        if require_credentials and not s.webhook.client_state:
            problems.append("[webhook] client_state: required when public_url is set")
    cs = s.webhook.client_state
    if cs and len(cs.get()) > 128:
        problems.append("[webhook] client_state: at most 128 characters (Graph limit)")
    if cs and len(cs.get()) < CLIENT_STATE_MIN:
        problems.append(
            f"[webhook] client_state: at least {CLIENT_STATE_MIN} characters (a random value: "
            "`syncd setup` prints one)"
        )
    _check_listen(s.webhook.listen, "[webhook] listen", problems)
    _check_listen(s.health.listen, "[health] listen", problems)
    if s.webhook.max_connections < 1 or s.webhook.max_body_bytes < 1024:
        problems.append("[webhook] max_connections: at least 1; max_body_bytes: at least 1024")
    for key in ("read_timeout", "keepalive_timeout"):
        if getattr(s.webhook, key) <= 0:
            problems.append(f"[webhook] {key}: must be positive")
    for key in ("writer_timeout", "work_timeout"):
        if getattr(s.health, key) <= 0:
            problems.append(f"[health] {key}: must be positive")
    if bool(s.webhook.tls_cert) != bool(s.webhook.tls_key):
        problems.append("[webhook] tls_cert and tls_key go together")
    if not s.state.dir:
        s.state.dir = env.get("STATE_DIRECTORY", "").split(":")[0]
    unknown_sources = [x for x in s.sync.sources if x not in ALL_SOURCES]
    if unknown_sources:
        problems.append(
            f"[sync] sources: unknown {', '.join(unknown_sources)} (known: {', '.join(ALL_SOURCES)})"
        )
    if s.sync.debounce > 60:
        problems.append("[sync] debounce: at most 60 seconds")
    _check_choice("[sync] sign_in_activity", s.sync.sign_in_activity, get_args(SignInMode), problems)
    if s.sync.sign_in_interval <= 0:
        problems.append("[sync] sign_in_interval: must be positive")
    level = s.log.level.upper()
    if level not in get_args(LogLevel):
        problems.append(f"[log] level: one of {', '.join(get_args(LogLevel))} (got {s.log.level!r})")
    s.log.level = cast(LogLevel, level)
    _check_choice("[log] format", s.log.format, get_args(LogFormat), problems)
    if s.alerts.targets:
        from syncd.alerts.targets import TargetError, targets_from_config

        try:
            targets_from_config(s.alerts.targets)
        except TargetError as exc:
            problems.append(f"[alerts] targets: {exc}")
    if s.alerts.rules_file:
        if not Path(s.alerts.rules_file).is_file():
            problems.append(f"[alerts] rules_file: no such file {s.alerts.rules_file!r}")
        else:
            from syncd.alerts.loader import RuleError
            from syncd.alerts.rules import RuleSet

            try:
                RuleSet.load(Path(s.alerts.rules_file))
            except RuleError as exc:
                problems.append(f"[alerts] rules_file: {exc}")
