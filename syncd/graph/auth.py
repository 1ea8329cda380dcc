"""App-only (client credentials) tokens for Graph through MSAL, kept off the event loop.

MSAL is synchronous and its constructor already talks to the network (OIDC discovery), so both
construction and ``acquire_token_for_client`` run in a worker thread. MSAL caches the access
token in memory; we keep our own copy until 300 s before expiry so the hot path never leaves the
loop. Secrets stay in private attributes: no repr, log line or exception ever shows them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from typing import Any, Protocol

import msal
import requests

from syncd.graph.clouds import default_scope, is_known_authority_host, normalize_root
from syncd.graph.errors import GraphAuthError

log = logging.getLogger(__name__)

EARLY_REFRESH_S = 300.0
"""Refresh this long before expiry (MSAL treats tokens with < 5 min left as expired too)."""

AADSTS_HINTS: dict[str, str] = {
    "90002": "tenant not found: check tenant_id and that it belongs to the configured cloud",
    "900023": "tenant_id is neither a GUID nor a verified domain of a tenant",
    "90072": "the app's tenant does not know this account; check tenant_id",
    "700016": "application (client_id) not found in this tenant: check client_id, "
    "or grant admin consent so the app exists in the tenant",
    "7000215": "invalid client secret: use the secret *value* (not its id) and check it is current",
    "7000222": "the client secret has expired: create a new one in the app registration",
    "700027": "certificate assertion rejected: is this certificate uploaded to the app registration?",
    "700024": "client assertion not within its valid time range: check the system clock",
    "7000112": "the application is disabled in this tenant",
    "50020": "personal Microsoft account or a tenant that is not a business (Entra ID) tenant",
    "500200": "personal Microsoft account: use an Entra ID (work/school) tenant",
    "9002331": "the app is registered for personal Microsoft accounts only; register it for "
    "accounts in an organizational directory",
    "9002332": "the app is configured for Entra ID users only and cannot be used here",
    "500011": "Microsoft Graph is not available in this tenant/cloud: check the cloud setting",
    "65001": "admin consent has not been granted for the requested permissions",
    "70011": "invalid scope: the Graph base URL does not match the cloud",
    "53003": "blocked by a Conditional Access policy",
    "50049": "unknown or invalid authority instance: check the cloud / authority host",
    "50059": "no tenant in the request: set tenant_id (not 'common')",
}

TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error", "request_timeout"})
_AADSTS_RE = re.compile(r"AADSTS(\d+)")


class TokenProvider(Protocol):
    """What the Graph client needs from a source of bearer tokens."""

    async def token(self) -> str:
        """A valid access token (cached when possible)."""
        ...

    def invalidate(self) -> None:
        """Forget the current token: Graph refused it (401), the next ``token()`` gets a new one."""
        ...

    async def ensure_lifetime(self, seconds: float) -> None:
        """Make sure the next token handed out is valid for at least ``seconds`` more."""
        ...


class _TimeoutHttpClient:
    """The ``http_client`` MSAL uses: a requests session with a verify setting and a timeout.

    requests has no session-wide timeout, and MSAL's own default session only applies one when
    asked, so every call here gets ours. ``verify`` is passed per request too: requests lets
    ``REQUESTS_CA_BUNDLE`` override a session-level setting, which would ignore ``ca_file``.
    """

    def __init__(self, *, verify: str | bool, timeout: float) -> None:
        self._timeout = timeout
        self._verify = verify
        self._session = requests.Session()
        self._session.verify = verify
        adapter = requests.adapters.HTTPAdapter(max_retries=1)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        kwargs.setdefault("verify", self._verify)
        return self._session.post(url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        kwargs.setdefault("verify", self._verify)
        return self._session.get(url, **kwargs)

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return f"_TimeoutHttpClient(timeout={self._timeout})"


def _scrub(text: str, secrets: list[str]) -> str:
    """Remove any secret that a server or library might echo back."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _aadsts_code(result: dict[str, Any], description: str) -> str | None:
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return str(codes[0])
    match = _AADSTS_RE.search(description)
    return match.group(1) if match else None


def map_msal_error(result: dict[str, Any], secrets: list[str] | None = None) -> GraphAuthError:
    """Turn MSAL's ``{"error", "error_description", "error_codes"}`` into a GraphAuthError."""
    error = str(result.get("error") or "unknown_error")
    description = _scrub(str(result.get("error_description") or error), secrets or [])
    # Keep the first line: Entra appends trace/correlation ids and timestamps on later lines.
    description = description.strip().splitlines()[0] if description.strip() else error
    number = _aadsts_code(result, description)
    code = f"AADSTS{number}" if number else error
    hint = AADSTS_HINTS.get(number or "")
    if hint is None and error == "invalid_client":
        hint = "client authentication failed: check the client secret or certificate"
    if hint is None and error == "unauthorized_client":
        hint = "the app is not allowed here: check client_id and tenant_id"
    transient = error in TRANSIENT_ERRORS or number in {"50196", "90033"}
    return GraphAuthError(code, description, hint=hint, transient=transient, error=error)


def _map_construct_error(exc: BaseException, secrets: list[str]) -> GraphAuthError:
    """MSAL's constructor raises ValueError when OIDC discovery is refused (e.g. unknown tenant)."""
    if isinstance(exc, requests.RequestException):
        return GraphAuthError(
            "network_error",
            f"cannot reach the token authority: {type(exc).__name__}",
            transient=True,
            error="network_error",
        )
    text = _scrub(" ".join(str(e) for e in _chain(exc)), secrets)
    if isinstance(exc, ValueError) and any(
        word in text.lower() for word in ("thumbprint", "client_credential", "private key", "private_key")
    ):
        return GraphAuthError(
            "invalid_certificate",
            f"msal {msal.__version__} refused the certificate credential: {text.splitlines()[0][:200]}",
            hint="check client_certificate / client_certificate_key (PEM certificate and its key)",
            error="invalid_certificate",
        )
    match = _AADSTS_RE.search(text)
    if match:
        number = match.group(1)
        return GraphAuthError(
            f"AADSTS{number}",
            f"authority discovery refused: AADSTS{number}",
            hint=AADSTS_HINTS.get(number),
            error="discovery_failed",
        )
    transient = isinstance(exc, RuntimeError | requests.HTTPError) or "HTTP status: 5" in text
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return GraphAuthError(
        "discovery_failed",
        first,
        hint="check the authority host, tenant_id and the CA bundle",
        transient=transient,
        error="discovery_failed",
    )


MSAL_DERIVES_THUMBPRINT = (1, 35)
"""From msal 1.35 a PEM ``client_credential`` needs no ``thumbprint``: msal derives the SHA-256
one from ``public_certificate`` (and signs with PS256, ``x5t#S256``). Older versions require a
SHA-1 ``thumbprint`` (RS256, ``x5t``) and reject the credential without it."""


def _version(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def certificate_credential(
    cert_pem: str, key_pem: str, *, msal_version: str | None = None
) -> dict[str, str]:
    """The ``client_credential`` dict for certificate auth, as the installed msal expects it.

    The certificate and key are checked here, so a bad file gives a certificate error rather than
    one that blames the authority. Both thumbprints identify the same certificate to Entra ID.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        raise GraphAuthError(
            "invalid_certificate",
            "client_certificate is not a PEM X.509 certificate",
            hint="point [graph] client_certificate at the certificate uploaded to the app registration",
            error="invalid_certificate",
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise GraphAuthError(
            "invalid_certificate",
            "client_certificate_key is not an unencrypted PEM private key",
            hint="give the certificate's private key in PEM form (PKCS#8 or PKCS#1, no passphrase)",
            error="invalid_certificate",
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    if key.public_key().public_bytes(pem, spki) != cert.public_key().public_bytes(pem, spki):
        raise GraphAuthError(
            "invalid_certificate",
            "client_certificate_key does not belong to client_certificate",
            hint="use the private key of the certificate uploaded to the app registration",
            error="invalid_certificate",
        )
    credential = {"private_key": key_pem, "public_certificate": cert_pem}
    if _version(msal_version or msal.__version__) < MSAL_DERIVES_THUMBPRINT:
        credential["thumbprint"] = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    return credential


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in seen and len(seen) < 5:
        seen.append(node)
        node = node.__cause__ or node.__context__
    return seen


class MsalTokenProvider:
    """Client-credentials tokens for one (tenant, app, cloud) through MSAL.

    Give either ``client_secret`` or both certificate PEMs. ``ca_file`` is only for non-Microsoft
    authorities (the simulator); the real cloud uses the system/certifi trust store.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str | None = None,
        client_certificate_pem: str | None = None,
        client_certificate_key_pem: str | None = None,
        authority_host: str,
        graph_base_url: str,
        ca_file: str | None = None,
        timeout: float = 30,
        max_attempts: int = 3,
        retry_backoff: float = 1.0,
    ) -> None:
        if not tenant_id or not client_id:
            raise ValueError("tenant_id and client_id are required")
        if client_secret is None and not (client_certificate_pem and client_certificate_key_pem):
            raise ValueError("a client secret or a certificate with its private key is required")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority = f"{normalize_root(authority_host)}/{tenant_id}"
        self.scope = default_scope(graph_base_url)
        self._secret = client_secret
        self._cert_pem = client_certificate_pem
        self._key_pem = client_certificate_key_pem
        self._known_host = is_known_authority_host(authority_host)
        self._ca_file = ca_file
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._retry_backoff = retry_backoff
        self._app: Any = None
        self._cache = msal.TokenCache()
        self._access_token: str | None = None
        self._expires_at = 0.0
        self._drop_msal_cache = False
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    @property
    def credential_kind(self) -> str:
        """``secret`` or ``certificate`` (for status output; never the value)."""
        return "secret" if self._secret is not None else "certificate"

    def __repr__(self) -> str:
        return (
            f"MsalTokenProvider(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, "
            f"authority={self.authority!r}, credential={self.credential_kind})"
        )

    def _secrets(self) -> list[str]:
        return [s for s in (self._secret, self._key_pem) if s]

    def _credential(self) -> str | dict[str, str]:
        if self._secret is not None:
            return self._secret
        assert self._cert_pem is not None and self._key_pem is not None
        return certificate_credential(self._cert_pem, self._key_pem)

    def _build_app(self) -> Any:
        """Runs in a thread: the constructor performs (instance and) OIDC discovery."""
        kwargs: dict[str, Any] = {}
        if not self._known_host:
            kwargs["instance_discovery"] = False
        http_client = _TimeoutHttpClient(
            verify=self._ca_file if self._ca_file else True, timeout=self._timeout
        )
        return msal.ConfidentialClientApplication(
            self.client_id,
            client_credential=self._credential(),
            authority=self.authority,
            http_client=http_client,
            token_cache=self._cache,
            **kwargs,
        )

    def _acquire_blocking(self) -> dict[str, Any]:
        """Runs in a thread: build MSAL once, drop rejected tokens, then acquire (MSAL caches)."""
        with self._thread_lock:
            if self._app is None:
                try:
                    self._app = self._build_app()
                except GraphAuthError:
                    raise
                except Exception as exc:
                    raise _map_construct_error(exc, self._secrets()) from None
            if self._drop_msal_cache:
                at_type = msal.TokenCache.CredentialType.ACCESS_TOKEN
                for item in list(self._cache.search(at_type)):
                    self._cache.remove_at(item)
                self._drop_msal_cache = False
            try:
                result = self._app.acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as exc:
                raise GraphAuthError(
                    "network_error",
                    f"cannot reach the token endpoint: {type(exc).__name__}",
                    transient=True,
                    error="network_error",
                ) from None
            if not isinstance(result, dict):
                raise GraphAuthError("invalid_response", "MSAL returned no result", transient=True)
            return result

    async def token(self) -> str:
        """A bearer token; only one acquisition runs at a time, bounded retries on transient errors."""
        if self._access_token and time.monotonic() < self._expires_at:
            return self._access_token
        async with self._lock:
            if self._access_token and time.monotonic() < self._expires_at:
                return self._access_token
            result = await self._acquire_with_retries()
            token = result.get("access_token")
            if not isinstance(token, str) or not token:
                raise GraphAuthError("invalid_response", "no access_token in the token response")
            expires_in = result.get("expires_in")
            lifetime = float(expires_in) if isinstance(expires_in, int | float) else 0.0
            self._access_token = token
            self._expires_at = time.monotonic() + lifetime - EARLY_REFRESH_S
            return token

    async def _acquire_with_retries(self) -> dict[str, Any]:
        last: GraphAuthError | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                result = await asyncio.wait_for(
                    asyncio.to_thread(self._acquire_blocking), timeout=self._timeout * 3 + 5
                )
            except TimeoutError:
                last = GraphAuthError("timeout", "token acquisition timed out", transient=True)
            except GraphAuthError as exc:
                if not exc.transient:
                    raise
                last = exc
            else:
                if "error" not in result:
                    return result
                err = map_msal_error(result, self._secrets())
                if not err.transient:
                    raise err
                last = err
            if attempt < self._max_attempts:
                delay = self._retry_backoff * 2 ** (attempt - 1)
                log.warning("token acquisition failed (%s), retrying in %.1fs", last.code, delay)
                await asyncio.sleep(delay)
        assert last is not None
        raise last

    def invalidate(self) -> None:
        """Forget the current token (after a 401): the next call asks Entra for a new one."""
        self._access_token = None
        self._expires_at = 0.0
        self._drop_msal_cache = True

    async def ensure_lifetime(self, seconds: float) -> None:
        """Make sure the token handed out next is valid for at least `seconds` more.

        Graph keeps a subscription authorized until the token that created or reauthorized it
        expires; reauthorizing with a token about to expire would buy almost nothing.
        """
        remaining = self._expires_at + EARLY_REFRESH_S - time.monotonic()
        if self._access_token is not None and remaining < seconds:
            self.invalidate()
        await self.token()
