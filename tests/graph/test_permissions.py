"""The permission table of `syncd setup` / `syncd check`: every needed permission has a probe,
the probes against a small Graph stand-in, and the admin-consent URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from syncd.commands.permissions import (
    PERMISSION_PROBES,
    SOURCE_PERMISSIONS,
    admin_consent_url,
    needed_permissions,
    probe_permissions,
)
from syncd.config import Settings, load_settings
from syncd.graph.client import GraphClient

MakeClient = Callable[..., GraphClient]


def settings(**env: str) -> Settings:
    environ = {f"SYNCD_{k.upper()}": v for k, v in env.items()}
    return load_settings(None, environ=environ, require_credentials=False)


def test_permissions_tables() -> None:
    everything = settings(
        sync_sources=",".join(SOURCE_PERMISSIONS),
        sync_sign_in_activity="on",
        webhook_public_url="https://syncd.example/notify",
    )
    needed = needed_permissions(everything)
    assert {"AuditLog.Read.All", "Group.Read.All", "DeviceManagementServiceConfig.Read.All"} <= set(needed)
    for perm in needed:
        version, path = PERMISSION_PROBES[perm]
        assert version in ("v1.0", "beta") and path.startswith("/")
    assert list(needed_permissions(settings(sync_sources="users,groups"))) == [
        "Organization.Read.All",
        "User.Read.All",
        "GroupMember.Read.All",
    ]
    assert admin_consent_url("https://login.microsoftonline.us/", "contoso.onmicrosoft.com", "abc") == (
        "https://login.microsoftonline.us/contoso.onmicrosoft.com/adminconsent?client_id=abc"
    )
    assert admin_consent_url("login.microsoftonline.com", "t", "c", "https://x.example/cb?a=1").endswith(
        "&redirect_uri=https%3A%2F%2Fx.example%2Fcb%3Fa%3D1"
    )


async def test_probe_permissions(serve: Any, make_client: MakeClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.path.startswith("/v1.0/devices"):
            return web.json_response(
                {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges"}},
                status=403,
            )
        if request.path.startswith("/v1.0/deviceManagement"):
            return web.json_response(
                {"error": {"code": "BadRequest", "message": "Request not applicable to target tenant."}},
                status=400,
            )
        return web.json_response({"value": [{"id": "1"}]})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    client = make_client(await serve(app))
    result = await probe_permissions(
        client, ["User.Read.All", "Device.Read.All", "DeviceManagementManagedDevices.Read.All", "Nope.All"]
    )
    assert result == {
        "User.Read.All": "ok",
        "Device.Read.All": "denied",
        "DeviceManagementManagedDevices.Read.All": "not_applicable",
        "Nope.All": "error: no probe for this permission",
    }
