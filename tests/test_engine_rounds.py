"""`Engine.run_rounds`: independent sources overlap, dependent ones wait, failures stay local."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from syncd.engine import Engine, Source
from syncd.j1.writer import J1Writer
from syncd.mirror import Mirror
from syncd.model.convert.common import ConvertContext
from syncd.sources.base import RoundReport, SourceContext


class Sleeper:
    """A source whose round takes `seconds` and records when it ran."""

    def __init__(self, origin: str, seconds: float, log: list[tuple[str, str, float]], **kw: Any) -> None:
        self.origin = origin
        self.seconds = seconds
        self.log = log
        self.depends_on: tuple[str, ...] = kw.get("depends_on", ())
        self.fails = kw.get("fails", False)

    async def run(self, ctx: SourceContext, *, force_full: bool = False, **options: Any) -> RoundReport:
        self.log.append((self.origin, "start", time.monotonic()))
        await asyncio.sleep(self.seconds)
        self.log.append((self.origin, "end", time.monotonic()))
        if self.fails:
            raise RuntimeError(f"{self.origin} broke")
        return RoundReport(origin=self.origin, kind="full" if force_full else "delta")


@pytest.fixture
async def mirror(tmp_path: Path) -> AsyncIterator[Mirror]:
    m = await Mirror.open(tmp_path / "mirror.sqlite")
    try:
        yield m
    finally:
        await m.close()


def engine(mirror: Mirror, sources: list[Sleeper]) -> Engine:
    ctx = SourceContext(graph=cast(Any, None), mirror=mirror, convert=ConvertContext(tenant_id="t"))
    by_origin = {s.origin: cast(Source, s) for s in sources}
    return Engine(ctx, cast(J1Writer, None), by_origin, origin_types={s.origin: [] for s in sources})


def moments(log: list[tuple[str, str, float]]) -> dict[tuple[str, str], float]:
    return {(o, what): t for o, what, t in log}


async def test_independent_rounds_overlap(mirror: Mirror) -> None:
    log: list[tuple[str, str, float]] = []
    sources = [Sleeper("users", 0.3, log), Sleeper("groups", 0.2, log), Sleeper("devices", 0.1, log)]
    e = engine(mirror, sources)
    report = await e.run_rounds(force_full=True)
    assert report.failed == {} and {r.origin for r in report.rounds} == {"users", "groups", "devices"}
    assert all(r.kind == "full" for r in report.rounds)
    starts = [t for _o, what, t in log if what == "start"]
    ends = [t for _o, what, t in log if what == "end"]
    assert max(starts) < min(ends)  # every round was running before the first one ended
    assert set(report.durations) == {"users", "groups", "devices"}
    assert report.span <= report.total  # (the bench measures how much shorter)
    log.clear()
    await e.run_rounds(force_full=True, concurrent=False)
    order = [(o, what) for o, what, _t in log]
    assert order == [(s.origin, w) for s in sources for w in ("start", "end")]  # one after another


async def test_a_round_waits_for_the_rounds_it_reads_even_when_they_fail(mirror: Mirror) -> None:
    log: list[tuple[str, str, float]] = []
    e = engine(
        mirror,
        [
            Sleeper("policies", 0.05, log, depends_on=("devices", "users")),
            Sleeper("devices", 0.2, log, fails=True),
            Sleeper("users", 0.1, log),
            Sleeper("groups", 0.05, log, depends_on=("not-asked-for",)),
        ],
    )
    report = await e.run_rounds()
    at = moments(log)
    assert at[("policies", "start")] >= at[("devices", "end")]
    assert at[("policies", "start")] >= at[("users", "end")]
    assert at[("groups", "start")] < at[("devices", "end")]  # unknown dependencies do not block
    assert set(report.failed) == {"devices"} and "broke" in report.failed["devices"]
    assert {r.origin for r in report.rounds} == {"policies", "users", "groups"}
    assert e.partial == {"devices": report.failed["devices"]}


async def test_rounds_of_one_origin_never_overlap(mirror: Mirror) -> None:
    log: list[tuple[str, str, float]] = []
    e = engine(mirror, [Sleeper("users", 0.1, log)])
    await asyncio.gather(e.run_rounds(), e.run_round("users"))
    starts = [t for o, what, t in log if what == "start"]
    ends = [t for o, what, t in log if what == "end"]
    assert len(starts) == 2 and max(starts) >= min(ends)
