"""The tenant's identity: its directory GUID, resolved once from whatever `[graph] tenant_id` says.

`tenant_id` may be the GUID or a verified domain (`contoso.com`, `contoso.onmicrosoft.com`).
Graph's notifications carry the GUID, and everything syncd builds from the tenant must not depend
on how the configuration spells it: the webhook's tenant check, the account entity's `_key` (and
every relationship to it), the default J1 scope name and `syncd status` all use the GUID.

It comes from the access token's `tid` claim (no extra request), else from `GET /organization`.
The mirror keeps it (`kv` "graph.tenant", with the configured spelling), so later starts need
neither, and a mirror of one tenant is never mixed with another's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from syncd.graph.auth import TokenProvider
    from syncd.graph.client import GraphClient
    from syncd.mirror import Mirror

log = structlog.get_logger(__name__)

KV_KEY = "graph.tenant"
"""Mirror kv entry: `{"configured": <tenant_id as configured, lower case>, "id": <GUID>}`."""
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class TenantError(Exception):
    """The tenant GUID cannot be resolved, or the mirror belongs to another tenant."""


def default_scope(tenant_guid: str) -> str:
    """The J1 scope syncd writes to when `[j1] scope` is not set: named after the tenant GUID."""
    return f"syncd-microsoft-365-{tenant_guid}"


def is_guid(value: object) -> bool:
    return isinstance(value, str) and bool(_GUID.match(value.strip().lower()))


def token_tenant(access_token: str) -> str | None:
    """The `tid` claim of a JWT access token, read without verifying it (Graph verifies it; we
    only learn which tenant it was issued for). None for opaque or malformed tokens."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except (ValueError, binascii.Error):
        return None
    tid = claims.get("tid") if isinstance(claims, dict) else None
    return tid.lower() if isinstance(tid, str) and is_guid(tid) else None


async def _ask_graph(tokens: TokenProvider, graph: GraphClient) -> str:
    tid = token_tenant(await tokens.token())
    if tid is not None:
        return tid
    page = await graph.get("/organization", params={"$select": "id"})
    orgs = [o for o in page.get("value") or [] if isinstance(o, dict)]
    org_id = orgs[0].get("id") if orgs else None
    if not is_guid(org_id):
        raise TenantError("GET /organization gave no tenant id: cannot tell which tenant this is")
    assert isinstance(org_id, str)
    return org_id.lower()


async def resolve_tenant_id(
    configured: str, *, tokens: TokenProvider, graph: GraphClient, mirror: Mirror
) -> str:
    """The tenant GUID for `[graph] tenant_id`: as given when it is one, else stored or asked."""
    spelling = configured.strip().lower()
    stored: Any = await mirror.get_value(KV_KEY)
    previous = stored.get("id") if isinstance(stored, dict) and is_guid(stored.get("id")) else None
    if is_guid(spelling):
        guid = spelling
    elif previous is not None and stored.get("configured") == spelling:
        return str(previous)
    else:
        guid = await _ask_graph(tokens, graph)
        log.info("tenant resolved", configured=configured, tenant_id=guid)
    if previous is not None and previous != guid:
        raise TenantError(
            f"this state directory holds the mirror of tenant {previous}, but [graph] tenant_id "
            f"{configured!r} is tenant {guid}: use another [state] dir for another tenant"
        )
    if previous is None and configured.strip() != guid and await mirror.get_cursor("full_push") is not None:
        # An older syncd built this mirror's keys from the domain: rebuild them from the GUID.
        log.warning(
            "entity keys were built from the tenant's domain; a full resync rebuilds them from its id",
            configured=configured,
            tenant_id=guid,
            old_scope=default_scope(configured),
        )
        await mirror.set_cursor("full_push", None)
    if not isinstance(stored, dict) or stored.get("configured") != spelling or previous != guid:
        await mirror.set_value(KV_KEY, {"configured": spelling, "id": guid})
    return guid


async def stored_tenant_id(mirror: Mirror) -> str | None:
    """The GUID the mirror was built for (status output), if known."""
    stored = await mirror.get_value(KV_KEY)
    value = stored.get("id") if isinstance(stored, dict) else None
    return value if is_guid(value) else None
