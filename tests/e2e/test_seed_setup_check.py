"""Setup and admin consent: `syncd setup` and `syncd check` against the simulators."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.kit.daemon import run_cli
from bench.kit.tenants import feature_tenant
from syncd.commands.permissions import needed_permissions
from syncd.commands.setup import render_setup
from syncd.config import load_settings
from tests.helpers.harness import permission_faults, running_harness


@pytest.mark.parametrize(
    ("cloud", "consent_root"),
    [
        ("global", "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent"),
        ("usgov", "https://login.microsoftonline.us/contoso.onmicrosoft.com/adminconsent"),
        ("china", "https://login.chinacloudapi.cn/contoso.onmicrosoft.com/adminconsent"),
    ],
)
def test_setup_prints_permissions_consent_url_and_config(cloud: str, consent_root: str) -> None:
    settings = load_settings(
        None,
        environ={
            "SYNCD_GRAPH_TENANT_ID": "contoso.onmicrosoft.com",
            "SYNCD_GRAPH_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
            "SYNCD_GRAPH_CLOUD": cloud,
            "SYNCD_SYNC_SOURCES": "users,groups",
        },
        require_credentials=False,
    )
    text = render_setup(settings)
    assert f"{consent_root}?client_id=11111111-2222-3333-4444-555555555555" in text
    for perm in ("User.Read.All", "GroupMember.Read.All", "Organization.Read.All"):
        assert perm in text
    # switched-off sources need nothing
    for perm in (
        "Device.Read.All",
        "DeviceManagementManagedDevices.Read.All",
        "DeviceManagementApps.Read.All",
    ):
        assert perm not in text
    assert f'cloud = "{cloud}"' in text
    assert 'tenant_id = "contoso.onmicrosoft.com"' in text


async def test_setup_cli_without_credentials(tmp_path: Path) -> None:
    cfg = tmp_path / "syncd.toml"
    cfg.write_text('[graph]\ntenant_id = "t-1234"\nclient_id = "c-5678"\ncloud = "usgov"\n')
    res = await run_cli("setup", config=cfg)
    assert res.code == 0, res.err
    assert "https://login.microsoftonline.us/t-1234/adminconsent?client_id=c-5678" in res.out
    assert "DeviceManagementManagedDevices.Read.All" in res.out  # every source is on by default


async def test_check_all_ok_then_names_denied_permission(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        cfg = h.config_path()
        ok = await run_cli("check", config=cfg)
        assert ok.code == 0, ok.out + ok.err
        for perm in needed_permissions(h.settings()):
            assert f"OK   permission {perm}" in ok.out
        assert "OK   J1 API key" in ok.out

        permission_faults(h).denied = {"Device.Read.All"}
        bad = await run_cli("check", config=cfg)
        assert bad.code == 1
        assert re.search(r"^FAIL permission Device\.Read\.All: not granted", bad.out, re.M), bad.out
        assert "missing permissions: Device.Read.All" in bad.out
        assert "OK   permission User.Read.All" in bad.out
        assert "Traceback" not in bad.out + bad.err


async def test_check_does_not_probe_disabled_sources(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        # devices is denied, but switched off: not probed, not needed, check passes
        permission_faults(h).denied = {"Device.Read.All", "DeviceManagementManagedDevices.Read.All"}
        cfg = h.config_path({"sync": {"sources": ["users", "groups"]}})
        h.sims.graph.counters.reset()
        res = await run_cli("check", config=cfg)
        assert res.code == 0, res.out + res.err
        assert "Device.Read.All" not in res.out
        assert "DeviceManagement" not in res.out
        routes = h.sims.graph.counters.routes
        assert not [r for r in routes if "/devices" in r or "deviceManagement" in r], routes


async def test_check_unknown_tenant_gives_hint_not_traceback(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        cfg = h.config_path({"graph": {"tenant_id": "00000000-0000-0000-0000-00000000dead"}})
        res = await run_cli("check", config=cfg)
        assert res.code == 1
        line = next((ln for ln in res.out.splitlines() if ln.startswith("FAIL token:")), "")
        assert "AADSTS90002" in line, res.out + res.err
        assert "hint: tenant not found" in line
        assert "Traceback" not in res.out + res.err


async def test_check_personal_account_style_error_has_hint(tmp_path: Path) -> None:
    """AADSTS500200-style errors (personal account) come out as a hint, exit 1, no traceback."""
    from syncd.graph.auth import map_msal_error

    err = map_msal_error(
        {
            "error": "invalid_request",
            "error_description": "AADSTS500200: User account 'x@outlook.com' is a personal Microsoft "
            "account.\r\nTrace ID: abc",
            "error_codes": [500200],
        }
    )
    assert "AADSTS500200" in str(err) and "personal Microsoft account" in str(err)
    assert "Trace ID" not in str(err)


async def test_check_probes_audit_log_only_when_sign_ins_are_required(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        permission_faults(h).denied = {"AuditLog.Read.All"}
        auto = await run_cli("check", config=h.config_path())
        assert auto.code == 0 and "AuditLog" not in auto.out  # auto: optional, not probed
        on = await run_cli("check", config=h.config_path({"sync": {"sign_in_activity": "on"}}))
        assert on.code == 1, on.out + on.err
        assert re.search(r"^FAIL permission AuditLog\.Read\.All: not granted", on.out, re.M), on.out
