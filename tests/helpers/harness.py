"""The simulators for a test: the product harness (syncd.sim.harness), stopped on the way out, and the
configs the suites point syncd at it with."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from syncd.sim.graph.permissions_fault import PERMISSION_FAULTS, PermissionFaults
from syncd.sim.harness import SimHarness, start_harness
from syncd.sim.tenant import Tenant

HarnessFactory = Callable[..., Awaitable[SimHarness]]
"""`await make(tenant, **sim_options)`: the e2e fixture `make_harness` (stopped at teardown)."""


@asynccontextmanager
async def running_harness(
    tenant: Tenant, state_dir: Path, *, notifications: bool = True, **sim_options: Any
) -> AsyncIterator[SimHarness]:
    """Graph + J1 simulators for `tenant` (change notifications on unless told otherwise)."""
    h = await start_harness(tenant, state_dir, notifications=notifications, **sim_options)
    try:
        yield h
    finally:
        await h.stop()


def quiet_config(
    h: SimHarness, sync: Mapping[str, Any] | None = None, *, state_dir: Path | None = None
) -> Path:
    """A config file for syncd against the harness: warnings only, JSON logs, `[sync]` overrides,
    another state directory when given."""
    extra: dict[str, dict[str, Any]] = {"log": {"level": "WARNING", "format": "json"}}
    if state_dir is not None:
        extra["state"] = {"dir": str(state_dir)}
    if sync:
        extra["sync"] = dict(sync)
    return h.config_path(extra)


def permission_faults(h: SimHarness) -> PermissionFaults:
    """The Graph simulator's denied permissions (the app's consent as the tests set it)."""
    app = h.sims.runners[0].app
    return app[PERMISSION_FAULTS]


def j1_faults(h: SimHarness, **changes: Any) -> None:
    """Switch faults of the J1 simulator (docs/simulators.md)."""
    h.sims.j1_state.faults.update(changes)


def graph_faults(h: SimHarness, **changes: Any) -> None:
    """Switch faults of the Graph simulator (docs/simulators.md)."""
    h.sims.graph.set_faults(changes)
