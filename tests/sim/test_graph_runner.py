"""Runner: HTTPS + HTTP listeners, MSAL against the simulator, printed config."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import msal
import requests

from bench.kit.tenants import graph_tenant
from syncd.sim.runner import render_syncd_config, start_simulators


async def test_msal_over_https_and_config(tmp_path: Path) -> None:
    running = await start_simulators(tenant=graph_tenant(), state_dir=tmp_path, j1=False)
    try:
        for name in ("ca.pem", "webhook-cert.pem", "webhook-key.pem"):
            assert (tmp_path / name).exists()
        cfg = tomllib.loads(render_syncd_config(running))
        assert cfg["graph"]["tenant_id"] == running.tenant_id
        assert cfg["graph"]["authority_host"].startswith("https://127.0.0.1:")
        assert cfg["tls"]["ca_file"] == str(tmp_path / "ca.pem")
        assert cfg["webhook"]["tls_key"] == str(tmp_path / "webhook-key.pem")

        def acquire() -> dict[str, Any]:
            http = requests.Session()
            http.verify = str(running.ca_file)
            http.trust_env = False  # else $REQUESTS_CA_BUNDLE overrides verify
            app = msal.ConfidentialClientApplication(
                running.client_id,
                client_credential=running.client_secret,
                authority=f"{running.authority_host}/{running.tenant_id}",
                instance_discovery=False,
                http_client=http,
            )
            token: dict[str, Any] = app.acquire_token_for_client(scopes=[f"{running.graph_url}/.default"])
            return token

        result = await asyncio.to_thread(acquire)
        assert "access_token" in result, result
        ssl_ctx = running.tls.client_context()
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": f"Bearer {result['access_token']}"}
            async with s.get(f"{running.graph_url}/v1.0/organization", headers=headers, ssl=ssl_ctx) as r:
                assert r.status == 200
                assert (await r.json())["value"][0]["id"] == running.tenant_id
            async with s.get(f"{running.graph_http_url}/v1.0/users", headers=headers) as r:
                assert r.status == 200
    finally:
        await running.stop()


async def test_runner_starts_j1_when_available(tmp_path: Path) -> None:
    running = await start_simulators(tenant=graph_tenant(), state_dir=tmp_path)
    try:
        try:
            import syncd.sim.j1  # noqa: F401
        except ImportError:
            assert running.j1_url is None
            return
        assert running.j1_url is not None and running.j1_url.startswith("https://127.0.0.1:")
        cfg = tomllib.loads(render_syncd_config(running))
        assert cfg["j1"]["base_url"] == running.j1_url and cfg["j1"]["api_key"] == running.j1_api_key
    finally:
        await running.stop()
