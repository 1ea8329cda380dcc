"""Token endpoint, discovery and bearer checks of the Graph simulator."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers.graph_sim import GraphSimClient
from tests.paths import FIXTURES


async def _token(h: GraphSimClient, tenant: str, **form: str) -> tuple[int, dict[str, Any]]:
    async with h.session.post(f"{h.base}/{tenant}/oauth2/v2.0/token", data=form) as r:
        return r.status, await r.json()


def _form(h: GraphSimClient, **over: str) -> dict[str, str]:
    f = {
        "grant_type": "client_credentials",
        "client_id": h.client_id,
        "client_secret": h.client_secret,
        "scope": f"{h.base}/.default",
    }
    f.update(over)
    return f


async def test_token_success_shape(harness: GraphSimClient) -> None:
    status, body = await _token(harness, harness.tenant.tenant_id, **_form(harness))
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599 and body["ext_expires_in"] == 3599
    assert body["access_token"].count(".") == 2


async def test_unknown_tenant_matches_recorded_error(harness: GraphSimClient) -> None:
    recorded = json.loads((FIXTURES / "token-unknown-tenant.json").read_text())["exchanges"][0]
    status, body = await _token(harness, "abc123testing", **_form(harness))
    assert status == recorded["status"] == 400
    assert set(body) == set(recorded["body"])
    assert body["error"] == "invalid_request"
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: Tenant 'abc123testing' not found.")
    assert f"Trace ID: {body['trace_id']}" in body["error_description"]
    assert body["error_uri"].endswith("/error?code=90002")


async def test_unknown_client_and_wrong_secret(harness: GraphSimClient) -> None:
    status, body = await _token(harness, harness.tenant.tenant_id, **_form(harness, client_id="nope"))
    assert (status, body["error"], body["error_codes"]) == (400, "unauthorized_client", [700016])
    assert "AADSTS700016: Application with identifier 'nope' was not found" in body["error_description"]
    status, body = await _token(harness, harness.tenant.tenant_id, **_form(harness, client_secret="wrong"))
    assert (status, body["error"], body["error_codes"]) == (401, "invalid_client", [7000215])


async def test_scope_must_be_graph_default(harness: GraphSimClient) -> None:
    status, body = await _token(harness, harness.tenant.tenant_id, **_form(harness, scope="User.Read"))
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body = await _token(
        harness, harness.tenant.tenant_id, **_form(harness, scope="https://other.example/.default")
    )
    assert (status, body["error"], body["error_codes"]) == (400, "invalid_resource", [500011])
    status, body = await _token(harness, harness.tenant.tenant_id, **_form(harness, grant_type="password"))
    assert (status, body["error"]) == (400, "unsupported_grant_type")


async def test_tenant_domain_is_accepted(harness: GraphSimClient) -> None:
    status, _ = await _token(harness, harness.tenant.domain, **_form(harness))
    assert status == 200


async def test_discovery_document(harness: GraphSimClient) -> None:
    tid = harness.tenant.tenant_id
    async with harness.session.get(f"{harness.base}/{tid}/v2.0/.well-known/openid-configuration") as r:
        doc = await r.json()
    assert doc["token_endpoint"] == f"{harness.base}/{tid}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"].endswith("/oauth2/v2.0/authorize")
    assert doc["issuer"] == f"{harness.base}/{tid}/v2.0"
    async with harness.session.get(f"{harness.base}/nope/v2.0/.well-known/openid-configuration") as r:
        assert r.status == 400
        assert (await r.json())["error_codes"] == [90002]


async def test_graph_requires_valid_bearer(harness: GraphSimClient) -> None:
    async with harness.session.get(f"{harness.base}/v1.0/users") as r:
        assert r.status == 401
        assert r.headers["Content-Type"].startswith("application/json")
        body = await r.json()
        assert body["error"]["code"] == "InvalidAuthenticationToken"
        assert set(body["error"]["innerError"]) == {"date", "request-id", "client-request-id"}
        assert "WWW-Authenticate" in r.headers
    status, body, _ = await harness.get("/v1.0/users", {"Authorization": "Bearer not-a-token"})
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"


async def test_expired_access_token_is_rejected(harness: GraphSimClient) -> None:
    status, _, _ = await harness.get("/v1.0/users")
    assert status == 200
    await harness.admin("POST", "/tokens/expire")
    status, body, _ = await harness.get("/v1.0/users")
    assert status == 401
    assert body["error"]["message"] == "Lifetime validation failed, the token is expired."
    await harness.fetch_token()
    status, _, _ = await harness.get("/v1.0/users")
    assert status == 200


async def test_removed_app_gets_identity_not_found(harness: GraphSimClient) -> None:
    del harness.tenant.apps[harness.client_id]
    status, body, _ = await harness.get("/v1.0/organization")
    assert status == 401
    assert body["error"]["code"] == "Authorization_IdentityNotFound"
