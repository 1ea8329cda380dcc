"""Graph JSON batching (``POST /{v1.0|beta}/$batch``) for the simulator.

Each inner request is replayed over HTTP against the very server that received the batch
(its own listening socket), carrying the caller's ``Authorization`` header, so the GraphSim
middlewares (auth, throttling, latency, counting) judge every item on its own, like Graph does.
Rules follow microsoft-graph.md §5.2: at most 20 requests, unique ids (case-insensitive),
``dependsOn`` ordering with 424 for failed dependencies, responses in any order, outer 200.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from syncd.sim.graph.odata import graph_error
from syncd.sim.intune_http import graph_json

JSON = dict[str, Any]
MAX_BATCH_REQUESTS = 20
INNER_TIMEOUT_S = 60.0
BATCH_ITEM_HEADER = "x-syncd-sim-batch-item"
"""Marks a replayed inner request (lets middlewares tell items from direct calls if they care)."""

_DROPPED_HEADERS = frozenset(
    {"content-length", "date", "server", "transfer-encoding", "connection", "keep-alive"}
)
_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
_shuffle = random.Random()


class _BatchError(Exception):
    pass


def _validate(payload: Any) -> list[JSON]:
    """The inner requests, or ``_BatchError`` with Graph's reason for a 400."""
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise _BatchError("Invalid batch payload format.")
    requests: list[JSON] = payload["requests"]
    if not requests:
        raise _BatchError("Invalid batch payload format: the batch contains no requests.")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise _BatchError(f"The number of requests in the batch exceeds the limit of {MAX_BATCH_REQUESTS}.")
    seen: dict[str, str] = {}
    for item in requests:
        if not isinstance(item, dict):
            raise _BatchError("Invalid batch payload format: every request must be an object.")
        rid, method, url = item.get("id"), item.get("method"), item.get("url")
        if not isinstance(rid, str) or not rid:
            raise _BatchError("Every batch request needs a non-empty string 'id'.")
        if rid.lower() in seen:
            raise _BatchError(f"Batch request ids must be unique; '{rid}' is repeated.")
        seen[rid.lower()] = rid
        if not isinstance(method, str) or method.upper() not in _METHODS:
            raise _BatchError(f"Batch request '{rid}' has an invalid method.")
        if not isinstance(url, str) or not url:
            raise _BatchError(f"Batch request '{rid}' has no url.")
        headers = item.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise _BatchError(f"Batch request '{rid}' headers must be an object.")
        if item.get("body") is not None and not any(
            str(k).lower() == "content-type" for k in (headers or {})
        ):
            raise _BatchError(f"Batch request '{rid}' has a body but no Content-Type header.")
        deps = item.get("dependsOn")
        if deps is not None and (not isinstance(deps, list) or not all(isinstance(d, str) for d in deps)):
            raise _BatchError(f"Batch request '{rid}' dependsOn must be a list of ids.")
    for item in requests:
        for dep in item.get("dependsOn") or []:
            if dep.lower() not in seen:
                raise _BatchError(f"Batch request '{item['id']}' depends on unknown request '{dep}'.")
    _check_acyclic(requests)
    return requests


def _check_acyclic(requests: list[JSON]) -> None:
    deps = {str(r["id"]).lower(): [d.lower() for d in r.get("dependsOn") or []] for r in requests}
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise _BatchError("Batch requests have circular dependsOn.")
        state[node] = 1
        for d in deps[node]:
            visit(d)
        state[node] = 2

    for node in deps:
        visit(node)


def _loopback_base(request: web.Request) -> str:
    """``scheme://host:port`` of the socket this request arrived on."""
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not sock:
        return str(request.url.origin())
    host, port = str(sock[0]), int(sock[1])
    if ":" in host:
        host = f"[{host}]"
    return f"{request.scheme}://{host}:{port}"


def _inner_target(base: str, ver: str, url: str) -> str:
    """Inner urls are relative to the version root; absolute Graph urls keep only path + query."""
    if url.lower().startswith(("http://", "https://")):
        parts = urlsplit(url)
        return f"{base}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return f"{base}/{ver}/{url.lstrip('/')}"


def _failed(status: int) -> bool:
    return not 200 <= status < 300


async def _run_one(
    session: aiohttp.ClientSession, base: str, ver: str, outer: web.Request, item: JSON
) -> JSON:
    url = str(item["url"])
    rid = str(item["id"])
    path = urlsplit(url).path if url.lower().startswith("http") else "/" + url.lstrip("/").split("?")[0]
    if path.rstrip("/").endswith("$batch"):
        return _inner_error(rid, 400, "BadRequest", "Nested $batch requests are not supported.")
    headers = {
        str(k): str(v) for k, v in (item.get("headers") or {}).items() if str(k).lower() != "authorization"
    }
    if "Authorization" in outer.headers:
        headers["Authorization"] = outer.headers["Authorization"]
    headers[BATCH_ITEM_HEADER] = "1"
    body = item.get("body")
    data: bytes | None = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    try:
        async with session.request(
            str(item["method"]).upper(), _inner_target(base, ver, url), headers=headers, data=data, ssl=False
        ) as resp:
            raw = await resp.read()
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in _DROPPED_HEADERS}
            out: JSON = {"id": rid, "status": resp.status, "headers": out_headers}
            if raw:
                if "json" in resp.headers.get("Content-Type", ""):
                    try:
                        out["body"] = json.loads(raw)
                    except json.JSONDecodeError:
                        out["body"] = raw.decode(errors="replace")
                else:
                    out["body"] = raw.decode(errors="replace")
            return out
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _inner_error(rid, 503, "serviceNotAvailable", f"Inner request failed: {type(exc).__name__}")


def _inner_error(rid: str, status: int, code: str, message: str) -> JSON:
    return {
        "id": rid,
        "status": status,
        "headers": {"Content-Type": "application/json"},
        "body": {"error": {"code": code, "message": message}},
    }


async def handle_batch(request: web.Request) -> web.StreamResponse:
    """``POST /{ver}/$batch``."""
    ver = request.match_info["ver"]
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return graph_error(request, 400, "BadRequest", "Invalid batch payload format: body is not JSON.")
    try:
        items = _validate(payload)
    except _BatchError as exc:
        return graph_error(request, 400, "BadRequest", str(exc))

    base = _loopback_base(request)
    tasks: dict[str, asyncio.Task[JSON]] = {}
    by_id = {str(i["id"]).lower(): i for i in items}
    session = _session(request.app)
    # One kept-alive session per app: no connection (TLS handshake) per inner request.

    async def run(item: JSON) -> JSON:
        deps = [d.lower() for d in item.get("dependsOn") or []]
        if deps:
            results = [await tasks[d] for d in deps]
            bad = [r["id"] for r in results if _failed(int(r["status"]))]
            if bad:
                return _inner_error(
                    str(item["id"]),
                    424,
                    "FailedDependency",
                    f"The dependent request(s) {', '.join(bad)} failed.",
                )
        return await _run_one(session, base, ver, request, item)

    def schedule(key: str) -> None:
        if key in tasks:
            return
        for dep in by_id[key].get("dependsOn") or []:
            schedule(dep.lower())
        tasks[key] = asyncio.create_task(run(by_id[key]))

    for key in by_id:
        schedule(key)
    responses = list(await asyncio.gather(*tasks.values()))

    _shuffle.shuffle(responses)
    return graph_json(request, {"responses": responses})


_SESSION: web.AppKey[list[aiohttp.ClientSession]] = web.AppKey("syncd_sim_batch_session", list)


def _session(app: web.Application) -> aiohttp.ClientSession:
    """The app's replay session (created on first use, closed with the app)."""
    holder = app[_SESSION]
    if not holder or holder[0].closed:
        holder[:] = [
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=INNER_TIMEOUT_S),
                connector=aiohttp.TCPConnector(limit=64, ssl=False),
            )
        ]
    return holder[0]


async def _close_session(app: web.Application) -> None:
    for session in app[_SESSION]:
        await session.close()
    app[_SESSION].clear()


def register_batch_routes(app: web.Application) -> None:
    """Add ``POST /v1.0/$batch`` and ``POST /beta/$batch``."""
    app[_SESSION] = []
    app.on_cleanup.append(_close_session)
    app.router.add_post(r"/{ver:v1\.0|beta}/$batch", handle_batch)
