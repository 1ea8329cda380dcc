"""OData/Graph wire conventions: content types, envelopes, error bodies, `$select`, projections."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from syncd.sim.graph.keys import CLIENT_REQUEST_ID, REQUEST_ID
from syncd.sim.refusal import Refusal

ODATA_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)
ERROR_CONTENT_TYPE = "application/json"

USER_DEFAULT_PROPS: tuple[str, ...] = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
"""What `GET /users` returns without `$select` (user-list.md)."""

USER_PROPS: frozenset[str] = frozenset(USER_DEFAULT_PROPS) | frozenset(
    {
        "aboutMe",
        "accountEnabled",
        "ageGroup",
        "assignedLicenses",
        "assignedPlans",
        "birthday",
        "city",
        "companyName",
        "consentProvidedForMinor",
        "country",
        "createdDateTime",
        "creationType",
        "deletedDateTime",
        "department",
        "employeeHireDate",
        "employeeId",
        "employeeLeaveDateTime",
        "employeeOrgData",
        "employeeType",
        "externalUserState",
        "externalUserStateChangeDateTime",
        "faxNumber",
        "hireDate",
        "identities",
        "imAddresses",
        "interests",
        "isResourceAccount",
        "lastPasswordChangeDateTime",
        "legalAgeGroupClassification",
        "licenseAssignmentStates",
        "mailNickname",
        "mySite",
        "onPremisesDistinguishedName",
        "onPremisesDomainName",
        "onPremisesExtensionAttributes",
        "onPremisesImmutableId",
        "onPremisesLastSyncDateTime",
        "onPremisesProvisioningErrors",
        "onPremisesSamAccountName",
        "onPremisesSecurityIdentifier",
        "onPremisesSyncEnabled",
        "onPremisesUserPrincipalName",
        "otherMails",
        "passwordPolicies",
        "passwordProfile",
        "pastProjects",
        "postalCode",
        "preferredDataLocation",
        "preferredName",
        "provisionedPlans",
        "proxyAddresses",
        "responsibilities",
        "schools",
        "securityIdentifier",
        "showInAddressList",
        "signInActivity",
        "signInSessionsValidFromDateTime",
        "skills",
        "state",
        "streetAddress",
        "usageLocation",
        "userType",
        "manager",
    }
)

GROUP_PROPS: frozenset[str] = frozenset(
    {
        "id",
        "allowExternalSenders",
        "assignedLabels",
        "assignedLicenses",
        "autoSubscribeNewMembers",
        "classification",
        "createdDateTime",
        "deletedDateTime",
        "description",
        "displayName",
        "expirationDateTime",
        "groupTypes",
        "hasMembersWithLicenseErrors",
        "hideFromAddressLists",
        "hideFromOutlookClients",
        "isAssignableToRole",
        "isSubscribedByMail",
        "licenseProcessingState",
        "mail",
        "mailEnabled",
        "mailNickname",
        "membershipRule",
        "membershipRuleProcessingState",
        "onPremisesDomainName",
        "onPremisesLastSyncDateTime",
        "onPremisesNetBiosName",
        "onPremisesProvisioningErrors",
        "onPremisesSamAccountName",
        "onPremisesSecurityIdentifier",
        "onPremisesSyncEnabled",
        "preferredDataLocation",
        "preferredLanguage",
        "proxyAddresses",
        "renewedDateTime",
        "securityEnabled",
        "securityIdentifier",
        "serviceProvisioningErrors",
        "theme",
        "uniqueName",
        "unseenCount",
        "visibility",
        "resourceBehaviorOptions",
        "resourceProvisioningOptions",
        "creationOptions",
        "members",
        "owners",
    }
)

DEVICE_PROPS: frozenset[str] = frozenset(
    {
        "id",
        "accountEnabled",
        "alternativeSecurityIds",
        "approximateLastSignInDateTime",
        "complianceExpirationDateTime",
        "createdDateTime",
        "deletedDateTime",
        "deviceCategory",
        "deviceId",
        "deviceMetadata",
        "deviceOwnership",
        "deviceVersion",
        "displayName",
        "enrollmentProfileName",
        "enrollmentType",
        "extensionAttributes",
        "isCompliant",
        "isManaged",
        "isRooted",
        "managementType",
        "manufacturer",
        "mdmAppId",
        "model",
        "onPremisesLastSyncDateTime",
        "onPremisesSecurityIdentifier",
        "onPremisesSyncEnabled",
        "operatingSystem",
        "operatingSystemVersion",
        "physicalIds",
        "profileType",
        "registrationDateTime",
        "systemLabels",
        "trustType",
    }
)

KNOWN_PROPS: dict[str, frozenset[str]] = {"users": USER_PROPS, "groups": GROUP_PROPS, "devices": DEVICE_PROPS}
ENTITY_NAMES: dict[str, str] = {"users": "user", "groups": "group", "devices": "device"}


def utc_stamp() -> str:
    """innerError date format (no fraction, no Z) as seen in recordings."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def base_url(request: web.Request) -> str:
    """Origin the client used, so links work on both the HTTPS and the HTTP listener."""
    return f"{request.scheme}://{request.host}"


def version_of(request: web.Request) -> str:
    """`v1.0` or `beta` from the path."""
    return "beta" if request.path.startswith("/beta/") else "v1.0"


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A Graph success response with the OData content type."""
    resp = web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status, headers=headers)
    resp.headers["Content-Type"] = ODATA_CONTENT_TYPE
    return resp


def graph_error(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    inner_extra: dict[str, Any] | None = None,
) -> web.Response:
    """The Graph error envelope (errors.md) with innerError date/request-id/client-request-id."""
    request_id = request.get(REQUEST_ID) or str(uuid.uuid4())  # a bare app (tests) has no middleware
    inner: dict[str, Any] = {}
    if inner_extra:
        inner.update(inner_extra)
    inner.update(
        {
            "date": utc_stamp(),
            "request-id": request_id,
            "client-request-id": request.get(CLIENT_REQUEST_ID)
            or request.headers.get("client-request-id", request_id),
        }
    )
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    resp = web.Response(body=json.dumps(body).encode(), status=status, headers=headers)
    resp.headers["Content-Type"] = ERROR_CONTENT_TYPE
    resp.headers["request-id"] = request_id
    return resp


class GraphError(Refusal):
    """A request Graph refuses. Handlers and the checks they call raise it; the simulator's
    middleware (or `syncd.sim.refusal.answering` on a bare app) answers it with `graph_error`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def response(self, request: web.Request) -> web.Response:
        """The Graph error envelope of this refusal."""
        return graph_error(request, self.status, self.code, self.message, self.headers)


class QueryError(GraphError):
    """A bad query option (a 400 unless `status` says otherwise)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(status, code, message)


def segment_not_found(segment: str) -> GraphError:
    """Graph's answer to a path it does not have (a 400, not a 404)."""
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def not_found(object_id: str) -> GraphError:
    """The directory's 404 for an id (or UPN) it does not hold."""
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; one that does not parse is Graph's 400."""
    try:
        return await request.json()
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None


def parse_select(raw: str | None, resource: str | None) -> tuple[str, ...] | None:
    """`$select` list in request order (validated against the known property set)."""
    if raw is None:
        return None
    names = tuple(p.strip() for p in raw.split(",") if p.strip())
    if not names:
        raise QueryError("BadRequest", "Invalid $select: empty list.")
    known = KNOWN_PROPS.get(resource or "")
    if known is not None:
        for n in names:
            if n not in known:
                entity = ENTITY_NAMES[resource or ""]
                raise QueryError(
                    "BadRequest", f"Could not find a property named '{n}' on type 'microsoft.graph.{entity}'."
                )
    return names


def parse_top(raw: str | None, *, default: int = 100, maximum: int = 999) -> int:
    """`$top` with the directory limits (1..999)."""
    if raw is None:
        return default
    try:
        top = int(raw)
    except ValueError as exc:
        raise QueryError("BadRequest", f"Invalid value '{raw}' for $top query option found.") from exc
    if top < 1 or top > maximum:
        raise QueryError(
            "Request_UnsupportedQuery",
            f"Invalid page size specified: '{top}'. Must be between 1 and {maximum} inclusive.",
        )
    return top


def project(
    obj: dict[str, Any], select: tuple[str, ...] | None, default: tuple[str, ...] | None
) -> dict[str, Any]:
    """Selected properties (id always); without `$select` the default set or everything."""
    if select is None:
        if default is None:
            return {k: v for k, v in obj.items() if not k.startswith("@")}
        return {k: obj[k] for k in default if k in obj}
    out: dict[str, Any] = {"id": obj["id"]}
    for k in select:
        if k in ("members", "owners", "manager"):
            continue
        out[k] = obj.get(k)
    return out


def default_props(resource: str) -> tuple[str, ...] | None:
    """Default projection of a store (users have a reduced default set)."""
    return USER_DEFAULT_PROPS if resource == "users" else None


def context_url(request: web.Request, fragment: str, select: tuple[str, ...] | None = None) -> str:
    """`@odata.context` like the real service, incl. the `(a,b)` select suffix."""
    sel = f"({','.join(select)})" if select else ""
    return f"{base_url(request)}/{version_of(request)}/$metadata#{fragment}{sel}"
