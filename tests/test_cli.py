"""The `syncd` command line: commands that need no tenant."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import SEED


def _syncd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "syncd", *args], capture_output=True, text=True, timeout=60)


def _tables(text: str) -> list[str]:
    """The markdown table rows (header, separator and body) of both data-model tables."""
    return [line for line in text.splitlines() if line.startswith("|")]


def test_document_prints_exactly_the_seed_tables() -> None:
    proc = _syncd("document")
    assert proc.returncode == 0, proc.stderr
    seed_rows = _tables(SEED.read_text())
    printed = _tables(proc.stdout)
    assert printed == seed_rows
    body = [r for r in printed if not re.match(r"^\|\s*(-+|Resources|Source Entity)", r)]
    assert len(body) == 18 + 29


def test_alerts_j1_rules_prints_rules_for_our_types() -> None:
    proc = _syncd("alerts", "j1-rules")
    assert proc.returncode == 0, proc.stderr
    assert "microsoft_365_user" in proc.stdout and "FIND" in proc.stdout


def test_sim_help_and_unknown_command() -> None:
    assert _syncd("sim", "--help").returncode == 0
    bad = _syncd("frobnicate")
    assert bad.returncode != 0 and "invalid choice" in bad.stderr


def test_setup_without_credentials_prints_consent_url() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "syncd", "setup"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "SYNCD_GRAPH_TENANT_ID": "contoso.onmicrosoft.com",
            "SYNCD_GRAPH_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent"
        "?client_id=11111111-2222-3333-4444-555555555555"
    ) in proc.stdout
    assert "User.Read.All" in proc.stdout and "GroupMember.Read.All" in proc.stdout
    # a fresh clientState, long enough for the config check, different on every run
    states = [
        re.findall(
            r"printf %s '([^']+)' \| sudo install -m 0600 /dev/stdin /etc/syncd/credentials/client_state", out
        )
        for out in (proc.stdout, _syncd_setup_again())
    ]
    assert [len(found) for found in states] == [1, 1]
    assert len(states[0][0]) >= 32 and states[0][0] != states[1][0]


def _syncd_setup_again() -> str:
    env = {"PATH": "/usr/bin:/bin", "SYNCD_GRAPH_TENANT_ID": "t", "SYNCD_GRAPH_CLIENT_ID": "c"}
    proc = subprocess.run(
        [sys.executable, "-m", "syncd", "setup"], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize(
    "argv", [["run", "-c", "{cfg}"], ["-c", "{cfg}", "run"], ["run", "--config", "{cfg}"]]
)
def test_config_option_before_or_after_the_command(tmp_path: Path, argv: list[str]) -> None:
    cfg = tmp_path / "absent.toml"
    proc = _syncd(*(a.format(cfg=cfg) for a in argv))
    assert proc.returncode == 78, proc.stderr  # reached config loading: not a usage error (2)
    assert f"config file not found: {cfg}" in proc.stderr
