"""Staging + commit semantics: what a round changes, and which outbox rows it appends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bench.kit.mirror_push import Push, plan_push, push_all
from syncd.mirror import Change, CommitResult, Mirror
from syncd.mirror.types import AlertRow
from tests.mirror.helpers import (
    G1,
    GROUP,
    GROUP_HAS_MEMBER,
    GROUP_HAS_USER,
    MEMBER,
    U1,
    USER,
    ent,
    mapped,
    member_in_j1,
    rel,
)

U2, U3 = "user-00000002", "user-00000003"
G2 = "group-0000002"


async def commit(
    m: Mirror, origin: str, *ops: tuple[Any, ...], full: bool = False, **kw: Any
) -> CommitResult:
    r = await m.begin_round(origin, full=full)
    for op in ops:
        name, *args = op
        if name == "stage":
            owner, ents, rels, *rest = args
            await r.stage(owner, ents, rels, replace=bool(rest and rest[0]))
        else:
            await getattr(r, name)(*args)
    return await r.commit(**kw)


async def drain(m: Mirror) -> Push:
    """Push everything pending (one-partition layout) and ack it as if J1 did exactly that."""
    return await push_all(m)


async def test_create_update_noop_delete(mirror: Mirror) -> None:
    res = await commit(mirror, "users", ("stage", U1, [ent(U1)], []), ("stage", U2, [ent(U2)], []))
    assert [(c.op, c.key) for c in res.changes] == [("created", U1), ("created", U2)]
    assert res.counts["entities_created"] == 2 and res.outbox_added == 2
    assert res.changes[0].old is None and res.changes[0].new == ent(U1)

    res = await commit(mirror, "users", ("stage", U1, [ent(U1)], []))
    assert res.changes == [] and res.outbox_added == 0  # same hash: no-op

    res = await commit(mirror, "users", ("stage", U1, [ent(U1, jobTitle="CEO")], []))
    (change,) = res.changes
    assert (change.op, change.old, change.new) == ("updated", ent(U1), ent(U1, jobTitle="CEO"))
    assert res.outbox_added == 1

    res = await commit(mirror, "users", ("delete_owners", [U2]))
    (change,) = res.changes
    assert (change.op, change.key, change.old, change.new) == ("deleted", U2, ent(U2), None)
    assert await mirror.get_entity(U2) is None
    # never acknowledged: the row is gone, but J1 may hold U2 from a push whose ack was lost in a
    # crash, so the next push of its partition is a DIFF that leaves it out (deleted if there)
    assert await mirror.get_entity_row(U2) is None
    push = await plan_push(mirror, kinds=("e",))
    assert push.modes == ["DIFF"] and push.uploaded("entity") == [U1] and push.absent("entity") == {U2}


async def test_staged_twice_merges_and_nothing_changes_before_commit(mirror: Mirror) -> None:
    r = await mirror.begin_round("users", full=False)
    await r.stage(U1, [ent(U1, a=1, b=1)])
    await r.stage(U1, [{"_key": U1, "_type": USER, "b": 2, "c": None}])
    assert await mirror.count_entities() == 0  # staging does not change state
    await r.commit()
    assert await mirror.get_entity(U1) == {**ent(U1), "a": 1, "b": 2, "c": None}


async def test_merge_across_flushes(mirror: Mirror) -> None:
    r = await mirror.begin_round("users", full=False)
    await r.stage(U1, [ent(U1, a=1)])
    for i in range(3000):  # forces buffered pages to be written in between
        await r.stage(f"user-{i:08d}x", [ent(f"user-{i:08d}x")], [rel(G1, f"user-{i:08d}x")])
    await r.stage(U1, [{"_key": U1, "_type": USER, "b": 2}])
    await r.commit()
    assert await mirror.get_entity(U1) == {**ent(U1), "a": 1, "b": 2}
    assert await mirror.count_entities() == 3001
    assert await mirror.count_relationships() == 3000


async def test_replace_owner_rows(mirror: Mirror) -> None:
    await commit(mirror, "groups", ("stage", G1, [ent(G1, GROUP)], [rel(G1, U1), rel(G1, U2)]))
    res = await commit(mirror, "groups", ("stage", G1, [ent(G1, GROUP)], [rel(G1, U1)], True))
    assert [(c.kind, c.op, c.key) for c in res.changes] == [("relationship", "deleted", rel(G1, U2)["_key"])]
    assert res.changes[0].from_key == G1 and res.changes[0].to_key == U2
    # without replace, staging merges: nothing is removed
    res = await commit(mirror, "groups", ("stage", G1, [], [rel(G1, U3)]))
    assert await mirror.count_relationships() == 2


async def test_full_round_keep_and_sweep(mirror: Mirror) -> None:
    await commit(
        mirror,
        "users",
        *[("stage", u, [ent(u)], []) for u in (U1, U2, U3)],
        ("stage_raw", "users", [{"id": U1}, {"id": U2}, {"id": U3}]),
        full=True,
    )
    assert await mirror.raw_ids("users") == [U1, U2, U3]
    res = await commit(
        mirror,
        "users",
        ("stage", U1, [ent(U1)], []),
        ("keep", [U2]),
        ("stage_raw", "users", [{"id": U1}]),
        full=True,
    )
    assert [(c.op, c.key) for c in res.changes] == [("deleted", U3)]
    assert await mirror.entity_keys_of_type(USER) == [U1, U2]
    assert await mirror.raw_ids("users") == [U1, U2]
    # another origin is never swept by this one
    await commit(mirror, "devices", ("stage", "d1", [ent("device-00001", "device")], []))
    await commit(mirror, "users", ("stage", U1, [ent(U1)], []), ("keep", [U2]), full=True)
    assert await mirror.get_entity("device-00001") is not None


async def test_incremental_round_never_sweeps(mirror: Mirror) -> None:
    await commit(mirror, "users", ("stage", U1, [ent(U1)], []), ("stage", U2, [ent(U2)], []))
    res = await commit(mirror, "users", ("stage", U1, [ent(U1, x=1)], []))
    assert [(c.op, c.key) for c in res.changes] == [("updated", U1)]
    assert await mirror.count_entities() == 2


async def test_delete_owners_then_restage_in_same_round(mirror: Mirror) -> None:
    await commit(mirror, "users", ("stage", U1, [ent(U1), ent("user-1-extra", "x")], []))
    res = await commit(mirror, "users", ("delete_owners", [U1]), ("stage", U1, [ent(U1)], []))
    assert [(c.op, c.key) for c in res.changes] == [("deleted", "user-1-extra")]
    res = await commit(mirror, "users", ("stage", U1, [ent(U1, x=2)], []), ("delete_owners", [U1]))
    assert [(c.op, c.key) for c in res.changes] == [("deleted", U1)]


async def test_delete_relationships_and_raw(mirror: Mirror) -> None:
    await commit(
        mirror,
        "groups",
        ("stage", G1, [ent(G1, GROUP)], [rel(G1, U1)]),
        ("stage_raw", "groups", [{"id": G1, "a": 1}]),
    )
    await commit(mirror, "groups", ("stage_raw", "groups", [{"id": G1, "b": 2}]))
    assert await mirror.get_raw("groups", G1) == {"id": G1, "b": 2}  # a new round replaces the object
    res = await commit(
        mirror, "groups", ("delete_relationships", [rel(G1, U1)["_key"]]), ("delete_raw", "groups", [G1])
    )
    assert [(c.kind, c.op) for c in res.changes] == [("relationship", "deleted")]
    assert await mirror.get_raw("groups", G1) is None


async def test_orphan_rule_deletes_unreferenced_members(mirror: Mirror) -> None:
    m1 = "member-000001"
    rules = {MEMBER: GROUP_HAS_MEMBER}

    def mk(group: str) -> dict[str, Any]:
        return rel(group, m1, GROUP_HAS_MEMBER)

    await commit(mirror, "groups", ("stage", G1, [ent(m1, MEMBER)], [mk(G1)]), orphan_rules=rules)
    await commit(mirror, "groups", ("stage", G2, [ent(m1, MEMBER)], [mk(G2)]), orphan_rules=rules)
    res = await commit(mirror, "groups", ("delete_relationships", [mk(G1)["_key"]]), orphan_rules=rules)
    assert [(c.kind, c.op) for c in res.changes] == [("relationship", "deleted")]
    assert await mirror.get_entity(m1) is not None  # G2 still points to it
    res = await commit(mirror, "groups", ("delete_owners", [G2]), orphan_rules=rules)
    assert sorted((c.kind, c.op, c.key) for c in res.changes) == [
        ("entity", "deleted", m1),
        ("relationship", "deleted", mk(G2)["_key"]),
    ]
    assert await mirror.count_entities(MEMBER) == 0


async def test_liveness_transitions_unpushed(mirror: Mirror) -> None:
    await commit(mirror, "groups", ("stage", G1, [ent(G1, GROUP)], [rel(G1, U1)]))
    assert await mirror.count_relationships(live_only=True) == 0  # U1 does not exist yet
    push = await drain(mirror)
    assert push.uploaded("relationship") == []
    res = await commit(mirror, "users", ("stage", U1, [ent(U1)], []))
    assert res.outbox_added == 2  # the user, and the relationship that became live
    push = await drain(mirror)
    assert push.uploaded("relationship") == [rel(G1, U1)["_key"]]
    row = await mirror.get_relationship_row(rel(G1, U1)["_key"])
    assert row is not None and row.live and row.pushed_hash == row.hash


async def test_endpoint_delete_cascades_and_reappearance_repushes(mirror: Mirror) -> None:
    key = await member_in_j1(mirror)

    res = await commit(mirror, "users", ("delete_owners", [U1]))
    assert res.outbox_added == 1  # only the entity delete: J1 cascades to the relationship
    row = await mirror.get_relationship_row(key)
    assert row is not None and row.live is False
    push = await drain(mirror)
    assert push.modes == ["DIFF", None] and push.absent("entity") == {U1}
    row = await mirror.get_relationship_row(key)
    assert row is not None and row.pushed_hash is None and not row.deleted  # J1 dropped it, we keep the row
    assert await mirror.get_entity_row(U1) is None  # tombstone purged

    res = await commit(mirror, "users", ("stage", U1, [ent(U1)], []))
    assert res.outbox_added == 2
    push = await drain(mirror)
    assert push.modes == ["PATCH", "DIFF"]
    assert push.uploaded("entity") == [U1] and push.uploaded("relationship") == [key]
    assert await mirror.outbox_depth() == 0


async def test_delete_then_reappear_before_push_sends_nothing(mirror: Mirror) -> None:
    await member_in_j1(mirror)
    await commit(mirror, "users", ("delete_owners", [U1]))
    await commit(mirror, "users", ("stage", U1, [ent(U1)], []))
    push = await drain(mirror)  # J1 never saw the delete; it still has both
    assert push.modes == [None, None]
    assert await mirror.outbox_depth() == 0


async def test_removed_while_live_pushes_relationship_delete(mirror: Mirror) -> None:
    key = await member_in_j1(mirror)
    res = await commit(mirror, "groups", ("delete_relationships", [key]))
    assert res.outbox_added == 1
    row = await mirror.get_relationship_row(key)
    assert row is not None and row.deleted  # tombstone
    push = await drain(mirror)
    assert push.modes == [None, "DIFF"] and push.absent("relationship") == {key}
    assert await mirror.get_relationship_row(key) is None  # purged on ack


async def test_mapped_relationship_live_iff_from_exists(mirror: Mirror) -> None:
    m = mapped(U1, "a@example.com")
    await commit(mirror, "users", ("stage", U1, [], [m]))
    row = await mirror.get_relationship_row(m["_key"])
    assert row is not None and row.to_key is None and not row.live
    await commit(mirror, "users", ("stage", U1, [ent(U1)], []))
    push = await drain(mirror)
    # a mapped relationship lives in its source entity's partition: a DIFF carries both
    assert push.modes[0] == "DIFF" and push.uploaded("relationship") == [m["_key"]]
    assert push.plans[0].relationships[0]["_mapping"]["sourceEntityKey"] == U1


async def test_pushed_entity_delete_keeps_tombstone_until_ack(mirror: Mirror) -> None:
    await commit(mirror, "users", ("stage", U1, [ent(U1)], []))
    await drain(mirror)
    await commit(mirror, "users", ("delete_owners", [U1]))
    row = await mirror.get_entity_row(U1)
    assert row is not None and row.deleted and row.pushed_hash == row.hash
    assert await mirror.count_entities() == 0
    push = await drain(mirror)
    assert push.absent("entity") == {U1}
    assert await mirror.get_entity_row(U1) is None


async def test_cursor_commits_with_round_and_discard_changes_nothing(mirror: Mirror) -> None:
    await commit(mirror, "users", ("stage", U1, [ent(U1)], []), cursors={"users": "link-1"})
    assert await mirror.get_cursor("users") == "link-1"
    r = await mirror.begin_round("users", full=True)
    await r.stage(U2, [ent(U2)])
    await r.discard()
    assert await mirror.count_entities() == 1 and await mirror.get_cursor("users") == "link-1"
    # a new round of the same origin supersedes an unfinished one
    r1 = await mirror.begin_round("users", full=False)
    await r1.stage(U2, [ent(U2)])
    r2 = await mirror.begin_round("users", full=False)
    await r2.commit(cursors={"users": None})
    assert await mirror.count_entities() == 1 and await mirror.get_cursor("users") is None
    try:
        await r1.commit()
    except Exception as exc:
        assert "discarded" in str(exc)
    else:
        raise AssertionError("a superseded round must not commit")


async def test_change_hook_alerts_in_same_transaction(mirror: Mirror) -> None:
    seen: list[Change] = []
    looked: list[dict[str, Any] | None] = []

    def hook(changes: list[Change], lookup: Callable[[str], dict[str, Any] | None]) -> list[AlertRow]:
        seen.extend(changes)
        looked.append(lookup(U1))
        return [
            {
                "alert_id": f"a:{c.key}",
                "rule_id": "r1",
                "severity": "high",
                "target": "slack",
                "payload": {"k": c.key},
            }
            for c in changes
        ]

    res = await commit(mirror, "users", ("stage", U1, [ent(U1)], []), change_hook=hook, collect_changes=False)
    assert res.changes == [] and len(seen) == 1 and res.counts["alerts_added"] == 1
    assert looked[0] is not None and looked[0]["_key"] == U1  # the lookup sees the transaction's state
    assert await mirror.alert_depth() == 1

    def failing(changes: list[Change], lookup: Callable[[str], dict[str, Any] | None]) -> list[AlertRow]:
        raise RuntimeError("rule crashed")

    with pytest.raises(RuntimeError, match="rule crashed"):
        await commit(mirror, "users", ("stage", U2, [ent(U2)], []), change_hook=failing)
    assert await mirror.get_entity(U2) is None  # the whole round rolled back
    assert await mirror.outbox_depth() == 1


async def test_entity_changing_origin_is_not_swept_by_old_origin(mirror: Mirror) -> None:
    await commit(mirror, "users", ("stage", U1, [ent(U1)], []), full=True)
    await commit(mirror, "groups", ("stage", G1, [ent(U1, x=1)], []))
    await commit(mirror, "users", full=True)
    assert await mirror.get_entity(U1) == ent(U1, x=1)
    row = await mirror.get_entity_row(U1)
    assert row is not None and row.origin == "groups"


async def test_validation_errors(mirror: Mirror) -> None:
    r = await mirror.begin_round("users", full=False)
    for bad in ({"_type": USER}, {"_key": U1}):
        try:
            await r.stage(U1, [bad])
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")
    await r.discard()
    assert GROUP_HAS_USER
