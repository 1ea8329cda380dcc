"""What J1 must hold for a simulated tenant, and what the J1 simulator holds in syncd's scopes.

The expectation is computed from the simulator's `Tenant` alone, WITHOUT syncd's converters
(syncd/model/convert): only the type names come from syncd.model.schema (the declared data
model); keys follow the documented `<from>|<class>|<to>` rule and the relations of
shared/docs/data-model.md and docs/architecture.md ("Intune collections"). A second, independent
reading of the same rules.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.kit.tenants import intune_of
from bench.kit.waiting import wait_for
from syncd.model import schema as m
from syncd.sim.harness import SimHarness
from syncd.sim.tenant import Tenant

DIRECTORY_ENTITY_TYPES = frozenset({m.ACCOUNT.type, m.USER.type, m.GROUP.type, m.GROUP_MEMBER.type})
DIRECTORY_RELATIONSHIP_TYPES = frozenset(
    r.type
    for r in (
        m.ACCOUNT_HAS_USER,
        m.ACCOUNT_HAS_GROUP,
        m.GROUP_HAS_USER,
        m.GROUP_HAS_GROUP,
        m.GROUP_HAS_MEMBER,
    )
)
NON_USER_MEMBER_STORES = ("devices", "contacts", "servicePrincipals")
PROBLEM = {"nonCompliant", "error", "conflict"}
SCRIPT_PROBLEM = {"fail", "scriptError", "error"}
NULL_GUID = "00000000-0000-0000-0000-000000000000"
GROUP_TARGET = "#microsoft.graph.groupAssignmentTarget"

Objects = dict[str, dict[str, Any]]
"""J1 objects by `_key`."""


# --- the expectation ---------------------------------------------------------------------------------


@dataclass
class Expected:
    """Keys per `_type` of the J1 graph a tenant must produce. Every type it covers has an entry,
    empty or not: a type J1 holds that is not covered is unexpected."""

    entities: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    relationships: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def entity(self, etype: m.EntityType, key: str) -> None:
        self.entities[etype.type].add(key)

    def rel(self, rtype: m.RelationshipType, from_key: str, to_key: str) -> None:
        self.relationships[rtype.type].add(f"{from_key}|{rtype.cls.lower()}|{to_key}")

    def entity_keys(self) -> set[str]:
        return set().union(*self.entities.values())

    def relationship_keys(self) -> set[str]:
        return set().union(*self.relationships.values())

    def endpoints_exist(self, rel_key: str) -> bool:
        keys = self.entity_keys()
        from_key, _, to_key = rel_key.split("|", 2)
        return from_key in keys and to_key in keys


def expected_directory(tenant: Tenant) -> Expected:
    """The directory part: the account, users, groups, their non-user members, memberships."""
    exp = Expected()
    for t in DIRECTORY_ENTITY_TYPES:
        exp.entities[t] = set()
    for t in DIRECTORY_RELATIONSHIP_TYPES:
        exp.relationships[t] = set()
    account = f"{m.ACCOUNT.type}:{tenant.tenant_id}"
    exp.entity(m.ACCOUNT, account)
    for user in tenant.list("users"):
        exp.entity(m.USER, str(user["id"]))
        exp.rel(m.ACCOUNT_HAS_USER, account, str(user["id"]))
    for group in tenant.list("groups"):
        gid = str(group["id"])
        exp.entity(m.GROUP, gid)
        exp.rel(m.ACCOUNT_HAS_GROUP, account, gid)
        for member in tenant.member_ids(gid):  # visible (live) members only
            store = tenant.store_of(member)
            if store == "users":
                exp.rel(m.GROUP_HAS_USER, gid, member)
            elif store == "groups":
                exp.rel(m.GROUP_HAS_GROUP, gid, member)
            else:
                assert store in NON_USER_MEMBER_STORES, store
                exp.entity(m.GROUP_MEMBER, member)
                exp.rel(m.GROUP_HAS_MEMBER, gid, member)
    return exp


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
    """Every entity and relationship key, per `_type`, that a full sync of `tenant` (every source)
    must produce: the directory, plus Intune when the tenant has it."""
    exp = expected_directory(tenant)
    if tenant.intune is not None:
        _add_intune(exp, tenant)
    return exp


def _add_intune(exp: Expected, tenant: Tenant) -> None:
    intune = intune_of(tenant)
    users_by_upn = {str(u.get("userPrincipalName") or "").lower(): str(u["id"]) for u in tenant.list("users")}

    def embedded(coll: str) -> list[dict[str, Any]]:
        return [intune.embedded(coll, str(o["id"])) for o in intune.list(coll)]

    def finding(status_id: str, device: str | None, producer: str, by: m.RelationshipType | None) -> None:
        exp.entity(m.NONCOMPLIANCE_FINDING, status_id)
        if device:
            exp.rel(m.DEVICE_HAS_FINDING, device, status_id)
        if by is not None:
            exp.rel(by, producer, status_id)

    categories = {str(c["displayName"]): str(c["id"]) for c in intune.list("deviceCategories")}
    for category_id in categories.values():
        exp.entity(m.DEVICE_CATEGORY, category_id)
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

    def assigned(
        obj: dict[str, Any],
        etype: m.EntityType,
        by_group: m.RelationshipType,
        by_device: m.RelationshipType,
        identified: m.RelationshipType | None,
    ) -> list[str]:
        """A policy-like object, its group assignments and device statuses (a finding for each
        status with a problem); returns the ids of those statuses."""
        oid = str(obj["id"])
        exp.entity(etype, oid)
        for gid in _group_ids(obj["assignments"]):
            exp.rel(by_group, gid, oid)
        problems = []
        for st in obj["deviceStatuses"]:
            device = _device_of_status(st)
            exp.rel(by_device, device, oid)
            if st.get("status") in PROBLEM:
                finding(str(st["id"]), device, oid, identified)
                problems.append(str(st["id"]))
        return problems

    for p in embedded("deviceCompliancePolicies"):
        pid = str(p["id"])
        actions = [
            str(c["id"]) for r in p["scheduledActionsForRule"] for c in r["scheduledActionConfigurations"]
        ]
        for action in actions:
            exp.entity(m.COMPLIANCE_ACTION_ITEM, action)
            exp.rel(m.POLICY_HAS_ACTION_ITEM, pid, action)
        for status_id in assigned(
            p,
            m.COMPLIANCE_POLICY,
            m.GROUP_ASSIGNED_COMPLIANCE_POLICY,
            m.DEVICE_ASSIGNED_COMPLIANCE_POLICY,
            m.POLICY_IDENTIFIED_FINDING,
        ):
            for action in actions:
                exp.rel(m.ACTION_ITEM_MITIGATES_FINDING, action, status_id)
        for us in p["userStatuses"]:
            uid = users_by_upn.get(str(us.get("userPrincipalName") or "").lower())
            if uid:
                exp.rel(m.USER_ASSIGNED_COMPLIANCE_POLICY, uid, pid)
    for conf in embedded("deviceConfigurations"):
        # the seed has no configuration IDENTIFIED relationship
        assigned(
            conf, m.DEVICE_CONFIGURATION, m.GROUP_ASSIGNED_CONFIGURATION, m.DEVICE_USES_CONFIGURATION, None
        )
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
    for app_category in intune.list("mobileAppCategories"):
        exp.entity(m.APPLICATION_CATEGORY, str(app_category["id"]))
    for a in embedded("mobileApps"):
        aid = str(a["id"])
        exp.entity(m.MANAGED_APPLICATION, aid)
        for app_category in a["categories"]:
            exp.rel(m.APP_CATEGORY_HAS_APPLICATION, str(app_category["id"]), aid)
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
    for conf in embedded("mobileAppConfigurations"):
        cid = str(conf["id"])
        exp.entity(m.APPLICATION_CONFIGURATION, cid)
        for aid in conf.get("targetedMobileApps") or []:
            exp.rel(m.APPLICATION_USES_CONFIGURATION, str(aid), cid)
        for st in conf["deviceStatuses"]:
            if st.get("status") in PROBLEM:
                finding(str(st["id"]), _device_of_status(st), cid, m.APP_CONFIGURATION_IDENTIFIED_FINDING)


# --- what J1 holds ------------------------------------------------------------------------------------


def j1_objects(h: SimHarness) -> dict[str, list[dict[str, Any]]]:
    """Every object the J1 simulator holds in a scope of syncd's, `[j1] scope` or one that starts
    with it (its partitions, and probe or isolation scopes, which must be empty by then):
    {"entities": [...], "relationships": [...]}."""
    found = h.sims.j1_state.query_graph(None, None, h.sims.j1_account_id, scope_prefix=h.scope)
    return {"entities": list(found["entities"]), "relationships": list(found["relationships"])}


def duplicated_keys(objects: Mapping[str, list[dict[str, Any]]]) -> set[str]:
    """Keys stored more than once across syncd's scopes (always a bug)."""
    seen: set[str] = set()
    twice: set[str] = set()
    for obj in (*objects["entities"], *objects["relationships"]):
        key = str(obj["_key"])
        (twice if key in seen else seen).add(key)
    return twice


def j1_graph(h: SimHarness) -> tuple[Objects, Objects]:
    """syncd's graph in J1 (entities, relationships by key), failing on a key stored twice."""
    found = j1_objects(h)
    twice = duplicated_keys(found)
    assert not twice, f"keys stored twice in J1: {sorted(twice)[:5]}"
    return ({e["_key"]: e for e in found["entities"]}, {r["_key"]: r for r in found["relationships"]})


def j1_property(h: SimHarness, key: str, prop: str) -> Any:
    """A property of the entity `key` as J1 holds it (None when the entity or property is absent),
    looked up by key in O(1): the benches and tests poll this."""
    return (h.j1_object("e", key) or {}).get(prop)


async def until_in_j1(h: SimHarness, key: str, prop: str, value: Any, timeout: float) -> float:
    """Seconds until J1 holds `value` as `prop` of entity `key` (looked up every 10 ms)."""

    def there() -> bool:
        got = j1_property(h, key, prop)
        return got is value if isinstance(value, bool) else bool(got == value)

    return await wait_for(there, timeout, f"{prop} = {value!r} on {key} in J1", interval=0.01)


def by_type(objs: Mapping[str, Mapping[str, Any]]) -> dict[str, set[str]]:
    """Keys per `_type`."""
    out: dict[str, set[str]] = defaultdict(set)
    for key, obj in objs.items():
        out[str(obj["_type"])].add(key)
    return out


def key_mismatches(
    expected: Mapping[str, set[str]], actual: Mapping[str, set[str]], types: Iterable[str]
) -> list[str]:
    """Per type of `types`: how the key sets differ (empty when they are equal)."""
    problems = []
    for t in sorted(types):
        want, got = expected.get(t, set()), actual.get(t, set())
        if want != got:
            problems.append(
                f"{t}: {len(want)} expected, {len(got)} in J1; missing {sorted(want - got)[:3]},"
                f" unexpected {sorted(got - want)[:3]}"
            )
    return problems


def assert_same_keys(
    expected: Mapping[str, set[str]], actual: Mapping[str, set[str]], types: Iterable[str]
) -> None:
    """Per type: the exact key sets, with a readable diff on failure."""
    problems = key_mismatches(expected, actual, types)
    assert not problems, "\n".join(problems)


def graph_mismatches(h: SimHarness, expected: Expected) -> list[str]:
    """How syncd's graph in J1 differs from `expected`, per type, including types it does not cover
    (empty when they are equal)."""
    entities, relationships = j1_graph(h)
    out: list[str] = []
    for want, objs in ((expected.entities, entities), (expected.relationships, relationships)):
        got = by_type(objs)
        out += key_mismatches(want, got, want)
        out += [f"unexpected type {t} ({len(got[t])} objects)" for t in sorted(set(got) - set(want))]
    return out


def assert_graph_matches(h: SimHarness, expected: Expected) -> None:
    problems = graph_mismatches(h, expected)
    assert not problems, "\n".join(problems)


def _epoch_ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def assert_user_properties(h: SimHarness, tenant: Tenant, user_ids: list[str]) -> None:
    """Spot checks of user properties in J1 against the tenant's raw Graph objects."""
    entities, _ = j1_graph(h)
    for uid in user_ids:
        raw, entity = tenant.get("users", uid), entities[uid]
        assert raw is not None
        assert entity["_type"] == m.USER.type and entity["_class"] == "User"
        assert entity["accountEnabled"] is raw["accountEnabled"], uid
        assert entity["userType"] == raw["userType"], uid
        assert entity["displayName"] == raw["displayName"], uid
        assert entity.get("email") == raw["mail"], uid
        assert entity["createdOn"] == _epoch_ms(raw["createdDateTime"]), uid


# --- users and groups, property by property -------------------------------------------------------------

USER_PROPERTIES = ("displayName", "jobTitle", "accountEnabled", "userPrincipalName")
GROUP_PROPERTIES = ("displayName", "description")
"""Graph properties syncd carries to J1 under the same name (the data model's pass-through)."""

Props = tuple[tuple[str, Any], ...]


def _props(obj: Mapping[str, Any], names: tuple[str, ...]) -> Props:
    return tuple((name, obj.get(name)) for name in names)


@dataclass(frozen=True)
class Directory:
    """Users and groups (key → the properties compared) and membership relationship keys."""

    users: dict[str, Props]
    groups: dict[str, Props]
    memberships: frozenset[str]
    duplicated: frozenset[str] = frozenset()
    """Keys stored more than once across syncd's J1 scopes (always a bug)."""

    def diff(self, other: Directory) -> dict[str, dict[str, Any]]:
        """What `other` (J1) gets wrong compared with `self` (the truth): empty when equal."""
        out: dict[str, dict[str, Any]] = {}
        for name in ("users", "groups"):
            mine, theirs = getattr(self, name), getattr(other, name)
            missing, extra = sorted(mine.keys() - theirs.keys()), sorted(theirs.keys() - mine.keys())
            changed = {
                key: {
                    p: [want, got]
                    for (p, want), (_, got) in zip(mine[key], theirs[key], strict=True)
                    if want != got
                }
                for key in sorted(mine.keys() & theirs.keys())
                if mine[key] != theirs[key]
            }
            if missing or extra or changed:
                out[name] = {
                    "missing": missing[:10],
                    "left_over": extra[:10],
                    "changed": dict(list(changed.items())[:10]),
                }
        missing_m, extra_m = (
            sorted(self.memberships - other.memberships),
            sorted(other.memberships - self.memberships),
        )
        if missing_m or extra_m:
            out["memberships"] = {"missing": missing_m[:10], "left_over": extra_m[:10]}
        if other.duplicated:
            out["duplicated"] = {"keys": sorted(other.duplicated)[:10]}
        return out


MEMBERSHIP_TYPES = (m.GROUP_HAS_USER.type, m.GROUP_HAS_GROUP.type)


def directory_truth(tenant: Tenant) -> Directory:
    """The users and groups with their properties, and the memberships, of `tenant`."""
    memberships = expected_directory(tenant).relationships
    return Directory(
        {u["id"]: _props(u, USER_PROPERTIES) for u in tenant.list("users")},
        {g["id"]: _props(g, GROUP_PROPERTIES) for g in tenant.list("groups")},
        frozenset().union(*(memberships[t] for t in MEMBERSHIP_TYPES)),
    )


def j1_directory(h: SimHarness) -> Directory:
    """The same, as syncd's scopes in J1 hold it (keys stored twice reported, not merged away)."""
    found = j1_objects(h)
    entities, relationships = found["entities"], found["relationships"]
    return Directory(
        {e["_key"]: _props(e, USER_PROPERTIES) for e in entities if e["_type"] == m.USER.type},
        {e["_key"]: _props(e, GROUP_PROPERTIES) for e in entities if e["_type"] == m.GROUP.type},
        frozenset(r["_key"] for r in relationships if r["_type"] in MEMBERSHIP_TYPES),
        frozenset(duplicated_keys(found)),
    )


async def wait_converged(h: SimHarness, timeout: float) -> None:
    """Until J1 equals the tenant, properties included; fails naming the last difference."""
    last: dict[str, Any] = {}

    def converged() -> bool:
        nonlocal last
        last = directory_truth(h.tenant).diff(j1_directory(h))
        return not last

    await wait_for(
        converged, timeout, lambda: f"J1 to equal the tenant: {json.dumps(last)[:2000]}", interval=0.2
    )
