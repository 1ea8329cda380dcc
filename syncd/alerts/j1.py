"""J1-side alert rules matching the default local rules.

The local rules fire within seconds but only see what this daemon sees; J1 rules run on J1's
schedule (15 min at best) over the whole graph. Shipping both lets a team keep J1 as the system of
record for alerts while syncd gives the fast path. J1QL sees only current state (no old value), so
transition rules are approximated with J1's version timestamps (`_beginOn`, `_endOn`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.model.schema import (
    COMPLIANCE_POLICY,
    DEVICE_CONFIGURATION,
    GROUP,
    GROUP_MEMBER,
    MANAGED_DEVICE,
    USER,
)

_RULE_PREFIX = "syncd-"


@dataclass(frozen=True)
class J1Rule:
    """One J1 alert rule; ``rule_id`` is the local default rule it mirrors (or a J1-only posture rule)."""

    rule_id: str
    severity: str
    description: str
    query: str
    polling: str = "ONE_HOUR"
    include_deleted: bool = False

    def to_j1(self) -> dict[str, Any]:
        """The J1 alert rule JSON shape (question → operations → actions)."""
        query: dict[str, Any] = {"name": "query0", "query": self.query, "version": "v1"}
        if self.include_deleted:
            query["includeDeleted"] = True
        return {
            "name": f"{_RULE_PREFIX}{self.rule_id}",
            "description": self.description,
            "version": 1,
            "specVersion": 1,
            "pollingInterval": self.polling,
            "question": {"queries": [query]},
            "operations": [
                {
                    "when": {
                        "type": "FILTER",
                        "specVersion": 1,
                        "condition": ["AND", ["queries.query0.total", ">", 0]],
                    },
                    "actions": [
                        {
                            "type": "SET_PROPERTY",
                            "targetProperty": "alertLevel",
                            "targetValue": self.severity.upper(),
                        },
                        {"type": "CREATE_ALERT"},
                    ],
                }
            ],
            "outputs": ["queries.query0.total", "alertLevel"],
        }


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def glob_to_j1ql(prop: str, pattern: str) -> str:
    """A displayName glob as a J1QL filter: `*x*` → `~=` (contains), `x*` → `^=`, `*x` → `$=`, `x` → `=`."""
    inner = pattern.strip("*")
    if not inner:
        return f"{prop} != undefined"
    if "*" in inner or "?" in inner:  # J1QL has no glob: approximate with the longest literal part
        parts = [p for p in inner.replace("?", "*").split("*") if p]
        return f"{prop} ~= {_quote(max(parts, key=len))}"
    starts, ends = pattern.startswith("*"), pattern.endswith("*")
    if starts and ends:
        return f"{prop} ~= {_quote(inner)}"
    if ends:
        return f"{prop} ^= {_quote(inner)}"
    if starts:
        return f"{prop} $= {_quote(inner)}"
    return f"{prop} = {_quote(inner)}"


def privileged_filter(names: Sequence[str], ids: Sequence[str]) -> str:
    """`(displayName ~= 'Admin' OR ... OR _key = '<id>')` for the privileged group list."""
    terms = [glob_to_j1ql("displayName", n) for n in names] + [f"_key = {_quote(i)}" for i in ids]
    return "(" + " OR ".join(terms or ["_key = ''"]) + ")"


def j1_rule_set(privileged: Mapping[str, Sequence[str]] | None = None) -> list[J1Rule]:
    """J1 rules for the default conditions (same ids and severities as default_rules.yaml)."""
    if privileged is None:
        from syncd.alerts.rules import RuleSet

        privileged = RuleSet.default().params.get("privileged_groups") or {}
    priv = privileged_filter(list(privileged.get("names") or []), list(privileged.get("ids") or []))
    members = f"({USER.type}|{GROUP.type}|{GROUP_MEMBER.type})"
    policies = f"({COMPLIANCE_POLICY.type}|{DEVICE_CONFIGURATION.type})"
    return [
        J1Rule(
            "user-created",
            "low",
            "User created in the last hour.",
            f"FIND {USER.type} WITH createdOn > date.now - 1 hour",
        ),
        J1Rule(
            "user-deleted",
            "medium",
            "User deleted in the last hour (deleted entities included).",
            f"FIND {USER.type} WITH _deleted = true AND _endOn > date.now - 1 hour",
            include_deleted=True,
        ),
        J1Rule(
            "user-disabled",
            "medium",
            "User disabled: accountEnabled false, version from the last hour.",
            f"FIND {USER.type} WITH accountEnabled = false AND _beginOn > date.now - 1 hour",
        ),
        J1Rule(
            "guest-user-created",
            "medium",
            "Guest user created in the last day.",
            f"FIND {USER.type} WITH userType = 'Guest' AND createdOn > date.now - 1 day",
            polling="ONE_DAY",
        ),
        J1Rule(
            "privileged-group-member-added",
            "high",
            "Membership of a privileged group created in the last hour.",
            f"FIND {GROUP.type} WITH {priv} THAT HAS AS r {members} WHERE r._beginOn > date.now - 1 hour",
        ),
        J1Rule(
            "guest-in-privileged-group",
            "critical",
            "Posture (J1 only): a guest user is a member of a privileged group.",
            f"FIND {GROUP.type} WITH {priv} THAT HAS {USER.type} WITH userType = 'Guest'",
        ),
        J1Rule(
            "device-noncompliant",
            "high",
            "Posture: managed devices that are noncompliant.",
            f"FIND {MANAGED_DEVICE.type} WITH complianceState = 'noncompliant'",
        ),
        J1Rule(
            "policy-changed",
            "medium",
            "Compliance policy or device configuration with a new version in the last hour.",
            f"FIND {policies} WITH _beginOn > date.now - 1 hour",
        ),
        J1Rule(
            "policy-deleted",
            "high",
            "Compliance policy or device configuration deleted (last hour).",
            f"FIND {policies} WITH _deleted = true AND _endOn > date.now - 1 hour",
            include_deleted=True,
        ),
    ]


def j1_rules(privileged: Mapping[str, Sequence[str]] | None = None) -> str:
    """JSON list of J1 alert rule definitions, ready for J1's rule editor / API (`syncd alerts j1-rules`)."""
    return json.dumps([r.to_j1() for r in j1_rule_set(privileged)], indent=2)
