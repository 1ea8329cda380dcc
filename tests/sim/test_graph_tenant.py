"""Tenant model, tenant files, recordings loader and the generator."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from syncd.sim.generator import generate_tenant
from syncd.sim.tenant import Tenant, load_tenant, save_tenant, tenant_from_recording
from tests.paths import FIXTURES


def test_mutations_log_and_listeners() -> None:
    t = Tenant("tid")
    seen: list[tuple[str, str, str]] = []
    t.add_listener(lambda r, k, i: seen.append((r, k, i)))
    u = t.upsert("users", {"displayName": "A"})
    g = t.upsert("groups", {"displayName": "G"})
    assert t.add_member(g["id"], u["id"]) and not t.add_member(g["id"], u["id"])
    assert t.update("users", u["id"], {"displayName": "A"}) == set()
    assert t.update("users", u["id"], {"displayName": "B", "city": None}) == {"displayName", "city"}
    t.soft_delete("users", u["id"])
    assert t.member_ids(g["id"]) == [] and t.get("users", u["id"]) is None
    t.restore("users", u["id"])
    assert t.member_ids(g["id"]) == [u["id"]]
    t.hard_delete("users", u["id"])
    assert t.members[g["id"]] == {} and t.odata_type_of(u["id"]) == "#microsoft.graph.user"
    kinds = [k for r, k, _ in seen if r == "users"]
    assert kinds == ["created", "updated", "soft_deleted", "restored", "hard_deleted"]
    recs = t.changes_since("users", 0, t.seq)
    assert [r.kind for r in recs] == kinds and recs[1].props == frozenset({"displayName", "city"})
    with pytest.raises(KeyError):
        t.add_member(g["id"], "missing")


def test_tenant_file_round_trip(tmp_path: Path) -> None:
    t = generate_tenant(seed=3, users=20, groups=4, devices=5, with_intune=False)
    t.soft_delete("users", next(iter(t.list("users")))["id"])
    path = tmp_path / "tenant.json"
    save_tenant(t, path)
    doc = json.loads(path.read_text())
    assert set(doc) >= {"tenantId", "organization", "apps", "users", "groups", "members", "devices", "intune"}
    t2 = load_tenant(path)
    assert t2.to_json() == t.to_json()
    assert t2.apps == t.apps


def test_recording_loader_builds_org_and_members() -> None:
    t = tenant_from_recording(FIXTURES / "managed-devices-with-users.json")
    assert t.organization["displayName"] == "Default Directory"
    assert t.apps  # an app is registered so the tenant can be served
    t2 = tenant_from_recording(FIXTURES / "group-members.json")
    assert t2.member_ids("58e48aba-cd45-440f-a851-2bf9715fadc1") == ["1bc373cb-36d4-4fd9-8996-b77d3544a380"]


def test_generator_is_deterministic_and_realistic() -> None:
    a = generate_tenant(seed=11, users=400, groups=30, devices=50, with_intune=False)
    b = generate_tenant(seed=11, users=400, groups=30, devices=50, with_intune=False)
    assert a.to_json() == b.to_json()
    assert generate_tenant(seed=12, users=10, groups=2, devices=1, with_intune=False).tenant_id != a.tenant_id
    users = list(a.list("users"))
    guests = [u for u in users if u["userType"] == "Guest"]
    assert guests and all("#EXT#@" in u["userPrincipalName"] for u in guests)
    assert any(u["accountEnabled"] is False for u in users)
    assert all(isinstance(u["businessPhones"], list) for u in users)
    assert any(u["jobTitle"] is None for u in users)
    stores = {a.store_of(m) for ms in a.members.values() for m in ms}
    assert {"users", "groups", "devices"} <= stores
    assert sum(len(m) for m in a.members.values()) > 1500
    devices = list(a.list("devices"))
    assert all({"deviceId", "isCompliant", "isManaged", "operatingSystem"} <= set(d) for d in devices)


def test_generator_calls_intune_when_available() -> None:
    try:
        import syncd.sim.intune as intune  # noqa: F401
    except ImportError:
        t = generate_tenant(seed=1, users=10, groups=2, devices=4)
        assert t.intune is None
        return
    t = generate_tenant(seed=1, users=10, groups=2, devices=4)
    assert t.intune is not None


def test_generator_scale_smoke() -> None:
    start = time.monotonic()
    t = generate_tenant(seed=2, users=10_000, groups=1_000, devices=2_000, with_intune=False)
    assert time.monotonic() - start < 10
    assert len(t.stores["users"]) == 10_000
    assert random.Random(0)  # rng use in generator does not leak global state
