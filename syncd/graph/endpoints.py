"""Every Microsoft Graph URL syncd can call, once, with its method and API version.

A template names ids as ``{id}`` (one path segment). Query options are not part of a template.
Links Graph hands back (``@odata.nextLink``, ``@odata.deltaLink``) are followed verbatim; they
keep the path of the request that started them. A test checks every row against the endpoints
the Graph and Intune documentation describes (``tests/graph/documented_endpoints.toml``, with
the page each comes from), that the source code names no Graph path outside this table, and that
every request a full sync sends matches a row.
"""

from __future__ import annotations

from dataclasses import dataclass

V1 = "v1.0"
BETA = "beta"


@dataclass(frozen=True)
class Endpoint:
    """One callable Graph URL."""

    method: str
    version: str
    template: str
    purpose: str

    def matches(self, method: str, version: str, path: str) -> bool:
        """Whether a concrete request (path without version and query) is this endpoint."""
        if method.upper() != self.method or version != self.version:
            return False
        want = self.template.strip("/").split("/")
        got = path.split("?", 1)[0].strip("/").split("/")
        if len(want) != len(got):
            return False
        return all((w == "{id}" and g != "") or w == g for w, g in zip(want, got, strict=True))


def _get(version: str, template: str, purpose: str) -> Endpoint:
    return Endpoint("GET", version, template, purpose)


DM = "/deviceManagement"
DAM = "/deviceAppManagement"

CATALOG: tuple[Endpoint, ...] = (
    # --- directory --------------------------------------------------------------------------
    _get(V1, "/organization", "account entity; tenant details"),
    _get(V1, "/users/delta", "users delta rounds"),
    _get(V1, "/groups/delta", "groups (with members) delta rounds"),
    _get(V1, "/devices/delta", "Entra devices delta (the managed-device re-fetch trigger)"),
    _get(V1, "/users", "last sign-in poll; permission probes"),
    _get(V1, "/groups", "permission probe"),
    _get(V1, "/devices", "permission probe"),
    Endpoint("POST", V1, "/directoryObjects/getByIds", "names of group members that are not users"),
    # --- change notifications ---------------------------------------------------------------
    Endpoint("POST", V1, "/subscriptions", "create a subscription"),
    _get(V1, "/subscriptions", "list subscriptions"),
    _get(V1, "/subscriptions/{id}", "read a subscription"),
    Endpoint("PATCH", V1, "/subscriptions/{id}", "renew a subscription"),
    Endpoint("DELETE", V1, "/subscriptions/{id}", "delete a subscription"),
    Endpoint("POST", V1, "/subscriptions/{id}/reauthorize", "reauthorize a subscription"),
    # --- batching ---------------------------------------------------------------------------
    Endpoint("POST", V1, "/$batch", "JSON batching of Intune reads"),
    Endpoint("POST", BETA, "/$batch", "JSON batching of beta Intune reads and export jobs"),
    # --- Intune: tenant ---------------------------------------------------------------------
    _get(V1, DM, "Intune account id (and whether the tenant has Intune)"),
    # --- Intune: devices --------------------------------------------------------------------
    _get(V1, f"{DM}/managedDevices", "permission probe"),
    _get(BETA, f"{DM}/managedDevices", "managed devices poll"),
    _get(BETA, f"{DM}/managedDevices/{{id}}", "early re-fetch of one managed device"),
    _get(BETA, f"{DM}/managedDevices/{{id}}/detectedApps", "detected apps of one device"),
    _get(V1, f"{DM}/deviceCategories", "device categories poll"),
    # --- Intune: compliance and configuration -----------------------------------------------
    _get(V1, f"{DM}/deviceCompliancePolicies", "compliance policies poll; permission probe"),
    _get(V1, f"{DM}/deviceCompliancePolicies/{{id}}/assignments", "policy assignments"),
    _get(V1, f"{DM}/deviceCompliancePolicies/{{id}}/deviceStatuses", "policy device statuses"),
    _get(V1, f"{DM}/deviceCompliancePolicies/{{id}}/userStatuses", "policy user statuses"),
    _get(V1, f"{DM}/deviceCompliancePolicies/{{id}}/scheduledActionsForRule", "policy action items"),
    _get(V1, f"{DM}/deviceConfigurations", "device configurations poll"),
    _get(V1, f"{DM}/deviceConfigurations/{{id}}/assignments", "configuration assignments"),
    _get(V1, f"{DM}/deviceConfigurations/{{id}}/deviceStatuses", "configuration device statuses"),
    # --- Intune: scripts and endpoint security ----------------------------------------------
    _get(BETA, f"{DM}/deviceComplianceScripts", "compliance scripts poll"),
    _get(BETA, f"{DM}/deviceComplianceScripts/{{id}}/deviceRunStates", "compliance script runs"),
    _get(BETA, f"{DM}/deviceManagementScripts", "management scripts poll"),
    _get(BETA, f"{DM}/deviceManagementScripts/{{id}}/groupAssignments", "script group assignments"),
    _get(BETA, f"{DM}/deviceManagementScripts/{{id}}/deviceRunStates", "management script runs"),
    _get(BETA, f"{DM}/intents", "endpoint security intents poll"),
    _get(BETA, f"{DM}/intents/{{id}}/assignments", "intent assignments"),
    _get(BETA, f"{DM}/intents/{{id}}/deviceStates", "intent device states"),
    _get(BETA, f"{DM}/intents/{{id}}/settings", "intent settings"),
    # --- Intune: reports --------------------------------------------------------------------
    Endpoint("POST", BETA, f"{DM}/reports/exportJobs", "create a report export (detected apps, installs)"),
    _get(BETA, f"{DM}/reports/exportJobs/{{id}}", "export job status and download URL"),
    _get(BETA, f"{DM}/reports/exportJobs", "status of many export jobs in one read"),
    # --- Intune: applications ---------------------------------------------------------------
    _get(V1, f"{DAM}/mobileApps", "managed applications poll; permission probe"),
    _get(V1, f"{DAM}/mobileApps/{{id}}/categories", "application categories of an app"),
    _get(V1, f"{DAM}/mobileApps/{{id}}/assignments", "application assignments"),
    _get(V1, f"{DAM}/mobileAppCategories", "application categories poll"),
    _get(V1, f"{DAM}/managedAppPolicies", "app protection policies poll"),
    _get(V1, f"{DAM}/iosManagedAppProtections/{{id}}/apps", "apps an iOS protection targets"),
    _get(V1, f"{DAM}/androidManagedAppProtections/{{id}}/apps", "apps an Android protection targets"),
    _get(V1, f"{DAM}/targetedManagedAppConfigurations/{{id}}/apps", "apps an app configuration targets"),
    _get(V1, f"{DAM}/defaultManagedAppProtections/{{id}}/apps", "apps a default protection targets"),
    _get(V1, f"{DAM}/mobileAppConfigurations", "app configurations poll"),
    _get(V1, f"{DAM}/mobileAppConfigurations/{{id}}/deviceStatuses", "app configuration device statuses"),
)
"""The complete list. Adding a Graph call means adding its row here (and its documentation)."""


def find(method: str, version: str, path: str) -> Endpoint | None:
    """The catalog row a concrete request is, or None (an uncatalogued URL)."""
    return next((e for e in CATALOG if e.matches(method, version, path)), None)
