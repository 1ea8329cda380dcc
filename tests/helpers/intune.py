"""Intune in the end-to-end tests: the collections syncd polls, and script bodies that must never
reach J1 or the logs."""

from __future__ import annotations

import base64
import json

from syncd.sim.intune import IntuneData

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
"""The Intune origins, named here independently of syncd's own table."""


def no_script_content(text: str, intune: IntuneData) -> list[str]:
    """Script bodies (base64 as served, and decoded) found in `text`."""
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
