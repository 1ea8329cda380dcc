"""Admin API under `/_sim/` (plain JSON, no auth, never faulted): mutate the tenant, read
counters, switch faults, drive subscriptions/lifecycle events, reset."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from syncd.sim.admin_api import AdminError, found, read_object, refusing, settings_routes
from syncd.sim.graph.faults import Faults
from syncd.sim.graph.keys import GRAPH_SIM
from syncd.sim.refusal import answering
from syncd.sim.tenant import MEMBER_RESOURCES

_STORES = "{res:" + "|".join(MEMBER_RESOURCES) + "}"
_routes = web.RouteTableDef()


@_routes.post(f"/_sim/{_STORES}")
@answering
async def create_object(request: web.Request) -> web.Response:
    """POST /_sim/{res}: create (or replace) an object; visible in delta, fires notifications."""
    body = await read_object(request)
    with refusing(ValueError, status=409):
        obj = request.app[GRAPH_SIM].tenant.upsert(request.match_info["res"], body)
    return web.json_response(obj, status=201)


@_routes.get(f"/_sim/{_STORES}/{{id}}")
@answering
async def get_object(request: web.Request) -> web.Response:
    """GET /_sim/{res}/{id}: the stored object (live or soft-deleted)."""
    tenant = request.app[GRAPH_SIM].tenant
    res, oid = request.match_info["res"], request.match_info["id"]
    obj = tenant.get(res, oid)
    state = "live"
    if obj is None:
        obj, state = tenant.get_deleted(res, oid), "softDeleted"
    if obj is None:
        raise AdminError(404, f"{res}/{oid} not found")
    return web.json_response({"state": state, "object": obj})


@_routes.patch(f"/_sim/{_STORES}/{{id}}")
@answering
async def update_object(request: web.Request) -> web.Response:
    """PATCH /_sim/{res}/{id}: set properties; returns the names that changed."""
    body = await read_object(request)
    with found():
        changed = request.app[GRAPH_SIM].tenant.update(
            request.match_info["res"], request.match_info["id"], body
        )
    return web.json_response({"changed": sorted(changed)})


@_routes.post(f"/_sim/{_STORES}/{{id}}/{{op:soft-delete|hard-delete|restore}}")
@answering
async def lifecycle_op(request: web.Request) -> web.Response:
    """POST /_sim/{res}/{id}/{op}: soft-delete, hard-delete, restore."""
    t = request.app[GRAPH_SIM].tenant
    res, oid, op = request.match_info["res"], request.match_info["id"], request.match_info["op"]
    with found():
        if op == "soft-delete":
            t.soft_delete(res, oid)
        elif op == "hard-delete":
            t.hard_delete(res, oid)
        else:
            t.restore(res, oid)
    return web.json_response({"ok": True, "op": op, "id": oid})


@_routes.post("/_sim/groups/{id}/members")
@answering
async def add_member(request: web.Request) -> web.Response:
    """POST /_sim/groups/{id}/members {"id": memberId}."""
    body = await read_object(request)
    with found(), refusing(ValueError, status=400):
        added = request.app[GRAPH_SIM].tenant.add_member(request.match_info["id"], str(body.get("id")))
    return web.json_response({"added": added})


@_routes.delete("/_sim/groups/{id}/members/{mid}")
@answering
async def remove_member(request: web.Request) -> web.Response:
    """DELETE /_sim/groups/{id}/members/{mid}."""
    with found():
        removed = request.app[GRAPH_SIM].tenant.remove_member(
            request.match_info["id"], request.match_info["mid"]
        )
    return web.json_response({"removed": removed})


@_routes.post("/_sim/apps")
@answering
async def add_app(request: web.Request) -> web.Response:
    """POST /_sim/apps {"clientId", "clientSecret"?, "certificates"?: [PEM]}: register client
    credentials (a secret, certificates for client assertions, or both)."""
    tenant = request.app[GRAPH_SIM].tenant
    body = await read_object(request)
    certs = body.get("certificates") or []
    if not body.get("clientId") or not (body.get("clientSecret") or certs):
        raise AdminError(400, "clientId and a clientSecret or certificates are required")
    if not isinstance(certs, list) or not all(isinstance(c, str) and "BEGIN CERTIFICATE" in c for c in certs):
        raise AdminError(400, "certificates must be a list of PEM certificates")
    client_id = str(body["clientId"])
    tenant.apps[client_id] = str(body.get("clientSecret") or "")
    if certs:
        tenant.app_certificates[client_id] = [str(c) for c in certs]
    return web.json_response({"clientId": client_id}, status=201)


@_routes.get("/_sim/tenant")
async def tenant_info(request: web.Request) -> web.Response:
    """GET /_sim/tenant: ids, apps and store sizes."""
    t = request.app[GRAPH_SIM].tenant
    return web.json_response(
        {
            "tenantId": t.tenant_id,
            "apps": [{"clientId": c} for c in t.apps],
            "counts": t.counts(),
            "intune": t.intune is not None,
        }
    )


@_routes.get("/_sim/stats")
async def stats(request: web.Request) -> web.Response:
    """GET /_sim/stats: per-route request counts (incl. 429s), notification stats."""
    sim = request.app[GRAPH_SIM]
    return web.json_response(
        {
            "routes": sim.counters.routes,
            "totals": {"requests": sim.counters.total(), "throttled": sim.counters.total("throttled")},
            "notifications": sim.notifier.stats,
            "subscriptions": len(sim.subscriptions.live()),
            "tenant": sim.tenant.counts(),
        }
    )


def _faults(request: web.Request) -> dict[str, Any]:
    """GET /_sim/faults."""
    return request.app[GRAPH_SIM].faults.to_json()


def _set_faults(request: web.Request, changes: dict[str, Any]) -> None:
    """PUT /_sim/faults {partial settings}: unknown keys are rejected."""
    with refusing(KeyError, TypeError, ValueError, status=400):
        request.app[GRAPH_SIM].set_faults(changes)


@_routes.post("/_sim/delta/expire")
async def expire_delta_tokens(request: web.Request) -> web.Response:
    """POST /_sim/delta/expire: every delta/skip token issued so far → 400 syncStateNotFound."""
    request.app[GRAPH_SIM].delta.expire_all()
    return web.json_response({"ok": True})


@_routes.post("/_sim/tokens/expire")
async def expire_access_tokens(request: web.Request) -> web.Response:
    """POST /_sim/tokens/expire: every access token issued so far → 401 on use."""
    request.app[GRAPH_SIM].tokens.expire_all()
    return web.json_response({"ok": True})


@_routes.get("/_sim/subscriptions")
async def list_subs(request: web.Request) -> web.Response:
    """GET /_sim/subscriptions: all subscriptions of all apps, plus reauthorize calls seen."""
    sim = request.app[GRAPH_SIM]
    return web.json_response(
        {"value": [s.to_json() for s in sim.subscriptions.live()], "reauthorized": list(sim.reauthorized)}
    )


@_routes.post("/_sim/subscriptions/{id}/lifecycle")
@answering
async def trigger_lifecycle(request: web.Request) -> web.Response:
    """POST /_sim/subscriptions/{id}/lifecycle {"event": "reauthorizationRequired"}."""
    sim = request.app[GRAPH_SIM]
    sub = sim.subscriptions.get(request.match_info["id"])
    if sub is None:
        raise AdminError(404, "subscription not found")
    if not sub.lifecycle_url:
        raise AdminError(400, "subscription has no lifecycleNotificationUrl")
    body = await read_object(request) if request.can_read_body else {}
    delivered = await sim.notifier.send_lifecycle(sub, str(body.get("event", "reauthorizationRequired")))
    return web.json_response({"delivered": delivered})


@_routes.get("/_sim/notifications")
async def notification_log(request: web.Request) -> web.Response:
    """GET /_sim/notifications: recent delivery attempts and stats."""
    sim = request.app[GRAPH_SIM]
    return web.json_response({"stats": sim.notifier.stats, "log": list(sim.notifier.log)})


@_routes.post("/_sim/reset")
async def reset(request: web.Request) -> web.Response:
    """POST /_sim/reset: counters and faults back to defaults (tenant and subscriptions kept)."""
    sim = request.app[GRAPH_SIM]
    sim.counters.reset()
    sim.set_faults(Faults().to_json(), replace=True)
    sim.delta.set_resync(False)
    for k in sim.notifier.stats:
        sim.notifier.stats[k] = 0
    sim.notifier.log.clear()
    return web.json_response({"ok": True})


def register_admin_routes(app: web.Application) -> None:
    """Add the admin routes (the `{res}` patterns only match the tenant's store names)."""
    app.router.add_routes(_routes)
    app.router.add_routes(settings_routes("/_sim/faults", _faults, _set_faults))
