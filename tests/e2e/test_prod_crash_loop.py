"""kill -9 during fetch, mirror write and J1 push, with restarts, while the tenant changes.

CI runs 6 kills; the slow test and `bench/crash_loop.py` run 30."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.crash_loop import crash_loop


async def _run(tmp_path: Path, kills: int) -> None:
    result = await crash_loop(kills, tmp_path, seed=7, say=lambda _msg: None, converge_timeout=30)
    assert result.kills == kills
    assert set(result.by_phase) == {"fetch", "mirror", "push"}
    assert result.evidence.get("push", 0) >= 1 and result.evidence.get("fetch", 0) >= 1, result.evidence
    assert result.changes > kills
    assert result.diff == {}, result.diff
    assert result.final_exit == 0


async def test_crash_loop_ci(tmp_path: Path) -> None:
    await _run(tmp_path, 6)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_crash_loop_full(tmp_path: Path) -> None:
    await _run(tmp_path, 30)
