"""aiohttp application emulating the JupiterOne synchronization (persister) API plus an admin API.

Strict on purpose: every rule we know the real service enforces (and a few data-model rules) is
enforced here, so a client that passes against the simulator also works against J1.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from email.utils import formatdate
from typing import Any, NoReturn, Protocol, cast

from aiohttp import web
from aiohttp.typedefs import Handler

from syncd.sim.j1 import graphql
from syncd.sim.j1.state import (
    SOURCES,
    SYNC_MODES,
    J1Faults,
    J1SimState,
    JobStatus,
    SimJob,
    Source,
    SyncMode,
    now_ms,
)
from syncd.sim.j1.validation import (
    ApiError,
    JsonObj,
    validate_delete,
    validate_entity,
    validate_relationship,
)

log = logging.getLogger(__name__)

J1_STATE: web.AppKey[J1SimState] = web.AppKey("j1_sim_state", J1SimState)
ACCOUNT_ID: web.RequestKey[str] = web.RequestKey("j1_sim_account_id", str)
BODY_BYTES: web.RequestKey[int] = web.RequestKey("j1_sim_body_bytes", int)

API_PREFIX = "/persister/synchronization/jobs"
GRAPHQL_PATH = "/graphql"
ADMIN_PREFIX = "/_sim"
UPLOAD_FIELDS = {
    "entities": "ENTITY_IS_NOT_ARRAY",
    "relationships": "RELATIONSHIP_IS_NOT_ARRAY",
    "deleteEntities": "DELETE_ENTITIES_IS_NOT_ARRAY",
    "deleteRelationships": "DELETE_RELATIONSHIPS_IS_NOT_ARRAY",
}
# Which modes accept which upload fields (whether explicit deletes apply: `J1Behaviour`).
MODES_FOR_FIELD = {
    "entities": frozenset({"DIFF", "PATCH", "OVERRIDE"}),
    "relationships": frozenset({"DIFF", "CROSS_SCOPE"}),
    "deleteEntities": frozenset({"DIFF", "PATCH"}),
    "deleteRelationships": frozenset({"DIFF", "CROSS_SCOPE"}),
}
_routes = web.RouteTableDef()
ABORT_STATUSES: frozenset[JobStatus] = frozenset({"ABORTED", "ABORTED_DUE_TO_INVALID_CONFIGURATION"})


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The J1 error envelope."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def _state(request: web.Request) -> J1SimState:
    return request.app[J1_STATE]


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"non-finite number {name}")


async def read_json(request: web.Request, *, limit: int | None, optional: bool = False) -> Any:
    """Read a JSON body: size limit (413, gzip accepted), JSON content type (415), valid JSON (400)."""
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise ApiError(
            413, "RequestEntityTooLargeException", "Request must be smaller than the payload limit"
        )
    raw = await request.read()  # aiohttp transparently gunzips `Content-Encoding: gzip` bodies
    request[BODY_BYTES] = request.content_length or len(raw)
    if limit is not None and len(raw) > limit:
        raise ApiError(
            413, "RequestEntityTooLargeException", "Request must be smaller than the payload limit"
        )
    if optional and not raw.strip():
        return None
    if request.content_type != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "Body is not valid JSON") from None


def _body_limit(request: web.Request) -> int:
    """Configured limit, lowered by the 413 fault when it applies to this path."""
    state = _state(request)
    limit = state.config.max_body_bytes
    faults = state.faults
    if faults.max_body_bytes is not None and (
        faults.path_filter is None or faults.path_filter in request.path
    ):
        limit = min(limit, faults.max_body_bytes)
    return limit


# -- middlewares --------------------------------------------------------------------------------
@web.middleware
async def stats_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests per route and responses per status; render errors as the J1 envelope."""
    state = _state(request)
    resource = request.match_info.route.resource
    route = f"{request.method} {resource.canonical}" if resource is not None else "unmatched"
    state.requests[route] += 1
    try:
        response = await handler(request)
    except ApiError as err:
        response = error_response(err.status, err.code, err.message)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(413, "RequestEntityTooLargeException", "Request entity too large")
    except web.HTTPException as exc:
        response = error_response(exc.status, exc.reason.upper().replace(" ", "_"), exc.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("j1 simulator handler failed")
        response = error_response(500, "INTERNAL_SERVER_ERROR", "Internal server error")
    state.responses[response.status] += 1
    return response


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """For API routes (sync API and GraphQL): injected faults first (latency, outage, 429, 5xx),
    then authentication."""
    if not (request.path.startswith("/persister/") or request.path == GRAPHQL_PATH):
        return await handler(request)
    state = _state(request)
    faults = state.faults
    if faults.path_filter is None or faults.path_filter in request.path:
        if faults.latency_ms > 0:
            await (
                request.read()
            )  # body first, as a gateway would: a late timeout then loses only the response
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.outage:
            state.injected["outage"] += 1
            return error_response(503, "SERVICE_UNAVAILABLE", "Service unavailable")
        if faults.count_429 > 0 or (faults.rate_429 > 0 and state.rng.random() < faults.rate_429):
            faults.count_429 = max(0, faults.count_429 - 1)
            state.injected["429"] += 1
            headers: dict[str, str] = {}
            if faults.retry_after is not None:
                if faults.retry_after_http_date:
                    headers["Retry-After"] = formatdate(time.time() + faults.retry_after, usegmt=True)
                else:
                    headers["Retry-After"] = f"{faults.retry_after:g}"
            return error_response(429, "TOO_MANY_REQUESTS", "Rate exceeded", headers)
        if faults.count_5xx > 0 or (faults.rate_5xx > 0 and state.rng.random() < faults.rate_5xx):
            faults.count_5xx = max(0, faults.count_5xx - 1)
            state.injected[str(faults.status_5xx)] += 1
            return error_response(faults.status_5xx, "INTERNAL_SERVER_ERROR", "Injected server error")
    request[ACCOUNT_ID] = _authenticate(state, request)
    return await handler(request)


def _authenticate(state: J1SimState, request: web.Request) -> str:
    """Bearer key plus `JupiterOne-Account` (or legacy `LifeOmic-Account`) must match an account."""
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    account = request.headers.get("JupiterOne-Account") or request.headers.get("LifeOmic-Account")
    expected = state.accounts.get(account or "")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or expected is None:
        raise ApiError(401, "UNAUTHORIZED", "Unauthorized")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(401, "UNAUTHORIZED", "Unauthorized")
    return str(account)


# -- API handlers -------------------------------------------------------------------------------
def _job_response(job: SimJob) -> web.Response:
    return web.json_response({"job": job.as_json()})


def _job(request: web.Request) -> SimJob:
    return _state(request).job_for(request[ACCOUNT_ID], request.match_info["jobId"])


def _opt_str(body: JsonObj, name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(400, "INVALID_JOB_CONFIGURATION", f"{name!r} must be a non-empty string")
    return value


@_routes.post(API_PREFIX)
async def create_job(request: web.Request) -> web.Response:
    """POST /jobs: validate source/scope/syncMode and start a job in AWAITING_UPLOADS."""
    state = _state(request)
    body = await read_json(request, limit=_body_limit(request))
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_JOB_CONFIGURATION", "Body must be a JSON object")
    unknown = set(body) - {"source", "scope", "syncMode", "integrationInstanceId", "integrationJobId"}
    if unknown:
        raise ApiError(400, "INVALID_JOB_CONFIGURATION", f"Unknown job fields: {sorted(unknown)}")
    source = body.get("source")
    if source not in SOURCES:
        raise ApiError(400, "INVALID_JOB_CONFIGURATION", f"'source' must be one of {sorted(SOURCES)}")
    mode = body.get("syncMode", "DIFF")
    if mode == "CREATE_OR_UPDATE":
        raise ApiError(400, "INVALID_SYNC_MODE", "syncMode CREATE_OR_UPDATE no longer functions; use PATCH")
    if mode not in SYNC_MODES:
        raise ApiError(400, "INVALID_SYNC_MODE", f"'syncMode' must be one of {sorted(SYNC_MODES)}")
    scope = _opt_str(body, "scope")
    instance = _opt_str(body, "integrationInstanceId")
    int_job = _opt_str(body, "integrationJobId")
    job_id = str(uuid.uuid4())
    if source == "api":
        if scope is None:
            raise ApiError(400, "INVALID_JOB_CONFIGURATION", "source 'api' requires 'scope'")
        if instance is not None or int_job is not None:
            raise ApiError(400, "INVALID_JOB_CONFIGURATION", "source 'api' does not take integration ids")
    elif source == "system-internal":
        if scope is None:
            raise ApiError(400, "INVALID_JOB_CONFIGURATION", "source 'system-internal' requires 'scope'")
    else:
        if instance is None:
            raise ApiError(
                400, "INVALID_JOB_CONFIGURATION", f"source {source!r} requires 'integrationInstanceId'"
            )
        if scope is not None:
            raise ApiError(400, "INVALID_JOB_CONFIGURATION", "'scope' can only be used when source is 'api'")
        scope = instance
        if source == "integration-managed" and int_job is None:
            int_job = job_id
    job = SimJob(
        id=job_id,
        account_id=request[ACCOUNT_ID],
        source=cast(Source, source),  # checked against SOURCES above
        scope=scope,
        sync_mode=cast(SyncMode, mode),  # checked against SYNC_MODES above
        integration_instance_id=instance,
        integration_job_id=int_job,
    )
    state.jobs[job.id] = job
    return _job_response(job)


@_routes.get(API_PREFIX + "/{jobId}")
async def get_job(request: web.Request) -> web.Response:
    """GET /jobs/{jobId}."""
    return _job_response(_job(request))


def _stage_key(obj: JsonObj) -> str:
    return str(obj["_key"]) if "_key" in obj else f"id:{obj['_id']}"


async def _upload(request: web.Request, allowed: tuple[str, ...]) -> web.Response:
    """Shared upload path: size, status, shape, mode, validation, duplicates, then staging."""
    state = _state(request)
    job = _job(request)
    body = await read_json(request, limit=_body_limit(request))
    if job.status != "AWAITING_UPLOADS":
        raise ApiError(400, "JOB_NOT_AWAITING_UPLOADS", f"Job is not awaiting uploads (status {job.status})")
    if not isinstance(body, dict):
        raise ApiError(400, UPLOAD_FIELDS[allowed[0]], "Body must be a JSON object")
    unknown = set(body) - set(allowed)
    if unknown:
        raise ApiError(400, "INVALID_UPLOAD", f"Unknown upload fields: {sorted(unknown)}")
    if len(allowed) == 1 and allowed[0] not in body:
        raise ApiError(400, UPLOAD_FIELDS[allowed[0]], f'"{allowed[0]}" should be an array')
    if not body:
        raise ApiError(400, "INVALID_UPLOAD", f"Upload needs one of {list(allowed)}")
    for name, value in body.items():
        if not isinstance(value, list):
            raise ApiError(400, UPLOAD_FIELDS[name], f'"{name}" should be an array')
        if value and job.sync_mode not in MODES_FOR_FIELD[name]:
            raise ApiError(
                400, "INVALID_UPLOAD_FOR_SYNC_MODE", f"{job.sync_mode} jobs do not accept {name!r}"
            )
    rules = state.config.rules
    entities: list[JsonObj] = body.get("entities", [])
    relationships: list[JsonObj] = body.get("relationships", [])
    for ent in entities:
        validate_entity(ent, rules, by_id_allowed=job.sync_mode in ("PATCH", "OVERRIDE"))
    for rel in relationships:
        validate_relationship(rel, rules, cross_scope=job.sync_mode == "CROSS_SCOPE")
    for item in body.get("deleteEntities", []):
        validate_delete(item, "deleteEntities")
    for item in body.get("deleteRelationships", []):
        validate_delete(item, "deleteRelationships")
    _check_rejected_keys(state, body)
    if job.sync_mode == "CROSS_SCOPE" and state.behaviour.cross_scope_same_scope == "reject":
        _check_cross_scope_spans_scopes(job, relationships)
    ignore_dups = request.query.get("ignoreDuplicates", "").lower() == "true"
    _check_duplicates(job, entities, job.entities, job.relationships, ignore_dups)
    _check_duplicates(job, relationships, job.relationships, job.entities, ignore_dups)
    if job.sync_mode == "OVERRIDE":
        new_keys = {_stage_key(e) for e in entities} - set(job.entities)
        if len(job.entities) + len(new_keys) > state.config.override_max_entities:
            raise ApiError(
                400,
                "OVERRIDE_ENTITY_LIMIT_EXCEEDED",
                f"OVERRIDE jobs accept at most {state.config.override_max_entities} entities",
            )
    for ent in entities:
        job.entities[_stage_key(ent)] = ent
        job.counters["numEntityRawDataEntriesUploaded"] += len(ent.get("_rawData", []))
    for rel in relationships:
        job.relationships[rel["_key"]] = rel
    job.delete_entities.extend(body.get("deleteEntities", []))
    job.delete_relationships.extend(body.get("deleteRelationships", []))
    job.counters["numEntitiesUploaded"] += len(entities)
    job.counters["numRelationshipsUploaded"] += len(relationships)
    job.upload_requests += 1
    job.upload_bytes += request.get(BODY_BYTES, 0)
    for name, value in body.items():
        job.upload_objects[name] += len(value)
    return _job_response(job)


def _check_rejected_keys(state: J1SimState, body: JsonObj) -> None:
    """The `reject_keys` fault: a request holding a matching `_key` is refused whole, as a
    validation error of that object's kind (the bisection a client does must find it)."""
    patterns = state.faults.reject_keys
    if not patterns:
        return
    for name, code in (
        ("entities", "INVALID_ENTITY"),
        ("relationships", "INVALID_RELATIONSHIP"),
        ("deleteEntities", "INVALID_DELETE"),
        ("deleteRelationships", "INVALID_DELETE"),
    ):
        for obj in body.get(name, []):
            key = obj.get("_key")
            if J1Faults.key_hit(patterns, key):
                state.injected["reject_keys"] += 1
                raise ApiError(400, code, f"{name} item with _key {key!r} failed validation")


def _check_cross_scope_spans_scopes(job: SimJob, relationships: list[JsonObj]) -> None:
    """CROSS_SCOPE links entities of different scopes ("if the entities in question are in the same
    scope, use DIFF or PATCH"): under the strict reading a same-scope relationship is a 400."""
    for rel in relationships:
        frm = rel.get("_fromEntityScope", job.scope)
        to = rel.get("_toEntityScope", job.scope)
        if frm == to:
            raise ApiError(
                400,
                "CROSS_SCOPE_SAME_SCOPE",
                f"relationship {rel['_key']!r}: both entities are in scope {frm!r}; "
                "CROSS_SCOPE is for entities in different scopes (use DIFF or PATCH)",
            )


def _check_duplicates(
    job: SimJob, objs: list[JsonObj], same: dict[str, JsonObj], other: dict[str, JsonObj], ignore: bool
) -> None:
    """A `_key` may appear once per job; `ignoreDuplicates=true` lets the last one win (same kind only)."""
    seen: set[str] = set()
    for obj in objs:
        key = _stage_key(obj)
        if key in other:
            raise ApiError(400, "DUPLICATE_KEY_DETECTED", "Duplicate _key across entities and relationships")
        if (key in seen or key in same) and not ignore:
            raise ApiError(400, "DUPLICATE_KEY_DETECTED", "Duplicate _key in job (use ignoreDuplicates=true)")
        seen.add(key)


@_routes.post(API_PREFIX + "/{jobId}/entities")
async def upload_entities(request: web.Request) -> web.Response:
    """POST /jobs/{jobId}/entities."""
    return await _upload(request, ("entities",))


@_routes.post(API_PREFIX + "/{jobId}/relationships")
async def upload_relationships(request: web.Request) -> web.Response:
    """POST /jobs/{jobId}/relationships."""
    return await _upload(request, ("relationships",))


@_routes.post(API_PREFIX + "/{jobId}/upload")
async def upload_combined(request: web.Request) -> web.Response:
    """POST /jobs/{jobId}/upload (entities, relationships and explicit deletes)."""
    return await _upload(request, tuple(UPLOAD_FIELDS))


@_routes.post(API_PREFIX + "/{jobId}/finalize")
async def finalize_job(request: web.Request) -> web.Response:
    """POST /jobs/{jobId}/finalize: one finalizing job per scope; work continues in the background."""
    state = _state(request)
    job = _job(request)
    body = await read_json(request, limit=_body_limit(request), optional=True)
    partial: set[str] = set()
    if body is not None:
        if not isinstance(body, dict) or set(body) - {"partialDatasets"}:
            raise ApiError(400, "INVALID_FINALIZE", "Body may only hold 'partialDatasets'")
        pd = body.get("partialDatasets")
        if pd is not None:
            types = pd.get("types") if isinstance(pd, dict) else None
            if not isinstance(pd, dict) or set(pd) - {"types"} or not isinstance(types, list):
                raise ApiError(400, "INVALID_FINALIZE", "'partialDatasets' must be {\"types\": [...]}")
            if not all(isinstance(t, str) and t for t in types):
                raise ApiError(400, "INVALID_FINALIZE", "'partialDatasets.types' must hold strings")
            partial = set(types)
    if job.status != "AWAITING_UPLOADS":
        raise ApiError(400, "JOB_NOT_AWAITING_UPLOADS", f"Job is not awaiting uploads (status {job.status})")
    state.start_finalize(job)  # one finalizing job per scope (400 otherwise)
    job.partial_types = frozenset(partial)
    task = asyncio.create_task(_run_finalize(state, job))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return _job_response(job)


async def _run_finalize(state: J1SimState, job: SimJob) -> None:
    """FINALIZE_PENDING → FINALIZING_ENTITIES → FINALIZING_RELATIONSHIPS → FINISHED (or
    FINALIZING_ENTITIES → ERROR_BAD_DATA under the `bad_data_keys` fault)."""
    lo, hi = state.config.finalize_step_delay

    async def pause() -> None:
        await asyncio.sleep(state.rng.uniform(lo, hi) if hi > 0 else 0)

    try:
        await pause()
        if job.status != "FINALIZE_PENDING":
            return  # aborted meanwhile
        job.status = "FINALIZING_ENTITIES"
        if state.has_bad_data(job):
            state.injected["bad_data_keys"] += 1
            job.status = "ERROR_BAD_DATA"  # nothing of the job is applied
        else:
            state.finalize_entities(job)
            await pause()
            job.status = "FINALIZING_RELATIONSHIPS"
            state.finalize_relationships(job)
            await pause()
            job.status = "FINISHED"
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("j1 simulator finalize failed")
        job.status = "ERROR_UNEXPECTED_FAILURE"
    job.end_timestamp = now_ms()
    job.entities.clear()
    job.relationships.clear()
    job.delete_entities.clear()
    job.delete_relationships.clear()


@_routes.post(API_PREFIX + "/{jobId}/abort")
async def abort_job(request: web.Request) -> web.Response:
    """POST /jobs/{jobId}/abort: allowed until finalize processing starts."""
    job = _job(request)
    body = await read_json(request, limit=_body_limit(request), optional=True)
    terminal: JobStatus = "ABORTED"
    if body is not None:
        if not isinstance(body, dict) or set(body) - {"reason", "terminalStatus"}:
            raise ApiError(400, "INVALID_ABORT", "Body may only hold 'reason' and 'terminalStatus'")
        if "reason" in body and not isinstance(body["reason"], str):
            raise ApiError(400, "INVALID_ABORT", "'reason' must be a string")
        if "terminalStatus" in body:
            if body["terminalStatus"] not in ABORT_STATUSES:
                raise ApiError(
                    400, "INVALID_ABORT", f"'terminalStatus' must be one of {sorted(ABORT_STATUSES)}"
                )
            terminal = cast(JobStatus, body["terminalStatus"])
        job.abort_reason = body.get("reason")
    if job.status not in ("AWAITING_UPLOADS", "FINALIZE_PENDING"):
        raise ApiError(400, "JOB_NOT_ABORTABLE", f"Job cannot be aborted (status {job.status})")
    job.status = terminal
    job.end_timestamp = now_ms()
    job.entities.clear()
    job.relationships.clear()
    return _job_response(job)


# -- admin handlers -----------------------------------------------------------------------------
@_routes.get(ADMIN_PREFIX + "/graph")
async def admin_graph(request: web.Request) -> web.Response:
    """GET /_sim/graph?scope=&scope_prefix=&type=&account=."""
    q = request.query
    return web.json_response(
        _state(request).query_graph(q.get("scope"), q.get("type"), q.get("account"), q.get("scope_prefix"))
    )


class _Switches(Protocol):
    """A set of switches the admin API reads and partially updates (behaviour, faults)."""

    def update(self, data: Mapping[str, Any]) -> None: ...

    def as_json(self) -> JsonObj: ...


def _switch_routes(path: str, of: Callable[[J1SimState], _Switches], invalid: str) -> list[web.RouteDef]:
    """GET and PUT of one set of switches: read them, or update those a JSON object names."""

    async def get(request: web.Request) -> web.Response:
        return web.json_response(of(_state(request)).as_json())

    async def put(request: web.Request) -> web.Response:
        body = await read_json(request, limit=None)
        if not isinstance(body, dict):
            raise ApiError(400, invalid, "Body must be a JSON object")
        switches = of(_state(request))
        switches.update(body)
        return web.json_response(switches.as_json())

    return [web.get(path, get), web.put(path, put)]


@_routes.post(GRAPHQL_PATH)
async def graphql_query(request: web.Request) -> web.Response:
    """POST /graphql: J1QL through `queryV1` against the caller's account."""
    state = _state(request)
    body = await read_json(request, limit=_body_limit(request))
    status, answer = graphql.execute(body, state.graph(request[ACCOUNT_ID]))
    return web.json_response(answer, status=status)


@_routes.get(ADMIN_PREFIX + "/jobs")
async def admin_jobs(request: web.Request) -> web.Response:
    """GET /_sim/jobs."""
    return web.json_response({"jobs": _state(request).jobs_view()})


@_routes.get(ADMIN_PREFIX + "/stats")
async def admin_stats(request: web.Request) -> web.Response:
    """GET /_sim/stats."""
    return web.json_response(_state(request).stats_view())


@_routes.post(ADMIN_PREFIX + "/reset")
async def admin_reset(request: web.Request) -> web.Response:
    """POST /_sim/reset."""
    _state(request).reset()
    return web.json_response({"reset": True})


@_routes.post(ADMIN_PREFIX + "/entities")
async def admin_seed_entities(request: web.Request) -> web.Response:
    """POST /_sim/entities: store entities directly (same validation as uploads)."""
    state = _state(request)
    body = await read_json(request, limit=None)
    if not isinstance(body, dict) or not isinstance(body.get("entities"), list):
        raise ApiError(400, "ENTITY_IS_NOT_ARRAY", '"entities" should be an array')
    account = body.get("accountId")
    if account is None and len(state.accounts) == 1:
        account = next(iter(state.accounts))
    if account not in state.accounts:
        raise ApiError(400, "UNKNOWN_ACCOUNT", "'accountId' must name a known account")
    scope, source = body.get("scope"), body.get("source", "api")
    if not isinstance(scope, str) or not scope or not isinstance(source, str) or not source:
        raise ApiError(400, "INVALID_SEED", "'scope' and 'source' must be non-empty strings")
    for ent in body["entities"]:
        validate_entity(ent, state.config.rules, by_id_allowed=False)
        if "_rawData" in ent:
            raise ApiError(400, "INVALID_SEED", "seeded entities cannot carry '_rawData'")
    stored = [state.seed_entity(str(account), scope, source, ent) for ent in body["entities"]]
    return web.json_response({"entities": stored})


async def _cancel_tasks(app: web.Application) -> None:
    state = app[J1_STATE]
    tasks = list(state.tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def create_j1_app(state: J1SimState) -> web.Application:
    """Build the simulator app around `state` (also reachable as `app[J1_STATE]`)."""
    app = web.Application(
        middlewares=[stats_middleware, api_middleware],
        client_max_size=max(state.config.max_body_bytes * 4, 32 * 1024 * 1024),
    )
    app[J1_STATE] = state
    app.router.add_routes(_routes)
    # the readings of the open points of the J1 docs, and the fault switches
    app.router.add_routes(
        _switch_routes(ADMIN_PREFIX + "/behaviour", lambda s: s.behaviour, "INVALID_BEHAVIOUR")
    )
    app.router.add_routes(_switch_routes(ADMIN_PREFIX + "/faults", lambda s: s.faults, "INVALID_FAULT"))
    app.on_cleanup.append(_cancel_tasks)
    return app
