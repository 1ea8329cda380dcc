"""Payload validation for the J1 sync API simulator.

The simulator is deliberately strict: a client that passes these checks must also be accepted by
the real service, so every documented rule (and a few data-model rules the server may not enforce,
switchable via `ValidationRules`) is checked here and rejected with the J1 error envelope.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JsonObj = dict[str, Any]

# System properties a client may send on an uploaded entity (everything else starting with `_` is
# server-generated or undocumented and therefore rejected).
ENTITY_SYSTEM_PROPS = frozenset({"_key", "_type", "_class", "_id", "_rawData"})
RELATIONSHIP_SYSTEM_PROPS = frozenset(
    {
        "_key",
        "_type",
        "_class",
        "_fromEntityKey",
        "_toEntityKey",
        "_fromEntityId",
        "_toEntityId",
        "_fromEntitySource",
        "_toEntitySource",
        "_fromEntityScope",
        "_toEntityScope",
        "_mapping",
    }
)
MAPPING_PROPS = frozenset(
    {"relationshipDirection", "sourceEntityKey", "targetFilterKeys", "targetEntity", "skipTargetCreation"}
)
DELETE_PROPS = frozenset({"_id", "_key", "_type"})


class ApiError(Exception):
    """An API failure that maps to an HTTP status and the `{"error": {code, message}}` envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ValidationRules:
    """Tunable strictness; defaults follow the spec and the data model."""

    enforce_key_min_length: bool = True
    key_min_length: int = 10
    max_string_length: int = 4096
    allow_relationship_arrays: bool = False


def _bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def _is_primitive(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | bool | int)


def _prim_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def check_value(name: str, value: Any, rules: ValidationRules, *, allow_arrays: bool, code: str) -> None:
    """Reject nested objects, non-finite numbers, long strings and mixed-type arrays."""
    if isinstance(value, str):
        if len(value) > rules.max_string_length:
            raise _bad(code, f"property {name!r} is longer than {rules.max_string_length} characters")
        return
    if isinstance(value, list):
        if not allow_arrays:
            raise _bad(code, f"property {name!r}: arrays are not allowed here")
        kinds: set[str] = set()
        for item in value:
            if item is None or isinstance(item, list | dict) or not _is_primitive(item):
                raise _bad(code, f"property {name!r}: arrays may only hold non-null primitives")
            if isinstance(item, str) and len(item) > rules.max_string_length:
                raise _bad(code, f"property {name!r} holds a string longer than {rules.max_string_length}")
            kinds.add(_prim_kind(item))
        if len(kinds) > 1:
            raise _bad(code, f"property {name!r}: arrays must be homogeneous")
        return
    if isinstance(value, dict):
        raise _bad(code, f"property {name!r}: nested objects are not allowed")
    if not _is_primitive(value):
        raise _bad(code, f"property {name!r} has an unsupported value")


def _check_key(obj: Mapping[str, Any], rules: ValidationRules, code: str) -> str:
    key = obj.get("_key")
    if not isinstance(key, str) or not key:
        raise _bad(code, "'_key' is required and must be a non-empty string")
    if rules.enforce_key_min_length and len(key) < rules.key_min_length:
        raise _bad(code, f"'_key' must be at least {rules.key_min_length} characters")
    if len(key) > rules.max_string_length:
        raise _bad(code, "'_key' is too long")
    return key


def _check_type(obj: Mapping[str, Any], code: str) -> None:
    typ = obj.get("_type")
    if not isinstance(typ, str) or not typ:
        raise _bad(code, "'_type' is required and must be a non-empty string")


def _check_class(obj: Mapping[str, Any], code: str, *, allow_list: bool) -> None:
    cls = obj.get("_class")
    if isinstance(cls, str) and cls:
        return
    if allow_list and isinstance(cls, list) and cls and all(isinstance(c, str) and c for c in cls):
        return
    raise _bad(
        code,
        "'_class' is required and must be a non-empty string" + (" or string list" if allow_list else ""),
    )


def _check_raw_data(raw: Any) -> None:
    """Accept the SDK's `_rawData` shape: a list of {name, rawData} with unique names."""
    if not isinstance(raw, list):
        raise _bad("INVALID_RAW_DATA", "'_rawData' must be an array of {name, rawData}")
    names: set[str] = set()
    for entry in raw:
        if (
            not isinstance(entry, dict)
            or set(entry) != {"name", "rawData"}
            or not isinstance(entry["name"], str)
        ):
            raise _bad("INVALID_RAW_DATA", "'_rawData' entries must be {name, rawData}")
        if entry["name"] in names:
            raise _bad("DUPLICATE_RAW_DATA_NAME", "'_rawData' names must be unique per entity")
        names.add(entry["name"])


def validate_entity(obj: Any, rules: ValidationRules, *, by_id_allowed: bool) -> None:
    """Check one uploaded entity; `by_id_allowed` lets PATCH/OVERRIDE address an entity by `_id` alone."""
    code = "INVALID_ENTITY"
    if not isinstance(obj, dict):
        raise _bad(code, "each entity must be an object")
    addressed_by_id = by_id_allowed and isinstance(obj.get("_id"), str) and bool(obj.get("_id"))
    if "_id" in obj and not addressed_by_id:
        raise _bad(code, "'_id' may only address an existing entity in PATCH or OVERRIDE jobs")
    if not addressed_by_id or "_key" in obj:
        _check_key(obj, rules, code)
    if not addressed_by_id or "_type" in obj:
        _check_type(obj, code)
    if not addressed_by_id or "_class" in obj:
        _check_class(obj, code, allow_list=True)
    for name, value in obj.items():
        if name.startswith("_"):
            if name not in ENTITY_SYSTEM_PROPS:
                raise _bad("INVALID_PROPERTY", f"property {name!r}: custom names must not start with '_'")
            if name == "_rawData":
                _check_raw_data(value)
            continue
        if not name:
            raise _bad("INVALID_PROPERTY", "property names must not be empty")
        check_value(name, value, rules, allow_arrays=True, code="INVALID_PROPERTY")


def _check_mapping(mapping: Any, rules: ValidationRules) -> None:
    code = "INVALID_MAPPING"
    if not isinstance(mapping, dict):
        raise _bad(code, "'_mapping' must be an object")
    unknown = set(mapping) - MAPPING_PROPS
    if unknown:
        raise _bad(code, f"'_mapping' has unknown fields: {sorted(unknown)}")
    if mapping.get("relationshipDirection") not in ("FORWARD", "REVERSE"):
        raise _bad(code, "'_mapping.relationshipDirection' must be FORWARD or REVERSE")
    if not isinstance(mapping.get("sourceEntityKey"), str) or not mapping["sourceEntityKey"]:
        raise _bad(code, "'_mapping.sourceEntityKey' must be a non-empty string")
    tfk = mapping.get("targetFilterKeys")
    if (
        not isinstance(tfk, list)
        or not tfk
        or not all(isinstance(g, list) and g and all(isinstance(k, str) and k for k in g) for g in tfk)
    ):
        raise _bad(code, "'_mapping.targetFilterKeys' must be a non-empty array of non-empty string arrays")
    target = mapping.get("targetEntity")
    if not isinstance(target, dict) or not target:
        raise _bad(code, "'_mapping.targetEntity' must be a non-empty object")
    for name, value in target.items():
        if name.startswith("_") and name not in ("_key", "_type", "_class"):
            raise _bad(code, f"'_mapping.targetEntity' property {name!r} is not allowed")
        check_value(f"targetEntity.{name}", value, rules, allow_arrays=True, code=code)
    if "_class" in target:
        _check_class(target, code, allow_list=True)
    if "skipTargetCreation" in mapping and not isinstance(mapping["skipTargetCreation"], bool):
        raise _bad(code, "'_mapping.skipTargetCreation' must be a boolean")


def validate_relationship(obj: Any, rules: ValidationRules, *, cross_scope: bool) -> None:
    """Check one uploaded relationship (explicit or mapped)."""
    code = "INVALID_RELATIONSHIP"
    if not isinstance(obj, dict):
        raise _bad(code, "each relationship must be an object")
    _check_key(obj, rules, code)
    _check_type(obj, code)
    _check_class(obj, code, allow_list=False)
    has_mapping = "_mapping" in obj
    if has_mapping:
        if any(k.startswith(("_from", "_to")) for k in obj):
            raise _bad(code, "a mapped relationship must not carry _from*/_to* fields")
        if cross_scope:
            raise _bad(code, "CROSS_SCOPE jobs do not accept mapped relationships")
        _check_mapping(obj["_mapping"], rules)
    else:
        for side in ("from", "to"):
            key, eid = obj.get(f"_{side}EntityKey"), obj.get(f"_{side}EntityId")
            if not (isinstance(key, str) and key) and not (isinstance(eid, str) and eid):
                raise _bad(code, f"'_{side}EntityKey' (or '_{side}EntityId') is required")
            for extra in (f"_{side}EntitySource", f"_{side}EntityScope"):
                if extra in obj and (not isinstance(obj[extra], str) or not obj[extra]):
                    raise _bad(code, f"{extra!r} must be a non-empty string")
        if cross_scope:
            for field in ("_fromEntityScope", "_toEntityScope"):
                if not isinstance(obj.get(field), str) or not obj[field]:
                    raise _bad(code, f"CROSS_SCOPE relationships require {field!r}")
    for name, value in obj.items():
        if name.startswith("_"):
            if name not in RELATIONSHIP_SYSTEM_PROPS:
                raise _bad("INVALID_PROPERTY", f"property {name!r}: custom names must not start with '_'")
            if name != "_mapping":
                check_value(name, value, rules, allow_arrays=False, code=code)
            continue
        if not name:
            raise _bad("INVALID_PROPERTY", "property names must not be empty")
        check_value(name, value, rules, allow_arrays=rules.allow_relationship_arrays, code="INVALID_PROPERTY")


def validate_delete(obj: Any, what: str) -> None:
    """A delete item is `{"_id": ...}` or `{"_key": ...}` (optionally with `_type`)."""
    code = "INVALID_DELETE"
    if not isinstance(obj, dict):
        raise _bad(code, f"each {what} item must be an object")
    unknown = set(obj) - DELETE_PROPS
    if unknown:
        raise _bad(code, f"{what} items only accept _id, _key, _type (got {sorted(unknown)})")
    ident, key = obj.get("_id"), obj.get("_key")
    if not (isinstance(ident, str) and ident) and not (isinstance(key, str) and key):
        raise _bad(code, f"{what} items need '_id' or '_key'")
    if "_type" in obj and (not isinstance(obj["_type"], str) or not obj["_type"]):
        raise _bad(code, "'_type' must be a non-empty string")
