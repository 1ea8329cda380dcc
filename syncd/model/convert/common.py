"""Shared pieces of the converters: context, timestamps, property sanitizing, entity and
relationship constructors.

Everything here is pure: the same Graph JSON always gives the same J1 objects, which is what
lets the mirror diff by content hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from syncd.model.schema import ACCOUNT, EntityType, RelationshipType

Entity = dict[str, Any]
Relationship = dict[str, Any]

MAX_STRING_LENGTH = 4096
"""J1's search indexer limit for one property value."""

SCRIPT_CONTENT_FIELDS: frozenset[str] = frozenset(
    {"scriptContent", "detectionScriptContent", "remediationScriptContent"}
)
"""Script bodies often embed credentials: dropped everywhere, at any depth, by the sanitizer."""

_DATETIME_SUFFIX = "DateTime"
_FRACTION = re.compile(r"^(?P<head>[^.]*T\d{2}:\d{2}:\d{2})\.(?P<frac>\d+)(?P<tail>.*)$")
_PROPERTY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9. -]*$")
_DROP = object()


@dataclass(frozen=True)
class ConvertContext:
    """What a converter needs to know about the integration instance (never changes per object)."""

    tenant_id: str
    account_name: str | None = None
    tag_with_account_name: bool = False
    map_users_to_persons: bool = True
    person_match_keys: tuple[str, ...] = ("email",)
    person_skip_target_creation: bool = True


@dataclass
class Derived:
    """What one Graph object turns into. Keys are de-duplicated (first one wins) because the
    same link can be named by several status records of one object."""

    entities: list[Entity] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._seen.update(f"e:{e['_key']}" for e in self.entities)
        self._seen.update(f"r:{r['_key']}" for r in self.relationships)

    def add_entity(self, entity: Entity) -> None:
        """Append unless an entity with the same ``_key`` is already there."""
        key = f"e:{entity['_key']}"
        if key not in self._seen:
            self._seen.add(key)
            self.entities.append(entity)

    def add_relationship(self, relationship: Relationship) -> None:
        """Append unless a relationship with the same ``_key`` is already there."""
        key = f"r:{relationship['_key']}"
        if key not in self._seen:
            self._seen.add(key)
            self.relationships.append(relationship)

    def extend(self, other: Derived) -> None:
        """Merge another result into this one (same de-duplication)."""
        for entity in other.entities:
            self.add_entity(entity)
        for relationship in other.relationships:
            self.add_relationship(relationship)


def account_key(ctx: ConvertContext) -> str:
    """The account entity's key: stable per tenant, so every #1/#2 edge can be built alone."""
    return f"{ACCOUNT.type}:{ctx.tenant_id}"


def to_epoch_ms(value: object) -> int | None:
    """ISO 8601 (Graph: ``Z``, up to 7 fraction digits, or a date) -> epoch ms.

    Graph's "never" (``0001-01-01T00:00:00Z``), empty strings and unparsable values give None.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    match = _FRACTION.match(text)
    if match:  # Python parses at most 6 fraction digits; Graph sends 7.
        text = f"{match['head']}.{match['frac'][:6].ljust(6, '0')}{match['tail']}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.year <= 1:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def truncate(value: str) -> str:
    """J1 rejects longer values; cut like the J1 SDK does (4093 chars + ``...``)."""
    if len(value) <= MAX_STRING_LENGTH:
        return value
    return value[: MAX_STRING_LENGTH - 3] + "..."


def content_sha256(content: str) -> str:
    """Hex sha256 of a script body. Graph sends script bodies base64-encoded (Edm.Binary), so the
    decoded bytes are hashed (the value ``sha256sum script.ps1`` gives); a value that is not valid
    base64 is hashed as UTF-8 text."""
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        data = content.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def odata_type_name(value: object) -> str | None:
    """``#microsoft.graph.iosCompliancePolicy`` -> ``iosCompliancePolicy``."""
    if not isinstance(value, str) or not value:
        return None
    return value.rsplit(".", 1)[-1].lstrip("#")


def _valid_name(name: object) -> bool:
    """J1's data-model name pattern (``[A-Za-z0-9. -]+``): this rejects ``_``/``@`` prefixes and
    OData annotations (``@odata.type``, ``members@delta``, ``#microsoft.graph.x`` actions)."""
    return isinstance(name, str) and bool(_PROPERTY_NAME.match(name)) and name not in SCRIPT_CONTENT_FIELDS


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "str"


def _as_string(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _scalar_or_array(value: object) -> object:
    """A J1-legal value, or ``_DROP``."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return truncate(value)
    if isinstance(value, list | tuple):
        items = [item for item in value if item is not None]
        if any(isinstance(item, dict | list | tuple) for item in items):
            if all(isinstance(item, dict) and isinstance(item.get("id"), str) for item in items):
                return [truncate(item["id"]) for item in items]
            return _DROP
        kinds = {_kind(item) for item in items}
        if len(kinds) > 1:
            return [truncate(_as_string(item)) for item in items]
        return [truncate(item) if isinstance(item, str) else item for item in items]
    return _DROP


def _leaf_name(name: str, value: object, convert_datetimes: bool) -> tuple[str, object]:
    if (
        convert_datetimes
        and name.endswith(_DATETIME_SUFFIX)
        and len(name) > len(_DATETIME_SUFFIX)
        and (value is None or isinstance(value, str))
    ):
        return name[: -len(_DATETIME_SUFFIX)] + "On", to_epoch_ms(value)
    return name, value


def sanitize_properties(
    raw: Mapping[str, Any], *, convert_datetimes: bool = False, flatten: bool = True
) -> dict[str, Any]:
    """Make a property bag J1-legal.

    - names outside J1's pattern (``_``/``@`` prefixes, OData annotations holding ``@``/``#``)
      are dropped, as are script bodies;
    - a nested object is flattened one level into ``parent.child`` names (deeper levels and
      everything when ``flatten`` is False are dropped);
    - strings are cut to 4096 chars; arrays lose ``null`` items, mixed-type arrays become string
      arrays, arrays of objects become their ``id`` list or are dropped;
    - ``null`` is kept (it clears a value in J1);
    - with ``convert_datetimes``, ``xxxDateTime`` becomes ``xxxOn`` in epoch ms.
    """
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if not _valid_name(name):
            continue
        if isinstance(value, Mapping):
            if not flatten:
                continue
            for child, child_value in value.items():
                if not _valid_name(child) or isinstance(child_value, Mapping):
                    continue
                leaf, leaf_value = _leaf_name(child, child_value, convert_datetimes)
                clean = _scalar_or_array(leaf_value)
                if clean is not _DROP:
                    out[f"{name}.{leaf}"] = clean
            continue
        leaf, leaf_value = _leaf_name(name, value, convert_datetimes)
        clean = _scalar_or_array(leaf_value)
        if clean is not _DROP:
            out[leaf] = clean
    return out


def graph_properties(raw: Mapping[str, Any], *, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """A Graph object's own properties as J1 properties (timestamps to ``...On``), minus
    ``exclude`` (embedded sub-resources and values that get special handling)."""
    skip = set(exclude)
    return sanitize_properties(
        {name: value for name, value in raw.items() if name not in skip}, convert_datetimes=True
    )


def make_entity(etype: EntityType, key: str, props: Mapping[str, Any], ctx: ConvertContext) -> Entity:
    """An entity of ``etype``: sanitized ``props`` plus the J1 system/required properties."""
    if not key:
        raise ValueError(f"{etype.type}: empty _key")
    clean = sanitize_properties(props)
    display = clean.get("displayName") or clean.get("name") or key
    display_name = display if isinstance(display, str) else str(display)
    name = clean.get("name")
    entity: Entity = {
        "_key": key,
        "_type": etype.type,
        "_class": etype.cls,
        "displayName": display_name,
        "name": name if isinstance(name, str) and name else display_name,
    }
    for prop, value in clean.items():
        if prop not in entity:
            entity[prop] = value
    if ctx.tag_with_account_name and ctx.account_name:
        entity["tag.AccountName"] = ctx.account_name
    return entity


def relationship_key(cls: str, from_key: str, to_key: str) -> str:
    """The J1 SDK key rule ``<fromKey>|<class lower>|<toKey>``."""
    return f"{from_key}|{cls.lower()}|{to_key}"


def make_relationship(
    rtype: RelationshipType, from_key: str, to_key: str, props: Mapping[str, Any] | None = None
) -> Relationship:
    """A direct relationship of ``rtype``; custom props must be scalars (the persister refuses
    arrays and objects on relationships)."""
    if not from_key or not to_key:
        raise ValueError(f"{rtype.type}: empty endpoint key")
    rel: Relationship = {
        "_key": relationship_key(rtype.cls, from_key, to_key),
        "_type": rtype.type,
        "_class": rtype.cls,
        "_fromEntityKey": from_key,
        "_toEntityKey": to_key,
        "displayName": rtype.cls,
    }
    for prop, value in sanitize_properties(props or {}, flatten=False).items():
        if prop not in rel and not isinstance(value, list):
            rel[prop] = value
    return rel


def str_or_none(value: object) -> str | None:
    """A non-empty string, else None (Graph uses ``""`` for "not set" on many Intune fields)."""
    return value if isinstance(value, str) and value else None


def embedded(raw: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """An embedded sub-resource list (``$expand`` shape); tolerates absence and ``null``."""
    value = raw.get(name)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]
