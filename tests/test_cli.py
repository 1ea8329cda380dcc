"""The `syncd` command line: commands that need no tenant."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.kit.daemon import run_cli
from tests.paths import SEED


def _tables(text: str) -> list[str]:
    """The markdown table rows (header, separator and body) of both data-model tables."""
    return [line for line in text.splitlines() if line.startswith("|")]


async def test_document_prints_exactly_the_seed_tables() -> None:
    res = await run_cli("document")
    assert res.code == 0, res.err
    seed_rows = _tables(SEED.read_text())
    printed = _tables(res.out)
    assert printed == seed_rows
    body = [r for r in printed if not re.match(r"^\|\s*(-+|Resources|Source Entity)", r)]
    assert len(body) == 18 + 29


async def test_alerts_j1_rules_prints_rules_for_our_types() -> None:
    res = await run_cli("alerts", "j1-rules")
    assert res.code == 0, res.err
    assert "microsoft_365_user" in res.out and "FIND" in res.out


async def test_sim_help_and_unknown_command() -> None:
    assert (await run_cli("sim", "--help")).code == 0
    bad = await run_cli("frobnicate")
    assert bad.code != 0 and "invalid choice" in bad.err


async def test_setup_without_credentials_prints_consent_url() -> None:
    res = await run_cli(
        "setup",
        env={
            "SYNCD_GRAPH_TENANT_ID": "contoso.onmicrosoft.com",
            "SYNCD_GRAPH_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        },
    )
    assert res.code == 0, res.err
    assert (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent"
        "?client_id=11111111-2222-3333-4444-555555555555"
    ) in res.out
    assert "User.Read.All" in res.out and "GroupMember.Read.All" in res.out
    # a fresh clientState, long enough for the config check, different on every run
    states = [
        re.findall(
            r"printf %s '([^']+)' \| sudo install -m 0600 /dev/stdin /etc/syncd/credentials/client_state", out
        )
        for out in (res.out, await _syncd_setup_again())
    ]
    assert [len(found) for found in states] == [1, 1]
    assert len(states[0][0]) >= 32 and states[0][0] != states[1][0]


async def _syncd_setup_again() -> str:
    res = await run_cli("setup", env={"SYNCD_GRAPH_TENANT_ID": "t", "SYNCD_GRAPH_CLIENT_ID": "c"})
    assert res.code == 0, res.err
    return res.out


@pytest.mark.parametrize(
    "argv", [["run", "-c", "{cfg}"], ["-c", "{cfg}", "run"], ["run", "--config", "{cfg}"]]
)
async def test_config_option_before_or_after_the_command(tmp_path: Path, argv: list[str]) -> None:
    cfg = tmp_path / "absent.toml"
    res = await run_cli(*(a.format(cfg=cfg) for a in argv))
    assert res.code == 78, res.err  # reached config loading: not a usage error (2)
    assert f"config file not found: {cfg}" in res.err
