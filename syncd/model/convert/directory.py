"""Entra ID (directory) converters: account, users, groups, group memberships, Entra devices.

Email rule: a user's ``email`` is its ``mail`` only (lower-cased copy in the Person mapping).
The UPN is kept as ``username``/``userPrincipalName`` but never promoted to ``email``: tenants
often sign in with ``@<tenant>.onmicrosoft.com`` UPNs that are not mailboxes, and guest UPNs
(``#EXT#``) never are, so matching Persons on them would link the wrong people.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.model.convert.common import (
    ConvertContext,
    Derived,
    Entity,
    Relationship,
    account_key,
    graph_properties,
    make_entity,
    make_relationship,
    odata_type_name,
    sanitize_properties,
    str_or_none,
    to_epoch_ms,
)
from syncd.model.schema import (
    ACCOUNT,
    ACCOUNT_HAS_GROUP,
    ACCOUNT_HAS_USER,
    GROUP,
    GROUP_HAS_GROUP,
    GROUP_HAS_MEMBER,
    GROUP_HAS_USER,
    GROUP_MEMBER,
    PERSON_CLASS,
    USER,
    USER_IS_PERSON_CLASS,
    generate_relationship_type,
)

ODATA_USER = "#microsoft.graph.user"
ODATA_GROUP = "#microsoft.graph.group"
PERSON_TARGET_TYPE = "person"
"""Target type used to name the mapped relationship (``microsoft_365_user_is_person``)."""

_USER_SPECIAL = ("signInActivity", "mail", "manager")
_MEMBER_DETAIL_SKIP = frozenset({"id", "removed"})
_SIGN_IN_FIELDS = {
    "lastSignInDateTime": "lastSignInOn",
    "lastNonInteractiveSignInDateTime": "lastNonInteractiveSignInOn",
    "lastSuccessfulSignInDateTime": "lastSuccessfulSignInOn",
}


def convert_account(
    org: Mapping[str, Any],
    ctx: ConvertContext,
    *,
    intune_account_id: str | None = None,
    mdm_authority: str | None = None,
) -> Entity:
    """The one ``microsoft_365_account`` entity from ``GET /organization`` (``value[0]``).

    ``intune_account_id``/``mdm_authority`` come from calls that answer 400 on tenants without
    Intune; they are simply None there.
    """
    domains = [d for d in org.get("verifiedDomains") or [] if isinstance(d, Mapping)]
    names = [d["name"] for d in domains if isinstance(d.get("name"), str)]
    default = next(
        (d["name"] for d in domains if d.get("isDefault") and isinstance(d.get("name"), str)), None
    )
    initial = next(
        (d["name"] for d in domains if d.get("isInitial") and isinstance(d.get("name"), str)), None
    )
    props = graph_properties(
        org, exclude=("verifiedDomains", "assignedPlans", "provisionedPlans", "displayName")
    )
    org_name = str_or_none(org.get("displayName"))
    props.update(
        {
            "id": str_or_none(org.get("id")) or ctx.tenant_id,
            "tenantId": ctx.tenant_id,
            "organizationName": org_name,
            "displayName": ctx.account_name or org_name or ctx.tenant_id,
            "verifiedDomains": names,
            "defaultDomain": default,
            "initialDomain": initial,
            "intuneAccountId": intune_account_id,
            "mobileDeviceManagementAuthority": mdm_authority,
        }
    )
    return make_entity(ACCOUNT, account_key(ctx), props, ctx)


def user_email(raw: Mapping[str, Any]) -> str | None:
    """The address a Person is matched on: ``mail`` only (see the module docstring)."""
    return str_or_none(raw.get("mail"))


def convert_user(raw: Mapping[str, Any], ctx: ConvertContext) -> Derived:
    """A user entity, #1 account HAS user, and the mapped user IS Person edge when enabled."""
    user_id = str(raw["id"])
    props = graph_properties(raw, exclude=_USER_SPECIAL)
    email = user_email(raw)
    enabled = raw.get("accountEnabled")
    props.update(
        {
            "id": user_id,
            "email": email,
            "mail": email,
            "username": str_or_none(raw.get("userPrincipalName")),
            "firstName": str_or_none(raw.get("givenName")),
            "lastName": str_or_none(raw.get("surname")),
        }
    )
    if isinstance(enabled, bool):
        props["active"] = enabled
    sign_in = raw.get("signInActivity")
    if isinstance(sign_in, Mapping):
        for graph_name, j1_name in _SIGN_IN_FIELDS.items():
            if graph_name in sign_in:
                props[j1_name] = to_epoch_ms(sign_in.get(graph_name))
    user = make_entity(USER, user_id, props, ctx)
    out = Derived()
    out.add_entity(user)
    out.add_relationship(make_relationship(ACCOUNT_HAS_USER, account_key(ctx), user_id))
    if ctx.map_users_to_persons and email:
        out.add_relationship(person_mapping(user, email, ctx))
    return out


def person_mapping(user: Entity, email: str, ctx: ConvertContext) -> Relationship:
    """J1 mapped relationship user IS Person (matched on ``ctx.person_match_keys``).

    ``_mapping`` is the one nested value J1 accepts; the email is lower-cased because Person
    entities are keyed on normalized addresses and Graph preserves the user's casing.
    """
    normalized = email.strip().lower()
    target: dict[str, Any] = {"_class": PERSON_CLASS, "email": normalized}
    display = user.get("displayName")
    if isinstance(display, str) and display and not ctx.person_skip_target_creation:
        # only a target J1 may create needs a label; otherwise a rename would change the mapping
        # (and cost a DIFF of the user's partition) for nothing
        target["displayName"] = display
    for key in ctx.person_match_keys:  # every filter key needs a value on the target
        if key not in target and key != "_class" and user.get(key) is not None:
            target[key] = user[key]
    mapping: dict[str, Any] = {
        "relationshipDirection": "FORWARD",
        "sourceEntityKey": user["_key"],
        "targetFilterKeys": [["_class", *ctx.person_match_keys]],
        "targetEntity": target,
        "skipTargetCreation": ctx.person_skip_target_creation,
    }
    return {
        "_key": f"{user['_key']}|{USER_IS_PERSON_CLASS.lower()}|{PERSON_TARGET_TYPE}:{normalized}",
        "_type": generate_relationship_type(USER_IS_PERSON_CLASS, USER.type, PERSON_TARGET_TYPE),
        "_class": USER_IS_PERSON_CLASS,
        "displayName": USER_IS_PERSON_CLASS,
        "_mapping": mapping,
    }


def is_person_mapping_key(key: str) -> bool:
    """Whether a relationship `_key` is a user → Person mapping (made by `person_mapping`)."""
    return f"|{USER_IS_PERSON_CLASS.lower()}|{PERSON_TARGET_TYPE}:" in key


def convert_group(raw: Mapping[str, Any], ctx: ConvertContext) -> Derived:
    """A group entity and #2 account HAS group. ``members@delta`` is left to
    ``convert_membership`` because added and ``@removed`` entries need different handling."""
    group_id = str(raw["id"])
    props = graph_properties(raw)
    mail = str_or_none(raw.get("mail"))
    props.update({"id": group_id, "email": mail})
    out = Derived()
    out.add_entity(make_entity(GROUP, group_id, props, ctx))
    out.add_relationship(make_relationship(ACCOUNT_HAS_GROUP, account_key(ctx), group_id))
    return out


def convert_membership(
    group_id: str,
    member: Mapping[str, Any],
    ctx: ConvertContext,
    *,
    member_details: Mapping[str, Any] | None = None,
) -> Derived:
    """One ``members@delta`` entry: #3 (user), #4 (nested group), or a group-member entity + #5.

    The entry's ``@removed`` is not looked at: the caller deletes the keys this returns (for a
    non-user/non-group member, the #5 edge only; the member entity may belong to other groups).
    """
    member_id = str(member["id"])
    odata = member.get("@odata.type")
    out = Derived()
    if odata == ODATA_USER:
        out.add_relationship(make_relationship(GROUP_HAS_USER, group_id, member_id))
        return out
    if odata == ODATA_GROUP:
        out.add_relationship(make_relationship(GROUP_HAS_GROUP, group_id, member_id))
        return out
    details = {
        name: value
        for name, value in sanitize_properties(member_details or {}, convert_datetimes=True).items()
        if name not in _MEMBER_DETAIL_SKIP
    }
    props: dict[str, Any] = {
        **details,
        "id": member_id,
        "memberType": odata_type_name(odata) or "directoryObject",
        "displayName": str_or_none(details.get("displayName")) or member_id,
    }
    out.add_entity(make_entity(GROUP_MEMBER, member_id, props, ctx))
    out.add_relationship(make_relationship(GROUP_HAS_MEMBER, group_id, member_id))
    return out


def convert_entra_device(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An Entra ``device`` (``/devices/delta``) as a flat dict: the details of a device group
    member, and the trigger that maps to an Intune device via ``deviceId == azureADDeviceId``.
    Not an entity of the seed."""
    return {
        "id": str(raw["id"]),
        "deviceId": str_or_none(raw.get("deviceId")),
        "displayName": str_or_none(raw.get("displayName")),
        "operatingSystem": str_or_none(raw.get("operatingSystem")),
        "operatingSystemVersion": str_or_none(raw.get("operatingSystemVersion")),
        "isCompliant": raw.get("isCompliant"),
        "isManaged": raw.get("isManaged"),
        "trustType": str_or_none(raw.get("trustType")),
        "accountEnabled": raw.get("accountEnabled"),
        "approximateLastSignInOn": to_epoch_ms(raw.get("approximateLastSignInDateTime")),
        "registrationOn": to_epoch_ms(raw.get("registrationDateTime")),
        "removed": "@removed" in raw,
    }
