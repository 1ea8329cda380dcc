"""The shipped unit, environment file and example config: verified by systemd's own tools and by
syncd's config loader, so the three files cannot drift apart."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from syncd.config import CREDENTIAL_FILES, SECTIONS, load_settings
from tests.systemd_units import SYSTEMD_DIR, UNIT_FILES, directives, exec_start_argv, values

UNIT = SYSTEMD_DIR / "syncd.service"
TEMPLATE = SYSTEMD_DIR / "syncd@.service"
INSTANCE = "ci-tenant"
"""The template is checked as `syncd@ci-tenant.service`: systemd only verifies instances."""
ENV_FILE = SYSTEMD_DIR / "syncd.env"
EXAMPLE = SYSTEMD_DIR / "syncd.example.toml"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
MAX_EXPOSURE = 2.0
UNITS = {"syncd.service": UNIT, f"syncd@{INSTANCE}.service": TEMPLATE}
"""Unit name to check → file in the repository."""


def _values(key: str, section: str = "Service", unit: Path = UNIT) -> list[str]:
    return values(unit, key, section)


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False)


def _copy_with_exec_start(tmp_path: Path, name: str, executable: str) -> Path:
    """The unit `name` with ExecStart pointing at an executable that exists on this machine."""
    text = UNITS[name].read_text()
    patched, count = re.subn(r"^ExecStart=/usr/bin/syncd\b", f"ExecStart={executable}", text, flags=re.M)
    assert count == 1
    copy = tmp_path / name  # verify derives the unit (and instance) name from the file name
    copy.write_text(patched)
    return copy


@pytest.mark.parametrize("name", sorted(UNITS))
def test_verify_clean_when_executable_exists(tmp_path: Path, name: str) -> None:
    # /usr/bin/syncd only exists where syncd is installed; verify insists ExecStart is executable,
    # so check a copy that runs this interpreter instead: every other directive is unchanged.
    copy = _copy_with_exec_start(tmp_path, name, sys.executable)
    result = _analyze("verify", str(copy))
    assert result.returncode == 0, result.stderr
    assert name not in result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(UNITS))
def test_verify_original_only_misses_the_installed_binary(tmp_path: Path, name: str) -> None:
    copy = tmp_path / name
    copy.write_text(UNITS[name].read_text())
    result = _analyze("verify", str(copy))
    if Path("/usr/bin/syncd").exists():
        assert result.returncode == 0, result.stderr
        return
    problems = [line for line in (result.stdout + result.stderr).splitlines() if name in line]
    assert problems == [f"{name}: Command /usr/bin/syncd is not executable: No such file or directory"]


@pytest.mark.parametrize("name", sorted(UNITS))
def test_security_exposure_at_most_two(tmp_path: Path, name: str) -> None:
    copy = tmp_path / name
    copy.write_text(UNITS[name].read_text())
    result = _analyze("security", "--offline=true", str(copy))
    match = re.search(rf"Overall exposure level for {re.escape(name)}: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


@pytest.mark.parametrize("name", sorted(UNITS))
def test_security_threshold_gate(tmp_path: Path, name: str) -> None:
    """Same target through systemd's own gate: non-zero exit above the threshold."""
    copy = tmp_path / name
    copy.write_text(UNITS[name].read_text())
    result = _analyze("security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}", str(copy))
    assert result.returncode == 0, result.stdout[-2000:]


@pytest.mark.parametrize("unit", UNIT_FILES, ids=lambda p: p.name)
def test_exec_start_line_reaches_config_loading(tmp_path: Path, unit: Path) -> None:
    """Every unit's own command line parses and gets as far as reading its config file (absent
    here: exit 78, EX_CONFIG, which the units do not restart on) instead of a usage error (2)."""
    argv = exec_start_argv(unit, INSTANCE)
    config = Path(argv[argv.index("--config") + 1])
    assert not config.exists(), f"{config} exists on this machine: the check would start a real daemon"
    env = {"PATH": "/usr/bin:/bin", "STATE_DIRECTORY": str(tmp_path)}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert proc.returncode == 78, proc.stderr
    assert f"config file not found: {config}" in proc.stderr
    assert "usage:" not in proc.stderr


INSTANCE_SPECIFIC = {"Description", "ExecStart", "StateDirectory", "LoadCredential", "EnvironmentFile"}


def test_template_is_the_unit_per_instance() -> None:
    """syncd@.service differs from syncd.service only where an instance needs its own: config,
    state directory, credentials, environment file; the sandbox and limits are the same."""
    plain, template = directives(UNIT.read_text()), directives(TEMPLATE.read_text())
    assert [d for d in plain if d[1] not in INSTANCE_SPECIFIC] == [
        d for d in template if d[1] not in INSTANCE_SPECIFIC
    ]
    assert _values("ExecStart", unit=TEMPLATE) == ["/usr/bin/syncd run --config /etc/syncd/%i.toml"]
    assert _values("StateDirectory", unit=TEMPLATE) == ["syncd/%i"]
    assert _values("EnvironmentFile", unit=TEMPLATE) == ["-/etc/syncd/%i.env"]
    loaded = dict(v.split(":", 1) for v in _values("LoadCredential", unit=TEMPLATE))
    assert loaded == {name: f"/etc/syncd/credentials/%i/{name}" for name in _credentials(UNIT)}


def _credentials(unit: Path) -> dict[str, str]:
    return dict(v.split(":", 1) for v in _values("LoadCredential", unit=unit))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", "/usr/bin/syncd run --config /etc/syncd/syncd.toml"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("WatchdogSec", "60"),
        ("Restart", "on-failure"),
        ("RestartSec", "5"),
        ("TimeoutStopSec", "30"),
        ("StateDirectory", "syncd"),
        ("EnvironmentFile", "-/etc/syncd/syncd.env"),
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("MemoryDenyWriteExecute", "yes"),
        ("UMask", "0077"),
        ("LimitNOFILE", "8192"),
    ],
)
def test_requireddirectives(key: str, value: str) -> None:
    assert value in _values(key)


def test_credentials_match_what_config_reads() -> None:
    loaded = dict(v.split(":", 1) for v in _values("LoadCredential"))
    assert loaded == {
        "client_secret": "/etc/syncd/credentials/client_secret",
        "j1_api_key": "/etc/syncd/credentials/j1_api_key",
        "client_state": "/etc/syncd/credentials/client_state",
    }
    assert set(loaded) <= set(CREDENTIAL_FILES.values())


def test_syscall_filter_allows_services_and_denies_privileged() -> None:
    filters = _values("SystemCallFilter")
    assert "@system-service" in filters
    assert "~@privileged @resources" in filters
    assert _values("SystemCallErrorNumber") == ["EPERM"]


def _env_assignments(include_commented: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in ENV_FILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            if not include_commented:
                continue
            line = line.lstrip("#").strip()
        if re.match(r"^SYNCD_[A-Z0-9_]+=", line):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def test_example_config_loads_without_secrets() -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    for section, key in CREDENTIAL_FILES:
        assert key not in raw.get(section, {}), f"secret [{section}] {key} must come from a credential"
    settings = load_settings(EXAMPLE, environ={}, require_credentials=False)
    assert settings.j1.strategy == "auto"
    assert settings.webhook.listen == "127.0.0.1:8080"
    # empty in the example and no $STATE_DIRECTORY: ./state, and syncd knows it was not given
    assert settings.state_dir == Path("state") and not settings.state_dir_given


def test_example_config_state_dir_comes_from_systemd() -> None:
    settings = load_settings(
        EXAMPLE, environ={"STATE_DIRECTORY": "/var/lib/syncd"}, require_credentials=False
    )
    assert settings.state.dir == "/var/lib/syncd"


def test_example_config_mentions_every_key() -> None:
    text = EXAMPLE.read_text()
    for section, cls in SECTIONS.items():
        assert re.search(rf"^\[{section}\]$", text, re.M), section
        for f in fields(cls):
            # active ("key = ...") or documented ("# key = ...", "# key: from the ... credential")
            assert re.search(rf"^#?\s*{f.name}\s*[=:]", text, re.M), f"[{section}] {f.name} missing"


def test_example_config_secrets_come_from_credentials() -> None:
    text = EXAMPLE.read_text()
    for (_section, key), credential in CREDENTIAL_FILES.items():
        assert re.search(rf"{key}\s+<- credential \"{credential}\"", text), key


def test_env_file_names_are_all_known_settings() -> None:
    env = _env_assignments(include_commented=True)
    assert "SYNCD_LOG_LEVEL" in env
    settings = load_settings(EXAMPLE, environ=env, require_credentials=False)  # unknown names raise
    assert settings.sync.sources == ["users", "groups", "devices"]
    active = _env_assignments(include_commented=False)
    assert load_settings(EXAMPLE, environ=active, require_credentials=False).log.format == "json"


def test_env_file_holds_no_secrets() -> None:
    env = _env_assignments(include_commented=True)
    secret_names = {f"SYNCD_{s.upper()}_{k.upper()}" for s, k in CREDENTIAL_FILES}
    assert not secret_names & set(env)
