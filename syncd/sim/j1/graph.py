"""The stored graph of one J1 account, with the indexes that keep finalize proportional to the job.

syncd spreads its data over thousands of small scopes and DIFFs them one at a time, so nothing on a
finalize path may scan the account: scope membership, a relationship's endpoints and the
mapped-relationship target lookup are all indexed here and kept up to date on every write. Every
mutation of the graph goes through `put_*` / `remove_*` so the indexes cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from syncd.sim.j1.validation import JsonObj

DEFAULT_INDEXES = ("_key", "_type", "_class")
"""Entity properties indexed from the start (reference by key, J1QL selectors, OVERRIDE look-ups);
other properties get an index the first time a mapping filters on them."""


def index_keys(value: Any) -> list[Hashable]:
    """Index entries for a property value: one per scalar (list elements each), type-tagged so
    `True` and `1` stay apart the way J1 (JSON) keeps them apart."""
    items = value if isinstance(value, list) else [value]
    keys: list[Hashable] = []
    for item in items:
        if isinstance(item, bool):
            keys.append(("b", item))
        elif isinstance(item, int | float):
            keys.append(("n", item))
        elif isinstance(item, str):
            keys.append(("s", item))
    return keys


# An index maps keys (a scope, an `_id`, a tagged property value) to the ids holding them.
Index = dict[Any, set[str]]


def _add(index: Index, key: Hashable, member: str) -> None:
    index.setdefault(key, set()).add(member)


def _discard(index: Index, key: Hashable, member: str) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(member)
        if not members:
            del index[key]


Entries = Callable[[JsonObj], Iterable[tuple[Index, Hashable]]]
"""The index entries (index, key) of a stored object: every index it must be found in."""


def _put(store: dict[str, JsonObj], entries: Entries, stored: JsonObj) -> None:
    """Store an object by `_id`, moving its index entries from the old version to the new one."""
    oid = str(stored["_id"])
    old = store.get(oid)
    if old is not None:
        for index, key in entries(old):
            _discard(index, key, oid)
    store[oid] = stored
    for index, key in entries(stored):
        _add(index, key, oid)


def _remove(store: dict[str, JsonObj], entries: Entries, oid: str) -> JsonObj | None:
    """Drop an object and its index entries."""
    old = store.pop(oid, None)
    if old is not None:
        for index, key in entries(old):
            _discard(index, key, oid)
    return old


@dataclass
class AccountGraph:
    """Entities and relationships by `_id`, plus indexes by scope, endpoint and property value."""

    entities: dict[str, JsonObj] = field(default_factory=dict)
    relationships: dict[str, JsonObj] = field(default_factory=dict)
    raw_data: dict[str, list[Any]] = field(default_factory=dict)
    entity_ids_by_scope: dict[str, set[str]] = field(default_factory=dict)
    relationship_ids_by_scope: dict[str, set[str]] = field(default_factory=dict)
    relationship_ids_by_entity: dict[str, set[str]] = field(default_factory=dict)
    """Entity `_id` → ids of relationships naming it as an endpoint (kept while dangling too)."""
    property_index: dict[str, dict[Hashable, set[str]]] = field(
        default_factory=lambda: {name: {} for name in DEFAULT_INDEXES}
    )

    # -- entities ---------------------------------------------------------------------------------
    def put_entity(self, stored: JsonObj) -> None:
        """Insert or replace an entity (its `_id` and `_scope` are set)."""
        _put(self.entities, self._entity_entries, stored)

    def remove_entity(self, eid: str) -> JsonObj | None:
        """Drop an entity and its raw data; its relationships are the caller's decision."""
        self.raw_data.pop(eid, None)
        return _remove(self.entities, self._entity_entries, eid)

    def _entity_entries(self, entity: JsonObj) -> Iterator[tuple[Index, Hashable]]:
        """The index entries an entity has: its scope and each indexed property value."""
        yield self.entity_ids_by_scope, entity["_scope"]
        for name, index in self.property_index.items():
            for key in index_keys(entity.get(name)):
                yield index, key

    def ensure_index(self, name: str) -> dict[Hashable, set[str]]:
        """The value index of an entity property, built once and then maintained by every write."""
        index = self.property_index.get(name)
        if index is None:
            index = {}
            for eid, entity in self.entities.items():
                for key in index_keys(entity.get(name)):
                    _add(index, key, eid)
            self.property_index[name] = index
        return index

    def entity_ids_with(self, name: str, value: Any) -> set[str]:
        """Ids of entities whose property `name` equals the scalar `value` or, for a list-valued
        property, contains it (a superset for callers that then compare exactly)."""
        if isinstance(value, list):
            raise TypeError("entity_ids_with takes a scalar")
        keys = index_keys(value)
        if not keys:
            return set()
        return set(self.ensure_index(name).get(keys[0], ()))

    def entity_ids_in_scope(self, scope: str) -> set[str]:
        """A copy of the scope's entity ids (safe to iterate while deleting)."""
        return set(self.entity_ids_by_scope.get(scope, ()))

    # -- relationships ----------------------------------------------------------------------------
    def put_relationship(self, stored: JsonObj) -> None:
        """Insert or replace a relationship (its `_id`, `_scope` and endpoint ids are set)."""
        _put(self.relationships, self._relationship_entries, stored)

    def remove_relationship(self, rid: str) -> JsonObj | None:
        """Drop a relationship."""
        return _remove(self.relationships, self._relationship_entries, rid)

    def _relationship_entries(self, rel: JsonObj) -> Iterator[tuple[Index, Hashable]]:
        """The index entries a relationship has: its scope and each endpoint's `_id`."""
        yield self.relationship_ids_by_scope, rel["_scope"]
        for eid in _endpoint_ids(rel):
            yield self.relationship_ids_by_entity, eid

    def relationship_ids_in_scope(self, scope: str) -> set[str]:
        """A copy of the scope's relationship ids."""
        return set(self.relationship_ids_by_scope.get(scope, ()))

    def relationship_ids_of(self, eid: str) -> set[str]:
        """A copy of the ids of relationships with `eid` as an endpoint."""
        return set(self.relationship_ids_by_entity.get(eid, ()))

    # -- views ------------------------------------------------------------------------------------
    def scopes_with_prefix(self, prefix: str) -> Iterator[str]:
        """Scopes holding anything whose name starts with `prefix`."""
        seen = set(self.entity_ids_by_scope) | set(self.relationship_ids_by_scope)
        return (scope for scope in sorted(seen) if scope.startswith(prefix))

    def in_scopes(self, scopes: Iterable[str]) -> tuple[list[JsonObj], list[JsonObj]]:
        """Entities and relationships of the given scopes."""
        entities: list[JsonObj] = []
        relationships: list[JsonObj] = []
        for scope in scopes:
            entities.extend(self.entities[i] for i in self.entity_ids_by_scope.get(scope, ()))
            relationships.extend(self.relationships[i] for i in self.relationship_ids_by_scope.get(scope, ()))
        return entities, relationships


def _endpoint_ids(rel: JsonObj) -> set[str]:
    return {str(rel[name]) for name in ("_fromEntityId", "_toEntityId") if rel.get(name) is not None}
