"""The application permissions syncd needs, how to check they were consented, and where to grant them.

Only what the enabled `[sync] sources` need (and nothing more). `syncd setup` prints the list and
the admin-consent URL; `syncd check` proves each one with the cheapest read that needs exactly
that permission, so it can say "grant X" instead of a round failing later. Intune probes fail
with ``NotApplicableTenant`` on tenants without Intune: that is not a permission problem.
"""

from __future__ import annotations

from urllib.parse import quote

from syncd.config import Settings
from syncd.graph.client import GraphClient
from syncd.graph.clouds import normalize_root
from syncd.graph.errors import GraphError, NotApplicableTenant, PermissionDenied, Unauthorized
from syncd.model import schema as m

MANAGED_DEVICES = "DeviceManagementManagedDevices.Read.All"
CONFIGURATION = "DeviceManagementConfiguration.Read.All"
APPS = "DeviceManagementApps.Read.All"
SERVICE_CONFIG = "DeviceManagementServiceConfig.Read.All"

SOURCE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    m.SOURCE_USERS: ("User.Read.All",),
    m.SOURCE_GROUPS: ("GroupMember.Read.All",),
    m.SOURCE_DEVICES: ("Device.Read.All", MANAGED_DEVICES),
    m.SOURCE_COMPLIANCE: (CONFIGURATION,),
    m.SOURCE_CONFIGURATIONS: (CONFIGURATION,),
    m.SOURCE_APPLICATIONS: (APPS, MANAGED_DEVICES),
    m.SOURCE_SCRIPTS: (MANAGED_DEVICES,),
    m.SOURCE_ENDPOINT_SECURITY: (CONFIGURATION,),
}
"""Least-privileged application permissions per source (microsoft-graph.md §3.1, §6.1)."""

INTUNE_SOURCES = {
    m.SOURCE_DEVICES,
    m.SOURCE_COMPLIANCE,
    m.SOURCE_CONFIGURATIONS,
    m.SOURCE_APPLICATIONS,
    m.SOURCE_SCRIPTS,
    m.SOURCE_ENDPOINT_SECURITY,
}

PERMISSION_PROBES: dict[str, tuple[str, str]] = {
    "User.Read.All": ("v1.0", "/users?$top=1&$select=id"),
    "GroupMember.Read.All": ("v1.0", "/groups?$top=1&$select=id"),
    "Group.Read.All": ("v1.0", "/groups?$top=1&$select=id"),
    "Device.Read.All": ("v1.0", "/devices?$top=1&$select=id"),
    "Organization.Read.All": ("v1.0", "/organization?$select=id"),
    MANAGED_DEVICES: ("v1.0", "/deviceManagement/managedDevices?$top=1&$select=id"),
    CONFIGURATION: ("v1.0", "/deviceManagement/deviceCompliancePolicies?$top=1&$select=id"),
    APPS: ("v1.0", "/deviceAppManagement/mobileApps?$top=1&$select=id"),
    SERVICE_CONFIG: ("v1.0", "/deviceManagement?$select=intuneAccountId"),
    "AuditLog.Read.All": ("v1.0", "/users?$top=1&$select=id,signInActivity"),
}
"""permission → (Graph version, path) of one cheap read that needs it.

Group.Read.All and GroupMember.Read.All share a probe: a read cannot tell them apart.
"""


def needed_permissions(settings: Settings) -> dict[str, list[str]]:
    """permission → the reasons (sources) that need it, in a stable order."""
    needed: dict[str, list[str]] = {"Organization.Read.All": ["account"]}
    for source in settings.sync.sources:
        for perm in SOURCE_PERMISSIONS.get(source, ()):
            needed.setdefault(perm, []).append(source)
    if INTUNE_SOURCES & set(settings.sync.sources):
        needed.setdefault(SERVICE_CONFIG, []).append("account (Intune account id)")
    if settings.sync.sign_in_activity == "on" and m.SOURCE_USERS in settings.sync.sources:
        needed.setdefault("AuditLog.Read.All", []).append("users' last sign-in (Entra ID P1)")
    if settings.webhook.public_url and m.SOURCE_GROUPS in settings.sync.sources:
        needed.setdefault("Group.Read.All", []).append("groups change notifications")
    return needed


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
