"""Async client for the JupiterOne synchronization (persister) API.

Why it looks like this: the sync API has no published rate limit, a hard ~6 MB body limit and an
asynchronous finalize, so the client batches by serialized size (as the SDK measures), splits on
413, retries only transient failures (429 honouring Retry-After, 5xx, transport errors) with
bounded jittered backoff (``syncd.retry.RetryPolicy``), and aborts a job it cannot complete so
half-uploaded data never lands.
All uploads go to `/upload`, the only endpoint that also takes explicit deletes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

import aiohttp

from syncd import __version__
from syncd.j1.errors import (
    J1AuthError,
    J1Error,
    J1JobEndedError,
    J1JobFailedError,
    J1ObjectTooLargeError,
    J1PayloadTooLargeError,
    J1RetryExhaustedError,
    J1TimeoutError,
)
from syncd.retry import RetryPolicy, Verdict, parse_retry_after

log = logging.getLogger(__name__)

JOBS_PATH = "/persister/synchronization/jobs"
DEFAULT_BATCH_BYTES = 5_000_000
FINALIZE_ACCEPTED = frozenset(
    {"FINALIZE_PENDING", "FINALIZING_ENTITIES", "FINALIZING_RELATIONSHIPS", "FINISHED"}
)
_MAX_MESSAGE = 300

JsonDict = dict[str, Any]


class CallOptions(TypedDict, total=False):
    """The keyword arguments of ``SyncApiClient.request_json``, for the calls built on it."""

    params: Mapping[str, str] | None
    correlation_id: str | None
    max_attempts: int | None


def serialize(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the same bytes the SDK counts with `Buffer.byteLength(JSON.stringify(o))`."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def batch_by_size(items: Sequence[bytes], limit: int) -> list[list[bytes]]:
    """Group serialized objects; a new batch starts when `current + next >= limit` (SDK rule)."""
    batches: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for item in items:
        if len(item) >= limit:
            raise J1ObjectTooLargeError(
                None,
                "OBJECT_TOO_LARGE",
                f"a serialized object of {len(item)} bytes exceeds the {limit}-byte batch",
            )
        if current and size + len(item) >= limit:
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += len(item)
    if current:
        batches.append(current)
    return batches


@dataclass(frozen=True)
class RefusedUpload:
    """An object J1 refused on upload (400), isolated by splitting its request."""

    field: str
    key: str
    code: str | None
    message: str


def is_rejection(exc: J1Error) -> bool:
    """A 400 that refuses the request's data (not one that says the job itself is over)."""
    return exc.status == 400 and not isinstance(exc, J1JobEndedError)


def _key_of(item: bytes) -> str:
    try:
        return str(json.loads(item).get("_key", ""))
    except (ValueError, AttributeError):
        return ""


def _check_unique(objs: Sequence[Mapping[str, Any]], what: str) -> None:
    """Duplicate keys in one call are a caller bug; catch it here because uploads use ignoreDuplicates."""
    seen: set[str] = set()
    for obj in objs:
        key = obj.get("_key")
        if key is None:
            continue
        if key in seen:
            raise ValueError(f"duplicate _key in {what}: {key!r}")
        seen.add(str(key))


class SyncApiClient:
    """Talks to `/persister/synchronization/jobs` with retries, batching and safe error messages."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        account_id: str,
        api_key: str,
        request_timeout: float = 60,
        max_attempts: int = 5,
        max_backoff: float = 30,
        backoff_base: float = 0.5,
        batch_bytes: int = DEFAULT_BATCH_BYTES,
        upload_concurrency: int = 4,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        if not api_key or not account_id:
            raise ValueError("account_id and api_key are required")
        if max_attempts < 1 or upload_concurrency < 1 or batch_bytes < 1:
            raise ValueError("max_attempts, upload_concurrency and batch_bytes must be >= 1")
        self._session = session
        self._base = base_url.rstrip("/") + JOBS_PATH
        self._account_id = account_id
        self._api_key = api_key
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        # A Retry-After longer than the backoff cap is not waited for: the writer backs the
        # partition off instead. A 5xx waits at least its backoff, a 429 its Retry-After exactly.
        self._retry = RetryPolicy(
            max_attempts=max_attempts,
            backoff_base=backoff_base,
            backoff_cap=max_backoff,
            retry_after_cap=max_backoff,
            backoff_floor=True,
        )
        self._batch_bytes = batch_bytes
        self._concurrency = upload_concurrency

    def __repr__(self) -> str:
        return f"SyncApiClient(base_url={self._base!r}, account_id={self._account_id!r})"

    # -- transport ----------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        text = text.replace(self._api_key, "[REDACTED]")
        return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."

    def _headers(self, correlation_id: str | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "JupiterOne-Account": self._account_id,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"syncd/{__version__}",
        }
        if correlation_id is not None:
            headers["JupiterOne-Correlation-Id"] = correlation_id
        return headers

    async def _call(
        self, method: str, path: str, body: bytes | None = None, **options: Unpack[CallOptions]
    ) -> JsonDict:
        """One logical sync API call (path under the jobs endpoint)."""
        return await self.request_json(method, self._base + path, body, **options)

    async def request_json(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        *,
        params: Mapping[str, str] | None = None,
        correlation_id: str | None = None,
        max_attempts: int | None = None,
    ) -> JsonDict:
        """One logical call to a J1 URL with bounded retries; returns the decoded JSON object.

        Shared by the sync API and the query API (same account headers, same retry policy)."""
        policy = self._retry if max_attempts is None else replace(self._retry, max_attempts=max_attempts)
        path = urlsplit(url).path
        headers = self._headers(correlation_id)
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            retry_after: float | None = None
            try:
                async with self._session.request(
                    method, url, data=body, params=params, headers=headers, timeout=self._timeout
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
                    if 200 <= status < 300:
                        return self._decode_ok(status, raw, attempt)
                    code, message = self._decode_error(raw)
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, code, message = None, "TRANSPORT_ERROR", self._redact(f"{type(exc).__name__}: {exc}")
            decision = policy.decide(attempt, status, retry_after)
            if decision.verdict is Verdict.FINAL:
                assert status is not None  # no answer is always worth another attempt
                raise self._fatal(status, code, message, attempt)
            if decision.verdict is Verdict.TOO_LONG:
                raise J1RetryExhaustedError(
                    status,
                    code,
                    f"{message} (Retry-After {retry_after:g}s > cap {policy.retry_after_cap:g}s)",
                    attempts=attempt,
                    retry_after=retry_after,
                )
            if decision.verdict is Verdict.EXHAUSTED:
                raise J1RetryExhaustedError(
                    status, code, f"{message} (after {attempt} attempts)", attempts=attempt
                )
            log.warning(
                "j1 call failed, retrying",
                extra={"method": method, "path": path, "status": status, "code": code,
                       "delay": decision.delay},
            )
            await asyncio.sleep(decision.delay)

    def _decode_ok(self, status: int, raw: bytes, attempt: int) -> JsonDict:
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            raise J1Error(status, "INVALID_RESPONSE", "response body is not JSON", attempts=attempt) from None
        if not isinstance(data, dict):
            raise J1Error(status, "INVALID_RESPONSE", "response body is not a JSON object", attempts=attempt)
        return data

    def _decode_error(self, raw: bytes) -> tuple[str | None, str]:
        """Pull code and message out of the `{"error": {...}}` envelope, redacted and truncated."""
        try:
            data = json.loads(raw)
        except ValueError:
            return None, self._redact(raw.decode("utf-8", "replace").strip() or "no body")
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            code = err.get("code")
            return (str(code) if code is not None else None), self._redact(str(err.get("message", "")))
        return None, self._redact(json.dumps(data)[:_MAX_MESSAGE])

    @staticmethod
    def _fatal(status: int, code: str | None, message: str, attempt: int) -> J1Error:
        """The typed error for a status that retrying cannot change."""
        if code == "JOB_NOT_AWAITING_UPLOADS":
            return J1JobEndedError(status, code, message, attempts=attempt)
        if status in (401, 403):
            return J1AuthError(status, code, message, attempts=attempt)
        if status == 413:
            return J1PayloadTooLargeError(status, code, message, attempts=attempt)
        return J1Error(status, code, message, attempts=attempt)

    @staticmethod
    def _job(data: JsonDict) -> JsonDict:
        job = data.get("job")
        if not isinstance(job, dict) or "id" not in job:
            raise J1Error(200, "INVALID_RESPONSE", "response has no job object")
        return job

    # -- job API ------------------------------------------------------------------------------
    async def create_job(self, *, scope: str, sync_mode: str, source: str = "api") -> JsonDict:
        """POST /jobs; returns the job (status AWAITING_UPLOADS)."""
        body = serialize({"source": source, "scope": scope, "syncMode": sync_mode})
        return self._job(await self._call("POST", "", body))

    async def get_job(self, job_id: str) -> JsonDict:
        """GET /jobs/{id}."""
        return self._job(await self._call("GET", f"/{job_id}"))

    async def upload(
        self,
        job_id: str,
        *,
        entities: Iterable[Mapping[str, Any]] = (),
        relationships: Iterable[Mapping[str, Any]] = (),
        delete_entities: Iterable[Mapping[str, Any]] = (),
        delete_relationships: Iterable[Mapping[str, Any]] = (),
        refused: list[RefusedUpload] | None = None,
    ) -> None:
        """Upload everything in size-bounded batches to `/upload` (one field per request).

        With ``refused`` given, a request J1 rejects as bad data (400) is split in halves until
        each refused object stands alone; those are appended to ``refused`` and the rest is
        uploaded, so one bad object never holds back the others."""
        groups = {
            "entities": list(entities),
            "relationships": list(relationships),
            "deleteEntities": list(delete_entities),
            "deleteRelationships": list(delete_relationships),
        }
        _check_unique(groups["entities"], "entities")
        _check_unique(groups["relationships"], "relationships")
        chunks: list[tuple[str, list[bytes]]] = []
        for field, objs in groups.items():
            for batch in batch_by_size([serialize(o) for o in objs], self._batch_bytes):
                chunks.append((field, batch))
        if not chunks:
            return
        semaphore = asyncio.Semaphore(self._concurrency)

        async def send(field: str, items: list[bytes]) -> None:
            async with semaphore:
                await self._send_chunk(job_id, field, items, refused)

        try:
            async with asyncio.TaskGroup() as group:
                for field, items in chunks:
                    group.create_task(send(field, items))
        except BaseExceptionGroup as eg:
            raise _first_error(eg) from None

    async def _send_chunk(
        self, job_id: str, field: str, items: list[bytes], refused: list[RefusedUpload] | None = None
    ) -> None:
        """POST one chunk; its correlation id is kept across retries; on 413 split in half (and on
        a 400 rejection too, when isolating refused objects)."""
        body = b'{"' + field.encode() + b'":[' + b",".join(items) + b"]}"
        try:
            # ignoreDuplicates makes a retried chunk (whose first attempt did land) idempotent;
            # duplicates within one upload() call are rejected client-side instead.
            await self._call(
                "POST",
                f"/{job_id}/upload",
                body,
                params={"ignoreDuplicates": "true"},
                correlation_id=str(uuid.uuid4()),
            )
        except J1PayloadTooLargeError:
            if len(items) == 1:
                raise
            mid = len(items) // 2
            log.info("j1 upload got 413, splitting", extra={"field": field, "items": len(items)})
            await self._send_chunk(job_id, field, items[:mid], refused)
            await self._send_chunk(job_id, field, items[mid:], refused)
        except J1Error as exc:
            if refused is None or not is_rejection(exc):
                raise
            if len(items) == 1:
                refused.append(RefusedUpload(field, _key_of(items[0]), exc.code, exc.message))
                return
            mid = len(items) // 2
            await self._send_chunk(job_id, field, items[:mid], refused)
            await self._send_chunk(job_id, field, items[mid:], refused)

    async def finalize(self, job_id: str, *, partial_types: Sequence[str] = ()) -> JsonDict:
        """POST /finalize (with `partialDatasets.types` when given); returns the job."""
        body: JsonDict = {"partialDatasets": {"types": list(partial_types)}} if partial_types else {}
        try:
            return self._job(await self._call("POST", f"/{job_id}/finalize", serialize(body)))
        except J1JobEndedError as exc:
            if exc.attempts > 1:
                # An earlier attempt may have been accepted before its response was lost.
                job = await self.get_job(job_id)
                if job.get("status") in FINALIZE_ACCEPTED:
                    return job
            raise

    async def abort(self, job_id: str, reason: str, *, max_attempts: int | None = None) -> JsonDict:
        """POST /abort with a reason; returns the job (status ABORTED)."""
        body = serialize({"reason": self._redact(reason)[:1000]})
        return self._job(await self._call("POST", f"/{job_id}/abort", body, max_attempts=max_attempts))

    async def wait_finished(self, job_id: str, *, timeout: float) -> JsonDict:  # noqa: ASYNC109 (contract)
        """Poll until FINISHED (backoff 25 ms → 2 s); raise on ABORTED*/ERROR_* or timeout."""
        delay = 0.025
        last: JsonDict | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    last = await self.get_job(job_id)
                    status = str(last.get("status"))
                    if status == "FINISHED":
                        return last
                    if status.startswith(("ABORTED", "ERROR_")):
                        raise J1JobFailedError(last)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
        except TimeoutError:
            raise J1TimeoutError(job_id, timeout, last) from None

    async def run_job(
        self,
        scope: str,
        sync_mode: str,
        *,
        entities: Iterable[Mapping[str, Any]] = (),
        relationships: Iterable[Mapping[str, Any]] = (),
        delete_entities: Iterable[Mapping[str, Any]] = (),
        delete_relationships: Iterable[Mapping[str, Any]] = (),
        partial_types: Sequence[str] = (),
        timeout: float = 900,  # noqa: ASYNC109 (overall budget for wait_finished, part of the contract)
        source: str = "api",
    ) -> JsonDict:
        """Create, upload, finalize and wait; abort (best effort) if upload or finalize fails."""
        ents, rels = list(entities), list(relationships)
        _check_unique(ents, "entities")
        _check_unique(rels, "relationships")
        job = await self.create_job(scope=scope, sync_mode=sync_mode, source=source)
        job_id = str(job["id"])
        try:
            await self.upload(
                job_id,
                entities=ents,
                relationships=rels,
                delete_entities=delete_entities,
                delete_relationships=delete_relationships,
            )
            await self.finalize(job_id, partial_types=partial_types)
        except BaseException as exc:
            await self.abort_quietly(job_id, f"syncd: {type(exc).__name__}: {exc}")
            raise
        return await self.wait_finished(job_id, timeout=timeout)

    async def abort_quietly(self, job_id: str, reason: str) -> None:
        """Best-effort abort of a job that cannot complete: two attempts at most, short timeout,
        never raises (the error that stopped the job matters more)."""
        try:
            async with asyncio.timeout(min(self._timeout.total or 10.0, 10.0)):
                await self.abort(job_id, reason, max_attempts=2)
        except J1JobEndedError:
            pass  # the job is over already: nothing to abort
        except Exception as abort_exc:
            log.warning(
                "j1 abort failed", extra={"job_id": job_id, "error": self._redact(type(abort_exc).__name__)}
            )


def _first_error(eg: BaseExceptionGroup[BaseException]) -> BaseException:
    """Unwrap a TaskGroup failure, preferring a J1Error so callers see one typed exception."""
    flat: list[BaseException] = []

    def walk(group: BaseExceptionGroup[BaseException]) -> None:
        for exc in group.exceptions:
            if isinstance(exc, BaseExceptionGroup):
                walk(exc)
            else:
                flat.append(exc)

    walk(eg)
    for exc in flat:
        if isinstance(exc, J1Error):
            return exc
    return flat[0] if flat else eg
