"""Small real HTTP(S) servers for the Graph client and token provider tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from syncd.graph.client import GraphClient


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


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    subject: str, issuer_key: rsa.RSAPrivateKey | None = None, issuer: str | None = None, *, ca: bool = False
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """An RSA key and a certificate (self-signed unless an issuer key is given)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer or subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca and issuer_key is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def pem_key(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1 signed by it, and the CA bundle file."""
    d = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = make_cert("syncd test CA", ca=True)
    srv_key, srv_cert = make_cert("127.0.0.1", ca_key, "syncd test CA")
    files = {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}
    files["ca"].write_text(pem_cert(ca_cert))
    files["cert"].write_text(pem_cert(srv_cert))
    files["key"].write_text(pem_key(srv_key))
    return files


@pytest.fixture
def server_ssl(tls_files: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls_files["cert"], tls_files["key"])
    return ctx


@pytest.fixture(scope="session")
def client_cert() -> tuple[str, str, x509.Certificate]:
    """(certificate PEM, private key PEM, certificate) for certificate-based client auth."""
    key, cert = make_cert("syncd app")
    return pem_cert(cert), pem_key(key), cert
