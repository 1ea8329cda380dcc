"""`syncd uninstall [--purge-j1] [--yes]`: subscriptions, optionally the J1 data, then the local state.

Order matters: subscriptions first (Graph stops calling a webhook that is going away), then J1
(an empty ``DIFF`` job for each scope syncd writes: every partition of ``[j1] scope``),
and the local state last, only when every earlier step worked (so a failed run can be repeated).

The state directory must be named (`[state] dir` or `$STATE_DIRECTORY`): the `./state` fallback
of a terminal run is never guessed, because the subscriptions to delete are the ones recorded in
that directory's mirror. Only syncd's own files are deleted from it, and the directory itself
only when nothing else is left in it.
"""

from __future__ import annotations

import sys
from typing import Any

from syncd.config import ConfigError, Settings
from syncd.j1.errors import J1Error
from syncd.mirror import MirrorError
from syncd.mirror.mirror import own_files
from syncd.runtime import open_runtime
from syncd.subscriptions import delete_recorded


def _confirm(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _total(jobs: list[dict[str, Any]], counter: str) -> int:
    return sum(int(job.get(counter) or 0) for job in jobs)


def remove_local_state(settings: Settings) -> str:
    """Delete the mirror's files, then the directory if nothing else is in it; says what was done."""
    state = settings.state_dir
    removed = [f for f in own_files(settings.mirror_path) if f.exists()]
    for f in removed:
        f.unlink()
    others = sorted(p.name for p in state.iterdir())
    if not others:
        state.rmdir()
        return f"removed the local state in {state}"
    shown = ", ".join(others[:5]) + (" ..." if len(others) > 5 else "")
    return f"removed syncd's files from {state}; kept the directory, which holds other files: {shown}"


async def uninstall_command(settings: Settings, *, purge_j1: bool, assume_yes: bool) -> int:
    if not settings.state_dir_given:
        raise ConfigError(
            [
                "[state] dir: `syncd uninstall` needs the state directory named, with [state] dir or "
                "$STATE_DIRECTORY (the unit's is /var/lib/syncd); nothing was done"
            ]
        )
    if not settings.mirror_path.exists():
        print(
            f"syncd uninstall: no syncd mirror in {settings.state_dir} (is it the right state directory?); "
            "nothing was done"
        )
        return 1
    failed = False
    try:
        async with open_runtime(settings) as rt:
            deletion = await delete_recorded(rt.subscriptions_api, rt.mirror)
            for sub_id, error in deletion.failures:
                failed = True
                print(f"FAIL deleting subscription {sub_id}: {error}")
            print(f"deleted {deletion.deleted} Graph subscription(s)")
            if purge_j1:
                results = await rt.engine.writer.purge()
                done = [job for _, job in results if not isinstance(job, J1Error)]
                for scope, outcome in results:
                    if isinstance(outcome, J1Error):
                        failed = True
                        print(f"FAIL removing syncd's data from J1 scope {scope!r}: {outcome}")
                print(
                    f"removed syncd's data from J1 scopes {settings.j1.scope}-*: {len(done)} DIFF job(s)"
                    f" with an empty upload ({_total(done, 'numEntitiesDeleted')} entities,"
                    f" {_total(done, 'numRelationshipsDeleted')} relationships,"
                    f" {_total(done, 'numMappedRelationshipsDeleted')} mapped relationships deleted)"
                )
    except MirrorError as exc:
        print(f"syncd uninstall: {exc} (stop the daemon first: systemctl stop syncd)")
        return 1
    if failed:
        print("local state kept because a step failed; fix it and run `syncd uninstall` again")
        return 1
    if assume_yes or _confirm(f"Remove syncd's files from {settings.state_dir}?"):
        print(remove_local_state(settings))
    else:
        print(f"kept the local state in {settings.state_dir} (pass --yes to remove it)")
    return 0
