"""The Graph simulator application: state holder and aiohttp app factory.

One middleware wraps every route (including the Intune routes another module adds): request ids,
bearer auth for `/v1.0` and `/beta`, injected faults (latency, resets, 429, 5xx) and per-route
counters. The notification worker and its ClientSession live in a cleanup context.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from syncd.sim.graph.admin import register_admin_routes
from syncd.sim.graph.auth import TokenStore, check_bearer, register_auth_routes
from syncd.sim.graph.delta import DeltaEngine, register_delta_routes
from syncd.sim.graph.directory import register_directory_routes
from syncd.sim.graph.faults import Counters, FaultInjector, Faults
from syncd.sim.graph.keys import APP_ID, CLIENT_REQUEST_ID, GRAPH_SIM, REQUEST_ID, TOKEN_EXPIRY
from syncd.sim.graph.notifications import DeliveryConfig, Notifier
from syncd.sim.graph.odata import GraphError, base_url, graph_error, segment_not_found
from syncd.sim.graph.permissions_fault import register_permission_faults
from syncd.sim.graph.subscriptions import SubscriptionStore, register_subscription_routes
from syncd.sim.intune_routes import IntuneSwitches, register_intune_admin_routes, register_intune_routes
from syncd.sim.refusal import answering
from syncd.sim.tenant import Tenant

__all__ = ["GRAPH_SIM", "GraphSim"]

log = logging.getLogger(__name__)

_DIAG = json.dumps(
    {
        "ServerInfo": {
            "DataCenter": "Sim",
            "Slice": "E",
            "Ring": "1",
            "ScaleUnit": "000",
            "RoleInstance": "SIM",
        }
    },
    separators=(",", ":"),
)


def _is_graph_path(path: str) -> bool:
    return path.startswith(("/v1.0/", "/beta/")) or path in ("/v1.0", "/beta")


class GraphSim:
    """Everything the Graph simulator knows: tenant, faults, counters, tokens, delta, subscriptions."""

    def __init__(
        self,
        tenant: Tenant,
        *,
        faults: Faults | None = None,
        delivery: DeliveryConfig | None = None,
        client_ssl: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        graph_resources: set[str] | None = None,
    ) -> None:
        self.tenant = tenant
        self.clock = clock
        tenant.clock = clock
        self.faults = faults or Faults()
        self.injector = FaultInjector(self.faults)
        self.counters = Counters()
        self.tokens = TokenStore(clock)
        self.delta = DeltaEngine(self)
        self.subscriptions = SubscriptionStore(self)
        self.notifier = Notifier(self, delivery, client_ssl)
        self.reauthorized: list[str] = []
        self.client_assertions: list[dict[str, Any]] = []
        """Headers (alg, x5t / x5t#S256) of the certificate credentials accepted, for tests."""
        self.page_key = secrets.token_bytes(32)
        self.extra_resources: set[str] = set(graph_resources or ())
        self._listing_cache: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self.intune_switches = IntuneSwitches()
        """Page size, per-collection faults and report exports of the Intune routes."""
        tenant.add_listener(self.notifier.on_change)
        if self.faults.resync_410:
            self.delta.set_resync(True)

    # ---------------------------------------------------------------- helpers used by handlers
    def graph_resources(self, request: web.Request) -> set[str]:
        """Resource ids accepted in `scope=<resource>/.default`: this listener's origin (+ configured)."""
        origin = base_url(request)
        out = {origin} | self.extra_resources
        if "127.0.0.1" in origin:
            out.add(origin.replace("127.0.0.1", "localhost"))
        elif "localhost" in origin:
            out.add(origin.replace("localhost", "127.0.0.1"))
        return out

    def listing(self, resource: str) -> list[dict[str, Any]]:
        """Live objects as a list, cached until the tenant changes (paged listings slice it)."""
        cached = self._listing_cache.get(resource)
        if cached is not None and cached[0] == self.tenant.version:
            return cached[1]
        objs = list(self.tenant.list(resource))
        self._listing_cache[resource] = (self.tenant.version, objs)
        return objs

    @property
    def intune_page_size(self) -> int | None:
        """The Intune routes' page size (None: their default)."""
        return self.intune_switches.page_size

    @intune_page_size.setter
    def intune_page_size(self, size: int | None) -> None:
        self.intune_switches.page_size = size

    def set_faults(self, changes: dict[str, Any], *, replace: bool = False) -> None:
        """Apply fault settings (admin API); reseeds when `seed` is given; toggles the 410 mode."""
        if replace:  # in place: the injector and the engines hold this object
            for name, default in Faults().to_json().items():
                setattr(self.faults, name, default)
        unknown = self.faults.update(changes)
        if unknown:
            raise KeyError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        if "seed" in changes or replace:
            self.injector.reseed()
        if "resync_410" in changes:
            self.delta.set_resync(bool(changes["resync_410"]))

    # ---------------------------------------------------------------- middleware
    async def _apply_faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        f = self.faults
        if f.latency_ms > 0:
            await asyncio.sleep(f.latency_ms / 1000.0)
        fault = self.injector.decide()
        if fault is None:
            resp = await handler(request)
            if self.injector.drop_response(request.method, request.path) and request.transport is not None:
                # Processed, but the answer never arrives (a gateway timeout, a reset): the
                # client cannot tell whether a POST took effect.
                request.transport.abort()
            return resp
        if fault == "reset":
            if request.transport is not None:
                request.transport.abort()  # the client sees the connection drop mid-request
            return web.Response(status=500)
        if fault == "429":
            return graph_error(
                request,
                429,
                "TooManyRequests",
                "Please retry again later.",
                {
                    "Retry-After": f.retry_after,
                    "x-ms-throttle-scope": f"Tenant_Application/ReadWrite/{request.get(APP_ID, '')}/"
                    f"{self.tenant.tenant_id}",
                    "x-ms-throttle-information": "ResourceUnitLimitExceeded",
                },
                inner_extra={"code": "429", "message": "Please retry after", "status": "429"},
            )
        if fault == "503":
            headers = {"Retry-After": f.error_retry_after} if f.error_retry_after else None
            return graph_error(
                request,
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please retry later.",
                headers,
            )
        return graph_error(
            request,
            int(fault),
            "gatewayTimeout",
            "The server, while acting as a gateway, did not receive a timely response.",
        )

    async def _serve_graph(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """A Graph call: bearer check, then faults around the handler; refusals (`GraphError`)
        raised by any of them are answered here as Graph errors."""
        try:
            auth = check_bearer(request, self)
            request[APP_ID] = auth.client_id
            request[TOKEN_EXPIRY] = auth.expires_at
            if request.path.endswith("/$batch"):
                # Graph throttles each inner request; they come back through here one by one.
                return await handler(request)
            return await self._apply_faults(request, answering(handler))
        except GraphError as err:
            return err.response(request)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Request ids, auth, faults, counting (all routes)."""
        rid = str(uuid.uuid4())
        request[REQUEST_ID] = rid
        request[CLIENT_REQUEST_ID] = request.headers.get("client-request-id", rid)
        graph = _is_graph_path(request.path)
        resp: web.StreamResponse
        try:
            resp = await (self._serve_graph(request, handler) if graph else handler(request))
        except web.HTTPException as exc:
            if not graph:
                self._count(request, exc.status)
                raise
            if exc.status == 404:
                resp = segment_not_found(request.path.rstrip("/").rsplit("/", 1)[-1]).response(request)
            elif exc.status == 405:
                resp = graph_error(
                    request,
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                )
            else:
                resp = graph_error(request, exc.status, "BadRequest", exc.reason)
        self._count(request, resp.status)
        if graph:
            resp.headers["request-id"] = rid
            resp.headers["client-request-id"] = request[CLIENT_REQUEST_ID]
            resp.headers["x-ms-ags-diagnostic"] = _DIAG
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return resp

    def _count(self, request: web.Request, status: int) -> None:
        route = request.match_info.route
        canonical = route.resource.canonical if route.resource is not None else "<unmatched>"
        self.counters.count(f"{request.method} {canonical}", status)

    # ---------------------------------------------------------------- app factory
    def create_app(self, *, intune_routes: bool = True) -> web.Application:
        """Build the aiohttp application (Graph + login + admin + the Intune routes when available)."""
        app = web.Application(middlewares=[self.middleware], client_max_size=16 * 1024 * 1024)
        app[GRAPH_SIM] = self
        register_admin_routes(app)
        register_delta_routes(app)  # before /users/{id}
        register_subscription_routes(app)
        register_directory_routes(app)
        if intune_routes:
            register_intune_routes(app, self, switches=self.intune_switches)
            register_intune_admin_routes(app, self, switches=self.intune_switches)
        register_auth_routes(app)
        register_permission_faults(app)
        app.cleanup_ctx.append(_notifier_ctx)
        return app


async def _notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    sim = app[GRAPH_SIM]
    await sim.notifier.start()
    yield
    await sim.notifier.stop()
