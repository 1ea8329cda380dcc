"""J1 entities and relationships in the shape syncd uploads them (docs/architecture.md), for the
tests of the mirror, the J1 client and the J1 simulator. Each suite binds its own types."""

from __future__ import annotations

from typing import Any


def entity(key: str, type_: str, cls: str | list[str] = "User", **props: Any) -> dict[str, Any]:
    """An entity named after its key (unless `props` name it)."""
    return {"_key": key, "_type": type_, "_class": cls, "displayName": key, **props}


def relationship(from_key: str, to_key: str, type_: str, cls: str = "HAS", **props: Any) -> dict[str, Any]:
    """A relationship keyed `<from>|<class>|<to>`."""
    return {
        "_key": f"{from_key}|{cls.lower()}|{to_key}",
        "_type": type_,
        "_class": cls,
        "_fromEntityKey": from_key,
        "_toEntityKey": to_key,
        **props,
    }


def mapped_to_person(
    key: str, from_key: str, email: str, *, type_: str, target_type: str, match_on: str, **props: Any
) -> dict[str, Any]:
    """A mapped relationship from `from_key` to the Person with `email` (found by `match_on` + email,
    created by J1 when there is none)."""
    return {
        "_key": key,
        "_type": type_,
        "_class": "IS",
        **props,
        "_mapping": {
            "relationshipDirection": "FORWARD",
            "sourceEntityKey": from_key,
            "targetFilterKeys": [[match_on, "email"]],
            "targetEntity": {"_type": target_type, "_class": "Person", "email": email},
        },
    }
