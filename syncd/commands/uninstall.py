"""`syncd uninstall [--purge-j1]`: subscriptions, optionally the J1 data, then the local state."""

from __future__ import annotations

import shutil
import sys

from syncd.config import Settings
from syncd.graph.errors import GraphError
from syncd.runtime import open_runtime


def _confirm(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


async def uninstall_command(settings: Settings, *, purge_j1: bool, assume_yes: bool) -> int:
    failed = False
    async with open_runtime(settings) as rt:
        deleted = 0
        for record in await rt.mirror.list_subscriptions():
            try:
                await rt.subscriptions_api.delete(str(record["id"]))
                deleted += 1
            except GraphError as exc:
                if exc.status == 404:
                    deleted += 1
                else:
                    failed = True
                    print(f"FAIL deleting subscription {record['id']}: {exc}")
                    continue
            await rt.mirror.delete_subscription(str(record["id"]))
        print(f"deleted {deleted} Graph subscription(s)")
        if purge_j1:
            job = await rt.j1.run_job(settings.j1.scope, "DIFF", timeout=settings.j1.job_timeout)
            print(
                f"removed syncd's data from J1: DIFF job {job.get('id')} with an empty upload on scope "
                f"{settings.j1.scope!r} ({job.get('numEntitiesDeleted', 0)} entities, "
                f"{job.get('numRelationshipsDeleted', 0)} relationships deleted)"
            )
    if failed:
        print("local state kept because a step failed")
        return 1
    state = settings.state_dir
    if state.exists():
        if assume_yes or _confirm(f"Remove the local state in {state}?"):
            shutil.rmtree(state)
            print(f"removed {state}")
        else:
            print(f"kept the local state in {state} (pass --yes to remove it)")
    return 0
