"""Which application permissions each source needs, and how to check they were consented.

The probes are the cheapest read that needs exactly that permission, so ``syncd doctor`` can
say "grant X" instead of failing a round later. Intune probes fail with
``NotApplicableTenant`` on tenants without Intune: that is not a permission problem.
"""

from __future__ import annotations

from urllib.parse import quote

from syncd.graph.client import GraphClient
from syncd.graph.clouds import normalize_root
from syncd.graph.errors import GraphError, NotApplicableTenant, PermissionDenied, Unauthorized

SOURCE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "users": ("User.Read.All",),
    "groups": ("GroupMember.Read.All",),
    "devices": ("Device.Read.All",),
    "account": ("Organization.Read.All",),
    "intune": (
        "DeviceManagementManagedDevices.Read.All",
        "DeviceManagementConfiguration.Read.All",
        "DeviceManagementApps.Read.All",
        "DeviceManagementServiceConfig.Read.All",
    ),
}
"""Least-privileged application permissions per source (microsoft-graph.md §3.1, §6.1)."""

WEBHOOK_PERMISSIONS: dict[str, str] = {"users": "User.Read.All", "groups": "Group.Read.All"}
"""Subscriptions need these (group webhooks need Group.Read.All, not just GroupMember.Read.All)."""

PERMISSION_PROBES: dict[str, tuple[str, str]] = {
    "User.Read.All": ("v1.0", "/users?$top=1&$select=id"),
    "GroupMember.Read.All": ("v1.0", "/groups?$top=1&$select=id"),
    "Group.Read.All": ("v1.0", "/groups?$top=1&$select=id"),
    "Device.Read.All": ("v1.0", "/devices?$top=1&$select=id"),
    "Organization.Read.All": ("v1.0", "/organization?$select=id"),
    "DeviceManagementManagedDevices.Read.All": ("v1.0", "/deviceManagement/managedDevices?$top=1&$select=id"),
    "DeviceManagementConfiguration.Read.All": (
        "v1.0",
        "/deviceManagement/deviceCompliancePolicies?$top=1&$select=id",
    ),
    "DeviceManagementApps.Read.All": ("v1.0", "/deviceAppManagement/mobileApps?$top=1&$select=id"),
    "DeviceManagementServiceConfig.Read.All": ("v1.0", "/deviceManagement?$select=intuneAccountId"),
    "AuditLog.Read.All": ("v1.0", "/users?$top=1&$select=id,signInActivity"),
}
"""permission → (Graph version, path) of one cheap read that needs it.

Group.Read.All and GroupMember.Read.All share a probe: a read cannot tell them apart.
"""


def required_permissions(sources: list[str] | tuple[str, ...]) -> list[str]:
    """The union of permissions for the enabled sources, in a stable order."""
    out: dict[str, None] = {}
    for source in sources:
        for perm in SOURCE_PERMISSIONS.get(source, ()):
            out[perm] = None
    return list(out)


async def probe_permissions(client: GraphClient, permissions: list[str]) -> dict[str, str]:
    """permission → ``ok`` | ``denied`` | ``not_applicable`` (no Intune) | ``error: ...``."""
    results: dict[str, str] = {}
    for perm in permissions:
        probe = PERMISSION_PROBES.get(perm)
        if probe is None:
            results[perm] = "error: no probe for this permission"
            continue
        version, path = probe
        try:
            await client.get(path, version=version)
        except PermissionDenied:
            results[perm] = "denied"
        except NotApplicableTenant:
            results[perm] = "not_applicable"
        except Unauthorized as exc:
            results[perm] = f"error: {exc.code}"
        except GraphError as exc:
            results[perm] = f"error: {exc.status} {exc.code}"
        else:
            results[perm] = "ok"
    return results


def admin_consent_url(
    cloud_authority_host: str, tenant_id: str, client_id: str, redirect_uri: str | None = None
) -> str:
    """The URL a tenant admin opens to grant this app its application permissions."""
    url = (
        f"{normalize_root(cloud_authority_host)}/{quote(tenant_id, safe='')}/adminconsent"
        f"?client_id={quote(client_id, safe='')}"
    )
    if redirect_uri:
        url += f"&redirect_uri={quote(redirect_uri, safe='')}"
    return url
