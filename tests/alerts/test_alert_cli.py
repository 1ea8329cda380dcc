"""CLI helpers: `alerts_test` on sample change files, `j1_rules` output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncd.alerts import RuleError, RuleSet, alerts_test, default_rules_path, j1_rule_set, j1_rules
from syncd.alerts.j1 import glob_to_j1ql, privileged_filter
from syncd.model.schema import ENTITY_TYPE_BY_NAME, GROUP, GROUP_HAS_USER, MANAGED_DEVICE, USER


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "change.json"
    path.write_text(json.dumps(doc))
    return path


USER_OLD = {"_key": "user-00000001", "_type": USER.type, "displayName": "Alice", "accountEnabled": True}


def test_alerts_test_single_change(tmp_path: Path) -> None:
    path = write(tmp_path, {"op": "updated", "old": USER_OLD, "new": {**USER_OLD, "accountEnabled": False}})
    out = json.loads(alerts_test(default_rules_path(), path, now=5.0))
    assert [a["rule_id"] for a in out] == ["user-disabled"]
    assert out[0]["timestamp"] == 5.0 and out[0]["change"]["key"] == "user-00000001"


def test_alerts_test_list_with_lookup(tmp_path: Path) -> None:
    group = {"_key": "group-00000001", "_type": GROUP.type, "displayName": "Domain Admins"}
    rel = {
        "_key": "group-00000001|has|user-00000001",
        "_type": GROUP_HAS_USER.type,
        "_class": "HAS",
        "_fromEntityKey": "group-00000001",
        "_toEntityKey": "user-00000001",
    }
    path = write(
        tmp_path,
        {
            "changes": [{"new": rel}, {"new": USER_OLD}],
            "lookup": {"group-00000001": group, "user-00000001": USER_OLD},
        },
    )
    out = json.loads(alerts_test(default_rules_path(), path))
    assert [a["rule_id"] for a in out] == ["privileged-group-member-added", "user-created"]
    assert out[0]["message"] == "Alice added to privileged group Domain Admins"
    assert out[0]["change"]["kind"] == "relationship" and out[0]["change"]["op"] == "created"


def test_alerts_test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs `type` and `key`"):
        alerts_test(default_rules_path(), write(tmp_path, [{"op": "created"}]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - id: x\n    severity: nope\n")
    with pytest.raises(RuleError, match=r"bad.yaml:3: "):
        alerts_test(bad, write(tmp_path, {"new": USER_OLD}))
    with pytest.raises(ValueError, match="cannot read"):
        alerts_test(default_rules_path(), tmp_path / "missing.json")


def test_j1_rules_shape() -> None:
    rules = json.loads(j1_rules())
    assert len(rules) >= 8
    for rule in rules:
        assert rule["name"].startswith("syncd-") and rule["description"]
        assert rule["pollingInterval"] in {"THIRTY_MINUTES", "ONE_HOUR", "ONE_DAY"}
        (query,) = rule["question"]["queries"]
        assert query["name"] == "query0" and query["version"] == "v1"
        assert query["query"].startswith("FIND ")
        (op,) = rule["operations"]
        assert op["when"]["condition"] == ["AND", ["queries.query0.total", ">", 0]]
        assert (
            op["actions"][0]["type"] == "SET_PROPERTY" and op["actions"][0]["targetProperty"] == "alertLevel"
        )
        assert op["actions"][0]["targetValue"] in {"INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
        assert op["actions"][1] == {"type": "CREATE_ALERT"}
    queries = {r["name"]: r["question"]["queries"][0]["query"] for r in rules}
    assert queries["syncd-user-disabled"] == (
        f"FIND {USER.type} WITH accountEnabled = false AND _beginOn > date.now - 1 hour"
    )
    assert queries["syncd-guest-user-created"] == (
        f"FIND {USER.type} WITH userType = 'Guest' AND createdOn > date.now - 1 day"
    )
    assert (
        queries["syncd-device-noncompliant"]
        == f"FIND {MANAGED_DEVICE.type} WITH complianceState = 'noncompliant'"
    )
    assert "displayName ~= 'Admin'" in queries["syncd-guest-in-privileged-group"]
    assert "displayName ^= 'Global Administrator'" in queries["syncd-guest-in-privileged-group"]
    assert "displayName = 'Domain Admins'" in queries["syncd-guest-in-privileged-group"]


def test_j1_rules_match_default_rules() -> None:
    defaults = {r.id: r.severity for r in RuleSet.default().rules}
    for rule in j1_rule_set():
        if rule.rule_id in defaults:
            assert rule.severity == defaults[rule.rule_id], rule.rule_id
        found = rule.query.replace("(", " ").replace(")", " ").replace("|", " ").split()
        named = [w for w in found if w in ENTITY_TYPE_BY_NAME]
        assert named, rule.query  # every query names schema types
    assert {r.rule_id for r in j1_rule_set()} >= set(defaults) - {
        "user-reenabled",
        "privileged-group-member-removed",
    }


def test_glob_translation_and_custom_privileged() -> None:
    assert glob_to_j1ql("displayName", "*Admin*") == "displayName ~= 'Admin'"
    assert glob_to_j1ql("displayName", "*Admins") == "displayName $= 'Admins'"
    assert glob_to_j1ql("displayName", "O'Brien*") == "displayName ^= 'O\\'Brien'"
    assert glob_to_j1ql("displayName", "Tier*0*Admins") == "displayName ~= 'Admins'"
    assert privileged_filter([], ["g1"]) == "(_key = 'g1')"
    custom = json.loads(j1_rules({"names": ["Ops*"], "ids": []}))
    assert any("displayName ^= 'Ops'" in r["question"]["queries"][0]["query"] for r in custom)
