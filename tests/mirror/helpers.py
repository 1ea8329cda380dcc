"""Builders for entity/relationship dicts in the shapes architecture.md defines."""

from __future__ import annotations

from typing import Any

from bench.kit.mirror_push import push_all
from syncd.mirror import Mirror
from tests.helpers.j1_objects import entity, mapped_to_person, relationship

USER = "azure_user"
GROUP = "azure_user_group"
MEMBER = "azure_group_member"
DEVICE = "intune_managed_device"
GROUP_HAS_USER = "azure_group_has_user"
GROUP_HAS_MEMBER = "azure_group_has_member"
USER_HAS_DEVICE = "azure_user_has_device"
USER_IS_PERSON = "azure_user_is_person"


def ent(key: str, type_: str = USER, **props: Any) -> dict[str, Any]:
    return entity(key, type_, name=key, **props)


def rel(
    from_key: str, to_key: str, type_: str = GROUP_HAS_USER, cls: str = "HAS", **props: Any
) -> dict[str, Any]:
    return relationship(from_key, to_key, type_, cls, displayName=cls, **props)


def mapped(from_key: str, email: str) -> dict[str, Any]:
    return mapped_to_person(
        f"{from_key}|is|person:{email}",
        from_key,
        email,
        type_=USER_IS_PERSON,
        target_type="employee",
        match_on="_type",
        _fromEntityKey=from_key,
        displayName="IS",
    )


U1 = "user-00000001"
G1 = "group-0000001"


async def member_in_j1(m: Mirror) -> str:
    """U1, a member of G1, committed, pushed and acknowledged as J1 would; returns the key of the
    membership."""
    for origin, owner, entities, relationships in (
        ("users", U1, [ent(U1)], []),
        ("groups", G1, [ent(G1, GROUP)], [rel(G1, U1)]),
    ):
        round_ = await m.begin_round(origin, full=False)
        await round_.stage(owner, entities, relationships)
        await round_.commit()
    await push_all(m)
    return str(rel(G1, U1)["_key"])
