"""A set of directory changes that touches every kind of change syncd must carry to J1."""

from __future__ import annotations

from typing import Any

from syncd.sim.tenant import Tenant


def _pick_groups(tenant: Tenant) -> dict[str, str]:
    """Groups for each mutation, chosen so the mutations do not overlap."""
    groups = [g["id"] for g in tenant.list("groups")]
    nested_in = {m for g in groups for m in tenant.member_ids(g) if tenant.store_of(m) == "groups"}

    def non_user_members(g: str) -> list[str]:
        return [m for m in tenant.member_ids(g) if tenant.store_of(m) in ("devices", "contacts")]

    # the deleted group: nested in another group and holding a non-user member only it holds
    sole = {
        g
        for g in groups
        for m in non_user_members(g)
        if sum(1 for other in groups if m in tenant.members.get(other, {})) == 1
    }
    deleted = next(g for g in groups[::-1] if g in nested_in and g in sole)
    rest = [g for g in groups[1:] if g != deleted and g not in nested_in and tenant.member_ids(g)]
    return {
        "deleted": deleted,
        "add_to": rest[0],
        "remove_from": rest[1],
        "nest_parent": rest[2],
        "nest_child": rest[3],
    }


def mutate_directory(tenant: Tenant, restored: str) -> dict[str, Any]:
    users = [u["id"] for u in tenant.list("users")]
    g = _pick_groups(tenant)
    disabled = next(u for u in users[10:] if (tenant.get("users", u) or {}).get("accountEnabled"))
    renamed, soft, hard = users[1], users[2], users[3]
    tenant.update("users", disabled, {"accountEnabled": False})
    tenant.update("users", renamed, {"displayName": "Renamed Person"})
    tenant.soft_delete("users", soft)
    tenant.hard_delete("users", hard)
    tenant.restore("users", restored)  # soft-deleted before the resync: comes back with its groups
    added = next(u for u in users[20:] if u not in tenant.members[g["add_to"]])
    tenant.add_member(g["add_to"], added)
    removed = next(m for m in tenant.member_ids(g["remove_from"]) if tenant.store_of(m) == "users")
    tenant.remove_member(g["remove_from"], removed)
    assert tenant.add_member(g["nest_parent"], g["nest_child"])
    tenant.soft_delete("groups", g["deleted"])
    return {"disabled": disabled, "renamed": renamed, "restored": restored}
