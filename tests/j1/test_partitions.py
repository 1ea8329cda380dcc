"""Partition layout: stable placement, sizes that keep one partition's DIFF small, growth by splits."""

from __future__ import annotations

import random
from collections import Counter

from syncd.j1.partitions import (
    ENTITY_PART,
    RELATIONSHIP_PART,
    SPLIT_AT,
    TARGET_OBJECTS,
    Layout,
    Partition,
    bits_for,
    parse_scope,
)
from syncd.mirror.keyhash import key_hash, relationship_hash


def test_key_hash_is_stable_across_runs_and_platforms() -> None:
    # pinned values: a change would move every object to another scope on upgrade
    assert key_hash("a") == 0xCA234C55
    assert key_hash("microsoft_365_user:0001") == 0x92B0D0C6
    assert 0 <= key_hash("x" * 1000) < 2**32
    assert relationship_hash("u|is|person:x", "u", None) == key_hash("u")  # a mapping lives with its user
    assert relationship_hash("g|has|u", "g", "u") == key_hash("g|has|u")


def test_every_hash_falls_in_exactly_one_partition() -> None:
    layout = Layout("base", 3, 4)
    for khash in (0, 1, 2**31, 2**32 - 1, key_hash("k1"), key_hash("k2")):
        for kind in (ENTITY_PART, RELATIONSHIP_PART):
            owners = [p for p in layout.partitions(kind) if p.contains(khash)]
            assert owners == [layout.partition_of(kind, khash)]


def test_sizing_keeps_the_fullest_partition_under_200_objects() -> None:
    rng = random.Random(7)
    for count in (1, 99, 101, 5_000, 60_000):
        bits = bits_for(count)
        assert count <= TARGET_OBJECTS << bits and (bits == 0 or count > TARGET_OBJECTS << (bits - 1))
        keys = [f"key-{rng.getrandbits(64):x}" for _ in range(count)]
        layout = Layout("b", bits, bits)
        fullest = max(Counter(layout.partition_of(ENTITY_PART, key_hash(k)) for k in keys).values())
        assert fullest <= 200, (count, bits, fullest)


def test_doubling_splits_each_partition_in_two() -> None:
    small, big = Layout("b", 2, 2), Layout("b", 3, 3)
    for khash in (key_hash(f"k{i}") for i in range(500)):
        parent = small.partition_of(ENTITY_PART, khash)
        child = big.partition_of(ENTITY_PART, khash)
        assert child.bucket // 2 == parent.bucket


def test_grown_doubles_only_the_kind_that_overflowed() -> None:
    layout = Layout("b", 4, 6)
    assert layout.grown({ENTITY_PART: SPLIT_AT, RELATIONSHIP_PART: 10}) == layout
    grown = layout.grown({ENTITY_PART: SPLIT_AT * 3, RELATIONSHIP_PART: 10})
    assert (grown.entity_bits, grown.relationship_bits) == (6, 6)


def test_scope_names_round_trip_and_other_scopes_are_not_partitions() -> None:
    layout = Layout("syncd-microsoft-365-t", 5, 7)
    for part in [*layout.partitions(ENTITY_PART)][:3] + [*layout.partitions(RELATIONSHIP_PART)][-3:]:
        scope = part.scope(layout.base)
        assert scope.startswith(layout.scope_prefix())
        assert parse_scope(scope) == (layout.base, part)
    for other in ("syncd-microsoft-365-t", "x-e3-1", "x-e4-4", "x-q4-1", "syncd-microsoft-365-t-probe-ab-a"):
        assert parse_scope(other) is None
    assert parse_scope("base-with-dashes-e8-3") == ("base-with-dashes", Partition(ENTITY_PART, 3, 3))


def test_legacy_layout_is_its_single_scope() -> None:
    legacy = Layout("syncd-microsoft-365-t", legacy=True)
    assert legacy.scopes() == ["syncd-microsoft-365-t"] and legacy.partition_count() == 1
    assert Layout.from_json(legacy.to_json()) == legacy
    assert len(Layout("b", 2, 3).scopes()) == 4 + 8
