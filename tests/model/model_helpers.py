"""Helpers for the model tests: recorded fixtures and a J1 shape checker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from syncd.model.schema import ENTITY_TYPE_BY_NAME, RELATIONSHIP_TYPE_BY_NAME
from tests.paths import FIXTURES

TENANT_ID = "a76fc728-0cba-45f0-a9eb-d45207e14513"
_NAME = re.compile(r"^(tag\.)?[A-Za-z0-9. -]+$")
_ENTITY_SYSTEM = {"_key", "_type", "_class"}
_REL_SYSTEM = {"_key", "_type", "_class", "_fromEntityKey", "_toEntityKey", "_mapping"}


def load_exchanges(name: str) -> list[dict[str, Any]]:
    """The recorded exchanges of one fixture file."""
    data = json.loads((FIXTURES / name).read_text())
    exchanges: list[dict[str, Any]] = data["exchanges"]
    return exchanges


def body_values(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A list response's items, or the single object (``/organization`` is recorded both ways)."""
    if "value" in body:
        values: list[dict[str, Any]] = body["value"]
        return values
    return [body]


def _legal_value(value: Any, *, arrays: bool) -> bool:
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, str):
        return len(value) <= 4096
    if isinstance(value, list) and arrays:
        kinds = {
            "bool" if isinstance(v, bool) else "num" if isinstance(v, int | float) else type(v).__name__
            for v in value
        }
        return len(kinds) <= 1 and all(_legal_value(v, arrays=False) for v in value)
    return False


def assert_j1_entity(entity: dict[str, Any]) -> None:
    """The J1 entity rules of docs/data-model.md and the sync API §4.1."""
    etype = ENTITY_TYPE_BY_NAME[entity["_type"]]
    assert entity["_class"] == etype.cls
    assert isinstance(entity["_key"], str) and len(entity["_key"]) >= 10, entity["_key"]
    assert isinstance(entity["displayName"], str) and entity["displayName"]
    assert isinstance(entity["name"], str) and entity["name"]
    for name, value in entity.items():
        if name in _ENTITY_SYSTEM:
            continue
        assert _NAME.match(name), f"{entity['_type']}: bad property name {name!r}"
        assert _legal_value(value, arrays=True), f"{entity['_type']}.{name} = {value!r}"


def assert_j1_relationship(rel: dict[str, Any]) -> None:
    """Key/type/class rules for direct relationships; mapped ones have ``_mapping``."""
    assert rel["displayName"] == rel["_class"]
    if "_mapping" in rel:
        assert "_toEntityKey" not in rel
        mapping = rel["_mapping"]
        assert rel["_key"].startswith(f"{mapping['sourceEntityKey']}|{rel['_class'].lower()}|")
    else:
        rtype = RELATIONSHIP_TYPE_BY_NAME[rel["_type"]]
        assert rel["_class"] == rtype.cls
        assert rel["_key"] == f"{rel['_fromEntityKey']}|{rtype.cls.lower()}|{rel['_toEntityKey']}"
    for name, value in rel.items():
        if name in _REL_SYSTEM:
            continue
        assert _NAME.match(name), name
        assert _legal_value(value, arrays=False), f"{rel['_type']}.{name} = {value!r}"


def assert_j1_objects(entities: Iterable[dict[str, Any]], relationships: Iterable[dict[str, Any]]) -> None:
    for entity in entities:
        assert_j1_entity(entity)
    for rel in relationships:
        assert_j1_relationship(rel)
