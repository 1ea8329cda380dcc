"""Deny application permissions in the Graph simulator, to exercise `syncd check` and partial rounds.

``PUT /_sim/permissions {"denied_permissions": ["Device.Read.All", ...]}`` makes every Graph read
that needs one of those permissions answer what Graph answers an app without the consent:
``403 Authorization_RequestDenied`` "Insufficient privileges to complete the operation.".
A path that several permissions can read (``/groups``: ``GroupMember.Read.All`` or
``Group.Read.All``) is denied only when all of them are. ``GET /_sim/permissions`` shows the
setting; ``PUT`` with an empty list grants everything again.

Registered by ``register_permission_faults(app)`` from ``GraphSim.create_app`` (after the
routes, so this middleware runs inside the simulator's auth/fault/counting middleware and the
403 is counted per route like any answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler

from syncd.sim.admin_api import AdminError, read_json
from syncd.sim.graph.odata import graph_error
from syncd.sim.refusal import answering

PATH_PERMISSIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("/users", frozenset({"User.Read.All"})),
    ("/groups", frozenset({"GroupMember.Read.All", "Group.Read.All"})),
    ("/devices", frozenset({"Device.Read.All"})),
    ("/organization", frozenset({"Organization.Read.All"})),
    ("/subscriptions", frozenset()),
    ("/deviceManagement/managedDevices", frozenset({"DeviceManagementManagedDevices.Read.All"})),
    ("/deviceManagement/deviceManagementScripts", frozenset({"DeviceManagementManagedDevices.Read.All"})),
    ("/deviceManagement/deviceComplianceScripts", frozenset({"DeviceManagementManagedDevices.Read.All"})),
    ("/deviceManagement/deviceCategories", frozenset({"DeviceManagementManagedDevices.Read.All"})),
    ("/deviceManagement/deviceCompliancePolicies", frozenset({"DeviceManagementConfiguration.Read.All"})),
    ("/deviceManagement/deviceConfigurations", frozenset({"DeviceManagementConfiguration.Read.All"})),
    ("/deviceManagement/intents", frozenset({"DeviceManagementConfiguration.Read.All"})),
    ("/deviceAppManagement", frozenset({"DeviceManagementApps.Read.All"})),
    ("/deviceManagement", frozenset({"DeviceManagementServiceConfig.Read.All"})),
)
"""Graph path prefix (after the version) → the application permissions that can read it (the
least-privileged ones syncd asks for; broader ones such as Directory.Read.All are not modelled).
First match wins, so longer prefixes come first. An empty set means "never denied here"."""

DENIED_MESSAGE = "Insufficient privileges to complete the operation."
SIGN_IN_PERMISSION = "AuditLog.Read.All"
"""Also needed (on top of User.Read.All) to select ``signInActivity`` on ``/users``. Deny the
pseudo-permission ``EntraID.P1`` to simulate a tenant without the premium licence."""
PREMIUM_LICENCE = "EntraID.P1"
PREMIUM_CODE = "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
PREMIUM_MESSAGE = "Neither tenant is B2C or tenant doesn't have premium license"


def selects_sign_in(request: web.Request) -> bool:
    """A ``/users`` read (list or one user) whose ``$select`` names ``signInActivity``."""
    rest = request.path.split("/", 2)[2] if request.path.count("/") >= 2 else ""
    if rest != "users" and not rest.startswith("users/"):
        return False
    select = next((v for k, v in request.query.items() if k.lower() == "$select"), "")
    return "signinactivity" in {p.strip().lower() for p in select.split(",")}


@dataclass
class PermissionFaults:
    """The permissions the simulated app is currently missing."""

    denied: set[str] = field(default_factory=set)
    sign_in_requests: int = 0
    """Graph requests that selected ``signInActivity`` (answered or denied)."""

    def needed_for(self, path: str) -> frozenset[str] | None:
        """The permissions that can read `path` (``/v1.0/...`` or ``/beta/...``), None if unknown."""
        rest = path.split("/", 2)[2] if path.count("/") >= 2 else ""
        rest = "/" + rest
        for prefix, perms in PATH_PERMISSIONS:
            if rest == prefix or rest.startswith(prefix + "/") or rest.startswith(prefix + "?"):
                return perms
        return None

    def denies(self, path: str) -> bool:
        """Whether every permission that could read `path` is denied."""
        perms = self.needed_for(path)
        return bool(perms) and perms is not None and perms <= self.denied  # empty/unknown: never


PERMISSION_FAULTS: web.AppKey[PermissionFaults] = web.AppKey(
    "syncd_graph_permission_faults", PermissionFaults
)


def _is_graph_path(path: str) -> bool:
    return path.startswith(("/v1.0/", "/beta/"))


async def get_permissions(request: web.Request) -> web.Response:
    """GET /_sim/permissions."""
    return web.json_response({"denied_permissions": sorted(request.app[PERMISSION_FAULTS].denied)})


@answering
async def put_permissions(request: web.Request) -> web.Response:
    """PUT /_sim/permissions {"denied_permissions": [...]}: replaces the denied set."""
    body = await read_json(request)
    denied = body.get("denied_permissions") if isinstance(body, dict) else None
    if not isinstance(denied, list) or not all(isinstance(p, str) for p in denied):
        raise AdminError(400, "denied_permissions: a list of strings")
    state = request.app[PERMISSION_FAULTS]
    state.denied = set(denied)
    return web.json_response({"denied_permissions": sorted(state.denied)})


def register_permission_faults(app: web.Application) -> PermissionFaults:
    """Add the admin routes and the middleware; returns the state (tests may set it directly)."""
    state = PermissionFaults()
    app[PERMISSION_FAULTS] = state

    @web.middleware
    async def deny_permissions(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _is_graph_path(request.path) and selects_sign_in(request):
            state.sign_in_requests += 1
            if SIGN_IN_PERMISSION in state.denied:
                return graph_error(request, 403, "Authorization_RequestDenied", DENIED_MESSAGE)
            if PREMIUM_LICENCE in state.denied:
                return graph_error(request, 403, PREMIUM_CODE, PREMIUM_MESSAGE)
        if state.denied and _is_graph_path(request.path) and state.denies(request.path):
            return graph_error(request, 403, "Authorization_RequestDenied", DENIED_MESSAGE)
        return await handler(request)

    app.middlewares.append(deny_permissions)
    app.router.add_get("/_sim/permissions", get_permissions)
    app.router.add_put("/_sim/permissions", put_permissions)
    return state
