"""Fixtures of the Graph client and token provider tests: fake tokens, a client on a test server
(`serve`, tests/conftest.py), the TLS files and an app certificate (from syncd.sim.tls)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from syncd.graph.client import GraphClient
from syncd.sim.tls import ensure_tls, make_app_certificate


class FakeTokens:
    """A TokenProvider that hands out numbered tokens and counts invalidations."""

    def __init__(self) -> None:
        self.issued = 0
        self.invalidations = 0
        self.current = "tok-1-SECRETBEARER"

    async def token(self) -> str:
        self.issued += 1
        return self.current

    def invalidate(self) -> None:
        self.invalidations += 1
        self.current = f"tok-{self.invalidations + 1}-SECRETBEARER"

    async def ensure_lifetime(self, seconds: float) -> None:
        """Its tokens never expire."""


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def make_client(session: aiohttp.ClientSession, tokens: FakeTokens) -> Callable[..., GraphClient]:
    def _make(base_url: str, **kwargs: Any) -> GraphClient:
        kwargs.setdefault("backoff_base", 0.01)
        kwargs.setdefault("max_backoff", 0.05)
        kwargs.setdefault("request_timeout", 5)
        return GraphClient(session, tokens, base_url=base_url, **kwargs)

    return _make


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1 signed by it, and the CA bundle file (the
    simulators' own generator, syncd.sim.tls)."""
    tls = ensure_tls(tmp_path_factory.mktemp("tls"))
    return {"ca": tls.ca_cert, "cert": tls.server_cert, "key": tls.server_key}


@pytest.fixture
def server_ssl(tls_files: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls_files["cert"], tls_files["key"])
    return ctx


@pytest.fixture(scope="session")
def client_cert() -> tuple[str, str, x509.Certificate]:
    """(certificate PEM, private key PEM, certificate) for certificate-based client auth."""
    cert_pem, key_pem = make_app_certificate("syncd app")
    return cert_pem, key_pem, x509.load_pem_x509_certificate(cert_pem.encode())
