"""Certificate credentials (client assertions) through MSAL against the Graph simulator.

msal below 1.35 needs the SHA-1 `thumbprint` in the credential (RS256, `x5t`); from 1.35 it
derives the SHA-256 one itself (PS256, `x5t#S256`). `pyproject.toml` allows msal >= 1.31, so
syncd passes what the installed version expects. The slow test runs the oldest allowed msal for
real in a child process.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import msal
import pytest

from syncd.graph.auth import MsalTokenProvider, certificate_credential
from syncd.graph.errors import GraphAuthError
from syncd.sim.generator import generate_tenant
from syncd.sim.runner import RunningSims, start_simulators
from syncd.sim.tls import make_app_certificate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def sims(tmp_path: Path) -> AsyncIterator[RunningSims]:
    tenant = generate_tenant(seed=5, users=3, groups=1, devices=1, with_intune=False)
    running = await start_simulators(tenant=tenant, state_dir=tmp_path / "sim")
    try:
        yield running
    finally:
        await running.stop()


def _provider(sims: RunningSims, cert_pem: str, key_pem: str, tenant: str | None = None) -> MsalTokenProvider:
    return MsalTokenProvider(
        tenant_id=tenant or sims.tenant_id,
        client_id=sims.client_id,
        client_certificate_pem=cert_pem,
        client_certificate_key_pem=key_pem,
        authority_host=sims.authority_host,
        graph_base_url=sims.graph_url,
        ca_file=str(sims.ca_file),
        timeout=5,
        retry_backoff=0.01,
    )


async def test_certificate_credential_with_the_installed_msal(sims: RunningSims) -> None:
    cert, key = make_app_certificate()
    sims.graph.tenant.app_certificates[sims.client_id] = [cert]
    token = await _provider(sims, cert, key, tenant=sims.graph.tenant.domain).token()
    assert sims.graph.tokens.lookup(token) is not None
    [header] = sims.graph.client_assertions
    if tuple(int(p) for p in msal.__version__.split(".")[:2]) >= (1, 35):
        assert header["alg"] == "PS256" and "x5t#S256" in header
    else:
        assert header["alg"] == "RS256" and "x5t" in header


async def test_msal_before_1_35_gets_the_sha1_thumbprint(
    sims: RunningSims, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = make_app_certificate()
    assert "thumbprint" not in certificate_credential(cert, key, msal_version="1.35.0")
    legacy = certificate_credential(cert, key, msal_version="1.31.1")
    assert len(legacy["thumbprint"]) == 40  # hex SHA-1, what msal 1.31 .. 1.34 require
    # the installed msal takes the thumbprint too (and then signs RS256 with x5t): the simulator,
    # like Entra ID, accepts that form as well
    monkeypatch.setattr(msal, "__version__", "1.31.0")
    sims.graph.tenant.app_certificates[sims.client_id] = [cert]
    assert await _provider(sims, cert, key).token()
    [header] = sims.graph.client_assertions
    assert header["alg"] == "RS256" and "x5t" in header and "x5t#S256" not in header


async def test_an_unregistered_certificate_or_a_foreign_key_is_a_clear_error(sims: RunningSims) -> None:
    cert, key = make_app_certificate()
    other_cert, other_key = make_app_certificate("another")
    sims.graph.tenant.app_certificates[sims.client_id] = [other_cert]
    with pytest.raises(GraphAuthError) as info:
        await _provider(sims, cert, key).token()
    assert info.value.code == "AADSTS700027" and "certificate" in (info.value.hint or "")
    requests_before = sims.graph.counters.total()
    with pytest.raises(GraphAuthError) as info:
        await _provider(sims, cert, other_key).token()
    assert info.value.code == "invalid_certificate"
    assert "does not belong" in info.value.description
    assert "authority" not in str(info.value)
    assert "PRIVATE KEY" not in str(info.value) and other_key not in repr(info.value)
    assert sims.graph.counters.total() == requests_before  # refused before any request


CHILD = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import msal
from syncd.graph.auth import MsalTokenProvider
assert msal.__version__ == "1.31.0", msal.__version__
p = MsalTokenProvider(tenant_id=sys.argv[2], client_id=sys.argv[3],
    client_certificate_pem=open(sys.argv[4]).read(), client_certificate_key_pem=open(sys.argv[5]).read(),
    authority_host=sys.argv[6], graph_base_url=sys.argv[7], ca_file=sys.argv[8], timeout=5)
print("token" if asyncio.run(p.token()) else "none")
"""


@pytest.mark.slow
async def test_oldest_allowed_msal_against_the_simulator(sims: RunningSims, tmp_path: Path) -> None:
    """Installs msal 1.31.0 (the floor in pyproject.toml) next to the test; needs the package index."""
    target = tmp_path / "msal131"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), "msal==1.31.0"],
        check=True,
    )
    cert, key = make_app_certificate()
    sims.graph.tenant.app_certificates[sims.client_id] = [cert]
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    args = [
        str(target), sims.tenant_id, sims.client_id, str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"),
        sims.authority_host, sims.graph_url, str(sims.ca_file),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(CHILD), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out.decode().strip() == "token"
    [header] = sims.graph.client_assertions
    assert header["alg"] == "RS256" and "x5t" in header
