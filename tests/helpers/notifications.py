"""Change notifications as Graph sends them, and the TLS a sender needs to reach the daemon's webhook."""

from __future__ import annotations

import ssl
from typing import Any

from syncd.sim.harness import SimHarness


def webhook_ssl(h: SimHarness) -> ssl.SSLContext:
    """Trust the simulator's private CA (it signed the daemon's webhook certificate)."""
    return ssl.create_default_context(cafile=str(h.sims.ca_file))


def user_notification(
    h: SimHarness, sub_id: str, user_id: str, client_state: str, seq: int = 1
) -> dict[str, Any]:
    """One change notification shaped like the Graph simulator's (and Graph's) own."""
    tid = h.sims.tenant_id
    return {
        "subscriptionId": sub_id,
        "subscriptionExpirationDateTime": "2099-01-01T00:00:00Z",
        "changeType": "updated",
        "resource": f"Users/{user_id}",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.User",
            "@odata.id": f"Users/{user_id}",
            "id": user_id,
            "organizationId": tid,
            "sequenceNumber": seq,
        },
        "clientState": client_state,
        "tenantId": tid,
    }
