"""A J1 push without J1: plan each partition of a one-partition layout from the mirror's snapshots,
then acknowledge it as a J1 that did exactly what was sent (the mirror tests and bench/mirror_bench.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.j1.capabilities import Capabilities
from syncd.j1.partitions import Layout, PartKind
from syncd.j1.plan import PartitionPlan, PartitionPlanner
from syncd.mirror import Mirror, PartitionAck

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
