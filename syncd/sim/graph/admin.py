"""Admin API under `/_sim/` (plain JSON, no auth, never faulted): mutate the tenant, read
counters, switch faults, drive subscriptions/lifecycle events, reset."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from syncd.sim.graph.faults import Faults
from syncd.sim.graph.keys import GRAPH_SIM
from syncd.sim.tenant import MEMBER_RESOURCES

_STORES = "{res:" + "|".join(MEMBER_RESOURCES) + "}"


def _err(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _err(400, "body must be JSON")
    if not isinstance(body, dict):
        return _err(400, "body must be a JSON object")
    return body


async def create_object(request: web.Request) -> web.Response:
    """POST /_sim/{res}: create (or replace) an object; visible in delta, fires notifications."""
    sim = request.app[GRAPH_SIM]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        obj = sim.tenant.upsert(request.match_info["res"], body)
    except ValueError as e:
        return _err(409, str(e))
    return web.json_response(obj, status=201)


async def get_object(request: web.Request) -> web.Response:
    """GET /_sim/{res}/{id}: the stored object (live or soft-deleted)."""
    sim = request.app[GRAPH_SIM]
    res, oid = request.match_info["res"], request.match_info["id"]
    obj = sim.tenant.get(res, oid)
    state = "live"
    if obj is None:
        obj, state = sim.tenant.get_deleted(res, oid), "softDeleted"
    if obj is None:
        return _err(404, f"{res}/{oid} not found")
    return web.json_response({"state": state, "object": obj})


async def update_object(request: web.Request) -> web.Response:
    """PATCH /_sim/{res}/{id}: set properties; returns the names that changed."""
    sim = request.app[GRAPH_SIM]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        changed = sim.tenant.update(request.match_info["res"], request.match_info["id"], body)
    except KeyError as e:
        return _err(404, f"{e.args[0]} not found")
    return web.json_response({"changed": sorted(changed)})


async def lifecycle_op(request: web.Request) -> web.Response:
    """POST /_sim/{res}/{id}/{op}: soft-delete, hard-delete, restore."""
    sim = request.app[GRAPH_SIM]
    res, oid, op = request.match_info["res"], request.match_info["id"], request.match_info["op"]
    t = sim.tenant
    try:
        if op == "soft-delete":
            t.soft_delete(res, oid)
        elif op == "hard-delete":
            t.hard_delete(res, oid)
        else:
            t.restore(res, oid)
    except KeyError as e:
        return _err(404, f"{e.args[0]} not found")
    return web.json_response({"ok": True, "op": op, "id": oid})


async def add_member(request: web.Request) -> web.Response:
    """POST /_sim/groups/{id}/members {"id": memberId}."""
    sim = request.app[GRAPH_SIM]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        added = sim.tenant.add_member(request.match_info["id"], str(body.get("id")))
    except KeyError as e:
        return _err(404, f"{e.args[0]} not found")
    except ValueError as e:
        return _err(400, str(e))
    return web.json_response({"added": added})


async def remove_member(request: web.Request) -> web.Response:
    """DELETE /_sim/groups/{id}/members/{mid}."""
    sim = request.app[GRAPH_SIM]
    try:
        removed = sim.tenant.remove_member(request.match_info["id"], request.match_info["mid"])
    except KeyError as e:
        return _err(404, f"{e.args[0]} not found")
    return web.json_response({"removed": removed})


async def add_app(request: web.Request) -> web.Response:
    """POST /_sim/apps {"clientId", "clientSecret"?, "certificates"?: [PEM]}: register client
    credentials (a secret, certificates for client assertions, or both)."""
    sim = request.app[GRAPH_SIM]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    certs = body.get("certificates") or []
    if not body.get("clientId") or not (body.get("clientSecret") or certs):
        return _err(400, "clientId and a clientSecret or certificates are required")
    if not isinstance(certs, list) or not all(isinstance(c, str) and "BEGIN CERTIFICATE" in c for c in certs):
        return _err(400, "certificates must be a list of PEM certificates")
    client_id = str(body["clientId"])
    sim.tenant.apps[client_id] = str(body.get("clientSecret") or "")
    if certs:
        sim.tenant.app_certificates[client_id] = [str(c) for c in certs]
    return web.json_response({"clientId": client_id}, status=201)


async def tenant_info(request: web.Request) -> web.Response:
    """GET /_sim/tenant: ids, apps and store sizes."""
    sim = request.app[GRAPH_SIM]
    t = sim.tenant
    return web.json_response(
        {
            "tenantId": t.tenant_id,
            "apps": [{"clientId": c} for c in t.apps],
            "counts": t.counts(),
            "intune": t.intune is not None,
        }
    )


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


async def get_faults(request: web.Request) -> web.Response:
    """GET /_sim/faults."""
    return web.json_response(request.app[GRAPH_SIM].faults.to_json())


async def put_faults(request: web.Request) -> web.Response:
    """PUT /_sim/faults {partial settings}: unknown keys are rejected."""
    sim = request.app[GRAPH_SIM]
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    try:
        sim.set_faults(body)
    except (KeyError, TypeError, ValueError) as e:
        return _err(400, str(e))
    return web.json_response(sim.faults.to_json())


async def expire_delta_tokens(request: web.Request) -> web.Response:
    """POST /_sim/delta/expire: every delta/skip token issued so far → 400 syncStateNotFound."""
    request.app[GRAPH_SIM].delta.expire_all()
    return web.json_response({"ok": True})


async def expire_access_tokens(request: web.Request) -> web.Response:
    """POST /_sim/tokens/expire: every access token issued so far → 401 on use."""
    request.app[GRAPH_SIM].tokens.expire_all()
    return web.json_response({"ok": True})


async def list_subs(request: web.Request) -> web.Response:
    """GET /_sim/subscriptions: all subscriptions of all apps, plus reauthorize calls seen."""
    sim = request.app[GRAPH_SIM]
    return web.json_response(
        {"value": [s.to_json() for s in sim.subscriptions.live()], "reauthorized": list(sim.reauthorized)}
    )


async def trigger_lifecycle(request: web.Request) -> web.Response:
    """POST /_sim/subscriptions/{id}/lifecycle {"event": "reauthorizationRequired"}."""
    sim = request.app[GRAPH_SIM]
    sub = sim.subscriptions.get(request.match_info["id"])
    if sub is None:
        return _err(404, "subscription not found")
    if not sub.lifecycle_url:
        return _err(400, "subscription has no lifecycleNotificationUrl")
    body: dict[str, Any] = {}
    if request.can_read_body:
        parsed = await _body(request)
        if isinstance(parsed, web.Response):
            return parsed
        body = parsed
    delivered = await sim.notifier.send_lifecycle(sub, str(body.get("event", "reauthorizationRequired")))
    return web.json_response({"delivered": delivered})


async def notification_log(request: web.Request) -> web.Response:
    """GET /_sim/notifications: recent delivery attempts and stats."""
    sim = request.app[GRAPH_SIM]
    return web.json_response({"stats": sim.notifier.stats, "log": list(sim.notifier.log)})


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
    """Fixed paths first so `{res}` does not shadow them."""
    r = app.router
    r.add_get("/_sim/tenant", tenant_info)
    r.add_get("/_sim/stats", stats)
    r.add_get("/_sim/faults", get_faults)
    r.add_put("/_sim/faults", put_faults)
    r.add_post("/_sim/reset", reset)
    r.add_post("/_sim/delta/expire", expire_delta_tokens)
    r.add_post("/_sim/tokens/expire", expire_access_tokens)
    r.add_post("/_sim/apps", add_app)
    r.add_get("/_sim/subscriptions", list_subs)
    r.add_post("/_sim/subscriptions/{id}/lifecycle", trigger_lifecycle)
    r.add_get("/_sim/notifications", notification_log)
    r.add_post("/_sim/groups/{id}/members", add_member)
    r.add_delete("/_sim/groups/{id}/members/{mid}", remove_member)
    r.add_post(f"/_sim/{_STORES}", create_object)
    r.add_get(f"/_sim/{_STORES}/{{id}}", get_object)
    r.add_patch(f"/_sim/{_STORES}/{{id}}", update_object)
    r.add_post(f"/_sim/{_STORES}/{{id}}/{{op:soft-delete|hard-delete|restore}}", lifecycle_op)
