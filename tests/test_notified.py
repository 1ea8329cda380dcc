"""NotifiedChanges: another look, soon and then less often, while a notified change is not in delta."""

from __future__ import annotations

import asyncio

from syncd.notified import ANY, NotifiedChanges


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_looks_again_with_growing_delays_until_the_change_shows() -> None:
    requested: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    clock = Clock()
    notified = NotifiedChanges(lambda o: requested.append((o, loop.time())), delays=(0.02, 0.06), clock=clock)
    notified.notified("users", ["ABC", "def"])
    start = loop.time()
    notified.round_done("users", ["other"])  # the notified round saw neither
    await asyncio.sleep(0.04)
    assert [o for o, _ in requested] == ["users"] and requested[0][1] - start >= 0.02
    notified.round_done("users", ["abc"])  # one showed up (ids compare case-insensitively)
    assert notified.pending("users") == {"def"}
    await asyncio.sleep(0.03)
    assert len(requested) == 1  # the second look waits longer
    await asyncio.sleep(0.06)
    assert len(requested) == 2
    notified.round_done("users", ["def"])
    assert notified.pending("users") == set()
    await asyncio.sleep(0.1)
    assert len(requested) == 2 and notified.looks == {"users": 2}


async def test_a_new_change_brings_the_short_delay_back_and_a_failed_round_looks_again() -> None:
    requested: list[str] = []
    notified = NotifiedChanges(requested.append, delays=(0.02, 5.0), clock=Clock())
    notified.notified("groups", ["g1"])
    notified.round_done("groups", [])
    await asyncio.sleep(0.04)
    notified.round_done("groups", [])  # second miss: the next look is 5 s away ...
    notified.notified("groups", ["g2"])  # ... but a new change arrives
    notified.round_done("groups", ())  # its round failed
    await asyncio.sleep(0.04)
    assert requested == ["groups", "groups"]
    notified.close()


async def test_the_horizon_ends_the_search_and_a_wildcard_waits_for_it() -> None:
    requested: list[str] = []
    clock = Clock()
    notified = NotifiedChanges(requested.append, delays=(0.01,), horizon=30.0, clock=clock)
    notified.notified("users", ["never-in-delta"])
    notified.lost("groups")
    notified.round_done("groups", ["g1", "g2"])  # a wildcard is not cleared by what a round shows
    assert notified.pending("groups") == {ANY}
    clock.now += 31
    notified.round_done("users", [])
    notified.round_done("groups", [])
    assert notified.pending("users") == set() and notified.pending("groups") == set()
    await asyncio.sleep(0.05)
    assert requested == []  # the look scheduled before the horizon passed was called off
