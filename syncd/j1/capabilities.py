"""J1 behaviours that no J1 document states, and what syncd knows about them on this account.

syncd's default write path uses only documented behaviour (PATCH upserts, DIFF of small
partitions). A faster path is used for a behaviour only once the probe (syncd/j1/probe.py)
proved it on the configured account; a job that contradicts it revokes it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Behaviour(StrEnum):
    """Each undocumented behaviour the probe tests (the value is the name shown by `syncd check`)."""

    EXPLICIT_ENTITY_DELETES = "explicit_entity_deletes"
    """``deleteEntities`` in a PATCH job deletes (documented only for the retired CREATE_OR_UPDATE)."""
    CROSS_SCOPE_ADDITIVE = "cross_scope_additive"
    """A CROSS_SCOPE job adds to its scope's relationships instead of replacing them."""
    CROSS_SCOPE_DELETES = "cross_scope_deletes"
    """``deleteRelationships`` in a CROSS_SCOPE job deletes."""
    CROSS_SCOPE_SAME_SCOPE = "cross_scope_same_scope"
    """CROSS_SCOPE accepts a relationship whose two endpoints live in one scope."""
    CASCADE_DELETES = "cascade_deletes"
    """Deleting an entity removes relationships to it that other scopes own."""


DOCUMENTED_BASELINE = "cross_scope_reference"
"""Not a behaviour to opt into but the documented one the layout relies on: a relationship names an
endpoint in another scope by ``_key`` + ``_scope`` + ``_source`` (the probe checks it too)."""

DESCRIPTIONS: dict[str, str] = {
    DOCUMENTED_BASELINE: "relationships name endpoints in other scopes by _key, _scope and _source",
    Behaviour.EXPLICIT_ENTITY_DELETES: "deleteEntities in a PATCH job deletes the entity",
    Behaviour.CROSS_SCOPE_ADDITIVE: "a CROSS_SCOPE job adds relationships without removing its others",
    Behaviour.CROSS_SCOPE_DELETES: "deleteRelationships in a CROSS_SCOPE job deletes the relationship",
    Behaviour.CROSS_SCOPE_SAME_SCOPE: "CROSS_SCOPE accepts both endpoints in one scope",
    Behaviour.CASCADE_DELETES: "deleting an entity removes relationships to it owned by other scopes",
}

KV_KEY = "j1.capabilities"
"""Mirror key/value entry holding the probe's findings (and revocations)."""


@dataclass
class Finding:
    """What is known about one behaviour: proven, disproven, or unknown (``ok`` None)."""

    ok: bool | None
    detail: str
    checked_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "checked_at": self.checked_at}


@dataclass
class Capabilities:
    """The findings for one account; only ``ok is True`` enables a faster write path."""

    findings: dict[str, Finding] = field(default_factory=dict)
    account_id: str = ""

    def proven(self, behaviour: Behaviour) -> bool:
        finding = self.findings.get(behaviour)
        return finding is not None and finding.ok is True

    @property
    def probed(self) -> bool:
        return bool(self.findings)

    def revoke(self, behaviour: Behaviour, detail: str) -> None:
        self.findings[behaviour] = Finding(False, detail)

    def to_json(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "findings": {name: f.to_json() for name, f in self.findings.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Capabilities:
        if not isinstance(data, Mapping):
            return cls()
        findings: dict[str, Finding] = {}
        raw = data.get("findings")
        for name, value in raw.items() if isinstance(raw, Mapping) else []:
            if isinstance(value, Mapping):
                ok = value.get("ok")
                findings[str(name)] = Finding(
                    ok if isinstance(ok, bool) else None,
                    str(value.get("detail", "")),
                    float(value.get("checked_at") or 0.0),
                )
        return cls(findings=findings, account_id=str(data.get("account_id", "")))
