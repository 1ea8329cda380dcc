"""Directory read endpoints: organization, users, groups, members, devices, getByIds.

Paging uses an opaque, HMAC-signed `$skiptoken` (offset + route) so listings are stateless;
a tampered token is rejected like the real service rejects expired page tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from syncd.sim.graph.keys import GRAPH_SIM
from syncd.sim.graph.odata import (
    GraphError,
    QueryError,
    base_url,
    context_url,
    default_props,
    json_response,
    not_found,
    parse_select,
    parse_top,
    project,
    read_json,
    version_of,
)
from syncd.sim.tenant import ODATA_TYPES

if TYPE_CHECKING:
    from syncd.sim.graph.app import GraphSim

_SUPPORTED_LIST_OPTIONS = {"$select", "$top", "$skiptoken"}
_SELECT_ONLY = {"$select"}
SIGN_IN_FIELD = "signInActivity"
SIGN_IN_MAX_TOP = 500
"""Graph's page size limit for ``/users`` when ``signInActivity`` is selected."""
_SIGN_IN_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_in_activity(user: dict[str, Any]) -> dict[str, Any]:
    """A user's ``signInActivity``: the stored one (admin PATCH), else derived from its id.

    Derived values are deterministic (same id → same value); about one user in six never signed
    in (every field null).
    """
    stored = user.get(SIGN_IN_FIELD)
    if isinstance(stored, dict):
        return {**_NEVER_SIGNED_IN, **stored}
    digest = hashlib.sha256(str(user.get("id")).encode()).digest()
    if digest[0] % 6 == 0:
        return dict(_NEVER_SIGNED_IN)
    interactive = _SIGN_IN_EPOCH - timedelta(seconds=int.from_bytes(digest[1:4], "big") % (90 * 86400))
    background = _SIGN_IN_EPOCH - timedelta(seconds=int.from_bytes(digest[4:7], "big") % (30 * 86400))
    request_id = str(uuid.UUID(bytes=digest[8:24]))
    return {
        "lastSignInDateTime": _iso(interactive),
        "lastSignInRequestId": request_id,
        "lastNonInteractiveSignInDateTime": _iso(background),
        "lastNonInteractiveSignInRequestId": request_id,
        "lastSuccessfulSignInDateTime": _iso(max(interactive, background)),
        "lastSuccessfulSignInRequestId": request_id,
    }


_NEVER_SIGNED_IN: dict[str, Any] = {
    "lastSignInDateTime": None,
    "lastSignInRequestId": None,
    "lastNonInteractiveSignInDateTime": None,
    "lastNonInteractiveSignInRequestId": None,
    "lastSuccessfulSignInDateTime": None,
    "lastSuccessfulSignInRequestId": None,
}


def _project_user(
    obj: dict[str, Any], select: tuple[str, ...] | None, default: tuple[str, ...] | None
) -> dict[str, Any]:
    """``project`` plus the computed ``signInActivity`` when it is selected."""
    out = project(obj, select, default)
    if select is not None and SIGN_IN_FIELD in select:
        out[SIGN_IN_FIELD] = sign_in_activity(obj)
    return out


def _sign(sim: GraphSim, payload: dict[str, Any]) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
    mac = hmac.new(sim.page_key, raw, hashlib.sha256).digest()[:12]
    return "RFNwdAIA" + raw.decode() + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _unsign(sim: GraphSim, token: str) -> dict[str, Any] | None:
    if not token.startswith("RFNwdAIA") or "." not in token:
        return None
    raw_s, _, mac_s = token[8:].rpartition(".")
    raw = raw_s.encode()
    expect = base64.urlsafe_b64encode(hmac.new(sim.page_key, raw, hashlib.sha256).digest()[:12]).rstrip(b"=")
    if not hmac.compare_digest(expect, mac_s.encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _check_options(request: web.Request, allowed: set[str]) -> None:
    for key in request.query:
        if key.startswith("$") and key.lower() not in allowed:
            raise QueryError(
                "Request_UnsupportedQuery",
                f"The query option '{key}' is not supported by the simulator on this route.",
            )


def _page(
    request: web.Request,
    sim: GraphSim,
    route: str,
    total: int,
    fetch: Callable[[int, int], list[dict[str, Any]]],
    context: str,
    select: tuple[str, ...] | None,
    top: int,
) -> web.Response:
    """One page of a listing (fetch(offset, end) projects only that slice) plus `@odata.nextLink`."""
    offset = 0
    skip = request.query.get("$skiptoken")
    if skip is not None:
        data = _unsign(sim, skip)
        if data is None or data.get("r") != route:
            raise GraphError(
                400,
                "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in your request.",
            )
        offset = int(data.get("o", 0))
    page = fetch(offset, offset + top)
    body: dict[str, Any] = {"@odata.context": context}
    if offset + top < total:
        q = [f"$top={top}"] if "$top" in request.query else []
        if select is not None:
            q.append("$select=" + quote(",".join(select), safe=","))
        q.append("$skiptoken=" + _sign(sim, {"r": route, "o": offset + top}))
        body["@odata.nextLink"] = f"{base_url(request)}{request.path}?{'&'.join(q)}"
    body["value"] = page
    return json_response(body)


def _project_typed(sim: GraphSim, obj_id: str, select: tuple[str, ...] | None) -> dict[str, Any] | None:
    store = sim.tenant.store_of(obj_id)
    if store is None:
        return None
    obj = sim.tenant.get(store, obj_id)
    if obj is None:
        return None
    out: dict[str, Any] = {"@odata.type": ODATA_TYPES[store]}
    out.update(project(obj, select, default_props(store)))
    return out


def _select(
    request: web.Request, resource: str | None, options: set[str] = _SELECT_ONLY
) -> tuple[str, ...] | None:
    """The route's query options checked, and its `$select` parsed."""
    _check_options(request, options)
    return parse_select(request.query.get("$select"), resource)


async def list_collection(request: web.Request) -> web.Response:
    """GET /users, /groups, /devices."""
    sim = request.app[GRAPH_SIM]
    resource = request.path.rstrip("/").rsplit("/", 1)[-1]
    select = _select(request, resource, _SUPPORTED_LIST_OPTIONS)
    sign_ins = resource == "users" and select is not None and SIGN_IN_FIELD in select
    top = parse_top(request.query.get("$top"), maximum=SIGN_IN_MAX_TOP if sign_ins else 999)
    objs = sim.listing(resource)
    default = default_props(resource)
    shape = _project_user if resource == "users" else project

    def fetch(lo: int, hi: int) -> list[dict[str, Any]]:
        return [shape(o, select, default) for o in objs[lo:hi]]

    return _page(
        request,
        sim,
        f"{version_of(request)}/{resource}",
        len(objs),
        fetch,
        context_url(request, resource, select),
        select,
        top,
    )


async def get_object(request: web.Request) -> web.Response:
    """GET /users/{id}, /groups/{id}, /devices/{id}."""
    sim = request.app[GRAPH_SIM]
    resource = request.path.split("/")[2]
    obj_id = request.match_info["id"]
    select = _select(request, resource)
    obj = sim.tenant.get(resource, obj_id)
    if obj is None and resource == "users":
        obj = next((u for u in sim.tenant.list("users") if u.get("userPrincipalName") == obj_id), None)
    if obj is None:
        raise not_found(obj_id)
    shape = _project_user if resource == "users" else project
    return json_response(
        {
            "@odata.context": context_url(request, f"{resource}/$entity", select),
            **shape(obj, select, default_props(resource)),
        }
    )


async def list_members(request: web.Request) -> web.Response:
    """GET /groups/{id}/members (directoryObjects with @odata.type)."""
    sim = request.app[GRAPH_SIM]
    gid = request.match_info["id"]
    select = _select(request, None, _SUPPORTED_LIST_OPTIONS)
    top = parse_top(request.query.get("$top"))
    if sim.tenant.get("groups", gid) is None:
        raise not_found(gid)
    mids = sim.tenant.member_ids(gid)

    def fetch(lo: int, hi: int) -> list[dict[str, Any]]:
        return [o for o in (_project_typed(sim, m, select) for m in mids[lo:hi]) if o is not None]

    return _page(
        request,
        sim,
        f"{version_of(request)}/groups/{gid}/members",
        len(mids),
        fetch,
        context_url(request, "directoryObjects", select),
        select,
        top,
    )


async def organization(request: web.Request) -> web.Response:
    """GET /organization."""
    sim = request.app[GRAPH_SIM]
    select = _select(request, None)
    org = project(sim.tenant.organization, select, None)
    return json_response({"@odata.context": context_url(request, "organization", select), "value": [org]})


async def organization_one(request: web.Request) -> web.Response:
    """GET /organization/{id}."""
    sim = request.app[GRAPH_SIM]
    if request.match_info["id"] != sim.tenant.tenant_id:
        raise not_found(request.match_info["id"])
    select = parse_select(request.query.get("$select"), None)
    return json_response(
        {
            "@odata.context": context_url(request, "organization/$entity", select),
            **project(sim.tenant.organization, select, None),
        }
    )


async def get_by_ids(request: web.Request) -> web.Response:
    """POST /directoryObjects/getByIds {"ids": [...], "types": [...]} (max 1000 ids)."""
    sim = request.app[GRAPH_SIM]
    body = await read_json(request)
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids:
        raise GraphError(
            400, "Request_BadRequest", "Invalid value specified for property 'ids' of resource 'GetByIds'."
        )
    if len(ids) > 1000:
        raise GraphError(400, "Request_BadRequest", "Too many ids specified: the maximum is 1000.")
    types = body.get("types")
    wanted: set[str] | None = None
    if types is not None:
        wanted = {f"#microsoft.graph.{str(t).split('.')[-1]}".lower() for t in types}
    out = []
    for obj_id in ids:
        obj = _project_typed(sim, str(obj_id), None)
        if obj is None:
            continue
        if wanted is not None and str(obj["@odata.type"]).lower() not in wanted:
            continue
        out.append(obj)
    return json_response({"@odata.context": context_url(request, "directoryObjects"), "value": out})


def register_directory_routes(app: web.Application) -> None:
    """Add the directory read routes under both version roots."""
    for ver in ("v1.0", "beta"):
        r = app.router
        r.add_get(f"/{ver}/organization", organization)
        r.add_get(f"/{ver}/organization/{{id}}", organization_one)
        for res in ("users", "groups", "devices"):
            r.add_get(f"/{ver}/{res}", list_collection)
            r.add_get(f"/{ver}/{res}/{{id}}", get_object)
        r.add_get(f"/{ver}/groups/{{id}}/members", list_members)
        r.add_post(f"/{ver}/directoryObjects/getByIds", get_by_ids)
