"""Which partitions a push takes up: those of the layout being written, never a leftover state of
another base scope (e.g. from before a `[j1] scope` change) that names the same partition."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from syncd.j1.client import SyncApiClient
from syncd.j1.partitions import ENTITY_PART, Layout, Partition
from syncd.j1.writer import J1Writer
from syncd.mirror import Mirror, PartitionRef


async def test_a_flagged_partition_of_another_base_is_not_pushed_into_this_one(tmp_path: Path) -> None:
    mirror = await Mirror.open(tmp_path / "mirror.db")
    try:
        layout = Layout("syncd-new", entity_bits=1, relationship_bits=1)
        same = Partition(ENTITY_PART, 1, 0)
        refs = [
            PartitionRef(same.scope(base), ENTITY_PART, 1, 0) for base in ("syncd-old", layout.base)
        ]
        await mirror.mark_partitions(refs, needs_diff=True, uncertain=False)
        # the writer never talks to J1 to decide what is due
        writer = J1Writer(cast(SyncApiClient, None), mirror, scope=layout.base)
        due = await writer._due(layout, ENTITY_PART)
        assert [(p, s.scope if s else None) for p, s in due] == [(same, same.scope(layout.base))]
    finally:
        await mirror.close()
