"""Outbox coalescing, acks that never lose a change, and full-push support."""

from __future__ import annotations

from syncd.mirror import Mirror
from tests.mirror.helpers import GROUP, ent, rel

U1, U2 = "user-00000001", "user-00000002"
G1 = "group-0000001"


async def put(m: Mirror, origin: str, owner: str, ents: list, rels: list = []) -> None:  # type: ignore[type-arg]  # noqa: B006
    r = await m.begin_round(origin, full=False)
    await r.stage(owner, ents, rels)
    await r.commit()


async def remove(m: Mirror, origin: str, owner: str) -> None:
    r = await m.begin_round(origin, full=False)
    await r.delete_owners([owner])
    await r.commit()


async def test_rows_coalesce_into_current_state(mirror: Mirror) -> None:
    for v in range(3):
        await put(mirror, "users", U1, [ent(U1, v=v)])
    assert await mirror.outbox_depth() == 3
    batch = await mirror.read_outbox(100)
    assert batch.rows == 3 and batch.entity_upserts == [ent(U1, v=2)]
    await mirror.ack_outbox(batch)
    assert await mirror.outbox_depth() == 0
    row = await mirror.get_entity_row(U1)
    assert row is not None and row.pushed_hash == row.hash


async def test_limit_reads_rows_in_seq_order(mirror: Mirror) -> None:
    for i in range(5):
        await put(mirror, "users", f"u{i}", [ent(f"user-{i:08d}")])
    batch = await mirror.read_outbox(2)
    assert [e["_key"] for e in batch.entity_upserts] == ["user-00000000", "user-00000001"]
    await mirror.ack_outbox(batch)
    assert await mirror.outbox_depth() == 3
    batch = await mirror.read_outbox(10)
    assert [e["_key"] for e in batch.entity_upserts] == [f"user-{i:08d}" for i in (2, 3, 4)]


async def test_change_between_read_and_ack_is_not_lost(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1, v=1)])
    batch = await mirror.read_outbox(100)
    await put(mirror, "users", U1, [ent(U1, v=2)])  # lands while the batch is in flight
    await mirror.ack_outbox(batch)
    assert await mirror.outbox_depth() == 1
    row = await mirror.get_entity_row(U1)
    assert row is not None and row.pushed_hash == batch.entity_hashes[U1] != row.hash
    again = await mirror.read_outbox(100)
    assert again.entity_upserts == [ent(U1, v=2)]
    await mirror.ack_outbox(again)
    assert await mirror.outbox_depth() == 0


async def test_revert_between_read_and_ack_is_pushed_again(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1, v=1)])
    await mirror.ack_outbox(await mirror.read_outbox(100))
    await put(mirror, "users", U1, [ent(U1, v=2)])
    batch = await mirror.read_outbox(100)  # sends v=2
    await put(mirror, "users", U1, [ent(U1, v=1)])  # back to what J1 had before
    await mirror.ack_outbox(batch)  # J1 now has v=2, the mirror wants v=1
    again = await mirror.read_outbox(100)
    assert again.entity_upserts == [ent(U1, v=1)]


async def test_delete_of_unpushed_entity_in_flight_is_deleted_in_j1(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1)])
    batch = await mirror.read_outbox(100)  # the create is in flight
    await remove(mirror, "users", U1)  # never pushed: the row is purged at once
    await mirror.ack_outbox(batch)  # ...but J1 has it now
    again = await mirror.read_outbox(100)
    assert again.entity_deletes == [U1]
    await mirror.ack_outbox(again)
    assert await mirror.get_entity_row(U1) is None and await mirror.outbox_depth() == 0


async def test_entity_delete_acked_after_it_reappeared(mirror: Mirror) -> None:
    key = rel(G1, U1)["_key"]
    await put(mirror, "users", U1, [ent(U1)])
    await put(mirror, "groups", G1, [ent(G1, GROUP)], [rel(G1, U1)])
    await mirror.ack_outbox(await mirror.read_outbox(100))
    await remove(mirror, "users", U1)
    batch = await mirror.read_outbox(100)
    assert batch.entity_deletes == [U1]
    await put(mirror, "users", U1, [ent(U1)])  # reappears while the delete is in flight
    await mirror.ack_outbox(batch)  # J1 deleted it and cascaded the relationship
    again = await mirror.read_outbox(100)
    assert [e["_key"] for e in again.entity_upserts] == [U1]
    assert [r["_key"] for r in again.relationship_upserts] == [key]


async def test_relationship_delete_skipped_when_endpoint_deleted(mirror: Mirror) -> None:
    key = rel(G1, U1)["_key"]
    await put(mirror, "users", U1, [ent(U1)])
    await put(mirror, "groups", G1, [ent(G1, GROUP)], [rel(G1, U1)])
    await mirror.ack_outbox(await mirror.read_outbox(100))
    await remove(mirror, "users", U1)
    await remove(mirror, "groups", G1)  # the relationship row goes too, while not live
    batch = await mirror.read_outbox(100)
    assert sorted(batch.entity_deletes) == [G1, U1] and batch.relationship_deletes == []
    await mirror.ack_outbox(batch)
    assert await mirror.get_relationship_row(key) is None
    assert await mirror.outbox_depth() == 0


async def test_iter_desired_graph_streams_live_graph(mirror: Mirror) -> None:
    r = await mirror.begin_round("users", full=False)
    for i in range(25):
        await r.stage(f"u{i}", [ent(f"user-{i:08d}")], [rel(G1, f"user-{i:08d}")])
    await r.stage("dangling", [], [rel(G1, "user-missing")])
    await r.commit()
    await put(mirror, "groups", G1, [ent(G1, GROUP)])
    chunks = [c async for c in mirror.iter_desired_graph(chunk_size=10)]
    assert [(len(e), len(rs)) for e, rs in chunks] == [(10, 0), (10, 0), (6, 0), (0, 10), (0, 10), (0, 5)]
    assert sum(len(rs) for _, rs in chunks) == 25  # the dangling relationship is not live


async def test_mark_all_pushed_and_changes_during_full_push(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1)])
    await put(mirror, "users", U2, [ent(U2)])
    max_seq = await mirror.outbox_max_seq()
    _ = [c async for c in mirror.iter_desired_graph(100)]
    await put(mirror, "users", U2, [ent(U2, v=2)])  # changes while the DIFF job runs
    await mirror.mark_all_pushed(max_seq)
    assert await mirror.outbox_depth() == 1
    row = await mirror.get_entity_row(U1)
    assert row is not None and row.pushed_hash == row.hash
    batch = await mirror.read_outbox(100)
    assert batch.entity_upserts == [ent(U2, v=2)]
    await mirror.ack_outbox(batch)
    # a full push also purges tombstones J1 no longer has
    await remove(mirror, "users", U1)
    assert (await mirror.get_entity_row(U1)) is not None
    await mirror.mark_all_pushed(await mirror.outbox_max_seq())
    assert await mirror.get_entity_row(U1) is None and await mirror.outbox_depth() == 0


async def test_a_never_pushed_key_deleted_while_a_full_push_streams_is_deleted_in_j1(mirror: Mirror) -> None:
    """The full push may have uploaded it (J1 has it) before the delete committed: the delete
    must survive `mark_all_pushed`, although `pushed_hash` says J1 never had the key."""
    await put(mirror, "users", U1, [ent(U1)], [rel(G1, U1)])
    await put(mirror, "groups", G1, [ent(G1, GROUP)])
    max_seq = await mirror.outbox_max_seq()
    uploaded = [c async for c in mirror.iter_desired_graph(100)]  # U1 goes to J1 here ...
    assert any(e["_key"] == U1 for ents, _ in uploaded for e in ents)
    await remove(mirror, "users", U1)  # ... and is deleted before the push is recorded
    await mirror.mark_all_pushed(max_seq)
    batch = await mirror.read_outbox(100)
    assert batch.entity_deletes == [U1]
    await mirror.ack_outbox(batch)
    assert await mirror.get_entity_row(U1) is None and await mirror.outbox_depth() == 0
    # outside a full push a never-pushed key leaves no tombstone (J1 never had it)
    await put(mirror, "users", U2, [ent(U2)])
    await remove(mirror, "users", U2)
    assert await mirror.get_entity_row(U2) is None
