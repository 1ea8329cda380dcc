"""SyncApiClient against the J1 simulator: lifecycle, batching, retries, faults, error hygiene."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from syncd import __version__
from syncd.j1.client import SyncApiClient, batch_by_size, serialize
from syncd.j1.errors import (
    J1AuthError,
    J1Error,
    J1JobEndedError,
    J1JobFailedError,
    J1ObjectTooLargeError,
    J1RetryExhaustedError,
    J1TimeoutError,
)
from syncd.sim.j1 import J1SimConfig, J1SimState, create_j1_app
from tests.helpers.j1_objects import entity, relationship

ACCOUNT = "acct-client"
KEY = "very-secret-key-0123456789"
UPLOAD_ROUTE = "POST /persister/synchronization/jobs/{jobId}/upload"


class Env:
    """A running simulator, the headers it saw, and a client factory."""

    def __init__(self, state: J1SimState, base_url: str, session: aiohttp.ClientSession) -> None:
        self.state = state
        self.base_url = base_url
        self.session = session
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    def client(self, **kwargs: Any) -> SyncApiClient:
        opts: dict[str, Any] = {
            "base_url": self.base_url,
            "account_id": ACCOUNT,
            "api_key": KEY,
            "backoff_base": 0.01,
            "max_backoff": 1.0,
            "request_timeout": 5.0,
        }
        opts.update(kwargs)
        return SyncApiClient(self.session, **opts)

    def requests(self, route: str) -> int:
        return self.state.requests[route]

    def faults(self, **faults: Any) -> None:
        self.state.faults.update(faults)


EnvFactory = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env() -> AsyncIterator[EnvFactory]:
    """Serve the simulator like production does (AppRunner: handlers finish even if the client left)."""
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def factory(**config: Any) -> Env:
        config.setdefault("finalize_step_delay", (0.0, 0.002))
        state = J1SimState({ACCOUNT: KEY}, J1SimConfig(**config))
        app = create_j1_app(state)
        seen: list[tuple[str, str, dict[str, str]]] = []

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            seen.append((request.method, request.path, dict(request.headers)))
            return await handler(request)

        app.middlewares.insert(0, record)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        env = Env(state, f"http://{host}:{port}", session)
        env.seen = seen
        return env

    yield factory
    await session.close()
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def env(make_env: EnvFactory) -> Env:
    return await make_env()


def ent(key: str, type_: str = "test_user", **props: Any) -> dict[str, Any]:
    return entity(key, type_, **props)


def rel(frm: str, to: str) -> dict[str, Any]:
    return relationship(frm, to, "test_user_has_user", displayName="HAS")


def users(n: int, **props: Any) -> list[dict[str, Any]]:
    return [ent(f"user-{i:06d}", **props) for i in range(n)]


# -- pure helpers --------------------------------------------------------------------------------
def test_batch_by_size_follows_sdk_rule() -> None:
    items = [b"x" * 40, b"y" * 40, b"z" * 20, b"w" * 10]
    assert batch_by_size(items, 100) == [
        [b"x" * 40, b"y" * 40],
        [b"z" * 20, b"w" * 10],
    ]  # 80+20 >= 100 splits
    assert batch_by_size(items, 101) == [[b"x" * 40, b"y" * 40, b"z" * 20], [b"w" * 10]]
    assert batch_by_size([], 10) == []
    with pytest.raises(J1ObjectTooLargeError):
        batch_by_size([b"a" * 100], 100)


def test_serialize_is_compact_utf8() -> None:
    assert serialize({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'.encode()
    with pytest.raises(ValueError):
        serialize({"a": float("nan")})


def test_constructor_validates_and_hides_key() -> None:
    session: Any = object()
    with pytest.raises(ValueError):
        SyncApiClient(session, base_url="ftp://x", account_id="a", api_key="k")
    with pytest.raises(ValueError):
        SyncApiClient(session, base_url="http://x", account_id="a", api_key="")
    client = SyncApiClient(session, base_url="http://127.0.0.1:1", account_id="a", api_key=KEY)
    assert KEY not in repr(client)


# -- lifecycle -----------------------------------------------------------------------------------
async def test_run_job_diff_end_to_end_with_headers(env: Env) -> None:
    client = env.client()
    job = await client.run_job(
        "scope-a",
        "DIFF",
        entities=users(3),
        relationships=[rel("user-000000", "user-000001")],
        timeout=5,
    )
    assert job["status"] == "FINISHED"
    assert job["numEntitiesCreated"] == 3 and job["numRelationshipsCreated"] == 1
    graph = env.state.query_graph("scope-a", None, None)
    assert len(graph["entities"]) == 3 and len(graph["relationships"]) == 1
    for _, path, headers in env.seen:
        assert headers["Authorization"] == f"Bearer {KEY}"
        assert headers["JupiterOne-Account"] == ACCOUNT
        assert headers["User-Agent"] == f"syncd/{__version__}"
        if path.endswith("/upload"):
            assert headers["Content-Type"] == "application/json"
            assert headers["JupiterOne-Correlation-Id"]
    # Second run: DIFF semantics through the client, plus partial types and explicit deletes.
    job = await client.run_job("scope-a", "DIFF", entities=users(1), partial_types=["test_user"], timeout=5)
    assert job["numEntitiesDeleted"] == 0 and job["numRelationshipsDeleted"] == 1
    env.state.behaviour.update({"explicit_deletes": "apply"})  # the permissive reading (not the default)
    job = await client.run_job(
        "scope-a",
        "PATCH",
        delete_entities=[{"_key": "user-000002"}],
        entities=[ent("user-000009")],
        timeout=5,
    )
    assert job["numEntitiesDeleted"] == 1 and job["numEntitiesCreated"] == 1


async def test_step_by_step_api(env: Env) -> None:
    client = env.client()
    job = await client.create_job(scope="links", sync_mode="CROSS_SCOPE")
    assert job["status"] == "AWAITING_UPLOADS" and job["syncMode"] == "CROSS_SCOPE"
    assert (await client.get_job(job["id"]))["id"] == job["id"]
    await client.upload(job["id"])  # nothing to send: no request
    assert env.requests(UPLOAD_ROUTE) == 0
    fin = await client.finalize(job["id"])
    assert fin["status"] == "FINALIZE_PENDING"
    assert (await client.wait_finished(job["id"], timeout=5))["status"] == "FINISHED"
    other = await client.create_job(scope="x", sync_mode="DIFF")
    aborted = await client.abort(other["id"], "no longer needed")
    assert aborted["status"] == "ABORTED"
    with pytest.raises(J1JobFailedError) as info:
        await client.wait_finished(other["id"], timeout=5)
    assert info.value.job["status"] == "ABORTED"


async def test_batching_by_serialized_size(env: Env) -> None:
    client = env.client(batch_bytes=2_000)
    entities = users(40, note="n" * 50)
    job = await client.create_job(scope="scope-a", sync_mode="DIFF")
    await client.upload(job["id"], entities=entities, delete_entities=[{"_key": "gone-000001"}])
    uploads = [h for _, p, h in env.seen if p.endswith("/upload")]
    per_obj = len(serialize(entities[0]))
    expected_batches = -(-40 // ((2_000 - 1) // per_obj))
    assert len(uploads) == expected_batches + 1  # + the delete batch
    assert len({h["JupiterOne-Correlation-Id"] for h in uploads}) == len(uploads)
    assert (await client.get_job(job["id"]))["numEntitiesUploaded"] == 40


async def test_duplicate_keys_rejected_before_sending(env: Env) -> None:
    client = env.client()
    with pytest.raises(ValueError, match="duplicate _key"):
        await client.run_job("scope-a", "DIFF", entities=[ent("user-000001"), ent("user-000001")])
    assert env.state.jobs == {}


# -- faults --------------------------------------------------------------------------------------
async def test_413_splits_batch_in_half(env: Env) -> None:
    client = env.client()
    env.faults(max_body_bytes=1_500)
    entities = users(20)
    job = await client.create_job(scope="scope-a", sync_mode="DIFF")
    await client.upload(job["id"], entities=entities)
    env.faults(max_body_bytes=None)
    assert env.state.responses[413] >= 1
    assert (await client.get_job(job["id"]))["numEntitiesUploaded"] == 20
    await client.finalize(job["id"])
    done = await client.wait_finished(job["id"], timeout=5)
    assert done["numEntitiesCreated"] == 20


async def test_413_for_a_single_object_is_fatal_and_aborts(env: Env) -> None:
    client = env.client()
    env.faults(max_body_bytes=50, path_filter="/upload")
    with pytest.raises(J1Error) as info:
        await client.run_job("scope-a", "DIFF", entities=users(2), timeout=5)
    assert info.value.status == 413
    env.faults(max_body_bytes=None)
    (job,) = env.state.jobs.values()
    assert job.status == "ABORTED"


async def test_429_storm_honours_retry_after(env: Env) -> None:
    client = env.client(max_attempts=5)
    env.faults(count_429=3, retry_after=0.1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    job = await client.create_job(scope="scope-a", sync_mode="DIFF")
    assert loop.time() - t0 >= 0.3  # three waits of Retry-After, not the 10 ms backoff
    assert job["status"] == "AWAITING_UPLOADS"
    assert env.state.injected["429"] == 3


async def test_429_beyond_budget_and_beyond_cap(env: Env) -> None:
    client = env.client(max_attempts=3)
    env.faults(rate_429=1.0, retry_after=0.01)
    with pytest.raises(J1RetryExhaustedError) as info:
        await client.create_job(scope="scope-a", sync_mode="DIFF")
    assert info.value.status == 429 and info.value.attempts == 3
    assert env.state.injected["429"] == 3
    env.faults(retry_after=60)  # longer than max_backoff: give up at once instead of retrying early
    with pytest.raises(J1RetryExhaustedError) as info:
        await client.create_job(scope="scope-a", sync_mode="DIFF")
    assert info.value.retry_after == 60 and env.state.injected["429"] == 4


async def test_5xx_burst_keeps_correlation_id_across_retries(env: Env) -> None:
    client = env.client()
    job = await client.create_job(scope="scope-a", sync_mode="DIFF")
    env.faults(count_5xx=3, status_5xx=502, path_filter="/upload")
    await client.upload(job["id"], entities=users(5))
    uploads = [h["JupiterOne-Correlation-Id"] for _, p, h in env.seen if p.endswith("/upload")]
    assert len(uploads) == 4 and len(set(uploads)) == 1
    assert (await client.get_job(job["id"]))["numEntitiesUploaded"] == 5


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_each_retryable_5xx(env: Env, status: int) -> None:
    client = env.client()
    env.faults(count_5xx=1, status_5xx=status)
    assert (await client.create_job(scope="s-0000001", sync_mode="DIFF"))["status"] == "AWAITING_UPLOADS"


async def test_outage_then_recovery(env: Env) -> None:
    client = env.client(max_attempts=10, backoff_base=0.05, max_backoff=0.2)
    env.faults(outage=True)

    async def recover() -> None:
        await asyncio.sleep(0.3)
        env.faults(outage=False)

    recovery = asyncio.create_task(recover())
    job = await client.run_job("scope-a", "DIFF", entities=users(3), timeout=5)
    await recovery
    assert job["status"] == "FINISHED" and env.state.injected["outage"] >= 2


async def test_outage_exhausts_attempts(env: Env) -> None:
    client = env.client(max_attempts=3)
    env.faults(outage=True)
    with pytest.raises(J1RetryExhaustedError) as info:
        await client.get_job("00000000-0000-4000-8000-000000000000")
    assert info.value.status == 503 and env.state.injected["outage"] == 3


async def test_job_not_awaiting_uploads_is_not_retried(env: Env) -> None:
    client = env.client()
    job = await client.create_job(scope="scope-a", sync_mode="DIFF")
    await client.finalize(job["id"])
    with pytest.raises(J1JobEndedError) as info:
        await client.upload(job["id"], entities=users(2))
    assert info.value.code == "JOB_NOT_AWAITING_UPLOADS" and info.value.status == 400
    assert env.requests(UPLOAD_ROUTE) == 1
    with pytest.raises(J1JobEndedError):
        await client.finalize(job["id"])


async def test_fatal_400_aborts_job_and_is_not_retried(env: Env) -> None:
    client = env.client()
    with pytest.raises(J1Error) as info:
        await client.run_job("scope-a", "DIFF", entities=[ent("short")], timeout=5)
    assert info.value.status == 400 and info.value.code == "INVALID_ENTITY"
    assert env.requests(UPLOAD_ROUTE) == 1
    (job,) = env.state.jobs.values()
    assert job.status == "ABORTED" and job.abort_reason and "INVALID_ENTITY" in job.abort_reason
    assert KEY not in job.abort_reason


async def test_patch_with_relationships_is_fatal(env: Env) -> None:
    client = env.client()
    with pytest.raises(J1Error) as info:
        await client.run_job("scope-a", "PATCH", relationships=[rel("user-000000", "user-000001")], timeout=5)
    assert info.value.code == "INVALID_UPLOAD_FOR_SYNC_MODE"
    assert next(iter(env.state.jobs.values())).status == "ABORTED"


async def test_auth_errors_not_retried_and_key_never_leaks(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = env.client(api_key="wrong-" + KEY)
    with pytest.raises(J1AuthError) as info:
        await client.create_job(scope="scope-a", sync_mode="DIFF")
    assert info.value.status == 401 and info.value.attempts == 1
    assert env.requests("POST /persister/synchronization/jobs") == 1
    assert KEY not in str(info.value) and KEY not in repr(info.value.args)
    env.faults(count_5xx=2)
    await env.client().create_job(scope="scope-a", sync_mode="DIFF")
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in json.dumps(record.__dict__, default=str)


async def test_request_timeouts_are_retried(env: Env) -> None:
    client = env.client(request_timeout=0.1, max_attempts=2)
    env.faults(latency_ms=400)
    with pytest.raises(J1RetryExhaustedError) as info:
        await client.create_job(scope="scope-a", sync_mode="DIFF")
    assert info.value.code == "TRANSPORT_ERROR" and info.value.status is None
    env.faults(latency_ms=0)
    assert (await client.create_job(scope="scope-a", sync_mode="DIFF"))["status"] == "AWAITING_UPLOADS"


async def test_connection_refused_is_bounded(env: Env) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = env.client(base_url=f"http://127.0.0.1:{port}", max_attempts=3)
    with pytest.raises(J1RetryExhaustedError) as info:
        await client.get_job("00000000-0000-4000-8000-000000000000")
    assert info.value.code == "TRANSPORT_ERROR" and info.value.attempts == 3
    assert KEY not in str(info.value)


async def test_wait_finished_timeout(make_env: EnvFactory) -> None:
    env = await make_env(finalize_step_delay=(1.0, 1.0))
    client = env.client()
    job = await client.create_job(scope="scope-a", sync_mode="DIFF")
    await client.finalize(job["id"])
    t0 = asyncio.get_running_loop().time()
    with pytest.raises(J1TimeoutError) as info:
        await client.wait_finished(job["id"], timeout=0.2)
    assert asyncio.get_running_loop().time() - t0 < 0.5
    assert info.value.job is not None and info.value.job["status"] == "FINALIZE_PENDING"


async def test_unknown_job_is_a_plain_404(env: Env) -> None:
    client = env.client()
    with pytest.raises(J1Error) as info:
        await client.get_job("00000000-0000-4000-8000-000000000000")
    assert info.value.status == 404 and info.value.code == "JOB_NOT_FOUND" and info.value.attempts == 1


async def test_concurrent_uploads_and_failure_surfaces_one_error(env: Env) -> None:
    client = env.client(batch_bytes=500, upload_concurrency=4)
    job = await client.create_job(scope="scope-a", sync_mode="DIFF")
    await client.upload(job["id"], entities=users(30))
    assert (await client.get_job(job["id"]))["numEntitiesUploaded"] == 30
    await client.abort(job["id"], "stop")
    with pytest.raises(J1JobEndedError):
        await client.upload(job["id"], entities=users(30, v=2))


async def test_finalize_retry_after_lost_response_returns_job(env: Env) -> None:
    """A finalize whose response is lost (timeout) but was applied must not look like a failure."""
    client = env.client(request_timeout=0.1, backoff_base=0.2, max_attempts=4)
    job = await client.create_job(scope="scope-a", sync_mode="DIFF")
    env.faults(latency_ms=150, path_filter="/finalize")

    async def heal() -> None:
        await asyncio.sleep(0.12)
        env.faults(latency_ms=0)

    healer = asyncio.create_task(heal())
    fin = await client.finalize(job["id"])
    await healer
    assert fin["status"] in (
        "FINALIZE_PENDING",
        "FINALIZING_ENTITIES",
        "FINALIZING_RELATIONSHIPS",
        "FINISHED",
    )
    assert env.state.responses[400] == 1  # the retry saw JOB_NOT_AWAITING_UPLOADS
    assert (await client.wait_finished(job["id"], timeout=5))["status"] == "FINISHED"
