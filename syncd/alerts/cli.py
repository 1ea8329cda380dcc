"""Offline helpers for the `syncd alerts ...` commands: try rules on a sample change, print J1 rules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syncd.alerts.j1 import j1_rules
from syncd.alerts.rules import RuleSet, iter_changes


def alerts_test(rules_path: Path, change_path: Path, *, now: float | None = None) -> str:
    """Evaluate ``rules_path`` against the change(s) in ``change_path``; return fired alerts as JSON.

    The file holds one Change object, a list of them, or ``{"changes": [...], "lookup": {key: entity}}``
    (``lookup`` supplies relationship endpoints the way the mirror would). Raises RuleError for a bad
    rules file and ValueError for a bad sample.
    """
    rules = RuleSet.load(rules_path)
    try:
        doc: Any = json.loads(change_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{change_path}: cannot read sample change: {exc}") from None
    entities: Mapping[str, Any] = {}
    if isinstance(doc, Mapping) and "changes" in doc:
        raw = doc.get("changes")
        lookup_doc = doc.get("lookup") or {}
        if not isinstance(lookup_doc, Mapping):
            raise ValueError(f"{change_path}: `lookup` must map _key to entity")
        entities = lookup_doc
    else:
        raw = doc
    items: list[Any] = raw if isinstance(raw, list) else [raw]
    changes = iter_changes(items)

    def lookup(key: str) -> Mapping[str, Any] | None:
        found = entities.get(key)
        return found if isinstance(found, Mapping) else None

    alerts = rules.evaluate(changes, lookup, now=now)
    return json.dumps([a.to_dict() for a in alerts], indent=2, default=str)


__all__ = ["alerts_test", "j1_rules"]
