"""How syncd's graph is spread over many small J1 scopes (partitions), so that a DIFF job can carry
a deletion or a relationship change without re-sending the whole tenant.

Why partitions: J1 documents deletion only through a DIFF job (anything in the job's scope that
was not uploaded is deleted) and says PATCH "never deletes" and accepts no relationships. A DIFF
of one small partition is therefore the cheapest *documented* way to delete an entity or change a
relationship. Keys are spread by a stable hash so a partition never needs to know the tenant.

* Entity partitions (``e``) hold entities, and the mapped relationships (user → Person) whose
  source entity they hold: J1 resolves a mapping's ``sourceEntityKey`` in the job's own scope.
* Relationship partitions (``r``) hold explicit relationships; each endpoint is named by ``_key``,
  ``_scope`` and ``_source`` (J1's "relationships across scopes" guide).

A partition is a contiguous range of the 32-bit key hash (its top ``bits`` bits), so doubling the
partition count splits each partition in two. Scope names carry the count, so a re-sized layout
lives in new scopes and the old ones are emptied once the new ones are complete.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from syncd.mirror.keyhash import key_hash

PartKind = Literal["e", "r"]
ENTITY_PART: PartKind = "e"
RELATIONSHIP_PART: PartKind = "r"
HASH_BITS = 32
MAX_BITS = 20
TARGET_OBJECTS = 100
"""Partitions are sized so the mean holds at most this many objects: a DIFF of one then uploads
well under 200 objects even for the fullest bucket of a large tenant."""
SPLIT_AT = 180
"""A full resync doubles a kind's partition count when its fullest partition exceeds this."""
SOURCE = "api"
"""The sync jobs' ``source``; endpoints in other scopes are named with it (``_fromEntitySource``)."""

_SCOPE_RE = re.compile(r"^(?P<base>.+)-(?P<kind>[er])(?P<count>\d+)-(?P<bucket>\d+)$")


def bits_for(count: int, target: int = TARGET_OBJECTS) -> int:
    """The fewest hash bits whose partitions hold at most ``target`` objects on average."""
    bits = 0
    while bits < MAX_BITS and count > target << bits:
        bits += 1
    return bits


@dataclass(frozen=True, order=True)
class Partition:
    """One hash bucket of one kind: ``bucket`` of ``2 ** bits`` buckets."""

    kind: PartKind
    bits: int
    bucket: int

    @property
    def hash_range(self) -> tuple[int, int]:
        """Inclusive range of key hashes in this partition."""
        shift = HASH_BITS - self.bits
        return self.bucket << shift, ((self.bucket + 1) << shift) - 1

    def contains(self, khash: int) -> bool:
        lo, hi = self.hash_range
        return lo <= khash <= hi

    def scope(self, base: str) -> str:
        """The J1 scope of this partition, e.g. ``syncd-microsoft-365-<tenant>-e256-17``."""
        return f"{base}-{self.kind}{1 << self.bits}-{self.bucket}"


@dataclass(frozen=True)
class Layout:
    """Where every object of the graph lives in J1: a base scope name and two partition counts.

    ``legacy`` is the layout of syncd before partitions: everything in the single scope ``base``.
    It is only ever emptied (by the migration), never written.
    """

    base: str
    entity_bits: int = 0
    relationship_bits: int = 0
    legacy: bool = False

    def bits(self, kind: PartKind) -> int:
        return self.entity_bits if kind == ENTITY_PART else self.relationship_bits

    def partition_of(self, kind: PartKind, khash: int) -> Partition:
        bits = self.bits(kind)
        return Partition(kind, bits, khash >> (HASH_BITS - bits) if bits else 0)

    def entity_scope(self, entity_key: str) -> str:
        """The scope holding an entity (a relationship names it as its endpoint's scope)."""
        return self.partition_of(ENTITY_PART, key_hash(entity_key)).scope(self.base)

    def partitions(self, kind: PartKind | None = None) -> Iterator[Partition]:
        """Every partition, entity partitions first (endpoints exist before relationships)."""
        kinds: tuple[PartKind, ...] = (ENTITY_PART, RELATIONSHIP_PART) if kind is None else (kind,)
        for k in kinds:
            bits = self.bits(k)
            for bucket in range(1 << bits):
                yield Partition(k, bits, bucket)

    def scopes(self) -> list[str]:
        """Every scope this layout writes (the legacy layout: its single scope)."""
        if self.legacy:
            return [self.base]
        return [p.scope(self.base) for p in self.partitions()]

    def partition_count(self) -> int:
        return 1 if self.legacy else (1 << self.entity_bits) + (1 << self.relationship_bits)

    def scope_prefix(self) -> str:
        """Every partition scope starts with this (J1QL: ``_scope ^= '<prefix>'``)."""
        return f"{self.base}-"

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "entity_bits": self.entity_bits,
            "relationship_bits": self.relationship_bits,
            "legacy": self.legacy,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Layout:
        return cls(
            base=str(data["base"]),
            entity_bits=int(data.get("entity_bits", 0)),
            relationship_bits=int(data.get("relationship_bits", 0)),
            legacy=bool(data.get("legacy", False)),
        )

    @classmethod
    def sized(cls, base: str, entity_objects: int, relationship_objects: int) -> Layout:
        """A layout sized for a tenant with these object counts (entities + mapped; explicit rels)."""
        return cls(base, bits_for(entity_objects), bits_for(relationship_objects))

    def grown(self, fullest: Mapping[PartKind, int]) -> Layout:
        """This layout, with the partition count doubled for each kind whose fullest partition is
        past ``SPLIT_AT`` (the tenant grew), or itself when nothing needs to grow."""
        return Layout(
            self.base,
            _grown_bits(self.entity_bits, fullest.get(ENTITY_PART, 0)),
            _grown_bits(self.relationship_bits, fullest.get(RELATIONSHIP_PART, 0)),
        )


def _grown_bits(bits: int, fullest: int) -> int:
    """One more bit per doubling until the fullest partition's share is at most ``SPLIT_AT``."""
    grown = bits
    while fullest > SPLIT_AT << (grown - bits) and grown < MAX_BITS:
        grown += 1
    return grown


def parse_scope(scope: str) -> tuple[str, Partition] | None:
    """(base, partition) of a partition scope name, or None for any other scope."""
    match = _SCOPE_RE.match(scope)
    if match is None:
        return None
    count = int(match["count"])
    if count <= 0 or count & (count - 1):
        return None
    bits = count.bit_length() - 1
    bucket = int(match["bucket"])
    if bucket >= count:
        return None
    kind: PartKind = ENTITY_PART if match["kind"] == "e" else RELATIONSHIP_PART
    return match["base"], Partition(kind, bits, bucket)
