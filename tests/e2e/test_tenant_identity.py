"""`[graph] tenant_id` may be a verified domain: syncd resolves the tenant GUID once and uses it for
the webhook's tenant check, every key built from the tenant, the default J1 scope and `syncd status`.
The same tenant gets the same keys however its configuration is written."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, cast

import pytest

from bench.kit.sim_admin import delta_requests, sim_admin
from bench.kit.tenants import small_tenant
from bench.kit.truth import until_in_j1
from syncd.commands.status import status_command
from syncd.graph.client import GraphClient
from syncd.mirror import Mirror
from syncd.model import schema as m
from syncd.runtime import open_runtime
from syncd.tenant import KV_KEY, TenantError, resolve_tenant_id, token_tenant
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import running_daemon

GUID = "0cea0ab7-2234-4f57-bc80-4d3e66df4791"


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2ln"


class Tokens:
    def __init__(self, token: str) -> None:
        self.value = token
        self.calls = 0

    async def token(self) -> str:
        self.calls += 1
        return self.value

    def invalidate(self) -> None:
        """Nothing to forget: the token is fixed."""

    async def ensure_lifetime(self, seconds: float) -> None:
        """The token never expires."""


class Organization:
    """A GraphClient stand-in answering `GET /organization` only."""

    def __init__(self, org_id: str | None) -> None:
        self.org_id = org_id
        self.calls = 0

    async def get(self, path: str, **_: Any) -> dict[str, Any]:
        assert path == "/organization"
        self.calls += 1
        return {"value": [{"id": self.org_id}] if self.org_id else []}


def test_tid_claim() -> None:
    assert token_tenant(_jwt({"tid": GUID.upper(), "aud": "x"})) == GUID
    assert token_tenant(_jwt({"aud": "x"})) is None
    assert token_tenant("opaque-token") is None
    assert token_tenant("a.%%%.c") is None


async def _resolve(configured: str, tokens: Tokens, org: Organization, mirror: Mirror) -> str:
    graph = cast(GraphClient, org)  # only `get` is called
    return await resolve_tenant_id(configured, tokens=tokens, graph=graph, mirror=mirror)


async def test_resolution_order_storage_and_mismatch(tmp_path: Path) -> None:
    async with await Mirror.open(tmp_path / "mirror.sqlite") as mirror:
        # a GUID is taken as it is (lower case), with no request
        tokens, org = Tokens("never used"), Organization(None)
        got = await _resolve(GUID.upper(), tokens, org, mirror)
        assert got == GUID and tokens.calls == 0 and org.calls == 0
        # a domain: the token's tid, stored with the spelling ...
        tokens = Tokens(_jwt({"tid": GUID}))
        assert await _resolve("Contoso.com", tokens, org, mirror) == GUID
        assert await mirror.get_value(KV_KEY) == {"configured": "contoso.com", "id": GUID}
        # ... and reused: no token, no request
        tokens.calls = 0
        assert await _resolve("CONTOSO.COM", tokens, org, mirror) == GUID
        assert tokens.calls == 0
        # an opaque token: GET /organization
        opaque, org = Tokens("opaque"), Organization(GUID)
        assert await _resolve("contoso.onmicrosoft.com", opaque, org, mirror) == GUID
        assert org.calls == 1
        # another tenant on this mirror is refused
        with pytest.raises(TenantError, match="another"):
            await _resolve("11111111-2222-3333-4444-555555555555", opaque, org, mirror)
        with pytest.raises(TenantError):
            await _resolve("fabrikam.com", opaque, Organization(None), mirror)


async def test_keys_built_from_a_domain_by_an_older_syncd_are_rebuilt(tmp_path: Path) -> None:
    async with await Mirror.open(tmp_path / "mirror.sqlite") as mirror:
        await mirror.set_cursor("full_push", "1700000000")  # an existing deployment, no stored tenant
        tokens = Tokens(_jwt({"tid": GUID}))
        assert await _resolve("contoso.com", tokens, Organization(None), mirror) == GUID
        assert await mirror.get_cursor("full_push") is None  # the next start runs a full resync


async def test_a_domain_in_the_config_gives_the_same_keys_scope_and_notifications(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tenant = small_tenant(seed=31)
    guid = tenant.tenant_id
    spelled = tenant.domain.upper()  # a verified domain, oddly cased
    assert spelled.lower() != guid
    uid = next(str(u["id"]) for u in tenant.list("users") if u.get("accountEnabled"))
    extra: dict[str, dict[str, Any]] = {
        "graph": {"tenant_id": spelled},
        "j1": {"scope": ""},  # the default scope: named after the tenant
        "sync": {"safety_net_interval": 3600, "sources": ["users", "groups"]},
    }
    async with running_harness(tenant, tmp_path) as h, sim_admin(h) as admin:
        assert h.scope == f"syncd-microsoft-365-{guid}"
        async with running_daemon(h.config_path(extra)) as daemon:
            assert daemon.rt is not None and daemon.rt.tenant_id == guid
            assert daemon.rt.scope == h.scope and daemon.settings.j1.scope == h.scope
            entities, relationships = h.j1_graph()  # the scope named after the GUID holds the data
            account = f"{m.ACCOUNT.type}:{guid}"
            assert entities[account]["_type"] == m.ACCOUNT.type
            assert f"{account}|has|{uid}" in relationships
            assert not [k for k in entities if spelled.lower() in k.lower()]
            # notifications carry the GUID: accepted although the config names a domain
            before = delta_requests(h, "users")
            await admin.patch_user(uid, displayName="Seen Through A Domain Config")
            took = await until_in_j1(h, uid, "displayName", "Seen Through A Domain Config", 5)
            assert took < 3 and delta_requests(h, "users") > before
            assert h.sims.graph.notifier.stats["delivered"] >= 1
        settings = h.settings(extra)
        assert await status_command(settings, as_json=False) == 0
        assert f"tenant: {guid}" in capsys.readouterr().out
        # the GUID spelling of the same tenant: same keys, same scope, nothing rebuilt
        async with open_runtime(h.settings({**extra, "graph": {"tenant_id": guid}})) as rt:
            assert rt.tenant_id == guid and rt.scope == h.scope
            assert await rt.mirror.get_cursor("full_push") is not None
            assert await rt.mirror.get_entity(account) is not None
