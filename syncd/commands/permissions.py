"""The application permissions that the enabled `[sync] sources` need (and nothing more)."""

from __future__ import annotations

from syncd.config import Settings
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
INTUNE_SOURCES = {
    m.SOURCE_DEVICES,
    m.SOURCE_COMPLIANCE,
    m.SOURCE_CONFIGURATIONS,
    m.SOURCE_APPLICATIONS,
    m.SOURCE_SCRIPTS,
    m.SOURCE_ENDPOINT_SECURITY,
}


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
