"""Mirror commit benchmark: a full round of 100k entities + 500k relationships, and small rounds.

Run: .venv/bin/python -m bench.mirror_bench [--users 100000] [--rels 500000] [--runs 3]
Prints staging and commit times for the first full round (all created), a repeated full round
(nothing changed: the steady state of a safety-net resync), and incremental 10-change commits.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.kit.mirror_push import push_all
from syncd.mirror import Mirror

PAGE = 1000


def user(i: int, version: int = 0) -> dict[str, Any]:
    return {
        "_key": f"user-{i:08d}-0000-0000-0000-000000000000",
        "_type": "azure_user",
        "_class": "User",
        "displayName": f"User {i}",
        "name": f"user{i}",
        "email": f"user{i}@example.com",
        "accountEnabled": True,
        "jobTitle": "Engineer",
        "department": f"dept-{i % 50}",
        "createdOn": 1700000000000 + i,
        "version": version,
    }


def group_key(g: int) -> str:
    return f"group-{g:08d}-0000-0000-0000-000000000000"


def membership(i: int, g: int) -> dict[str, Any]:
    from_key, to_key = group_key(g), user(i)["_key"]
    return {
        "_key": f"{from_key}|has|{to_key}",
        "_type": "azure_group_has_user",
        "_class": "HAS",
        "_fromEntityKey": from_key,
        "_toEntityKey": to_key,
        "displayName": "HAS",
    }


async def full_round(mirror: Mirror, users: int, rels: int, version: int) -> tuple[float, float, int]:
    """Stage users (owner = user) and their memberships (owner = user); return (stage s, commit s)."""
    per_user = max(1, rels // users)
    groups = max(1, users // 10)
    round_ = await mirror.begin_round("users", full=True)
    t0 = time.perf_counter()
    for start in range(0, users, PAGE):
        for i in range(start, min(users, start + PAGE)):
            ents = [user(i, version)]
            if i < groups:
                ents.append(
                    {
                        "_key": group_key(i),
                        "_type": "azure_user_group",
                        "_class": "UserGroup",
                        "displayName": f"G{i}",
                        "name": f"g{i}",
                    }
                )
            await round_.stage(str(i), ents, [membership(i, (i * 7 + k) % groups) for k in range(per_user)])
    t1 = time.perf_counter()
    result = await round_.commit(cursors={"users": f"delta-{version}"}, collect_changes=False)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, result.outbox_added


async def incremental(mirror: Mirror, n: int, version: int) -> float:
    round_ = await mirror.begin_round("users", full=False)
    for i in range(n):
        await round_.stage(str(i), [user(i, version)])
    t0 = time.perf_counter()
    await round_.commit(cursors={"users": f"inc-{version}"})
    return time.perf_counter() - t0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rels", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mirror = await Mirror.open(Path(tmp) / "bench.db")
        try:
            print(f"full round: {args.users} users + groups, {args.rels} relationships, pages of {PAGE}")
            stage_s, commit_s, outbox = await full_round(mirror, args.users, args.rels, 0)
            print(f"  first (all created): stage {stage_s:6.1f}s  commit {commit_s:6.2f}s  outbox +{outbox}")
            await push_all(mirror)  # as if J1 took it all: the rounds below start from a clean outbox
            commits = []
            for run in range(args.runs):
                stage_s, commit_s, outbox = await full_round(mirror, args.users, args.rels, 0)
                commits.append(commit_s)
                print(
                    f"  unchanged #{run + 1}:         stage {stage_s:6.1f}s  commit {commit_s:6.2f}s"
                    f"  outbox +{outbox}"
                )
            stage_s, commit_s, outbox = await full_round(mirror, args.users, args.rels, 1)
            print(f"  all updated:         stage {stage_s:6.1f}s  commit {commit_s:6.2f}s  outbox +{outbox}")
            print(f"  unchanged full-round commit: median {statistics.median(commits):.2f}s")
            times = [await incremental(mirror, 10, 100 + k) for k in range(20)]
            print(
                f"incremental 10-change commit over {len(times)} runs:"
                f" median {statistics.median(times) * 1000:.1f} ms,"
                f" max {max(times) * 1000:.1f} ms"
            )
            size = (Path(tmp) / "bench.db").stat().st_size
            print(f"mirror file: {size / 1e6:.0f} MB")
        finally:
            await mirror.close()


if __name__ == "__main__":
    asyncio.run(main())
