"""Shared pieces of the engine end-to-end tests (test_engine_*.py).

The expected J1 graph is computed here from the simulator's `Tenant` alone, WITHOUT the
converters of syncd/model/convert: only the type names come from syncd.model.schema (the
declared data model) and the key rule is the documented `<from>|has|<to>`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from syncd.model import schema
from syncd.sim import harness as harness_module
from syncd.sim.harness import SimHarness, start_harness
from syncd.sim.tenant import Tenant

ROOT = Path(__file__).resolve().parents[2]
SYNCD = Path(sys.executable).with_name("syncd")

DIRECTORY_ENTITY_TYPES = frozenset(
    {schema.ACCOUNT.type, schema.USER.type, schema.GROUP.type, schema.GROUP_MEMBER.type}
)
DIRECTORY_RELATIONSHIP_TYPES = frozenset(
    r.type
    for r in (
        schema.ACCOUNT_HAS_USER,
        schema.ACCOUNT_HAS_GROUP,
        schema.GROUP_HAS_USER,
        schema.GROUP_HAS_GROUP,
        schema.GROUP_HAS_MEMBER,
    )
)
NON_USER_MEMBER_STORES = ("devices", "contacts", "servicePrincipals")


def has_key(from_key: str, to_key: str) -> str:
    return f"{from_key}|has|{to_key}"


def epoch_ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class Expected:
    """The directory part of the J1 graph a tenant must produce: keys per `_type`."""

    entities: dict[str, set[str]] = field(default_factory=dict)
    relationships: dict[str, set[str]] = field(default_factory=dict)

    def entity_keys(self) -> set[str]:
        return set().union(*self.entities.values())

    def relationship_keys(self) -> set[str]:
        return set().union(*self.relationships.values())

    def endpoints_exist(self, rel_key: str) -> bool:
        keys = self.entity_keys()
        from_key, _, to_key = rel_key.split("|", 2)
        return from_key in keys and to_key in keys


def expected_directory_graph(tenant: Tenant) -> Expected:
    """What J1 must hold for `tenant`'s directory, from the tenant's own data."""
    account = f"{schema.ACCOUNT.type}:{tenant.tenant_id}"
    ents: dict[str, set[str]] = {t: set() for t in DIRECTORY_ENTITY_TYPES}
    rels: dict[str, set[str]] = {t: set() for t in DIRECTORY_RELATIONSHIP_TYPES}
    ents[schema.ACCOUNT.type].add(account)
    for user in tenant.list("users"):
        ents[schema.USER.type].add(user["id"])
        rels[schema.ACCOUNT_HAS_USER.type].add(has_key(account, user["id"]))
    for group in tenant.list("groups"):
        gid = group["id"]
        ents[schema.GROUP.type].add(gid)
        rels[schema.ACCOUNT_HAS_GROUP.type].add(has_key(account, gid))
        for member in tenant.member_ids(gid):  # visible (live) members only
            store = tenant.store_of(member)
            if store == "users":
                rels[schema.GROUP_HAS_USER.type].add(has_key(gid, member))
            elif store == "groups":
                rels[schema.GROUP_HAS_GROUP.type].add(has_key(gid, member))
            else:
                assert store in NON_USER_MEMBER_STORES, store
                ents[schema.GROUP_MEMBER.type].add(member)
                rels[schema.GROUP_HAS_MEMBER.type].add(has_key(gid, member))
    return Expected(ents, rels)


def _diff(kind: str, type_: str, want: set[str], got: set[str]) -> str:
    missing, extra = sorted(want - got), sorted(got - want)
    return f"{kind} {type_}: {len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}"


def j1_directory_graph(h: SimHarness) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The J1 simulator's graph for the scope (entities, relationships by key), checking that no
    `_key` is stored twice."""
    found = h.j1_objects()
    for kind in ("entities", "relationships"):
        dup = [k for k, n in Counter(o["_key"] for o in found[kind]).items() if n > 1]
        assert not dup, f"duplicate {kind} keys in J1: {dup[:5]}"
    return ({e["_key"]: e for e in found["entities"]}, {r["_key"]: r for r in found["relationships"]})


def graph_mismatches(h: SimHarness, expected: Expected) -> list[str]:
    """Per-type differences between J1 and the expectation (empty when they are equal)."""
    ents, rels = j1_directory_graph(h)
    out: list[str] = []
    for kind, stored, want in (
        ("entities", ents, expected.entities),
        ("relationships", rels, expected.relationships),
    ):
        by_type: dict[str, set[str]] = {}
        for key, obj in stored.items():
            by_type.setdefault(obj["_type"], set()).add(key)
        for type_, keys in sorted(want.items()):
            got = by_type.get(type_, set())
            if got != keys:
                out.append(_diff(kind, type_, keys, got))
        allowed = DIRECTORY_ENTITY_TYPES if kind == "entities" else DIRECTORY_RELATIONSHIP_TYPES
        for type_ in sorted(set(by_type) - allowed):
            out.append(f"{kind}: unexpected type {type_} ({len(by_type[type_])} objects)")
    return out


def assert_graph_matches(h: SimHarness, expected: Expected) -> None:
    problems = graph_mismatches(h, expected)
    assert not problems, "\n".join(problems)


def assert_user_properties(h: SimHarness, tenant: Tenant, user_ids: list[str]) -> None:
    """Spot checks of user properties against the tenant's raw Graph objects."""
    ents, _ = j1_directory_graph(h)
    for uid in user_ids:
        raw, entity = tenant.get("users", uid), ents[uid]
        assert raw is not None
        assert entity["_type"] == schema.USER.type and entity["_class"] == "User"
        assert entity["accountEnabled"] is raw["accountEnabled"], uid
        assert entity["userType"] == raw["userType"], uid
        assert entity["displayName"] == raw["displayName"], uid
        assert entity.get("email") == raw["mail"], uid
        assert entity["createdOn"] == epoch_ms(raw["createdDateTime"]), uid


class JobRecorder:
    """Keeps the keys of every job the J1 simulator finalizes (it drops them once FINISHED)."""

    def __init__(self, h: SimHarness) -> None:
        self.keys: dict[str, dict[str, list[str]]] = {}
        state = h.sims.j1_state
        finalize = state.finalize_entities

        def record(job: Any) -> None:
            self.keys[job.id] = {
                "entities": list(job.entities),
                "relationships": list(job.relationships),
                "deleteEntities": [str(d["_key"]) for d in job.delete_entities],
                "deleteRelationships": [str(d["_key"]) for d in job.delete_relationships],
            }
            finalize(job)

        state.finalize_entities = record


# --- harness -------------------------------------------------------------------------------------


@pytest.fixture(params=["strict", "permissive"])
def j1_reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test against the J1 simulator's strictest reading of the J1 docs (its defaults) and
    against the most permissive one: syncd must keep J1 equal to the tenant under both."""
    from tests.e2e.j1_helpers import READINGS

    monkeypatch.setattr(harness_module, "DEFAULT_J1_BEHAVIOUR", dict(READINGS[request.param]))
    return str(request.param)

HarnessFactory = Callable[..., Awaitable[SimHarness]]


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


def quiet_config(h: SimHarness, state_dir: Path | None = None, **sync: Any) -> Path:
    """A config file for a syncd child process: warnings only, JSON logs, [sync] overrides."""
    extra: dict[str, dict[str, Any]] = {"log": {"level": "WARNING", "format": "json"}}
    if state_dir is not None:
        extra["state"] = {"dir": str(state_dir)}
    if sync:
        extra["sync"] = dict(sync)
    return h.config_path(extra)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SYNCD_CONFIG", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


async def run_cli(config: Path, *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """`syncd -c <config> <args>` in a child process (the simulators keep running in this loop)."""
    proc = await asyncio.create_subprocess_exec(
        str(SYNCD),
        "-c",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=child_env(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def start_daemon(
    config: Path, log_file: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`syncd -c <config> run` in a child process, its output appended to `log_file`."""
    with log_file.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            str(SYNCD),
            "-c",
            str(config),
            "run",
            stdout=sink,
            stderr=sink,
            cwd=ROOT,
            env={**child_env(), **(env or {})},
        )


async def kill9(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if predicate():
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(interval)
