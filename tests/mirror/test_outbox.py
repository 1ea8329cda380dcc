"""The outbox per J1 partition: snapshots coalesce into current state, acks never lose a change,
and what the mirror believes J1 holds follows each job (cascade, waiting relationships, refusals)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.kit.mirror_push import LAYOUT, ack_push, plan_push, push_all
from syncd.j1.capabilities import Behaviour, Capabilities, Finding
from syncd.mirror import UNKNOWN_HASH, Mirror, PartitionRef, RefusedObject
from tests.mirror.helpers import G1, GROUP, U1, ent, member_in_j1, rel

U2 = "user-00000002"
ENTITY_PART = next(p for p in LAYOUT.partitions() if p.kind == "e")


async def put(
    m: Mirror,
    origin: str,
    owner: str,
    ents: list[dict[str, Any]],
    rels: Sequence[dict[str, Any]] = (),
) -> None:
    r = await m.begin_round(origin, full=False)
    await r.stage(owner, ents, rels)
    await r.commit()


async def remove(m: Mirror, origin: str, owner: str) -> None:
    r = await m.begin_round(origin, full=False)
    await r.delete_owners([owner])
    await r.commit()


async def member_in_j1_then_deleted(m: Mirror) -> str:
    """`member_in_j1`, then U1 deleted (not yet pushed); returns the key of the membership."""
    key = await member_in_j1(m)
    await remove(m, "users", U1)
    return key


async def test_rows_coalesce_into_current_state_and_upserts_go_by_patch(mirror: Mirror) -> None:
    for v in range(3):
        await put(mirror, "users", U1, [ent(U1, v=v)])
    assert await mirror.outbox_depth() == 3
    push = await push_all(mirror)
    assert push.modes == ["PATCH", None]
    assert push.plans[0].entities == [ent(U1, v=2)]
    assert await mirror.outbox_depth() == 0
    row = await mirror.get_entity_row(U1)
    assert row is not None and row.pushed_hash == row.hash


async def test_patch_sends_null_for_a_property_j1_holds_and_the_entity_lost(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1, phone="123", v=1)])
    await push_all(mirror)
    await put(mirror, "users", U1, [ent(U1, v=2)])  # `phone` is gone from the entity
    push = await push_all(mirror)
    assert push.modes[0] == "PATCH"
    assert push.plans[0].entities == [{**ent(U1, v=2), "phone": None}]


async def test_change_between_snapshot_and_ack_is_not_lost(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1, v=1)])
    push = await plan_push(mirror)
    await put(mirror, "users", U1, [ent(U1, v=2)])  # lands while the job is in flight
    await ack_push(mirror, push)
    assert await mirror.outbox_depth() == 1
    row = await mirror.get_entity_row(U1)
    assert row is not None and row.pushed_hash == push.plans[0].sent[("entity", U1)][0] != row.hash
    again = await push_all(mirror)
    assert again.plans[0].entities == [ent(U1, v=2)]
    assert await mirror.outbox_depth() == 0


async def test_revert_between_snapshot_and_ack_is_pushed_again(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1, v=1)])
    await push_all(mirror)
    await put(mirror, "users", U1, [ent(U1, v=2)])
    push = await plan_push(mirror)  # sends v=2
    await put(mirror, "users", U1, [ent(U1, v=1)])  # back to what J1 had before
    await ack_push(mirror, push)  # J1 now has v=2, the mirror wants v=1
    again = await push_all(mirror)
    assert again.plans[0].entities == [ent(U1, v=1)]


async def test_delete_of_unpushed_entity_in_flight_is_deleted_in_j1(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1)])
    push = await plan_push(mirror)  # the create is in flight
    await remove(mirror, "users", U1)  # never pushed: the row is purged at once
    await ack_push(mirror, push)  # ...but J1 has it now: a tombstone remembers it
    again = await push_all(mirror)
    assert again.modes[0] == "DIFF" and again.absent("entity") == {U1}
    assert await mirror.get_entity_row(U1) is None and await mirror.outbox_depth() == 0


async def test_a_key_gone_before_its_ack_is_settled_by_a_diff(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1)])
    await remove(mirror, "users", U1)  # never acknowledged: the row is gone, its outbox rows stay
    assert await mirror.get_entity_row(U1) is None
    push = await push_all(mirror)
    # J1 may hold U1 from a push whose ack a crash lost: only a DIFF settles it for sure
    assert push.modes[0] == "DIFF" and push.plans[0].reason.startswith("a key was removed")
    assert push.absent("entity") == {U1}
    assert await mirror.outbox_depth() == 0


async def test_entity_delete_acked_after_it_reappeared(mirror: Mirror) -> None:
    key = await member_in_j1_then_deleted(mirror)
    push = await plan_push(mirror, kinds=("e",))
    assert push.modes == ["DIFF"] and push.absent("entity") == {U1}
    await put(mirror, "users", U1, [ent(U1)])  # reappears while the delete is in flight
    await ack_push(mirror, push)  # J1 deleted it and cascaded the relationship
    again = await push_all(mirror)
    assert ("entity", U1) in again.plans[0].sent
    assert ("relationship", key) in again.plans[1].sent  # re-pushed once U1 was back in J1
    assert await mirror.outbox_depth() == 0


async def test_deleted_endpoint_with_proven_cascade_needs_no_relationship_job(mirror: Mirror) -> None:
    key = await member_in_j1_then_deleted(mirror)
    push = await push_all(mirror, cascade=True)
    assert push.modes == ["DIFF", None]
    row = await mirror.get_relationship_row(key)
    assert row is not None and row.pushed_hash is None and not row.deleted  # J1 dropped it, the row stays
    assert await mirror.get_entity_row(U1) is None  # tombstone purged
    assert await mirror.outbox_depth() == 0


async def test_deleted_endpoint_with_unknown_cascade_is_settled_by_its_partition(mirror: Mirror) -> None:
    key = await member_in_j1_then_deleted(mirror)
    entity_push = await plan_push(mirror, cascade=None, kinds=("e",))
    await ack_push(mirror, entity_push)
    row = await mirror.get_relationship_row(key)
    assert row is not None and row.pushed_hash == UNKNOWN_HASH  # J1 may still hold it, dangling
    relationship_push = await plan_push(mirror, cascade=None, kinds=("r",))
    plan = relationship_push.plans[0]
    assert plan.mode == "DIFF" and ("relationship", key) in plan.absent
    assert plan.expectation.relationships_deleted == (0, 1)  # gone already or deleted now: both fine
    await ack_push(mirror, relationship_push)
    row = await mirror.get_relationship_row(key)
    assert row is not None and row.pushed_hash is None
    assert await mirror.outbox_depth() == 0


async def test_deleted_endpoint_without_cascade_deletes_its_dangling_relationship(mirror: Mirror) -> None:
    key = await member_in_j1_then_deleted(mirror)
    await ack_push(mirror, await plan_push(mirror, cascade=False, kinds=("e",)))
    row = await mirror.get_relationship_row(key)
    assert row is not None and row.pushed_hash == row.hash  # J1 keeps it, for sure: delete it
    caps = Capabilities(
        {Behaviour.CROSS_SCOPE_ADDITIVE: Finding(True, ""), Behaviour.CROSS_SCOPE_DELETES: Finding(True, "")}
    )
    plan = (await plan_push(mirror, caps=caps, cascade=False, kinds=("r",))).plans[0]
    assert plan.mode == "CROSS_SCOPE" and plan.delete_relationships == [{"_key": key}]
    assert plan.expectation.relationships_deleted == (1, 1)
    documented = (await plan_push(mirror, cascade=False, kinds=("r",))).plans[0]
    assert documented.mode == "DIFF" and documented.expectation.relationships_deleted == (1, 1)


async def test_relationship_waits_for_its_endpoint_to_be_in_j1(mirror: Mirror) -> None:
    key = rel(G1, U1)["_key"]
    await put(mirror, "groups", G1, [ent(G1, GROUP)], [rel(G1, U1)])  # membership seen before its user
    await push_all(mirror)
    row = await mirror.get_relationship_row(key)
    assert row is not None and row.pushed_hash is None
    await put(mirror, "users", U1, [ent(U1)])
    push = await plan_push(mirror, kinds=("r",))
    assert ("relationship", key) not in push.plans[0].sent  # U1 is not in J1 yet
    await ack_push(mirror, push)
    await push_all(mirror)  # U1 reaches J1, which queues the relationship that waited for it
    row = await mirror.get_relationship_row(key)
    assert row is not None and row.pushed_hash == row.hash
    assert await mirror.outbox_depth() == 0


async def test_explicit_deletes_only_when_proven(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1)])
    await put(mirror, "users", U2, [ent(U2)])
    await push_all(mirror)
    await remove(mirror, "users", U1)
    documented = await plan_push(mirror, kinds=("e",))
    assert documented.modes == ["DIFF"]
    caps = Capabilities({Behaviour.EXPLICIT_ENTITY_DELETES: Finding(True, "probed")})
    fast = await plan_push(mirror, caps=caps, kinds=("e",))
    plan = fast.plans[0]
    assert plan.mode == "PATCH" and plan.delete_entities == [{"_key": U1}] and plan.entities == []
    assert plan.expectation.entities_deleted == (1, 1)
    assert plan.behaviours == [Behaviour.EXPLICIT_ENTITY_DELETES]


async def test_partial_types_are_neither_deleted_nor_settled(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1)])
    await push_all(mirror)
    await remove(mirror, "users", U1)
    push = await push_all(mirror, partial=("azure_user",))
    assert U1 not in push.absent("entity")
    row = await mirror.get_entity_row(U1)
    assert row is not None and row.deleted and row.pushed_hash is not None  # J1 keeps it for now
    assert await mirror.outbox_depth() == 1  # the delete waits for the origin to be complete
    await push_all(mirror)
    assert await mirror.get_entity_row(U1) is None and await mirror.outbox_depth() == 0


async def test_a_partition_flagged_again_during_its_diff_stays_flagged(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1)])
    ref = PartitionRef(ENTITY_PART.scope(LAYOUT.base), "e", 0, 0)
    await mirror.mark_partitions([ref], needs_diff=True, uncertain=True)
    push = await plan_push(mirror, kinds=("e",))
    assert push.modes == ["DIFF"] and push.plans[0].expectation.entities_deleted is None  # doubtful
    await mirror.mark_partitions([ref], needs_diff=True, uncertain=False)  # e.g. a new full resync
    await ack_push(mirror, push)
    state = await mirror.partition_state(ref.scope)
    assert state is not None and state.needs_diff
    await push_all(mirror)
    assert await mirror.partition_state(ref.scope) is None


async def test_refused_object_is_left_out_until_it_changes(mirror: Mirror) -> None:
    await put(mirror, "users", U1, [ent(U1, v=1)])
    row = await mirror.get_entity_row(U1)
    assert row is not None
    await mirror.set_aside(
        [RefusedObject("entity", U1, row.hash, "azure_user", "s", "INVALID_ENTITY", "bad", 0.0)]
    )
    push = await push_all(mirror)
    assert push.modes == [None, None]  # nothing to send: the only change is refused
    assert await mirror.outbox_depth() == 0 and await mirror.refused_count() == 1
    await put(mirror, "users", U1, [ent(U1, v=2)])  # fixed at the source: tried again
    push = await push_all(mirror)
    assert push.plans[0].entities == [ent(U1, v=2)]
    assert await mirror.refused_count() == 0
