"""`syncd resync` of a generated tenant gives exactly the J1 graph the tenant implies.

The expectation comes from the simulator's Tenant (bench/kit/truth.py), not from the
converters. Intune is left out (`with_intune=False`): only directory types may appear.
"""

from __future__ import annotations

import pytest

from bench.kit.daemon import run_cli
from bench.kit.sim_admin import syncd_jobs
from bench.kit.truth import (
    NON_USER_MEMBER_STORES,
    Expected,
    assert_graph_matches,
    assert_user_properties,
    expected_directory,
    j1_graph,
)
from syncd.model import schema
from syncd.runtime import open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sim.tenant import Tenant
from tests.helpers.harness import HarnessFactory, quiet_config


def _tenant(users: int) -> Tenant:
    return generate_tenant(seed=21, users=users, groups=users // 10, devices=users // 20, with_intune=False)


def _check_generator(tenant: Tenant, expected: Expected) -> None:
    """The tenant really has what the test is about: nested groups and every non-user member kind."""
    member_stores = {tenant.store_of(m) for m in expected.entities[schema.GROUP_MEMBER.type]}
    assert member_stores == set(NON_USER_MEMBER_STORES)
    assert len(expected.relationships[schema.GROUP_HAS_GROUP.type]) >= 10
    assert len(expected.relationships[schema.GROUP_HAS_USER.type]) > 2 * len(
        expected.entities[schema.USER.type]
    )
    assert any(not u["accountEnabled"] for u in tenant.list("users"))
    assert any(u["userType"] == "Guest" for u in tenant.list("users"))


def _spot_users(tenant: Tenant) -> list[str]:
    users = list(tenant.list("users"))
    picks = [users[0]["id"], users[-1]["id"]]
    picks.append(next(u["id"] for u in users if u["userType"] == "Guest"))
    picks.append(next(u["id"] for u in users if not u["accountEnabled"]))
    return picks


async def _resync_exactly(make_harness: HarnessFactory, users: int) -> None:
    tenant = _tenant(users)
    expected = expected_directory(tenant)
    _check_generator(tenant, expected)
    h = await make_harness(tenant)

    # in process: what `syncd resync` does
    async with open_runtime(h.settings()) as rt:
        report = await rt.engine.resync()
    assert report.failed == {}
    assert report.push is not None
    assert report.push.entity_upserts == len(expected.entity_keys())
    assert report.push.relationship_upserts == len(expected.relationship_keys())
    assert report.push.mapped_relationships == sum(1 for u in tenant.list("users") if u["mail"])
    assert_graph_matches(h, expected)
    assert_user_properties(h, tenant, _spot_users(tenant))
    ents, _ = j1_graph(h)
    account = ents[f"{schema.ACCOUNT.type}:{tenant.tenant_id}"]
    assert account["_class"] == "Account" and account["displayName"] == tenant.organization["displayName"]
    for member in expected.entities[schema.GROUP_MEMBER.type]:
        assert ents[member]["_type"] == schema.GROUP_MEMBER.type and ents[member]["_class"] == "User"

    # the real command, from a fresh mirror: one DIFF per partition, together carrying exactly the
    # graph, nothing else
    jobs_before = len(h.sims.j1_state.jobs_view())
    config = quiet_config(h, state_dir=h.state_dir / "cli")
    res = await run_cli("resync", config=config, timeout=120)
    assert res.code == 0, res.err[-2000:]
    assert "0 failed" in res.out
    assert_graph_matches(h, expected)
    scope_jobs = syncd_jobs(h, jobs_before)
    assert {(j["mode"], j["status"]) for j in scope_jobs} == {("DIFF", "FINISHED")}
    scopes = [j["scope"] for j in scope_jobs]
    assert len(scopes) == len(set(scopes)), "a partition was sent twice"
    entity_scopes = {s for s in scopes if "-e" in s.removeprefix(h.scope)}
    relationship_scopes = set(scopes) - entity_scopes
    assert _is_power_of_two(len(entity_scopes)) and _is_power_of_two(len(relationship_scopes))
    assert sum(j["counters"]["numEntitiesUploaded"] for j in scope_jobs) == len(expected.entity_keys())
    # plus one user → Person mapped relationship per user with a mail address, in its user's partition
    mapped = sum(1 for u in tenant.list("users") if u["mail"])
    assert sum(j["counters"]["numRelationshipsUploaded"] for j in scope_jobs) == (
        len(expected.relationship_keys()) + mapped
    )
    # every partition stays small: one DIFF of it (a deletion, a relationship change) is cheap
    assert (
        max(
            j["counters"]["numEntitiesUploaded"] + j["counters"]["numRelationshipsUploaded"]
            for j in scope_jobs
        )
        <= 200
    )


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


async def test_resync_2k_users_gives_exactly_the_tenant_graph(make_harness: HarnessFactory) -> None:
    await _resync_exactly(make_harness, 2000)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_resync_10k_users_gives_exactly_the_tenant_graph(make_harness: HarnessFactory) -> None:
    await _resync_exactly(make_harness, 10_000)
