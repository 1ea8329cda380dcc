"""``$select`` lists for the directory delta queries.

With delta, only selected properties are *tracked*: a change to anything else never surfaces the
object. So these lists are exactly what the converters read, kept to v1.0 properties that delta
accepts. Selecting one it does not support (e.g. ``signInActivity``, ``birthday``) is a 400
"Invalid request for delta query ... not supported for the following properties" (older docs:
501 "This operation target is not yet supported"); the directory source then drops the refused
properties, says so, and tracks the rest (`syncd.graph.delta.refused_select`).
"""

from __future__ import annotations

USER_SELECT: tuple[str, ...] = (
    "id",
    "displayName",
    "givenName",
    "surname",
    "userPrincipalName",
    "mail",
    "otherMails",
    "proxyAddresses",
    "userType",
    "accountEnabled",
    "jobTitle",
    "department",
    "companyName",
    "officeLocation",
    "mobilePhone",
    "businessPhones",
    "usageLocation",
    "preferredLanguage",
    "city",
    "state",
    "country",
    "employeeId",
    "employeeType",
    "createdDateTime",
    "lastPasswordChangeDateTime",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "creationType",
    "onPremisesSyncEnabled",
    "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName",
    "onPremisesDomainName",
)
"""Users (``GET /users/delta``). ``manager`` is left out: its changes would wake every report."""

USER_SIGN_IN_SELECT: tuple[str, ...] = ("id", "signInActivity")
"""Optional, NOT for delta (delta does not track it): needs AuditLog.Read.All and Entra ID P1/P2.
Read with ``GET /users?$select=id,signInActivity`` (page size ≤ 500) after probing ``$top=1``;
on 403 the feature is simply off. ``convert_user`` reads it when it is present on the object."""

GROUP_SELECT: tuple[str, ...] = (
    "id",
    "displayName",
    "description",
    "mail",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
    "groupTypes",
    "visibility",
    "createdDateTime",
    "renewedDateTime",
    "expirationDateTime",
    "classification",
    "isAssignableToRole",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesSyncEnabled",
    "onPremisesLastSyncDateTime",
    "securityIdentifier",
    "members",
)
"""Groups (``GET /groups/delta``); ``members`` yields ``members@delta`` (``@odata.type`` + ``id``)."""

DEVICE_SELECT: tuple[str, ...] = (
    "id",
    "deviceId",
    "displayName",
    "operatingSystem",
    "operatingSystemVersion",
    "isCompliant",
    "isManaged",
    "trustType",
    "accountEnabled",
    "approximateLastSignInDateTime",
    "registrationDateTime",
    "createdDateTime",
    "profileType",
    "manufacturer",
    "model",
)
"""Entra devices (``GET /devices/delta``): a cheap change trigger for Intune devices
(``managedDevice.azureADDeviceId == device.deviceId``) and the details of device group members."""


def select_param(fields: tuple[str, ...]) -> str:
    """The ``$select`` query value."""
    return ",".join(fields)
