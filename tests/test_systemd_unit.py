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

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD_DIR / "syncd.service"
ENV_FILE = SYSTEMD_DIR / "syncd.env"
EXAMPLE = SYSTEMD_DIR / "syncd.example.toml"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
MAX_EXPOSURE = 2.0


def _directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment; systemd allows repeated keys, configparser doesn't."""
    out: list[tuple[str, str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def _values(key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in _directives(UNIT.read_text()) if s == section and k == key]


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False)


def _copy_with_exec_start(tmp_path: Path, executable: str) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine."""
    text = UNIT.read_text()
    patched, count = re.subn(r"^ExecStart=/usr/bin/syncd\b", f"ExecStart={executable}", text, flags=re.M)
    assert count == 1
    copy = tmp_path / "syncd.service"  # verify derives the unit name from the file name
    copy.write_text(patched)
    return copy


def test_verify_clean_when_executable_exists(tmp_path: Path) -> None:
    # /usr/bin/syncd only exists where syncd is installed; verify insists ExecStart is executable,
    # so check a copy that runs this interpreter instead: every other directive is unchanged.
    copy = _copy_with_exec_start(tmp_path, sys.executable)
    result = _analyze("verify", str(copy))
    assert result.returncode == 0, result.stderr
    assert "syncd.service" not in result.stdout + result.stderr


def test_verify_original_only_misses_the_installed_binary() -> None:
    result = _analyze("verify", str(UNIT))
    if Path("/usr/bin/syncd").exists():
        assert result.returncode == 0, result.stderr
        return
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "syncd.service" in line]
    assert problems == ["syncd.service: Command /usr/bin/syncd is not executable: No such file or directory"]


def test_security_exposure_at_most_two() -> None:
    result = _analyze("security", "--offline=true", str(UNIT))
    match = re.search(r"Overall exposure level for syncd\.service: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_security_threshold_gate() -> None:
    """Same target through systemd's own gate: non-zero exit above the threshold."""
    result = _analyze("security", "--offline=true", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT))
    assert result.returncode == 0, result.stdout[-2000:]


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
    ],
)
def test_required_directives(key: str, value: str) -> None:
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
    assert settings.j1.incremental_mode == "patch"
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
