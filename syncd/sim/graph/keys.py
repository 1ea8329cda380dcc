"""aiohttp application keys shared by the simulator modules (kept apart to avoid import cycles)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from syncd.sim.graph.app import GraphSim

GRAPH_SIM: web.AppKey[GraphSim] = web.AppKey("syncd_graph_sim")
REQUEST_ID: web.RequestKey[str] = web.RequestKey("syncd_graph_request_id", str)
CLIENT_REQUEST_ID: web.RequestKey[str] = web.RequestKey("syncd_graph_client_request_id", str)
APP_ID: web.RequestKey[str] = web.RequestKey("syncd_graph_app_id", str)
TOKEN_EXPIRY: web.RequestKey[float] = web.RequestKey("syncd_graph_token_expiry", float)
"""When the caller's access token expires (subscriptions stay authorized until then)."""
