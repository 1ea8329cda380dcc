"""Builders for entity/relationship dicts in the shapes architecture.md defines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncd.j1.capabilities import Capabilities
from syncd.j1.partitions import Layout, PartKind
from syncd.j1.plan import PartitionPlan, PartitionPlanner
from syncd.mirror import Mirror, PartitionAck

USER = "azure_user"
GROUP = "azure_user_group"
MEMBER = "azure_group_member"
DEVICE = "intune_managed_device"
GROUP_HAS_USER = "azure_group_has_user"
GROUP_HAS_MEMBER = "azure_group_has_member"
USER_HAS_DEVICE = "azure_user_has_device"
USER_IS_PERSON = "azure_user_is_person"


def ent(key: str, type_: str = USER, **props: Any) -> dict[str, Any]:
    return {"_key": key, "_type": type_, "_class": "User", "displayName": key, "name": key, **props}


def rel(
    from_key: str, to_key: str, type_: str = GROUP_HAS_USER, cls: str = "HAS", **props: Any
) -> dict[str, Any]:
    return {
        "_key": f"{from_key}|{cls.lower()}|{to_key}",
        "_type": type_,
        "_class": cls,
        "_fromEntityKey": from_key,
        "_toEntityKey": to_key,
        "displayName": cls,
        **props,
    }


def mapped(from_key: str, email: str) -> dict[str, Any]:
    return {
        "_key": f"{from_key}|is|person:{email}",
        "_type": USER_IS_PERSON,
        "_class": "IS",
        "_fromEntityKey": from_key,
        "displayName": "IS",
        "_mapping": {
            "relationshipDirection": "FORWARD",
            "sourceEntityKey": from_key,
            "targetFilterKeys": [["_type", "email"]],
            "targetEntity": {"_type": "employee", "_class": "Person", "email": email},
        },
    }



# --- a J1 push without J1: plan each partition of a one-partition layout, then ack it as J1 would ---


LAYOUT = Layout("test-scope", 0, 0)


@dataclass
class Push:
    """The jobs of one push (planned from snapshots), and the acks to record once J1 "finished"."""

    plans: list[PartitionPlan] = field(default_factory=list)
    acks: list[PartitionAck] = field(default_factory=list)

    @property
    def modes(self) -> list[str | None]:
        return [p.mode for p in self.plans]

    def uploaded(self, kind: str) -> list[str]:
        """Keys of the entities/relationships uploaded (a DIFF uploads its whole partition)."""
        objs = [o for p in self.plans for o in (p.entities if kind == "entity" else p.relationships)]
        return [o["_key"] for o in objs]

    def absent(self, kind: str) -> set[str]:
        """Keys J1 no longer holds after the push."""
        return {key for p in self.plans for k, key in p.absent if k == kind}


async def plan_push(
    m: Mirror,
    *,
    caps: Capabilities | None = None,
    cascade: bool | None = True,
    partial: tuple[str, ...] = (),
    kinds: tuple[PartKind, ...] = ("e", "r"),
) -> Push:
    """Snapshot and plan the partitions of ``kinds`` (nothing acknowledged yet)."""
    planner = PartitionPlanner(LAYOUT, caps or Capabilities(), fast_paths=True, partial_types=partial)
    push = Push()
    for part in LAYOUT.partitions():
        if part.kind not in kinds:
            continue
        scope = part.scope(LAYOUT.base)
        state = await m.partition_state(scope)
        lo, hi = part.hash_range
        snap = await m.partition_snapshot(part.kind, lo, hi)
        plan = planner.plan(part, snap, state)
        push.plans.append(plan)
        push.acks.append(
            PartitionAck(
                part=part.kind,
                lo=lo,
                hi=hi,
                max_seq=snap.max_seq,
                scope=scope,
                gen=state.gen if state else 0,
                sent=plan.sent,
                absent=plan.absent,
                settled=plan.settled,
                cascade=cascade,
            )
        )
    return push


async def ack_push(m: Mirror, push: Push) -> None:
    for ack in push.acks:
        await m.ack_partition(ack)


async def push_all(
    m: Mirror,
    *,
    caps: Capabilities | None = None,
    cascade: bool | None = True,
    partial: tuple[str, ...] = (),
) -> Push:
    """Entity partition, then relationship partition (its relationships may have waited for the
    entities), each acknowledged as a J1 that did exactly what was sent."""
    done = Push()
    for kind in ("e", "r"):
        one = await plan_push(m, caps=caps, cascade=cascade, partial=partial, kinds=(kind,))
        await ack_push(m, one)
        done.plans += one.plans
        done.acks += one.acks
    return done
