"""Helpers for the Intune end-to-end tests (tests/e2e/test_intune_*.py) and bench/intune.py.

`expected_graph` derives the J1 graph a tenant must sync to straight from the simulator's data,
following shared/docs/data-model.md and docs/architecture.md ("Intune collections"), without
calling syncd's converters: a second, independent reading of the same rules.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.model import schema as m
from syncd.runtime import Runtime, open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness, start_harness
from syncd.sim.tenant import Tenant

INTUNE_ORIGINS = (
    "intune:deviceCategories",
    "intune:managedDevices",
    "intune:mobileAppCategories",
    "intune:mobileApps",
    "intune:deviceCompliancePolicies",
    "intune:deviceConfigurations",
    "intune:deviceComplianceScripts",
    "intune:deviceManagementScripts",
    "intune:intents",
    "intune:managedAppPolicies",
    "intune:mobileAppConfigurations",
)
PROBLEM = {"nonCompliant", "error", "conflict"}
SCRIPT_PROBLEM = {"fail", "scriptError", "error"}
NULL_GUID = "00000000-0000-0000-0000-000000000000"
GROUP_TARGET = "#microsoft.graph.groupAssignmentTarget"
USER_ODATA = "#microsoft.graph.user"


def intune_tenant(seed: int = 5, *, managed_devices: int = 120) -> Tenant:
    """A tenant big enough that every one of the 29 relationship types occurs (checked by the tests)."""
    return generate_tenant(seed=seed, users=60, groups=8, devices=40, managed_devices=managed_devices)


@asynccontextmanager
async def harness(tenant: Tenant, state_dir: Path) -> AsyncIterator[SimHarness]:
    h = await start_harness(tenant, state_dir, notifications=False)
    try:
        yield h
    finally:
        await h.stop()


@asynccontextmanager
async def runtime(h: SimHarness, **sync: Any) -> AsyncIterator[Runtime]:
    """A runtime against the simulators; `sync` overrides `[sync]` keys (no request-budget waits)."""
    extra = {"sync": {"intune_requests_per_20s": 100_000, "intune_concurrency": 4, **sync}}
    async with open_runtime(h.settings(extra)) as rt:
        yield rt


def graph_requests(h: SimHarness) -> dict[str, int]:
    """Answered Graph requests per route (`$batch` items count one each, like Graph's limits)."""
    return {route: c["requests"] for route, c in h.sims.graph.counters.routes.items()}


def intune_requests(h: SimHarness) -> int:
    """Requests to Intune paths (items of `$batch` included, the outer `$batch` POSTs not)."""
    return sum(
        n
        for route, n in graph_requests(h).items()
        if "/deviceManagement" in route or "/deviceAppManagement" in route
    )


def sim_job_summaries(h: SimHarness) -> list[dict[str, Any]]:
    return list(h.sims.j1_state.jobs_view())


# --- the independent expectation -----------------------------------------------------------------
@dataclass
class Expected:
    entities: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    relationships: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def entity(self, etype: m.EntityType, key: str) -> None:
        self.entities[etype.type].add(key)

    def rel(self, rtype: m.RelationshipType, from_key: str, to_key: str) -> None:
        self.relationships[rtype.type].add(f"{from_key}|{rtype.cls.lower()}|{to_key}")


def _device_of_status(status: Mapping[str, Any]) -> str:
    """`{guid}_{policyId}_{managedDeviceId}`: the device is the last `_` segment."""
    return str(status["id"]).rsplit("_", 1)[-1]


def _group_ids(assignments: Iterable[Mapping[str, Any]]) -> set[str]:
    out = set()
    for a in assignments:
        target = a.get("target") or {}
        if target.get("@odata.type") == GROUP_TARGET and target.get("groupId"):
            out.add(str(target["groupId"]))
    return out


def expected_graph(tenant: Tenant) -> Expected:
    """Every entity and relationship key, per `_type`, that a full sync of `tenant` must produce."""
    exp = Expected()
    account = f"{m.ACCOUNT.type}:{tenant.tenant_id}"
    exp.entity(m.ACCOUNT, account)
    users = list(tenant.list("users"))
    for u in users:
        exp.entity(m.USER, str(u["id"]))
        exp.rel(m.ACCOUNT_HAS_USER, account, str(u["id"]))
    for g in tenant.list("groups"):
        gid = str(g["id"])
        exp.entity(m.GROUP, gid)
        exp.rel(m.ACCOUNT_HAS_GROUP, account, gid)
        for mid in tenant.member_ids(gid):
            store = tenant.store_of(mid)
            if store == "users":
                exp.rel(m.GROUP_HAS_USER, gid, mid)
            elif store == "groups":
                exp.rel(m.GROUP_HAS_GROUP, gid, mid)
            else:
                exp.entity(m.GROUP_MEMBER, mid)
                exp.rel(m.GROUP_HAS_MEMBER, gid, mid)
    intune = tenant.intune
    if intune is None:
        return exp
    users_by_upn = {str(u.get("userPrincipalName") or "").lower(): str(u["id"]) for u in users}

    def embedded(coll: str) -> list[dict[str, Any]]:
        return [intune.embedded(coll, str(o["id"])) for o in intune.list(coll)]

    categories = {str(c["displayName"]): str(c["id"]) for c in intune.list("deviceCategories")}
    for cid in categories.values():
        exp.entity(m.DEVICE_CATEGORY, cid)
    for d in embedded("managedDevices"):
        did = str(d["id"])
        exp.entity(m.MANAGED_DEVICE, did)
        if d.get("userId") and d["userId"] != NULL_GUID:
            exp.rel(m.USER_OWNS_DEVICE, str(d["userId"]), did)
        category = categories.get(str(d.get("deviceCategoryDisplayName")))
        if category:
            exp.rel(m.CATEGORY_HAS_DEVICE, category, did)
        for app in d["detectedApps"]:
            exp.entity(m.DETECTED_APPLICATION, str(app["id"]))
            exp.rel(m.DEVICE_HAS_DETECTED_APP, did, str(app["id"]))

    def finding(status_id: str, device: str | None, producer: str, by: m.RelationshipType | None) -> None:
        exp.entity(m.NONCOMPLIANCE_FINDING, status_id)
        if device:
            exp.rel(m.DEVICE_HAS_FINDING, device, status_id)
        if by is not None:
            exp.rel(by, producer, status_id)

    for p in embedded("deviceCompliancePolicies"):
        pid = str(p["id"])
        exp.entity(m.COMPLIANCE_POLICY, pid)
        actions = [
            str(c["id"]) for r in p["scheduledActionsForRule"] for c in r["scheduledActionConfigurations"]
        ]
        for a in actions:
            exp.entity(m.COMPLIANCE_ACTION_ITEM, a)
            exp.rel(m.POLICY_HAS_ACTION_ITEM, pid, a)
        for gid in _group_ids(p["assignments"]):
            exp.rel(m.GROUP_ASSIGNED_COMPLIANCE_POLICY, gid, pid)
        for st in p["deviceStatuses"]:
            device = _device_of_status(st)
            exp.rel(m.DEVICE_ASSIGNED_COMPLIANCE_POLICY, device, pid)
            if st.get("status") in PROBLEM:
                finding(str(st["id"]), device, pid, m.POLICY_IDENTIFIED_FINDING)
                for a in actions:
                    exp.rel(m.ACTION_ITEM_MITIGATES_FINDING, a, str(st["id"]))
        for us in p["userStatuses"]:
            uid = users_by_upn.get(str(us.get("userPrincipalName") or "").lower())
            if uid:
                exp.rel(m.USER_ASSIGNED_COMPLIANCE_POLICY, uid, pid)
    for c in embedded("deviceConfigurations"):
        cid = str(c["id"])
        exp.entity(m.DEVICE_CONFIGURATION, cid)
        for gid in _group_ids(c["assignments"]):
            exp.rel(m.GROUP_ASSIGNED_CONFIGURATION, gid, cid)
        for st in c["deviceStatuses"]:
            device = _device_of_status(st)
            exp.rel(m.DEVICE_USES_CONFIGURATION, device, cid)
            if st.get("status") in PROBLEM:
                finding(str(st["id"]), device, cid, None)  # the seed has no configuration IDENTIFIED
    for s in embedded("deviceComplianceScripts"):
        sid = str(s["id"])
        exp.entity(m.COMPLIANCE_SCRIPT, sid)
        for run in s["deviceRunStates"]:
            device = str(run["managedDevice"]["id"])
            exp.rel(m.COMPLIANCE_SCRIPT_MONITORS_DEVICE, sid, device)
            if run.get("detectionState") in SCRIPT_PROBLEM:
                finding(str(run["id"]), device, sid, m.COMPLIANCE_SCRIPT_IDENTIFIED_FINDING)
    for s in embedded("deviceManagementScripts"):
        sid = str(s["id"])
        exp.entity(m.MANAGEMENT_SCRIPT, sid)
        for ga in s["groupAssignments"]:
            exp.rel(m.GROUP_ASSIGNED_MANAGEMENT_SCRIPT, str(ga["targetGroupId"]), sid)
        for run in s["deviceRunStates"]:
            exp.rel(m.MANAGEMENT_SCRIPT_MANAGES_DEVICE, sid, str(run["managedDevice"]["id"]))
    app_ids = [str(a["id"]) for a in intune.list("mobileApps")]
    for i in embedded("intents"):
        iid = str(i["id"])
        exp.entity(m.ENDPOINT_SECURITY_SETTING, iid)
        for st in i["deviceStates"]:
            exp.rel(m.DEVICE_ASSIGNED_ENDPOINT_SETTING, str(st["deviceId"]), iid)
            if st.get("state") in PROBLEM:
                finding(str(st["id"]), str(st["deviceId"]), iid, m.ENDPOINT_SETTING_IDENTIFIED_FINDING)
        values = " ".join(str(s.get("valueJson") or "") for s in i["settings"]).lower()
        for aid in app_ids:
            if aid.lower() in values:
                exp.rel(m.APPLICATION_HAS_ENDPOINT_SETTING, aid, iid)
    for c in intune.list("mobileAppCategories"):
        exp.entity(m.APPLICATION_CATEGORY, str(c["id"]))
    for a in embedded("mobileApps"):
        aid = str(a["id"])
        exp.entity(m.MANAGED_APPLICATION, aid)
        for c in a["categories"]:
            exp.rel(m.APP_CATEGORY_HAS_APPLICATION, str(c["id"]), aid)
        for st in a["deviceStatuses"]:
            exp.rel(m.DEVICE_ASSIGNED_APPLICATION, str(st["deviceId"]), aid)
    # #27: a policy's `apps` (managedMobileApp) name apps by bundle/package id, not by mobileApp id.
    apps_by_identifier: dict[str, set[str]] = defaultdict(set)
    for a in intune.list("mobileApps"):
        for fld in ("bundleId", "packageId", "appIdentifier"):
            if a.get(fld):
                apps_by_identifier[str(a[fld]).lower()].add(str(a["id"]))
    for p in embedded("managedAppPolicies"):
        exp.entity(m.APPLICATION_POLICY, str(p["id"]))
        for app in p["apps"]:
            ident = app.get("mobileAppIdentifier") or {}
            name = str(ident.get("bundleId") or ident.get("packageId") or "").lower()
            for aid in apps_by_identifier.get(name, ()):
                exp.rel(m.APPLICATION_ASSIGNED_POLICY, aid, str(p["id"]))
    for c in embedded("mobileAppConfigurations"):
        cid = str(c["id"])
        exp.entity(m.APPLICATION_CONFIGURATION, cid)
        for aid in c.get("targetedMobileApps") or []:
            exp.rel(m.APPLICATION_USES_CONFIGURATION, str(aid), cid)
        for st in c["deviceStatuses"]:
            if st.get("status") in PROBLEM:
                finding(str(st["id"]), _device_of_status(st), cid, m.APP_CONFIGURATION_IDENTIFIED_FINDING)
    return exp


def by_type(objs: Mapping[str, Mapping[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for key, obj in objs.items():
        out[str(obj["_type"])].add(key)
    return out


def assert_same_keys(
    expected: Mapping[str, set[str]], actual: Mapping[str, set[str]], types: Iterable[str]
) -> None:
    """Per type: the exact key sets, with a readable diff on failure."""
    problems = []
    for t in types:
        want, got = expected.get(t, set()), actual.get(t, set())
        if want != got:
            problems.append(
                f"{t}: {len(want)} expected, {len(got)} synced; missing {sorted(want - got)[:3]},"
                f" unexpected {sorted(got - want)[:3]}"
            )
    assert not problems, "\n".join(problems)


def no_script_content(text: str, intune: Any) -> list[str]:
    """Script bodies (base64 as served, and decoded) found in `text`."""
    import base64

    found = []
    for coll, fld in (
        ("deviceComplianceScripts", "detectionScriptContent"),
        ("deviceManagementScripts", "scriptContent"),
    ):
        for s in intune.list(coll):
            body = s.get(fld)
            if not body:
                continue
            decoded = base64.b64decode(body).decode(errors="replace")
            for needle in (body, decoded.splitlines()[0], json.dumps(decoded)[1:40]):
                if needle and needle in text:
                    found.append(f"{coll}/{s['id']}: {needle[:30]!r}")
    return found
