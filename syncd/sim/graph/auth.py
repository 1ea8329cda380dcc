"""Entra ID token endpoint (client credentials), OIDC discovery and bearer validation.

Errors copy the recorded AADSTS bodies so the daemon's error handling is exercised against the
real shapes (tests compare against fixture token-unknown-tenant.json).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from syncd.sim.graph.keys import GRAPH_SIM
from syncd.sim.graph.odata import GraphError, base_url
from syncd.sim.refusal import Refusal, answering

if TYPE_CHECKING:
    from syncd.sim.graph.app import GraphSim

TOKEN_CACHE_HEADERS = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class IssuedToken:
    """Server-side record of an access token."""

    client_id: str
    tenant_id: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenStore:
    """Issues JWT-shaped opaque access tokens and remembers them for validation."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._key = secrets.token_bytes(32)
        self._tokens: dict[str, IssuedToken] = {}
        self.clock = clock

    def issue(self, client_id: str, tenant_id: str, audience: str, ttl: int) -> str:
        """Mint a token valid for ttl seconds."""
        now = int(self.clock())
        header = {"typ": "JWT", "alg": "HS256", "kid": "sim"}
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "appid": client_id,
            "tid": tenant_id,
            "oid": str(uuid.uuid4()),
            "roles": ["Directory.Read.All", "DeviceManagementManagedDevices.Read.All"],
            "uti": secrets.token_urlsafe(16),
        }
        signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        sig = hmac.new(self._key, signing.encode(), hashlib.sha256).digest()
        token = f"{signing}.{_b64(sig)}"
        self._tokens[token] = IssuedToken(client_id, tenant_id, now + ttl)
        return token

    def lookup(self, token: str) -> IssuedToken | None:
        """The record of a token we issued, or None."""
        return self._tokens.get(token)

    def expire_all(self) -> None:
        """Make every issued token expired (tests of 401 handling)."""
        self._tokens = {t: IssuedToken(i.client_id, i.tenant_id, 0.0) for t, i in self._tokens.items()}


class AadError(Refusal):
    """A login Entra ID refuses: the OAuth `error`, the AADSTS number and its description."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def response(self, request: web.Request) -> web.Response:
        """The AADSTS error body exactly in the recorded shape."""
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        trace_id = str(uuid.uuid4())
        corr = request.headers.get("client-request-id") or str(uuid.uuid4())
        body = {
            "error": self.error,
            "error_description": f"AADSTS{self.code}: {self.description}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {corr}\r\nTimestamp: {now}",
            "error_codes": [self.code],
            "timestamp": now,
            "trace_id": trace_id,
            "correlation_id": corr,
            "error_uri": f"{base_url(request)}/error?code={self.code}",
        }
        resp = web.json_response(body, status=self.status, headers=TOKEN_CACHE_HEADERS)
        resp.content_type = "application/json"
        resp.charset = "utf-8"
        resp.headers["x-ms-request-id"] = trace_id
        return resp


def _missing(param: str) -> AadError:
    return AadError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{param}'."
    )


def _check_tenant(sim: GraphSim, tenant: str) -> None:
    """The `{tenant}` of a login path: the tenant id or its default domain."""
    t = sim.tenant
    if tenant.lower() not in (t.tenant_id.lower(), t.domain.lower()):
        raise AadError(
            400,
            "invalid_request",
            90002,
            f"Tenant '{tenant}' not found. This may happen if there are no active subscriptions for the "
            "tenant. Check to make sure you have the correct tenant ID. Check with your subscription "
            "administrator.",
        )


async def token_endpoint(request: web.Request) -> web.Response:
    """POST /{tenant}/oauth2/v2.0/token (client_credentials only)."""
    sim: GraphSim = request.app[GRAPH_SIM]
    _check_tenant(sim, request.match_info["tenant"])
    if not request.content_type.startswith("application/x-www-form-urlencoded"):
        raise _missing("grant_type")
    form = await request.post()
    for param in ("grant_type", "client_id"):
        if not form.get(param):
            raise _missing(param)
    grant = str(form["grant_type"])
    if grant != "client_credentials":
        raise AadError(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
        )
    client_id = str(form["client_id"])
    secret = sim.tenant.apps.get(client_id)
    org = sim.tenant.organization.get("displayName") or sim.tenant.tenant_id
    if secret is None:
        raise AadError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{org}'. This can happen if the "
            "application has not been installed by the administrator of the tenant or consented to by any "
            "user in the tenant. You may have sent your authentication request to the wrong tenant.",
        )
    if not form.get("client_secret") and not form.get("client_assertion"):
        raise AadError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    if form.get("client_assertion"):
        check_client_assertion(request, sim, client_id, form)
    elif not secret or not hmac.compare_digest(str(form.get("client_secret", "")), secret):
        raise AadError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client "
            f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        )
    if not form.get("scope"):
        raise _missing("scope")
    scope = str(form["scope"]).strip()
    if " " in scope or not scope.endswith("/.default"):
        raise AadError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
            "value with /.default suffixed to the resource identifier (application ID URI).",
        )
    resource = scope[: -len("/.default")].rstrip("/")
    if resource not in sim.graph_resources(request):
        raise AadError(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{org}. This can happen if the "
            "application has not been installed by the administrator of the tenant or consented to by any "
            "user in the tenant. You might have sent your authentication request to the wrong tenant.",
        )
    ttl = sim.faults.access_token_ttl
    token = sim.tokens.issue(client_id, sim.tenant.tenant_id, resource, ttl)
    resp = web.json_response(
        {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": token},
        headers=TOKEN_CACHE_HEADERS,
    )
    resp.charset = "utf-8"
    resp.headers["x-ms-request-id"] = str(uuid.uuid4())
    return resp


def _thumbprints(cert_pem: str) -> tuple[str, str]:
    """(x5t, x5t#S256) of a certificate: base64url of its SHA-1 / SHA-256 DER digest."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return _b64(cert.fingerprint(hashes.SHA1())), _b64(cert.fingerprint(hashes.SHA256()))  # noqa: S303


def _bad_assertion(code: int, description: str) -> AadError:
    return AadError(401, "invalid_client", code, description)


def check_client_assertion(
    request: web.Request, sim: GraphSim, client_id: str, form: Mapping[str, Any]
) -> None:
    """Validate a certificate credential (RFC 7523 JWT bearer client assertion) like Entra ID.

    The JWT header names the certificate by `x5t` (SHA-1, RS256) or `x5t#S256` (SHA-256, PS256,
    what msal >= 1.35 sends); it must be registered on the app, sign the JWT, and the claims must
    say `aud` = this token endpoint, `iss` = `sub` = the client id, within `nbf`..`exp`.
    """
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise AadError(400, "invalid_request", 50027, "Invalid client_assertion_type: expected jwt-bearer.")
    assertion = str(form["client_assertion"])
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise _bad_assertion(50027, "JWT token is invalid or malformed.") from None
    # base64url; msal pads it with "=" (RFC 7515 says unpadded): both are taken, like Entra does
    raw = header.get("x5t#S256") or header.get("x5t")
    wanted = raw.rstrip("=") if isinstance(raw, str) else None
    key_pem = None
    for pem in sim.tenant.app_certificates.get(client_id, []):
        sha1, sha256 = _thumbprints(pem)
        if wanted == (sha256 if "x5t#S256" in header else sha1):
            key_pem = pem
    if key_pem is None:
        raise _bad_assertion(
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on "
            f"application. [Reason - The key was not found., Thumbprint of key used by client: '{wanted}']",
        )
    tenant = request.match_info["tenant"]
    base = base_url(request)
    audiences = [f"{base}/{t}/oauth2/v2.0/token" for t in {tenant, sim.tenant.tenant_id, sim.tenant.domain}]
    public_key = x509.load_pem_x509_certificate(key_pem.encode()).public_key()
    try:
        claims = jwt.decode(
            assertion,
            public_key,  # type: ignore[arg-type]
            algorithms=["RS256", "PS256"],
            audience=audiences,
            options={"require": ["exp", "aud", "iss", "sub"]},
        )
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
        raise _bad_assertion(700024, "Client assertion is not within its valid time range.") from None
    except jwt.InvalidAudienceError:
        raise _bad_assertion(
            700027, "Client assertion failed signature validation: its audience is not this token endpoint."
        ) from None
    except jwt.PyJWTError:
        raise _bad_assertion(700027, "Client assertion failed signature validation.") from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise _bad_assertion(
            700021, "Client assertion application identifier doesn't match 'client_id' parameter."
        )
    seen = {k: v for k, v in header.items() if k == "alg" or k.startswith("x5t")}
    sim.client_assertions.append(seen)


async def openid_configuration(request: web.Request) -> web.Response:
    """GET /{tenant}/v2.0/.well-known/openid-configuration (what MSAL reads at construction)."""
    sim: GraphSim = request.app[GRAPH_SIM]
    _check_tenant(sim, request.match_info["tenant"])
    base = base_url(request)
    tid = sim.tenant.tenant_id
    doc = {
        "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{tid}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": request.host,
    }
    return web.json_response(doc)


async def jwks(request: web.Request) -> web.Response:
    """GET /{tenant}/discovery/v2.0/keys (empty key set: sim tokens are opaque to clients)."""
    return web.json_response({"keys": []})


def check_bearer(request: web.Request, sim: GraphSim) -> IssuedToken:
    """The token behind `Authorization: Bearer`; a 401 `GraphError` when missing/invalid/expired."""
    header = request.headers.get("Authorization", "")
    www = {
        "WWW-Authenticate": 'Bearer realm="", '
        f'authorization_uri="{base_url(request)}/common/oauth2/authorize", '
        'client_id="00000003-0000-0000-c000-000000000000"'
    }
    scheme, _, token = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not token.strip():
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", www)
    info = sim.tokens.lookup(token.strip())
    if info is None:
        if token.count(".") != 2:
            msg = "IDX14100: JWT is not well formed, there are no dots (.)."
        else:
            msg = "Access token validation failure. Invalid audience."
        raise GraphError(401, "InvalidAuthenticationToken", msg, www)
    if info.expires_at <= sim.clock():
        raise GraphError(
            401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", www
        )
    if info.tenant_id != sim.tenant.tenant_id or info.client_id not in sim.tenant.apps:
        raise GraphError(
            401,
            "Authorization_IdentityNotFound",
            "The identity of the calling application could not be established.",
        )
    return info


def register_auth_routes(app: web.Application) -> None:
    """Add the login endpoints (same listener as Graph)."""
    app.router.add_post("/{tenant}/oauth2/v2.0/token", answering(token_endpoint))
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", answering(openid_configuration))
    app.router.add_get("/{tenant}/discovery/v2.0/keys", jwks)
