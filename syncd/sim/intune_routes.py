"""HTTP face of the simulated Intune: Graph GET routes, the admin API, the run-time switches.

Everything Intune lives under ``/{v1.0|beta}/deviceManagement`` and ``/deviceAppManagement``;
one catch-all route per root parses the rest itself, so availability per Graph version
(``syncd.sim.intune.COLLECTIONS``) answers exactly like Graph does ("Resource not found for the
segment ..."). Auth, throttling, latency and request counting belong to the GraphSim middleware
and apply to these routes unchanged.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from syncd.sim.admin_api import AdminError, read_json, read_object, settings_routes
from syncd.sim.graph.odata import GraphError, QueryError, not_found, segment_not_found
from syncd.sim.intune import (
    COLLECTIONS,
    NESTED_SUBS,
    RUN_STATE_SUBS,
    SERVED,
    CollectionSpec,
    IntuneData,
)
from syncd.sim.intune_http import IntuneHost, graph_json, intune_of
from syncd.sim.intune_reports import ReportStore, register_report_admin_routes, register_report_routes
from syncd.sim.refusal import answering

JSON = dict[str, Any]
DEFAULT_PAGE_SIZE = 1000
_ORG_PATH = re.compile(r"/(v1\.0|beta)/organization/([^/]+)")

FAULT_KINDS = ("forbidden", "unavailable", "flaky")
"""``forbidden``: Graph's 403 ``Authorization_RequestDenied`` (a permission not consented);
``unavailable``: 503 ``serviceNotAvailable`` on every attempt (a 5xx that outlasts the retries);
``flaky`` (object ids, not collections): the sub-resources of those objects answer 503 without
Retry-After on every attempt, while the rest of the collection answers."""


@dataclass
class IntuneSwitches:
    """The run-time switches of one simulator's Intune side (``GraphSim.intune_switches``)."""

    page_size: int | None = None
    """Overrides the routes' page size when set."""
    faults: dict[str, set[str]] = field(default_factory=lambda: {kind: set() for kind in FAULT_KINDS})
    """Per fault kind, the collections (or, for ``flaky``, the object ids) it hits."""
    reports: ReportStore = field(default_factory=ReportStore)
    """The report export jobs and their switches."""


INTUNE_SWITCHES: web.AppKey[IntuneSwitches] = web.AppKey("syncd_sim_intune_switches", IntuneSwitches)


def _switches(app: web.Application, given: IntuneSwitches | None) -> IntuneSwitches:
    """The app's switches: the Graph and admin routes of one app share them (first registration wins)."""
    if INTUNE_SWITCHES not in app:
        app[INTUNE_SWITCHES] = given or IntuneSwitches()
    return app[INTUNE_SWITCHES]


def _not_found(what: str) -> GraphError:
    return GraphError(404, "ResourceNotFound", f"Resource not found: {what}")


def _unavailable() -> GraphError:
    return GraphError(
        503, "serviceNotAvailable", "The service is temporarily unavailable. Please retry later."
    )


# --- query options -----------------------------------------------------------------------------
def _split_top_level(text: str) -> list[str]:
    """Split ``a,b($select=x,y),c`` on the commas outside parentheses."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return [p for p in parts if p]


def _parse_select(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


def _parse_expand(text: str | None) -> dict[str, list[str] | None]:
    """``$expand`` items -> nested ``$select`` (None = every property)."""
    out: dict[str, list[str] | None] = {}
    for item in _split_top_level(text or ""):
        m = re.fullmatch(r"([A-Za-z]+)\s*(?:\((.*)\))?", item)
        if not m:
            raise QueryError("BadRequest", f"Invalid $expand item '{item}'.")
        nested_select: list[str] | None = None
        for opt in (m.group(2) or "").split(";"):
            opt = opt.strip()
            if opt.startswith("$select="):
                nested_select = _parse_select(opt[len("$select=") :])
        out[m.group(1)] = nested_select
    return out


def _project(obj: JSON, select: list[str] | None) -> JSON:
    """``$select``: the named properties, plus ``@odata.type`` and ``id`` like Graph keeps them."""
    if select is None:
        return obj
    out: JSON = {}
    if "@odata.type" in obj:
        out["@odata.type"] = obj["@odata.type"]
    if "id" in obj:
        out["id"] = obj["id"]
    for key in select:
        if key in obj:
            out[key] = obj[key]
    return out


def _decode_skiptoken(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode() + b"==").decode().removeprefix("o:"))
    except (ValueError, binascii.Error) as exc:
        raise QueryError("BadRequest", "The $skiptoken is not valid.") from exc
    if offset < 0:
        raise QueryError("BadRequest", "The $skiptoken is not valid.")
    return offset


def _encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


# --- the Graph handler -------------------------------------------------------------------------
class IntuneGraphRoutes:
    """Serves every Intune GET path of the contract table from ``host.tenant.intune``."""

    def __init__(
        self, host: IntuneHost, switches: IntuneSwitches, page_size: int = DEFAULT_PAGE_SIZE
    ) -> None:
        self.host = host
        self.switches = switches
        self.page_size = page_size

    def _page_size(self) -> int:
        return self.switches.page_size or self.page_size

    async def handle(self, request: web.Request) -> web.StreamResponse:
        intune = intune_of(self.host)
        parts = [p for p in request.path.split("/") if p]
        ver, root, segs = parts[0], parts[1], parts[2:]
        served = SERVED.get(segs[0]) if segs else None
        self._check_faults(served.data if served is not None else (segs[0] if segs else ""))
        if len(segs) >= 3:
            self._check_flaky(segs[1])
        return self._dispatch(request, intune, ver, root, segs)

    def _check_faults(self, collection: str) -> None:
        """The error every request under ``collection`` (list, object, sub-resources) gets, if any."""
        faults = self.switches.faults
        if collection and collection in faults["forbidden"]:
            raise GraphError(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        if collection and collection in faults["unavailable"]:
            raise _unavailable()

    def _check_flaky(self, object_id: str) -> None:
        """The 503 every sub-resource request of a ``flaky`` object gets."""
        if object_id in self.switches.faults["flaky"]:
            raise _unavailable()

    def _dispatch(
        self, request: web.Request, intune: IntuneData, ver: str, root: str, segs: list[str]
    ) -> web.StreamResponse:
        if not segs:
            return self._root_entity(request, intune, ver, root)
        if root == "deviceManagement" and segs == ["subscriptionState"]:
            if ver != "beta":
                raise segment_not_found(segs[0])
            return graph_json(
                request,
                {
                    "@odata.context": f"{self._base(request, ver)}/$metadata"
                    "#deviceManagement/subscriptionState",
                    "value": intune.subscription_state,
                },
            )
        spec = SERVED.get(segs[0])
        if spec is None or spec.root != root or ver not in spec.versions:
            raise segment_not_found(segs[0])
        if len(segs) == 1:
            return self._list(request, intune, ver, spec)
        oid = segs[1]
        if _get(intune, spec, oid) is None:
            raise _not_found(f"{spec.name}('{oid}')")
        if len(segs) == 2:
            return self._entity(request, intune, ver, spec, oid)
        sub = segs[2]
        if sub not in spec.subs or ver not in spec.subs[sub]:
            raise segment_not_found(sub)
        if len(segs) == 3:
            return self._sub_list(request, intune, ver, spec, oid, sub)
        items = intune.sub(spec.data, oid, sub)
        item = next((x for x in items if str(x.get("id")) == segs[3]), None)
        if item is None:
            raise _not_found(f"{sub}('{segs[3]}')")
        nested = NESTED_SUBS.get((spec.name, sub))
        ctx = f"{self._base(request, ver)}/$metadata#{root}/{spec.name}('{oid}')/{sub}"
        if len(segs) == 4:
            expand = _parse_expand(request.query.get("$expand"))
            shaped = self._shape_sub_item(intune, spec, sub, item, expand)
            return graph_json(
                request,
                {
                    "@odata.context": f"{ctx}/$entity",
                    **_project(shaped, _parse_select(request.query.get("$select"))),
                },
            )
        if len(segs) == 5 and nested is not None and segs[4] == nested:
            values = list(item.get(nested) or [])
            return self._paged(request, values, f"{ctx}('{segs[3]}')/{nested}", None)
        raise segment_not_found(segs[4] if len(segs) > 4 else segs[-1])

    async def unknown_post(self, request: web.Request) -> web.StreamResponse:
        """A POST to an Intune path Graph does not have (e.g. a removed reports action)."""
        intune_of(self.host)
        raise segment_not_found(request.path.rstrip("/").rsplit("/", 1)[-1])

    # responses
    def _base(self, request: web.Request, ver: str) -> str:
        return f"{request.url.origin()}/{ver}"

    def _root_entity(self, request: web.Request, intune: IntuneData, ver: str, root: str) -> web.Response:
        select = _parse_select(request.query.get("$select"))
        if root == "deviceManagement":
            entity: JSON = {
                "id": intune.intune_account_id,
                "intuneAccountId": intune.intune_account_id,
                "subscriptionState": intune.subscription_state,
                "settings": {
                    "deviceComplianceCheckinThresholdDays": 30,
                    "isScheduledActionEnabled": True,
                    "secureByDefault": False,
                },
            }
        else:
            entity = {
                "id": intune.intune_account_id,
                "microsoftStoreForBusinessLastSuccessfulSyncDateTime": None,
            }
        ctx = f"{self._base(request, ver)}/$metadata#{root}"
        if select:
            ctx += f"({','.join(select)})"
            entity = {k: entity[k] for k in select if k in entity}
        return graph_json(request, {"@odata.context": ctx, **entity})

    def _expand_for(
        self, spec: CollectionSpec, ver: str, request: web.Request
    ) -> dict[str, list[str] | None]:
        expand = _parse_expand(request.query.get("$expand"))
        for name in expand:
            if name not in spec.subs or ver not in spec.subs[name]:
                raise QueryError(
                    "BadRequest", f"Could not find a property named '{name}' on type '{spec.name}'."
                )
        return expand

    def _shape(
        self,
        intune: IntuneData,
        spec: CollectionSpec,
        obj: JSON,
        expand: dict[str, list[str] | None],
        select: list[str] | None,
    ) -> JSON:
        out = _project(obj, select)
        if expand:
            out = dict(out)
            for name, nested_select in expand.items():
                out[name] = [
                    _project(self._shape_sub_item(intune, spec, name, x, {}), nested_select)
                    for x in intune.sub(spec.data, obj["id"], name)
                ]
        return out

    def _shape_sub_item(
        self,
        intune: IntuneData,
        spec: CollectionSpec,
        sub: str,
        item: JSON,
        expand: dict[str, list[str] | None],
    ) -> JSON:
        """Hide the embedded parts a real sub-resource item only shows under ``$expand``."""
        nested = NESTED_SUBS.get((spec.name, sub))
        if nested is not None:
            if nested in expand:
                return {**item, nested: [_project(x, expand[nested]) for x in item.get(nested) or []]}
            return {k: v for k, v in item.items() if k != nested}
        if (spec.name, sub) in RUN_STATE_SUBS:
            base = {k: v for k, v in item.items() if k != "managedDevice"}
            if "managedDevice" in expand:
                ref = item.get("managedDevice") or {}
                device = intune.get("managedDevices", str(ref.get("id")))
                full = device if device is not None else ref
                base["managedDevice"] = (
                    _project(full, expand["managedDevice"]) if expand["managedDevice"] else full
                )
            return base
        return item

    def _list(self, request: web.Request, intune: IntuneData, ver: str, spec: CollectionSpec) -> web.Response:
        select = _parse_select(request.query.get("$select"))
        expand = self._expand_for(spec, ver, request)
        ctx = f"{self._base(request, ver)}/$metadata#{spec.root}/{spec.name}{_ctx_suffix(select, expand)}"
        objs = [o for o in intune.list(spec.data) if spec.shows(o)]
        return self._paged(request, objs, ctx, lambda o: self._shape(intune, spec, o, expand, select))

    def _entity(
        self, request: web.Request, intune: IntuneData, ver: str, spec: CollectionSpec, oid: str
    ) -> web.Response:
        select = _parse_select(request.query.get("$select"))
        expand = self._expand_for(spec, ver, request)
        obj = _get(intune, spec, oid)
        assert obj is not None
        suffix = _ctx_suffix(select, expand)
        ctx = f"{self._base(request, ver)}/$metadata#{spec.root}/{spec.name}{suffix}/$entity"
        return graph_json(request, {"@odata.context": ctx, **self._shape(intune, spec, obj, expand, select)})

    def _sub_list(
        self, request: web.Request, intune: IntuneData, ver: str, spec: CollectionSpec, oid: str, sub: str
    ) -> web.Response:
        select = _parse_select(request.query.get("$select"))
        expand = _parse_expand(request.query.get("$expand"))
        nested = NESTED_SUBS.get((spec.name, sub))
        allowed = {nested} if nested else ({"managedDevice"} if (spec.name, sub) in RUN_STATE_SUBS else set())
        for name in expand:
            if name not in allowed:
                raise QueryError("BadRequest", f"Could not find a property named '{name}' on type '{sub}'.")
        ctx = f"{self._base(request, ver)}/$metadata#{spec.root}/{spec.name}('{oid}')/{sub}"
        if select or expand:
            ctx += _ctx_suffix(select, expand)
        items = intune.sub(spec.data, oid, sub)
        return self._paged(
            request,
            items,
            ctx,
            lambda x: _project(self._shape_sub_item(intune, spec, sub, x, expand), select),
        )

    def _paged(
        self, request: web.Request, items: list[JSON], ctx: str, shape: Callable[[JSON], JSON] | None
    ) -> web.Response:
        """One page of ``items``; ``@odata.count`` on the first page, ``@odata.nextLink`` while more."""
        offset = _decode_skiptoken(request.query.get("$skiptoken"))
        top_raw = request.query.get("$top")
        size = self._page_size()
        if top_raw is not None:
            try:
                size = int(top_raw)
            except ValueError as exc:
                raise QueryError("BadRequest", f"Invalid value '{top_raw}' for $top.") from exc
            if size < 0:
                raise QueryError("BadRequest", f"Invalid value '{top_raw}' for $top.")
        page = items[offset : offset + size]
        body: JSON = {"@odata.context": ctx}
        if offset == 0:
            body["@odata.count"] = len(items)
        if offset + size < len(items) and size > 0:
            body["@odata.nextLink"] = str(
                request.url.update_query({"$skiptoken": _encode_skiptoken(offset + size)})
            )
        body["value"] = [shape(x) for x in page] if shape is not None else list(page)
        return graph_json(request, body)

    # /organization/{id}?$select=mobileDeviceManagementAuthority
    async def organization_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Answers the MDM-authority read of ``/organization/{id}`` (Intune-owned property).

        A middleware rather than a route so it coexists with the directory simulator's own
        ``/organization`` routes; it runs inside the GraphSim middlewares (auth, throttling).
        """
        m = _ORG_PATH.fullmatch(request.path)
        select = _parse_select(request.query.get("$select")) or []
        if request.method != "GET" or m is None or "mobileDeviceManagementAuthority" not in select:
            return await handler(request)
        tenant = self.host.tenant
        ver, org_id = m.group(1), m.group(2)
        if org_id.lower() != tenant.tenant_id.lower():
            raise not_found(org_id)
        intune = intune_of(self.host)
        org = dict(tenant.organization)
        org["mobileDeviceManagementAuthority"] = intune.mdm_authority
        body: JSON = {
            "@odata.context": f"{self._base(request, ver)}/$metadata#organization({','.join(select)})/$entity"
        }
        body.update({k: org[k] for k in select if k in org})
        return graph_json(request, body)


def _get(intune: IntuneData, spec: CollectionSpec, oid: str) -> JSON | None:
    """One object of a (possibly typed) collection, None when absent or of another type."""
    obj = intune.get(spec.data, oid)
    return obj if obj is not None and spec.shows(obj) else None


def _ctx_suffix(select: list[str] | None, expand: dict[str, list[str] | None]) -> str:
    parts = list(select or []) + [f"{name}()" for name in expand]
    return f"({','.join(parts)})" if parts else ""


def register_intune_routes(
    app: web.Application,
    host: IntuneHost,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    batch: bool = True,
    switches: IntuneSwitches | None = None,
) -> IntuneGraphRoutes:
    """Add the Intune GET routes (v1.0 + beta), the report exports, the MDM-authority read and, by
    default, ``$batch``; ``switches`` (shared with the admin routes of the same app) default to new ones.
    """
    routes = IntuneGraphRoutes(host, _switches(app, switches), page_size)
    handle = answering(routes.handle)
    r = app.router
    ver = r"{ver:v1\.0|beta}"
    # One route per contract path (per-route request counters stay meaningful); the handler
    # re-reads the path and applies per-version availability itself.
    for root in ("deviceManagement", "deviceAppManagement"):
        r.add_get(f"/{ver}/{root}", handle)
    r.add_get(f"/{ver}/deviceManagement/subscriptionState", handle)
    for spec in SERVED.values():
        base = f"/{ver}/{spec.root}/{spec.name}"
        r.add_get(base, handle)
        r.add_get(base + "/{id}", handle)
        for sub in spec.subs:
            r.add_get(f"{base}/{{id}}/{sub}", handle)
            r.add_get(f"{base}/{{id}}/{sub}/{{item}}", handle)
            nested = NESTED_SUBS.get((spec.name, sub))
            if nested:
                r.add_get(f"{base}/{{id}}/{sub}/{{item}}/{nested}", handle)
    register_report_routes(app, host, routes.switches.reports)
    # Anything else under the Intune roots: Graph's "Resource not found for the segment".
    rest = f"/{ver}/{{root:deviceManagement|deviceAppManagement}}/{{tail:.+}}"
    r.add_get(rest, handle)
    r.add_post(rest, answering(routes.unknown_post))

    @web.middleware
    async def mdm_authority(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await routes.organization_middleware(request, handler)
        except GraphError as err:
            return err.response(request)

    app.middlewares.append(mdm_authority)
    if batch:
        from syncd.sim.graph_batch import register_batch_routes

        register_batch_routes(app)
    return routes


# --- admin API ---------------------------------------------------------------------------------
def register_intune_admin_routes(
    app: web.Application, host: IntuneHost, *, switches: IntuneSwitches | None = None
) -> None:
    """``/_sim/intune/...``: inspect and mutate the simulated Intune data (no Graph auth).

    Fixed paths are declared before the ``{coll}`` patterns, which would otherwise take them."""
    faults = _switches(app, switches).faults
    register_report_admin_routes(app, _switches(app, switches).reports)
    routes = web.RouteTableDef()

    def data() -> IntuneData:
        intune = host.tenant.intune
        if intune is None:
            raise AdminError(409, "this tenant has no Intune (PUT /_sim/intune to add it)")
        return intune

    def current_faults(request: web.Request) -> dict[str, list[str]]:
        return {k: sorted(v) for k, v in faults.items()}

    def set_faults(request: web.Request, body: dict[str, Any]) -> None:
        """Replace the listed fault kinds: ``{"forbidden": ["deviceConfigurations"]}``; ``[]`` clears."""
        for kind, names in body.items():
            if kind not in FAULT_KINDS:
                raise AdminError(400, f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise AdminError(400, f"{kind} must be a list of collection names")
            unknown = [n for n in names if n not in COLLECTIONS] if kind != "flaky" else []
            if unknown:
                raise AdminError(400, f"unknown Intune collections {unknown}")
        for kind, names in body.items():
            faults[kind] = set(names)

    def summary(request: web.Request) -> dict[str, Any]:
        intune = host.tenant.intune
        if intune is None:
            return {"enabled": False}
        return {"enabled": True, "intuneAccountId": intune.intune_account_id, "counts": intune.counts()}

    def replace(request: web.Request, body: Any) -> None:
        try:
            host.tenant.intune = IntuneData.from_json(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise AdminError(400, f"not an Intune section: {exc}") from exc

    app.router.add_routes(settings_routes("/_sim/intune/faults", current_faults, set_faults))
    app.router.add_routes(settings_routes("/_sim/intune", summary, replace, body=read_json))

    @routes.delete("/_sim/intune")
    async def remove(request: web.Request) -> web.Response:
        host.tenant.intune = None
        return web.Response(status=204)

    @routes.post("/_sim/intune/managedDevices/{id}/compliance")
    @answering
    async def compliance(request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("complianceState"), str):
            raise AdminError(400, 'body must be {"complianceState": "..."}')
        intune = data()
        device_id = request.match_info["id"]
        device = intune.set_compliance(device_id, body["complianceState"], body.get("policyIds"))
        entra_id = intune.entra_object_id(host.tenant, device_id)
        is_compliant = body["complianceState"] == "compliant"
        if entra_id is not None:
            host.tenant.update("devices", entra_id, {"isCompliant": is_compliant})
        return web.json_response(
            {"managedDevice": device, "entraDeviceObjectId": entra_id, "isCompliant": is_compliant}
        )

    @routes.get("/_sim/intune/{coll}")
    @answering
    async def list_ids(request: web.Request) -> web.Response:
        coll = request.match_info["coll"]
        ids = [o["id"] for o in data().list(coll)]
        return web.json_response({"collection": coll, "count": len(ids), "ids": ids})

    @routes.post("/_sim/intune/{coll}")
    @answering
    async def create(request: web.Request) -> web.Response:
        body = await read_object(request)
        return web.json_response(data().create(request.match_info["coll"], body), status=201)

    @routes.get("/_sim/intune/{coll}/{id}")
    @answering
    async def get_one(request: web.Request) -> web.Response:
        return web.json_response(data().embedded(request.match_info["coll"], request.match_info["id"]))

    @routes.patch("/_sim/intune/{coll}/{id}")
    @answering
    async def patch(request: web.Request) -> web.Response:
        body = await read_object(request)
        return web.json_response(data().update(request.match_info["coll"], request.match_info["id"], body))

    @routes.delete("/_sim/intune/{coll}/{id}")
    @answering
    async def delete(request: web.Request) -> web.Response:
        data().delete(request.match_info["coll"], request.match_info["id"])
        return web.Response(status=204)

    @routes.post("/_sim/intune/{coll}/{id}/{sub}")
    @answering
    async def add_sub(request: web.Request) -> web.Response:
        body = await read_object(request)
        m = request.match_info
        return web.json_response(data().add_sub(m["coll"], m["id"], m["sub"], body), status=201)

    @routes.delete("/_sim/intune/{coll}/{id}/{sub}/{item}")
    @answering
    async def delete_sub(request: web.Request) -> web.Response:
        m = request.match_info
        data().delete_sub(m["coll"], m["id"], m["sub"], m["item"])
        return web.Response(status=204)

    app.router.add_routes(routes)
