"""Graph conventions shared by the simulated Intune routes (``intune_routes``, ``intune_reports``).

They serve a ``GraphSim`` and, in tests, a bare aiohttp app with a stand-in host, so they answer
their own refusals (``answering``) instead of relying on the simulator's middleware.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Protocol

from aiohttp import web

from syncd.sim.graph.odata import ODATA_CONTENT_TYPE, GraphError
from syncd.sim.intune import IntuneData
from syncd.sim.tenant import Tenant

NOT_APPLICABLE = "Request not applicable to target tenant."
"""What Graph answers (400) for an Intune path of a tenant without Intune."""


class IntuneHost(Protocol):
    """What the Intune routes need of the simulator they serve: its tenant, read on every request
    (``tenant.intune`` may be replaced or removed while it runs)."""

    @property
    def tenant(self) -> Tenant: ...


def intune_of(host: IntuneHost) -> IntuneData:
    """The host tenant's Intune data; a tenant without Intune is Graph's 400."""
    intune = host.tenant.intune
    if intune is None:
        raise GraphError(400, "BadRequest", NOT_APPLICABLE)
    return intune


def graph_json(request: web.Request, body: dict[str, Any], status: int = 200) -> web.Response:
    """A Graph success response with the OData content type the recordings show."""
    headers = {"Content-Type": ODATA_CONTENT_TYPE, "request-id": str(uuid.uuid4())}
    if "client-request-id" in request.headers:
        headers["client-request-id"] = request.headers["client-request-id"]
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers)
