"""Fixtures of the end-to-end tests: simulators per test, and the J1 readings a test runs under.
Their helpers live in tests/helpers and bench/kit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from syncd.sim import harness as harness_module
from syncd.sim.harness import SimHarness, start_harness
from syncd.sim.tenant import Tenant
from tests.helpers.harness import HarnessFactory
from tests.helpers.j1 import READINGS


@pytest.fixture(params=["strict", "permissive"])
def j1_reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test against the J1 simulator's strictest reading of the J1 docs (its defaults) and
    against the most permissive one: syncd must keep J1 equal to the tenant under both."""
    monkeypatch.setattr(harness_module, "DEFAULT_J1_BEHAVIOUR", dict(READINGS[request.param]))
    return str(request.param)


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    """Start simulators (Graph + J1, no change notifications) for a tenant; stopped at teardown."""
    started: list[SimHarness] = []

    async def make(tenant: Tenant, **options: Any) -> SimHarness:
        h = await start_harness(tenant, tmp_path / f"h{len(started)}", notifications=False, **options)
        started.append(h)
        return h

    yield make
    for h in started:
        await h.stop()
