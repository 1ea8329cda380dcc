"""Configuration: every problem reported once, clearly, without secrets; overrides and credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.kit.daemon import run_cli
from syncd.config import ConfigError, Secret, load_settings

SECRET = "s3cr3t-VALUE-never-shown"
STATE = "state-123-4567890-abcdefghij-klmnopq"  # 36 characters: over the 32 minimum
BASE = {
    "SYNCD_GRAPH_TENANT_ID": "11111111-2222-3333-4444-555555555555",
    "SYNCD_GRAPH_CLIENT_ID": "app",
    "SYNCD_GRAPH_CLIENT_SECRET": SECRET,
    "SYNCD_J1_ACCOUNT_ID": "acct",
    "SYNCD_J1_API_KEY": SECRET + "-j1",
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


def test_minimal_environment_config_and_defaults() -> None:
    s = load_settings(None, environ=BASE)
    assert s.graph.authority_host == "https://login.microsoftonline.com"
    assert s.graph.base_url == "https://graph.microsoft.com"
    assert s.j1.base_url == "https://api.us.jupiterone.io"
    assert s.j1.scope == "syncd-microsoft-365-11111111-2222-3333-4444-555555555555"
    assert isinstance(s.graph.client_secret, Secret) and s.graph.client_secret.get() == SECRET
    assert SECRET not in repr(s)


@pytest.mark.parametrize(
    ("cloud", "authority", "graph"),
    [
        ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
        ("usgov-dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
        ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
    ],
)
def test_national_cloud_presets_urls(cloud: str, authority: str, graph: str) -> None:
    s = load_settings(None, environ={**BASE, "SYNCD_GRAPH_CLOUD": cloud})
    assert (s.graph.authority_host, s.graph.base_url) == (authority, graph)


def test_every_problem_is_listed_once_and_secret_free(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        f"""
[graph]
tenant_id = "t"
client_id = "c"
client_secret = "{SECRET}"
colour = "blue"
request_timeout = "soon"
cloud = "mars"
[j1]
account_id = "a"
api_key = "{SECRET}"
base_url = "ftp://nope"
[webhook]
listen = "nowhere"
public_url = "https://example.com/hook"
[sync]
sources = ["users", "printers"]
""",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    problems = info.value.problems
    text = str(info.value)
    assert SECRET not in text
    expected = [
        "[graph] colour: unknown key",
        "[graph] request_timeout: expected a number",
        "[graph] cloud: must be one of",
        "[j1] base_url: not a valid http(s) URL",
        "[webhook] listen: expected host:port",
        "[webhook] client_state: required",
        "[sync] sources: unknown printers",
    ]
    for fragment in expected:
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)


def test_wrong_type_of_secret_is_reported_without_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "[graph]\nclient_secret = 12345\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert any("[graph] client_secret: must be a string" in p for p in info.value.problems)
    assert "12345" not in str(info.value)


def test_environment_overrides_file_and_unknown_variables_are_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, '[j1]\naccount_id = "from-file"\n')
    s = load_settings(path, environ={**BASE, "SYNCD_J1_ACCOUNT_ID": "from-env"})
    assert s.j1.account_id == "from-env"
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={**BASE, "SYNCD_J1_ACOUNT_ID": "typo"})
    assert info.value.problems == ["SYNCD_J1_ACOUNT_ID: unknown setting"]


def test_credentials_directory_supplies_secrets(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "client_secret").write_text(SECRET + "\n")
    (creds / "j1_api_key").write_text("j1key")
    (creds / "client_state").write_text(STATE)
    env = {k: v for k, v in BASE.items() if "SECRET" not in k and "API_KEY" not in k}
    env["CREDENTIALS_DIRECTORY"] = str(creds)
    s = load_settings(None, environ=env)
    assert s.graph.client_secret is not None and s.graph.client_secret.get() == SECRET
    assert s.j1.api_key is not None and s.j1.api_key.get() == "j1key"
    assert s.webhook.client_state is not None and s.webhook.client_state.get() == STATE
    assert sorted(s.secrets()) == sorted([SECRET, "j1key", STATE])


def test_state_directory_from_systemd(tmp_path: Path) -> None:
    s = load_settings(None, environ={**BASE, "STATE_DIRECTORY": str(tmp_path)})
    assert s.mirror_path == tmp_path / "mirror.sqlite"


def test_corrupt_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "[graph\ntenant_id = ")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert "not valid TOML" in info.value.problems[0]


def test_common_tenant_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={**BASE, "SYNCD_GRAPH_TENANT_ID": "common"})
    assert "business tenant" in str(info.value)


@pytest.mark.parametrize(
    "content",
    ["[graph]\nnope = 1\n", "[graph]\nrequest_timeout = 'x'\n", "[j1]\nbase_url = 'not a url'\n", "][\n"],
)
async def test_cli_exits_non_zero_with_message(tmp_path: Path, content: str) -> None:
    path = _write(tmp_path, content)
    res = await run_cli("status", config=path)
    assert res.code == 78
    assert "invalid configuration" in res.err or "not valid TOML" in res.err
    assert "Traceback" not in res.err


async def test_cli_missing_config_file(tmp_path: Path) -> None:
    res = await run_cli("status", config=tmp_path / "missing.toml")
    assert res.code == 78 and "config file not found" in res.err


def test_invalid_alert_rules_are_rejected_with_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - id: broken\n    severity: apocalyptic\n    when: {type: microsoft_365_user}\n"
        "    message: x\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={**BASE, "SYNCD_ALERTS_RULES_FILE": str(rules)})
    problem = info.value.problems[0]
    assert problem.startswith("[alerts] rules_file: ") and f"{rules}:" in problem


def test_alert_target_errors_are_config_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, '[alerts.targets.ops]\nkind = "carrier-pigeon"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=BASE)
    assert any("[alerts] targets:" in p and "ops" in p for p in info.value.problems)


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("SYNCD_GRAPH_BASE_URL", "http://graph.example.com", False),
        ("SYNCD_GRAPH_BASE_URL", "http://127.0.0.1:8443", True),
        ("SYNCD_GRAPH_BASE_URL", "http://localhost:8443", True),
        ("SYNCD_GRAPH_BASE_URL", "http://[::1]:8443", True),
        ("SYNCD_GRAPH_BASE_URL", "http://10.0.0.5", False),
        ("SYNCD_GRAPH_AUTHORITY_HOST", "http://login.example.com", False),
        ("SYNCD_GRAPH_AUTHORITY_HOST", "http://127.0.0.2:9000", True),
        ("SYNCD_J1_BASE_URL", "http://api.us.jupiterone.io", False),
        ("SYNCD_J1_BASE_URL", "http://127.0.0.1:9999", True),
        ("SYNCD_J1_BASE_URL", "https://api.us.jupiterone.io", True),
    ],
)
def test_plain_http_only_to_loopback(key: str, value: str, ok: bool) -> None:
    env = {**BASE, key: value}
    if ok:
        load_settings(None, environ=env)
        return
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ=env)
    where = {
        "SYNCD_GRAPH_BASE_URL": "[graph] base_url",
        "SYNCD_GRAPH_AUTHORITY_HOST": "[graph] authority_host",
        "SYNCD_J1_BASE_URL": "[j1] base_url",
    }[key]
    assert info.value.problems == [
        f"{where}: must use https:// (plain http only to a loopback host) ({value!r})"
    ], info.value


def test_client_state_needs_32_characters() -> None:
    short = "x" * 31
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={**BASE, "SYNCD_WEBHOOK_CLIENT_STATE": short})
    assert info.value.problems == [
        "[webhook] client_state: at least 32 characters (a random value: `syncd setup` prints one)"
    ]
    assert short not in str(info.value)
    s = load_settings(None, environ={**BASE, "SYNCD_WEBHOOK_CLIENT_STATE": "y" * 32})
    assert s.webhook.client_state == Secret("y" * 32)


def test_health_listener_and_limits_are_checked() -> None:
    s = load_settings(None, environ=BASE)
    assert s.health_address() == ("127.0.0.1", 8081)  # loopback unless an operator opens it
    assert s.listen_address() == ("127.0.0.1", 8080)
    with pytest.raises(ConfigError) as info:
        load_settings(
            None,
            environ={
                **BASE,
                "SYNCD_HEALTH_LISTEN": "nowhere",
                "SYNCD_WEBHOOK_READ_TIMEOUT": "0",
                "SYNCD_HEALTH_WORK_TIMEOUT": "0",
            },
        )
    assert info.value.problems == [
        "[health] listen: expected host:port (got 'nowhere')",
        "[webhook] read_timeout: must be positive",
        "[health] work_timeout: must be positive",
    ]
