"""The J1 behaviour switches from `syncd sim` flags and from `start_simulators(j1_behaviour=...)`."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bench.kit.tenants import graph_tenant
from syncd.sim.j1 import J1Behaviour
from syncd.sim.j1.behaviour import behaviour_from_args
from syncd.sim.runner import build_parser, start_simulators


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {}),
        (["--j1-explicit-deletes", "apply"], {"explicit_deletes": "apply"}),
        (["--j1-cross-scope-ownership", "additive"], {"cross_scope_ownership": "additive"}),
        (["--j1-cross-scope-same-scope", "accept"], {"cross_scope_same_scope": "accept"}),
        (["--j1-cross-scope-reference", "key_scope"], {"cross_scope_reference": "key_scope"}),
        (["--j1-no-cascade-deletes"], {"cascade_deletes": False}),
        (["--j1-permissive"], J1Behaviour.permissive().as_json()),
        (
            ["--j1-permissive", "--j1-explicit-deletes", "ignore", "--j1-cascade-deletes"],
            {**J1Behaviour.permissive().as_json(), "explicit_deletes": "ignore", "cascade_deletes": True},
        ),
    ],
)
def test_sim_flags(argv: list[str], expected: dict[str, object]) -> None:
    assert behaviour_from_args(build_parser().parse_args(argv)) == expected


def test_sim_flags_reject_unknown_readings() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--j1-cross-scope-reference", "key_only"])


async def test_start_simulators_takes_the_behaviour(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="explicit_deletes"):
        await start_simulators(
            tenant=graph_tenant(), state_dir=tmp_path, j1_behaviour={"explicit_deletes": "yes"}
        )
    running = await start_simulators(
        tenant=graph_tenant(),
        state_dir=tmp_path,
        j1_behaviour={"cross_scope_ownership": "additive", "cascade_deletes": False},
    )
    try:
        assert running.j1_state.behaviour == J1Behaviour(
            cross_scope_ownership="additive", cascade_deletes=False
        )
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{running.j1_url}/_sim/behaviour", ssl=running.tls.client_context()) as resp,
        ):
            assert (await resp.json())["cross_scope_ownership"] == "additive"
    finally:
        await running.stop()
