"""kill -9 at every named pause point (fetch, mirror commit, J1 upload/finalize/ack...), with
restarts while the tenant changes; then J1 equals the tenant, keys and property values.

CI kills once at each point; the slow test and `bench/crash_loop.py` go round five times
(the loop itself: bench/kit/crash_loop.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.kit.crash_loop import crash_loop
from bench.kit.tenants import directory_tenant
from bench.kit.truth import directory_truth
from syncd.pausepoints import POINTS


async def _run(tmp_path: Path, kills: int) -> None:
    lines: list[str] = []
    result = await crash_loop(kills, tmp_path, seed=7, say=lines.append, converge_timeout=30)
    assert [k.point for k in result.kills] == [POINTS[i % len(POINTS)] for i in range(kills)]
    assert len(lines) == kills and all(
        f"at {k.point}" in line for k, line in zip(result.kills, lines, strict=True)
    )
    assert result.changes > kills
    assert result.diff == {}, result.diff
    assert result.final_exit == 0


async def test_crash_loop_kills_once_at_every_point(tmp_path: Path, j1_reading: str) -> None:
    await _run(tmp_path, len(POINTS))


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_crash_loop_full(tmp_path: Path) -> None:
    await _run(tmp_path, 5 * len(POINTS))


def test_the_end_state_check_catches_a_lost_rename_and_a_duplicate() -> None:
    truth = directory_truth(directory_tenant())
    uid = next(iter(truth.users))
    stale = dict(truth.users[uid]) | {"displayName": "the name before the rename"}
    j1 = replace(truth, users={**truth.users, uid: tuple(stale.items())})
    renamed_to = dict(truth.users[uid])["displayName"]
    assert truth.diff(j1) == {
        "users": {
            "missing": [],
            "left_over": [],
            "changed": {uid: {"displayName": [renamed_to, "the name before the rename"]}},
        }
    }
    assert truth.diff(replace(truth, duplicated=frozenset({uid}))) == {"duplicated": {"keys": [uid]}}
    assert truth.diff(truth) == {}
