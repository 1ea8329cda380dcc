"""`syncd setup`: what an administrator grants, where, and what goes in the config."""

from __future__ import annotations

import secrets

from syncd.commands.permissions import admin_consent_url, needed_permissions
from syncd.config import CLIENT_STATE_MIN, Settings

CLIENT_STATE_FILE = "/etc/syncd/credentials/client_state"


def render_setup(settings: Settings, client_state: str | None = None) -> str:
    client_state = client_state or new_client_state()
    g = settings.graph
    tenant = g.tenant_id or "<your-tenant-id>"
    client = g.client_id or "<your-app-client-id>"
    out = [
        "1. Register an application in Microsoft Entra ID (App registrations > New registration),",
        "   single tenant, no redirect URI needed. Create a client secret (or upload a certificate).",
        "2. Under API permissions > Add a permission > Microsoft Graph > Application permissions, add:",
    ]
    for perm, reasons in needed_permissions(settings).items():
        out.append(f"     {perm:42} ({', '.join(reasons)})")
    out += [
        "3. Grant admin consent. An administrator of the tenant (a work or school account: a personal",
        "   Microsoft account cannot consent for an organization) opens:",
        f"     {admin_consent_url(g.authority_host, tenant, client)}",
        "4. Put this in the config file (secrets go in systemd credentials, not in the file):",
        "",
        "     [graph]",
        f'     tenant_id = "{tenant}"',
        f'     client_id = "{client}"',
        f'     cloud = "{g.cloud}"',
        "     # client_secret: /etc/syncd/credentials/client_secret (LoadCredential=)",
        "     [j1]",
        f'     account_id = "{settings.j1.account_id or "<your-j1-account-id>"}"',
        "     # api_key: /etc/syncd/credentials/j1_api_key",
        "     [webhook]",
        '     public_url = "https://syncd.example.com/graph"   # optional: enables change notifications',
        "     # client_state: /etc/syncd/credentials/client_state",
        "",
        "5. The clientState that proves a notification comes from Graph: a fresh random value",
        f"   (at least {CLIENT_STATE_MIN} characters), kept as a root-only credential file:",
        "",
        f"     printf %s '{client_state}' | sudo install -m 0600 /dev/stdin {CLIENT_STATE_FILE}",
        "",
        "6. Run `syncd check`: every line should read OK.",
    ]
    return "\n".join(out) + "\n"


def new_client_state() -> str:
    """64 URL-safe characters (384 random bits): over syncd's minimum (32), under Graph's maximum (128)."""
    return secrets.token_urlsafe(48)


def setup_command(settings: Settings) -> int:
    print(render_setup(settings), end="")
    return 0
