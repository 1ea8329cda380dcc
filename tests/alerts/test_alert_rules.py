"""Rules: loading, validation with line numbers, evaluation, templates, stable ids, baseline silence."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from syncd.alerts import RuleError, RuleSet, SampleChange, default_rules_path
from syncd.model.schema import (
    COMPLIANCE_POLICY,
    DEVICE_CONFIGURATION,
    GROUP,
    GROUP_HAS_GROUP,
    GROUP_HAS_USER,
    MANAGED_DEVICE,
    USER,
    USER_OWNS_DEVICE,
)

NOW = 1_700_000_000.0


def user(key: str = "user-00000001", **props: Any) -> dict[str, Any]:
    base = {
        "_key": key,
        "_type": USER.type,
        "_class": "User",
        "displayName": "Alice Example",
        "userPrincipalName": "alice@example.com",
        "accountEnabled": True,
        "userType": "Member",
    }
    return {**base, **props}


def group(key: str = "group-00000001", name: str = "Sales", **props: Any) -> dict[str, Any]:
    return {"_key": key, "_type": GROUP.type, "_class": "UserGroup", "displayName": name, "id": key, **props}


def device(key: str = "device-0000001", **props: Any) -> dict[str, Any]:
    return {
        "_key": key,
        "_type": MANAGED_DEVICE.type,
        "_class": ["Host", "Device"],
        "displayName": "LAPTOP-1",
        "complianceState": "compliant",
        **props,
    }


def ent(op: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> SampleChange:
    data = new or old
    assert data is not None
    return SampleChange("entity", op, data["_type"], data["_key"], old, new)


def rel(op: str, rtype: str, from_key: str, to_key: str, cls: str = "HAS") -> SampleChange:
    key = f"{from_key}|{cls.lower()}|{to_key}"
    data = {
        "_key": key,
        "_type": rtype,
        "_class": cls,
        "_fromEntityKey": from_key,
        "_toEntityKey": to_key,
        "displayName": cls,
    }
    return SampleChange(
        "relationship",
        op,
        rtype,
        key,
        data if op != "created" else None,
        data if op != "deleted" else None,
        from_key,
        to_key,
    )


def no_lookup(key: str) -> Mapping[str, Any] | None:
    return None


def fired(rules: RuleSet, changes: list[SampleChange], lookup: Any = no_lookup) -> list[str]:
    return [a.rule_id for a in rules.evaluate(changes, lookup, now=NOW)]


@pytest.fixture(scope="module")
def defaults() -> RuleSet:
    return RuleSet.default()


# --- default rules: each fires, and does not fire on a near miss --------------------------------

ADMIN = group("group-admins01", "Global Administrators")
SALES = group("group-sales001", "Sales")
ENTITIES = {g["_key"]: g for g in (ADMIN, SALES)} | {"user-00000001": user()}

CASES: list[tuple[str, SampleChange, SampleChange]] = [
    ("user-created", ent("created", None, user()), ent("created", None, device())),
    ("user-deleted", ent("deleted", user(), None), ent("updated", user(), user(jobTitle="x"))),
    (
        "user-disabled",
        ent("updated", user(), user(accountEnabled=False)),
        ent("updated", user(accountEnabled=False), user(accountEnabled=False, jobTitle="x")),
    ),
    (
        "user-reenabled",
        ent("updated", user(accountEnabled=False), user()),
        ent("updated", user(), user(accountEnabled=False)),
    ),
    ("guest-user-created", ent("created", None, user(userType="Guest")), ent("created", None, user())),
    (
        "privileged-group-member-added",
        rel("created", GROUP_HAS_USER.type, ADMIN["_key"], "user-00000001"),
        rel("created", GROUP_HAS_USER.type, SALES["_key"], "user-00000001"),
    ),
    (
        "privileged-group-member-removed",
        rel("deleted", GROUP_HAS_USER.type, ADMIN["_key"], "user-00000001"),
        rel("created", GROUP_HAS_USER.type, ADMIN["_key"], "user-00000001"),
    ),
    (
        "device-noncompliant",
        ent("updated", device(), device(complianceState="noncompliant")),
        ent(
            "updated",
            device(complianceState="noncompliant"),
            device(complianceState="noncompliant", displayName="renamed"),
        ),
    ),
    (
        "policy-changed",
        ent(
            "updated",
            {"_key": "policy-000001", "_type": COMPLIANCE_POLICY.type, "displayName": "P", "v": 1},
            {"_key": "policy-000001", "_type": COMPLIANCE_POLICY.type, "displayName": "P", "v": 2},
        ),
        ent("created", None, {"_key": "policy-000001", "_type": COMPLIANCE_POLICY.type, "displayName": "P"}),
    ),
    (
        "policy-deleted",
        ent(
            "deleted", {"_key": "config-000001", "_type": DEVICE_CONFIGURATION.type, "displayName": "C"}, None
        ),
        ent("deleted", {"_key": "device-000001", "_type": MANAGED_DEVICE.type, "displayName": "D"}, None),
    ),
]


@pytest.mark.parametrize(("rule_id", "hit", "miss"), CASES, ids=[c[0] for c in CASES])
def test_default_rule_fires_and_not(
    defaults: RuleSet, rule_id: str, hit: SampleChange, miss: SampleChange
) -> None:
    assert rule_id in fired(defaults, [hit], ENTITIES.get)
    assert rule_id not in fired(defaults, [miss], ENTITIES.get)


def test_every_default_rule_is_covered(defaults: RuleSet) -> None:
    assert set(defaults.rule_ids()) == {c[0] for c in CASES}


def test_guest_created_fires_both_created_rules(defaults: RuleSet) -> None:
    assert fired(defaults, [ent("created", None, user(userType="Guest"))]) == [
        "user-created",
        "guest-user-created",
    ]


def test_default_messages(defaults: RuleSet) -> None:
    alerts = defaults.evaluate(
        [
            rel("created", GROUP_HAS_USER.type, ADMIN["_key"], "user-00000001"),
            ent("updated", device(), device(complianceState="noncompliant")),
        ],
        ENTITIES.get,
        now=NOW,
    )
    assert [a.message for a in alerts] == [
        "Alice Example added to privileged group Global Administrators",
        "Device LAPTOP-1 became noncompliant (was compliant)",
    ]
    assert alerts[0].severity == "high"
    assert alerts[0].change["from"] == {
        "key": ADMIN["_key"],
        "type": GROUP.type,
        "displayName": "Global Administrators",
    }


@pytest.mark.parametrize(
    "name", ["Domain Admins", "Tenant admin team", "Privileged Role Readers", "global administrators EU"]
)
def test_default_privileged_patterns(defaults: RuleSet, name: str) -> None:
    g = group("group-x0000001", name)
    assert fired(
        defaults, [rel("created", GROUP_HAS_GROUP.type, g["_key"], "group-y0000001")], {g["_key"]: g}.get
    ) == ["privileged-group-member-added"]


def test_privileged_groups_overridable_by_config() -> None:
    rules = RuleSet.default(params={"privileged_groups": {"ids": ["group-sales001"]}})
    change = rel("created", GROUP_HAS_USER.type, SALES["_key"], "user-00000001")
    assert fired(rules, [change], ENTITIES.get) == ["privileged-group-member-added"]
    # names kept from the file (one-level merge)
    assert "privileged-group-member-added" in fired(
        rules, [rel("created", GROUP_HAS_USER.type, ADMIN["_key"], "user-00000001")], ENTITIES.get
    )
    only_ids = RuleSet.default(params={"privileged_groups": {"names": [], "ids": []}})
    assert (
        fired(only_ids, [rel("created", GROUP_HAS_USER.type, ADMIN["_key"], "u-000000001")], ENTITIES.get)
        == []
    )


# --- conditions --------------------------------------------------------------------------------


def one(when: str, extra: str = "") -> RuleSet:
    text = f"""
version: 1
{extra}
rules:
  - id: r
    severity: low
    message: "m"
    when:
{when}
"""
    return RuleSet.from_text(text)


def indent(s: str) -> str:
    return "\n".join("      " + line for line in s.strip().splitlines())


def test_old_new_comparisons() -> None:
    rs = one(
        indent(f"""
type: {USER.type}
property:
  - {{name: department, old: {{in: [Sales, Ops]}}, new: {{ne: Sales}}, changed: true}}
  - {{name: jobTitle, matches: "*admin*"}}
""")
    )
    hit = ent(
        "updated",
        user(department="Sales", jobTitle="IT Admin"),
        user(department="Finance", jobTitle="IT Admin"),
    )
    assert fired(rs, [hit]) == ["r"]
    for old_department, job_title in (("HR", "IT Admin"), ("Sales", "Clerk")):  # each test must hold
        miss = ent(
            "updated",
            user(department=old_department, jobTitle=job_title),
            user(department="Finance", jobTitle=job_title),
        )
        assert fired(rs, [miss]) == []


def test_changed_false_exists_and_not_in() -> None:
    rs = one(
        indent(f"""
type: {USER.type}
op: updated
property:
  - {{name: mail, changed: false, exists: true}}
  - {{name: usageLocation, not_in: [US, CA]}}
""")
    )
    assert fired(
        rs, [ent("updated", user(mail="a@x", usageLocation="DE"), user(mail="a@x", usageLocation="FR"))]
    ) == ["r"]
    assert (
        fired(
            rs, [ent("updated", user(mail="a@x", usageLocation="US"), user(mail="b@x", usageLocation="US"))]
        )
        == []
    )
    assert fired(rs, [ent("updated", user(usageLocation="DE"), user(usageLocation="FR"))]) == []


def test_bool_is_not_one() -> None:
    rs = one(
        indent(f"""
type: {USER.type}
property: {{name: signInCount, to: 1}}
""")
    )
    assert fired(rs, [ent("updated", user(signInCount=0), user(signInCount=True))]) == []
    assert fired(rs, [ent("updated", user(signInCount=0), user(signInCount=1))]) == ["r"]


def test_list_valued_property_matches_any_element() -> None:
    rs = one(
        indent(f"""
type: {MANAGED_DEVICE.type}
property: {{name: tags, matches: "prod-*"}}
""")
    )
    assert fired(rs, [ent("created", None, device(tags=["dev", "prod-eu"]))]) == ["r"]
    assert fired(rs, [ent("created", None, device(tags=["dev"]))]) == []


def test_boolean_combinations() -> None:
    rs = one(
        indent(f"""
all:
  - type: {USER.type}
  - any:
      - property: {{name: userType, eq: Guest}}
      - property: {{name: department, eq: IT}}
  - not:
      op: deleted
""")
    )
    assert fired(rs, [ent("created", None, user(userType="Guest"))]) == ["r"]
    assert fired(rs, [ent("updated", user(), user(department="IT"))]) == ["r"]
    assert fired(rs, [ent("deleted", user(userType="Guest"), None)]) == []
    assert fired(rs, [ent("created", None, user())]) == []


def test_relationship_by_endpoint_types_and_class_with_both_ends() -> None:
    rs = one(
        indent(f"""
kind: relationship
from_type: {USER.type}
to_type: {MANAGED_DEVICE.type}
class: OWNS
op: added
from: {{property: {{name: userType, eq: Guest}}}}
to: {{property: {{name: operatingSystem, in: [Windows, macOS]}}}}
""")
    )
    u, d = user(userType="Guest"), device(operatingSystem="Windows")
    lookup = {u["_key"]: u, d["_key"]: d}.get
    change = rel("created", USER_OWNS_DEVICE.type, u["_key"], d["_key"], "OWNS")
    assert fired(rs, [change], lookup) == ["r"]
    member = {u["_key"]: user(), d["_key"]: d}.get
    assert fired(rs, [change], member) == []
    assert fired(rs, [rel("created", GROUP_HAS_USER.type, "group-000001", u["_key"])], lookup) == []
    assert fired(rs, [ent("created", None, u)], lookup) == []


def test_removed_relationship_endpoint_from_batch_when_lookup_has_none() -> None:
    """Group deleted in the same diff as its memberships: its old data still names it."""
    rs = RuleSet.default()
    admin = group("group-gone0001", "Helpdesk Administrators")
    changes = [
        rel("deleted", GROUP_HAS_USER.type, admin["_key"], "user-00000001"),
        ent("deleted", admin, None),
    ]
    alerts = rs.evaluate(changes, no_lookup, now=NOW)
    assert [a.rule_id for a in alerts] == ["privileged-group-member-removed"]
    assert alerts[0].message == " removed from privileged group Helpdesk Administrators"


def test_endpoint_by_id_when_unknown_everywhere() -> None:
    rs = RuleSet.default(params={"privileged_groups": {"ids": ["group-known-id"]}})
    change = rel("created", GROUP_HAS_USER.type, "group-known-id", "user-00000001")
    assert fired(rs, [change]) == ["privileged-group-member-added"]


def test_lookup_errors_do_not_break_evaluation() -> None:
    def broken(key: str) -> Mapping[str, Any] | None:
        raise RuntimeError("db gone")

    rs = RuleSet.default()
    change = rel("created", GROUP_HAS_USER.type, ADMIN["_key"], "user-00000001")
    assert fired(rs, [change, ent("created", None, user())], broken) == ["user-created"]


# --- templates ---------------------------------------------------------------------------------


def test_template_rendering() -> None:
    text = f"""
rules:
  - id: t
    severity: info
    when: {{type: {GROUP_HAS_USER.type}}}
    message: "{{{{x}}}} {{change.op}} {{change.kind}} {{from.displayName}}->{{to.displayName}}
      [{{to.missing}}] [{{new.nested.deeper}}] [{{to.accountEnabled}}] [{{to.tags}}]
      [{{from.displayName.__class__}}] {{rule.id}}/{{rule.severity}}"
"""
    rs = RuleSet.from_text(text)
    u = user(tags=["a", "b"])
    msg = rs.evaluate(
        [rel("created", GROUP_HAS_USER.type, ADMIN["_key"], u["_key"])],
        {ADMIN["_key"]: ADMIN, u["_key"]: u}.get,
        now=NOW,
    )[0].message
    assert (
        msg == "{x} created relationship Global Administrators->Alice Example [] [] [true] [a, b] [] t/info"
    )


def test_changed_list_in_message_and_summary() -> None:
    rs = RuleSet.default()
    old = {
        "_key": "policy-000001",
        "_type": COMPLIANCE_POLICY.type,
        "displayName": "Baseline",
        "passwordRequired": True,
        "passwordMinimumLength": 8,
        "clientSecret": "x",
    }
    new = {**old, "passwordRequired": False, "passwordMinimumLength": 4, "clientSecret": "y"}
    (alert,) = rs.evaluate([ent("updated", old, new)], no_lookup, now=NOW)
    assert alert.message == (
        f"{COMPLIANCE_POLICY.type} changed: Baseline "
        "(changed: clientSecret, passwordMinimumLength, passwordRequired)"
    )
    assert alert.change["changes"]["passwordRequired"] == {"old": True, "new": False}
    assert alert.change["changes"]["clientSecret"] == {"old": "[redacted]", "new": "[redacted]"}
    assert alert.change["op"] == "updated" and alert.change["key"] == "policy-000001"
    assert alert.timestamp == NOW


# --- validation: errors name the file and the line ---------------------------------------------

BAD = [
    ("rules:\n  - id: a\n    severity: urgent\n    message: m\n    when: {op: created}\n", 3, "severity"),
    (
        "rules:\n  - id: a\n    severity: low\n    message: m\n    when:\n      type: microsoft_365_usr\n",
        6,
        "unknown _type",
    ),
    (
        "rules:\n  - id: a\n    severity: low\n    message: m\n    when:\n      op: created\n"
        "      colour: red\n",
        7,
        "unknown condition",
    ),
    (
        "rules:\n  - id: a\n    severity: low\n    message: 'hi {new.x'\n    when: {op: created}\n",
        4,
        "unclosed",
    ),
    (
        "rules:\n  - id: a\n    severity: low\n    message: '{secret.x}'\n    when: {op: created}\n",
        4,
        "unknown field root",
    ),
    (
        "rules:\n  - id: a\n    severity: low\n    message: m\n    when: {op: created}\n"
        "  - id: a\n    severity: low\n    message: m\n    when: {op: created}\n",
        6,
        "duplicate rule id",
    ),
    (
        "rules:\n  - id: a\n    severity: low\n    message: m\n    when:\n      from:\n"
        "        property: {name: displayName, matches: {param: nope.names}}\n",
        7,
        "unknown param",
    ),
    ("rules:\n  - id: a\n    severity: low\n    severity: high\n", 4, "duplicate key"),
    ("rules:\n  - id: a\n    severity: low\n    message: m\n    when: {op: [created, renamed]}\n", 5, "op:"),
    (
        "rules:\n  - id: a\n    severity: low\n    message: m\n    when:\n      from:\n        op: created\n",
        7,
        "not allowed inside",
    ),
    (
        "rules:\n  - id: a\n    severity: low\n    message: m\n    when:\n      property:\n        name: x\n"
        "        from: 1\n        sideways: 2\n",
        9,
        "unknown key",
    ),
    ("rules:\n  - id: a\n    severity: low\n    message: m\n    when:\n      any: []\n", 6, "non-empty list"),
    (
        "rules:\n  - id: a\n    severity: low\n    message: m\n    when:\n      property: {name: x}\n",
        6,
        "no comparison",
    ),
    ("rules:\n  - id: a\n    severity: low\n   bad: [\n", 4, "YAML"),
    (
        "rules:\n  - id: a\n    severity: low\n    message: m\n    when: {op: created}\n    colour: red\n",
        6,
        "unknown rule key",
    ),
    ("version: 2\nrules: []\n", 1, "version"),
]


@pytest.mark.parametrize(("text", "line", "reason"), BAD, ids=[b[2] for b in BAD])
def test_invalid_rules_name_file_and_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RuleError) as info:
        RuleSet.load(path)
    assert info.value.line == line, str(info.value)
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_disabled_rule_is_validated_but_not_loaded() -> None:
    rs = RuleSet.from_text(
        "rules:\n  - {id: a, severity: low, message: m, when: {op: created}, enabled: false}\n"
    )
    assert rs.rules == ()
    with pytest.raises(RuleError):
        RuleSet.from_text(
            "rules:\n  - {id: a, severity: low, message: m, when: {op: nope}, enabled: false}\n"
        )


def test_default_rules_file_is_shipped() -> None:
    assert default_rules_path().name == "default_rules.yaml"
    assert default_rules_path().is_file()


# --- ids and baseline --------------------------------------------------------------------------


def test_alert_ids_are_stable_and_specific(defaults: RuleSet) -> None:
    change = ent("updated", user(), user(accountEnabled=False))
    a1 = defaults.evaluate([change], no_lookup, now=NOW)
    a2 = RuleSet.default().evaluate(
        [ent("updated", user(), user(accountEnabled=False))], no_lookup, now=NOW + 50
    )
    assert [a.alert_id for a in a1] == [a.alert_id for a in a2]
    assert len(a1[0].alert_id) == 64
    other = defaults.evaluate(
        [ent("updated", user(jobTitle="x"), user(accountEnabled=False, jobTitle="x"))], no_lookup, now=NOW
    )
    assert other[0].alert_id != a1[0].alert_id
    guest = defaults.evaluate([ent("created", None, user(userType="Guest"))], no_lookup, now=NOW)
    assert guest[0].alert_id != guest[1].alert_id  # same change, two rules


def test_baseline_is_silent(defaults: RuleSet) -> None:
    changes = [
        ent("created", None, user(userType="Guest")),
        rel("created", GROUP_HAS_USER.type, ADMIN["_key"], "user-00000001"),
    ]
    assert defaults.evaluate(changes, ENTITIES.get, baseline=True) == []
    assert len(defaults.evaluate(changes, ENTITIES.get)) == 3
