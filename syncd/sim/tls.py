"""Private CA and leaf certificates for the simulators.

MSAL only accepts https authorities, and Graph only delivers to https notification URLs, so the
simulators need real TLS: a CA written to `ca.pem` (the daemon trusts it via `[tls] ca_file`),
a server certificate for the simulators and a webhook certificate for the daemon's listener,
both valid for 127.0.0.1 and localhost.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files the simulators use and hand to the daemon."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    webhook_cert: Path
    webhook_key: Path

    def paths(self) -> tuple[Path, ...]:
        """Every file."""
        return (
            self.ca_cert,
            self.ca_key,
            self.server_cert,
            self.server_key,
            self.webhook_cert,
            self.webhook_key,
        )

    def server_context(self) -> ssl.SSLContext:
        """TLS context for the simulator listeners."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx

    def webhook_server_context(self) -> ssl.SSLContext:
        """TLS context for a webhook receiver (the daemon's listener, or a test receiver)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.webhook_cert, self.webhook_key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """Client context trusting the system roots plus the private CA."""
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cafile=str(self.ca_cert))
        return ctx


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "syncd simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, days: int
) -> x509.CertificateBuilder:
    """A certificate valid from an hour ago for `days` days (clock skew between processes)."""
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs; a leaf signs and agrees keys (ECDHE)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("syncd simulator CA")
    cert = (
        _builder(name, name, key.public_key(), 3650)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    cn: str,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    )
    cert = (
        _builder(_name(cn), ca_cert.subject, key.public_key(), 825)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(san, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def ensure_tls(state_dir: Path) -> TlsFiles:
    """Create (or reuse, when all files exist) the CA, server and webhook certificates in state_dir."""
    state_dir.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        ca_cert=state_dir / "ca.pem",
        ca_key=state_dir / "ca-key.pem",
        server_cert=state_dir / "server-cert.pem",
        server_key=state_dir / "server-key.pem",
        webhook_cert=state_dir / "webhook-cert.pem",
        webhook_key=state_dir / "webhook-key.pem",
    )
    if all(p.exists() for p in files.paths()):
        return files
    ca_cert, ca_key = _make_ca()
    _write(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(files.ca_key, _pem_key(ca_key), private=True)
    for cert_path, key_path, cn in (
        (files.server_cert, files.server_key, "syncd simulator"),
        (files.webhook_cert, files.webhook_key, "syncd webhook"),
    ):
        cert, key = _make_leaf(ca_cert, ca_key, cn)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        _write(key_path, _pem_key(key), private=True)
    return files


def make_app_certificate(cn: str = "syncd app credential") -> tuple[str, str]:
    """A self-signed RSA certificate and its PKCS#8 key (PEM) for certificate auth of the app.

    Entra ID app credentials are RSA (the client assertion is signed RS256 or PS256); register the
    certificate on a simulated app (`POST /_sim/apps`, tenant file `certificates`) and give both
    PEMs to syncd as `[graph] client_certificate` / `client_certificate_key`.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _builder(_name(cn), _name(cn), key.public_key(), 365).sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key).decode()
