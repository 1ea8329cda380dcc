"""MsalTokenProvider against a local HTTPS authority (test CA, OIDC discovery, token endpoint)."""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from syncd.graph.auth import MsalTokenProvider, map_msal_error
from syncd.graph.clouds import CLOUDS, default_scope, is_known_authority_host
from syncd.graph.errors import GraphAuthError

TENANT = "11111111-2222-3333-4444-555555555555"
APP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
MSA_APP = "99999999-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = "s3cr3t~Value.ThatMustNeverLeak"
GRAPH = "https://graph.example.test"


class Authority:
    """Just enough of Entra ID for MSAL: discovery + client-credentials token endpoint."""

    def __init__(self, app_cert: x509.Certificate) -> None:
        self.app_cert = app_cert
        self.token_calls = 0
        self.discovery_calls = 0
        self.forms: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.discovery)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self.token)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        self.discovery_calls += 1
        tenant = request.match_info["tenant"]
        if tenant != TENANT:
            return web.json_response(
                {
                    "error": "invalid_tenant",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.\r\nTrace ID: x",
                    "error_codes": [90002],
                },
                status=400,
            )
        base = f"https://{request.host}/{tenant}"
        return web.json_response(
            {
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "issuer": f"{base}/v2.0",
            }
        )

    @staticmethod
    def _error(status: int, error: str, code: int, text: str) -> web.Response:
        return web.json_response(
            {"error": error, "error_description": f"AADSTS{code}: {text}", "error_codes": [code]},
            status=status,
        )

    async def token(self, request: web.Request) -> web.Response:
        self.token_calls += 1
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.forms.append(form)
        assert form["grant_type"] == "client_credentials"
        assert form["scope"] == f"{GRAPH}/.default"
        if form["client_id"] == MSA_APP:
            return self._error(
                400, "invalid_request", 9002331, "Application is configured for use by MSA users only."
            )
        if form["client_id"] != APP:
            return self._error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form['client_id']}' was not found",
            )
        if "client_assertion" in form:
            assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            header = jwt.get_unverified_header(str(form["client_assertion"]))
            assert "x5t#S256" in header or "x5t" in header
            key = self.app_cert.public_key()
            assert isinstance(key, rsa.RSAPublicKey)
            claims = jwt.decode(
                str(form["client_assertion"]),
                key,
                algorithms=["PS256", "RS256"],
                audience=f"https://{request.host}/{TENANT}/oauth2/v2.0/token",
            )
            assert claims["iss"] == APP and claims["sub"] == APP
        elif form.get("client_secret") != SECRET:
            # Real Entra does not echo secrets; this one does, to prove we scrub them.
            return self._error(
                401,
                "invalid_client",
                7000215,
                f"Invalid client secret provided: '{form.get('client_secret')}'",
            )
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "access_token": f"at-{self.token_calls}-BEARERSECRET",
            }
        )


@pytest.fixture
async def authority(
    serve: Any, server_ssl: ssl.SSLContext, client_cert: tuple[str, str, x509.Certificate]
) -> tuple[Authority, str]:
    auth = Authority(client_cert[2])
    base = await serve(auth.app(), ssl_context=server_ssl)
    return auth, base


def provider(base: str, tls_files: dict[str, Path], **kwargs: Any) -> MsalTokenProvider:
    args: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": APP,
        "client_secret": SECRET,
        "authority_host": base,
        "graph_base_url": GRAPH,
        "ca_file": str(tls_files["ca"]),
        "timeout": 5,
        "retry_backoff": 0.01,
    }
    args.update(kwargs)
    return MsalTokenProvider(**args)


async def test_secret_token_cached_and_invalidated(
    authority: tuple[Authority, str], tls_files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    auth, base = authority
    p = provider(base, tls_files)
    first = await p.token()
    assert first == "at-1-BEARERSECRET"
    assert await p.token() == first
    assert auth.token_calls == 1 and auth.discovery_calls == 1
    p.invalidate()
    second = await p.token()
    assert second == "at-2-BEARERSECRET"
    assert auth.token_calls == 2
    assert auth.discovery_calls == 1  # the MSAL app is built once
    assert SECRET not in repr(p) and "BEARERSECRET" not in repr(p)
    assert SECRET not in caplog.text and "BEARERSECRET" not in caplog.text


async def test_certificate_credential(
    authority: tuple[Authority, str],
    tls_files: dict[str, Path],
    client_cert: tuple[str, str, x509.Certificate],
) -> None:
    auth, base = authority
    cert_pem, key_pem, _ = client_cert
    p = provider(
        base,
        tls_files,
        client_secret=None,
        client_certificate_pem=cert_pem,
        client_certificate_key_pem=key_pem,
    )
    assert await p.token() == "at-1-BEARERSECRET"
    assert "client_secret" not in auth.forms[0]
    assert "PRIVATE KEY" not in repr(p)
    assert "certificate" in repr(p)


@pytest.mark.parametrize(
    ("kwargs", "code", "hint_word"),
    [
        ({"tenant_id": "nosuchtenant.onmicrosoft.com"}, "AADSTS90002", "tenant"),
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, "AADSTS700016", "client_id"),
        ({"client_secret": "wrong-secret-value-123"}, "AADSTS7000215", "secret"),
        ({"client_id": MSA_APP}, "AADSTS9002331", "personal Microsoft accounts"),
    ],
)
async def test_error_mapping(
    authority: tuple[Authority, str],
    tls_files: dict[str, Path],
    kwargs: dict[str, Any],
    code: str,
    hint_word: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, base = authority
    p = provider(base, tls_files, **kwargs)
    with pytest.raises(GraphAuthError) as info:
        await p.token()
    exc = info.value
    assert exc.code == code
    assert exc.hint is not None and hint_word in exc.hint
    assert not exc.transient
    for text in (str(exc), repr(exc), exc.description, repr(p), caplog.text):
        assert SECRET not in text
        assert "wrong-secret-value-123" not in text


async def test_unreachable_authority_is_transient_and_bounded(tls_files: dict[str, Path]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    p = provider(f"https://127.0.0.1:{port}", tls_files, max_attempts=2, timeout=2)
    with pytest.raises(GraphAuthError) as info:
        await p.token()
    assert info.value.transient and info.value.code == "network_error"
    assert SECRET not in str(info.value)


async def test_untrusted_certificate_fails_without_ca(
    authority: tuple[Authority, str], tls_files: dict[str, Path]
) -> None:
    _, base = authority
    p = provider(base, tls_files, ca_file=None, max_attempts=1)
    with pytest.raises(GraphAuthError) as info:
        await p.token()
    assert info.value.code == "network_error"


def test_constructor_requires_a_credential() -> None:
    with pytest.raises(ValueError, match="secret or a certificate"):
        MsalTokenProvider(
            tenant_id=TENANT,
            client_id=APP,
            authority_host="https://login.microsoftonline.com",
            graph_base_url=GRAPH,
        )


def test_map_msal_error_personal_account_codes() -> None:
    exc = map_msal_error(
        {
            "error": "invalid_request",
            "error_description": "AADSTS500200: User account is a personal Microsoft account.",
        }
    )
    assert exc.code == "AADSTS500200" and exc.hint and "personal" in exc.hint
    exc = map_msal_error({"error": "temporarily_unavailable", "error_description": "try later"})
    assert exc.transient and exc.code == "temporarily_unavailable"
    exc = map_msal_error(
        {"error": "invalid_client", "error_description": f"bad {SECRET}", "error_codes": [7000215]}, [SECRET]
    )
    assert SECRET not in str(exc)


def test_clouds() -> None:
    assert set(CLOUDS) == {"global", "usgov", "usgov-dod", "china"}
    assert CLOUDS["usgov-dod"].graph_base_url == "https://dod-graph.microsoft.us"
    assert CLOUDS["usgov-dod"].authority_host == "https://login.microsoftonline.us"
    assert CLOUDS["china"].default_scope == "https://microsoftgraph.chinacloudapi.cn/.default"
    assert default_scope("https://graph.microsoft.com/v1.0/") == "https://graph.microsoft.com/.default"
    assert is_known_authority_host("https://login.chinacloudapi.cn")
    assert not is_known_authority_host("https://127.0.0.1:8443")


async def test_ensure_lifetime_refreshes_a_token_about_to_expire(
    authority: tuple[Authority, str], tls_files: dict[str, Path]
) -> None:
    import time

    auth, base = authority
    p = provider(base, tls_files)
    first = await p.token()
    await p.ensure_lifetime(1800)  # 3599 s left: kept
    assert auth.token_calls == 1 and await p.token() == first
    p._expires_at = time.monotonic() + 600 - 300  # as if only 10 minutes were left
    await p.ensure_lifetime(1800)
    assert auth.token_calls == 2 and await p.token() != first
