"""Builders for entity/relationship dicts in the shapes architecture.md defines."""

from __future__ import annotations

from typing import Any

USER = "azure_user"
GROUP = "azure_user_group"
MEMBER = "azure_group_member"
DEVICE = "intune_managed_device"
GROUP_HAS_USER = "azure_group_has_user"
GROUP_HAS_MEMBER = "azure_group_has_member"
USER_HAS_DEVICE = "azure_user_has_device"
USER_IS_PERSON = "azure_user_is_person"


def ent(key: str, type_: str = USER, **props: Any) -> dict[str, Any]:
    return {"_key": key, "_type": type_, "_class": "User", "displayName": key, "name": key, **props}


def rel(
    from_key: str, to_key: str, type_: str = GROUP_HAS_USER, cls: str = "HAS", **props: Any
) -> dict[str, Any]:
    return {
        "_key": f"{from_key}|{cls.lower()}|{to_key}",
        "_type": type_,
        "_class": cls,
        "_fromEntityKey": from_key,
        "_toEntityKey": to_key,
        "displayName": cls,
        **props,
    }


def mapped(from_key: str, email: str) -> dict[str, Any]:
    return {
        "_key": f"{from_key}|is|person:{email}",
        "_type": USER_IS_PERSON,
        "_class": "IS",
        "_fromEntityKey": from_key,
        "displayName": "IS",
        "_mapping": {
            "relationshipDirection": "FORWARD",
            "sourceEntityKey": from_key,
            "targetFilterKeys": [["_type", "email"]],
            "targetEntity": {"_type": "employee", "_class": "Person", "email": email},
        },
    }
