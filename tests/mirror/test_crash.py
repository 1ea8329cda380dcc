"""Crash safety: a process killed mid-commit leaves the mirror as it was; after commit, complete."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from syncd.mirror import Mirror
from tests.mirror.helpers import ent

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from syncd.mirror import Mirror
    from tests.mirror.helpers import ent, rel

    async def main(path: str, when: str) -> None:
        m = await Mirror.open(Path(path))
        r = await m.begin_round("users", full=True)
        for i in range(5000):
            key = f"user-{i:08d}"
            await r.stage(key, [ent(key, v=2)], [rel("group-0000001", key)])

        def hook(changes, lookup):
            if when == "in_commit":
                os.kill(os.getpid(), 9)  # dies inside the commit transaction
            return []

        await r.commit(cursors={"users": "link-2"}, change_hook=hook)
        if when == "after_commit":
            os.kill(os.getpid(), 9)  # dies right after commit, without closing anything

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def run_child(path: Path, when: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(path), when, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    return await asyncio.wait_for(proc.wait(), 60)


async def seed(path: Path) -> None:
    m = await Mirror.open(path)
    r = await m.begin_round("users", full=True)
    for i in range(100):
        await r.stage(f"user-{i:08d}", [ent(f"user-{i:08d}", v=1)])
    await r.commit(cursors={"users": "link-1"})
    await m.close()


async def killed(tmp_path: Path, when: str) -> Path:
    """A seeded mirror whose writer was killed (-9) `when` committing its next round."""
    path = tmp_path / "mirror.db"
    await seed(path)
    assert await run_child(path, when) == -signal.SIGKILL
    return path


async def test_kill_inside_commit_leaves_state_untouched(tmp_path: Path) -> None:
    async with await Mirror.open(await killed(tmp_path, "in_commit")) as m:
        assert await m.count_entities() == 100
        assert await m.count_relationships() == 0
        assert await m.get_cursor("users") == "link-1"
        assert await m.get_entity("user-00000000") == ent("user-00000000", v=1)
        assert await m.outbox_depth() == 100
        # usable: a new round commits normally
        r = await m.begin_round("users", full=False)
        await r.stage("user-00000000", [ent("user-00000000", v=3)])
        res = await r.commit(cursors={"users": "link-3"})
        assert res.counts["entities_updated"] == 1


async def test_kill_after_commit_keeps_everything(tmp_path: Path) -> None:
    async with await Mirror.open(await killed(tmp_path, "after_commit")) as m:
        assert await m.count_entities() == 5000
        assert await m.count_relationships() == 5000
        assert await m.get_cursor("users") == "link-2"
        assert await m.get_entity("user-00000000") == ent("user-00000000", v=2)
        assert await m.outbox_depth() == 100 + 5000  # seed rows + new/changed users (no group yet)
