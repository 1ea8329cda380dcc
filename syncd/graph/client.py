"""Async Microsoft Graph client: auth header, bounded retries, paging and ``$batch``.

Retries follow ``syncd.retry.RetryPolicy``: 429/500/502/503/504, timeouts and connection errors,
at most ``max_attempts`` tries per logical request. ``Retry-After`` (``syncd.retry``'s reading)
is honoured, and a 429's also holds back every other request of its throttling family until it
passes (throttling is per app and tenant, so hammering with parallel requests only extends it).
Without it: exponential backoff with jitter, capped at ``max_backoff``. A Retry-After longer
than ``max_retry_after`` fails at once. A 401 invalidates the token once and retries.

POSTs are retried too: Graph does not process throttled requests, and the POSTs we send are reads
in ``$batch`` and subscription calls. A request whose effect must not happen twice (creating a
subscription) passes ``retry_ambiguous=False``: a timeout, a dropped connection or a 5xx, after
which the request may or may not have been processed, is then raised at once for the caller to
check; only 429 (never processed) is still retried.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import IO, Any, TypedDict, Unpack

import aiohttp
from yarl import URL

from syncd.graph.budget import Pacing, family_of
from syncd.graph.clouds import graph_root
from syncd.graph.errors import (
    SEGMENT_MESSAGE,
    GraphAuthError,
    GraphError,
    GraphTransportError,
    SegmentNotFound,
    batch_item_headers,
    make_error,
)
from syncd.retry import TRANSIENT_STATUSES, RetryPolicy, parse_retry_after

from .auth import TokenProvider

__all__ = ["BATCH_LIMIT", "GraphClient", "route_label"]

log = logging.getLogger(__name__)

BATCH_LIMIT = 20
DOWNLOAD_WRITE_BYTES = 1 << 20
"""A download reaches its sink in writes of about this size, each in a worker thread: the sink may
be a file (a large report spools to disk), and the loop does no file I/O."""
VERSIONS = ("v1.0", "beta")
_ID_SEGMENT = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}.*|[0-9a-fA-F]{32,}|\d+)$"
)
_DELTA_PATH = re.compile(r"/(microsoft\.graph\.)?delta(\(\))?/?$", re.IGNORECASE)


class PageQuery(TypedDict, total=False):
    """The keyword arguments of ``GraphClient.iter_pages``, for the helpers built on it."""

    params: Mapping[str, str] | None
    version: str
    headers: Mapping[str, str] | None


def route_label(method: str, path: str) -> str:
    """``GET /v1.0/users/{id}``: a low-cardinality label for metrics (ids and queries removed)."""
    parts = [("{id}" if _ID_SEGMENT.match(p) else p) for p in path.split("/")]
    return f"{method.upper()} {'/'.join(parts)}"


def _is_delta_path(path: str) -> bool:
    return bool(_DELTA_PATH.search(path))


def _is_segment_missing(body: Any) -> bool:
    """A ``$batch`` item body that is Graph's 400 "Resource not found for the segment ..."."""
    if not isinstance(body, Mapping):
        return False
    err = body.get("error")
    message = err.get("message") if isinstance(err, Mapping) else None
    return isinstance(message, str) and message.lower().startswith(SEGMENT_MESSAGE)


class GraphClient:
    """One tenant's Graph endpoint: share it across tasks (it holds no per-request state)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: TokenProvider,
        *,
        base_url: str,
        request_timeout: float = 60,
        max_attempts: int = 6,
        max_backoff: float = 60,
        on_request: Callable[[str, int], None] | None = None,
        backoff_base: float = 1.0,
        max_retry_after: float = 300.0,
        pacing: Pacing | None = None,
        on_segment_missing: Callable[[str], None] | None = None,
    ) -> None:
        self._session = session
        self._tokens = tokens
        self.base_url = graph_root(base_url)
        base = URL(self.base_url)
        self._origin = (base.scheme, (base.host or "").lower(), base.explicit_port or base.port)
        self.request_timeout = request_timeout
        self.retry = RetryPolicy(
            max_attempts=max(1, max_attempts),
            backoff_base=backoff_base,
            backoff_cap=max_backoff,
            retry_after_cap=max_retry_after,
        )
        """When a request is tried again and after how long (``syncd.retry``)."""
        self._on_request = on_request
        self._on_segment_missing = on_segment_missing
        self.pacing = pacing or Pacing()
        """Budgets and Retry-After gates per throttling family, shared by every source."""

    def __repr__(self) -> str:
        return f"GraphClient(base_url={self.base_url!r})"

    @property
    def max_attempts(self) -> int:
        return self.retry.max_attempts

    @property
    def backoff_base(self) -> float:
        """The first backoff step (tests shorten it on a running client)."""
        return self.retry.backoff_base

    @backoff_base.setter
    def backoff_base(self, value: float) -> None:
        self.retry = replace(self.retry, backoff_base=value)

    async def ensure_token_lifetime(self, seconds: float) -> None:
        """Refresh the access token first if it expires within `seconds`."""
        await self._tokens.ensure_lifetime(seconds)

    # ------------------------------------------------------------------ URLs

    def resolve(self, url_or_path: str, version: str = "v1.0") -> URL:
        """Absolute URLs (nextLink/deltaLink) verbatim but only on our host; paths joined to base/version.

        A path may already start with ``/v1.0/`` or ``/beta/``; then ``version`` is ignored.
        """
        if "://" in url_or_path:
            url = URL(url_or_path, encoded=True)
            origin = (url.scheme, (url.host or "").lower(), url.explicit_port or url.port)
            if origin != self._origin:
                raise ValueError(f"refusing to send the token to another host: {url.host}")
            return url
        if version not in VERSIONS:
            raise ValueError(f"unknown Graph version {version!r}")
        path = url_or_path if url_or_path.startswith("/") else "/" + url_or_path
        first = path.split("/", 2)[1]
        if first in VERSIONS:
            return URL(self.base_url + path)
        return URL(f"{self.base_url}/{version}{path}")

    # ------------------------------------------------------------------ public verbs

    async def get(
        self,
        url_or_path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        version: str = "v1.0",
    ) -> dict[str, Any]:
        """GET one JSON object (a page, an entity)."""
        return await self.request("GET", url_or_path, params=params, headers=headers, version=version)

    async def post(
        self,
        path: str,
        json: Any,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        version: str = "v1.0",
        retry_ambiguous: bool = True,
    ) -> dict[str, Any]:
        """POST JSON; returns the response object ({} for 202/204)."""
        return await self.request(
            "POST",
            path,
            json=json,
            params=params,
            headers=headers,
            version=version,
            retry_ambiguous=retry_ambiguous,
        )

    async def patch(
        self,
        path: str,
        json: Any,
        *,
        headers: Mapping[str, str] | None = None,
        version: str = "v1.0",
    ) -> dict[str, Any]:
        """PATCH JSON; returns the response object ({} for 204)."""
        return await self.request("PATCH", path, json=json, headers=headers, version=version)

    async def delete(
        self, path: str, *, headers: Mapping[str, str] | None = None, version: str = "v1.0"
    ) -> None:
        """DELETE; NotFound propagates (callers decide whether 'already gone' is fine)."""
        await self.request("DELETE", path, headers=headers, version=version)

    async def iter_pages(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        version: str = "v1.0",
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every page of a collection, following ``@odata.nextLink`` verbatim.

        Empty pages are yielded too (Graph may send ``value: []`` with a nextLink). Headers such
        as ``ConsistencyLevel`` are resent on every page because Graph does not carry them over.
        """
        page = await self.get(path, params=params, headers=headers, version=version)
        while True:
            yield page
            next_link = page.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return
            page = await self.get(next_link, headers=headers, version=version)

    async def iter_items(self, path: str, **query: Unpack[PageQuery]) -> AsyncIterator[dict[str, Any]]:
        """Every object of every page (convenience over iter_pages)."""
        async for page in self.iter_pages(path, **query):
            for item in page.get("value") or []:
                if isinstance(item, dict):
                    yield item

    async def batch(self, requests: list[dict[str, Any]], *, version: str = "v1.0") -> list[dict[str, Any]]:
        """Run requests through ``$batch`` (≤ 20 per call); responses in the order of ``requests``.

        Each request is ``{"id"?, "method", "url" (relative, no version), "headers"?, "body"?,
        "dependsOn"?}``; missing ids are numbered. Inner 429/503 items (and items that failed
        with 424 only because they depend on one) are retried alone after the longest inner
        Retry-After, at most ``max_attempts`` times; what still fails is returned as is.
        ``dependsOn`` must stay within one chunk of 20.
        """
        prepared: list[dict[str, Any]] = []
        seen: set[str] = set()
        for index, req in enumerate(requests):
            item = dict(req)
            item["id"] = str(item.get("id", index + 1))
            item.setdefault("method", "GET")
            if item["id"].lower() in seen:
                raise ValueError(f"duplicate $batch request id {item['id']!r}")
            seen.add(item["id"].lower())
            prepared.append(item)
        results: dict[str, dict[str, Any]] = {}
        for start in range(0, len(prepared), BATCH_LIMIT):
            chunk = prepared[start : start + BATCH_LIMIT]
            ids = {r["id"] for r in chunk}
            for r in chunk:
                for dep in r.get("dependsOn") or []:
                    if str(dep) not in ids:
                        raise ValueError(f"$batch request {r['id']!r} depends on {dep!r} in another chunk")
            results.update(await self._batch_chunk(chunk, version))
        return [results[r["id"]] for r in prepared]

    async def download(self, url: str, sink: IO[bytes], *, max_bytes: int) -> int:
        """Fetch a pre-signed file URL Graph handed out (a report export): bytes into ``sink``
        (written from a worker thread, ``DOWNLOAD_WRITE_BYTES`` at a time).

        The URL points at a storage host, not Graph: no token is sent (it would leak to another
        host, and storage rejects a foreign ``Authorization``). https only. Bounded retries on
        429/5xx/timeouts, honouring Retry-After; ``GraphTransportError``/``GraphError`` after that.
        Returns the byte count; more than ``max_bytes`` is an error (nothing silently truncated).
        """
        target = URL(url, encoded=True)
        if target.scheme != "https" or not target.host:
            raise GraphError(0, "invalidDownloadUrl", "report download URL is not https", path=target.path)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.request_timeout)
        attempt = 0
        while True:
            attempt += 1
            sink.seek(0)
            sink.truncate()
            try:
                async with self._session.get(
                    target, headers={"Accept": "*/*"}, timeout=timeout, allow_redirects=False
                ) as resp:
                    if resp.status == 200:
                        size = 0
                        pending = bytearray()
                        async for block in resp.content.iter_chunked(1 << 16):
                            size += len(block)
                            if size > max_bytes:
                                raise GraphError(
                                    200, "downloadTooLarge", f"report larger than {max_bytes} bytes",
                                    path=target.path,
                                )
                            pending += block
                            if len(pending) >= DOWNLOAD_WRITE_BYTES:
                                chunk, pending = pending, bytearray()
                                await asyncio.to_thread(sink.write, chunk)
                        if pending:
                            await asyncio.to_thread(sink.write, pending)
                        self._report("GET <report download>", 200)
                        return size
                    body = await resp.read()
                    status, headers = resp.status, resp.headers
            except (TimeoutError, aiohttp.ClientError) as exc:
                self._report("GET <report download>", 0)
                decision = self.retry.decide(attempt, None)
                if not decision.retry:
                    raise GraphTransportError(
                        0, "download", f"{type(exc).__name__} after {attempt} attempts", path=target.path
                    ) from None
                await asyncio.sleep(decision.delay)
                continue
            self._report("GET <report download>", status)
            decision = self.retry.decide(attempt, status, parse_retry_after(headers.get("Retry-After")))
            if not decision.retry:
                break
            await asyncio.sleep(decision.delay)
        snippet = " ".join(body[:300].decode("utf-8", "replace").split())
        raise GraphError(status, "downloadFailed", snippet or f"HTTP {status}", path=target.path)

    # ------------------------------------------------------------------ internals

    async def _batch_chunk(self, chunk: list[dict[str, Any]], version: str) -> dict[str, dict[str, Any]]:
        by_id = {r["id"]: r for r in chunk}
        results: dict[str, dict[str, Any]] = {}
        pending = list(chunk)
        for attempt in range(1, self.max_attempts + 1):
            # Graph meters every item on its own: pay each from its family's budget and gate.
            families: dict[str, int] = {}
            for r in pending:
                fam = family_of("/" + str(r.get("url", "")).lstrip("/"))
                families[fam] = families.get(fam, 0) + 1
            for fam, count in families.items():
                await self.pacing.acquire(fam, count)
            body = await self.request(
                "POST", "/$batch", json={"requests": pending}, version=version, paced=False
            )
            responses = body.get("responses")
            if not isinstance(responses, list):
                raise GraphError(
                    200, "invalidBatchResponse", "no 'responses' in $batch answer", path="/$batch"
                )
            retry_ids: set[str] = set()
            waits: list[float] = []
            for resp in responses:
                if not isinstance(resp, dict):
                    continue
                rid = str(resp.get("id"))
                if rid not in by_id:
                    continue
                status = int(resp.get("status") or 0)
                results[rid] = resp
                method = str(by_id[rid].get("method", "GET"))
                url = str(by_id[rid].get("url", "")).split("?", 1)[0]
                label = route_label(method, "/" + version + "/" + url.lstrip("/"))
                self._report(f"$batch {label}", status)
                if status == 400 and _is_segment_missing(resp.get("body")):
                    self._segment_missing(label)
                if status in TRANSIENT_STATUSES:
                    retry_ids.add(rid)
                    wait = parse_retry_after(batch_item_headers(resp).get("retry-after"))
                    if wait is not None:
                        waits.append(wait)
                        if status == 429:
                            self.pacing.hold(family_of("/" + url.lstrip("/")), wait + 0.005)
            missing = [r["id"] for r in pending if r["id"] not in results]
            if missing:
                raise GraphError(
                    200, "invalidBatchResponse", f"$batch answer lacks ids {missing}", path="/$batch"
                )
            retry_ids |= self._dependents(pending, retry_ids, results)
            if not retry_ids:
                break
            # After the longest Retry-After Graph gave, else exponential backoff with jitter: a
            # 5xx or a 429 without the header is retried too, never returned on first sight.
            decision = self.retry.wait(attempt, retry_after=max(waits) if waits else None)
            if not decision.retry:
                break
            log.info("retrying %d $batch items in %.2fs", len(retry_ids), decision.delay)
            await asyncio.sleep(decision.delay)
            pending = []
            for r in chunk:
                if r["id"] in retry_ids:
                    item = dict(r)
                    deps = [str(d) for d in r.get("dependsOn") or [] if str(d) in retry_ids]
                    if deps:
                        item["dependsOn"] = deps
                    else:
                        item.pop("dependsOn", None)
                    pending.append(item)
        return results

    @staticmethod
    def _dependents(
        pending: list[dict[str, Any]], retry_ids: set[str], results: dict[str, dict[str, Any]]
    ) -> set[str]:
        """424 items whose dependency is being retried: retry them with it."""
        extra: set[str] = set()
        changed = True
        while changed:
            changed = False
            for r in pending:
                rid = r["id"]
                if rid in retry_ids or rid in extra or int(results[rid].get("status") or 0) != 424:
                    continue
                if any(str(d) in retry_ids or str(d) in extra for d in r.get("dependsOn") or []):
                    extra.add(rid)
                    changed = True
        return extra

    def _report(self, label: str, status: int) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(label, status)
        except Exception:  # a metrics hook must never break a request
            log.exception("on_request hook failed")

    async def request(
        self,
        method: str,
        url_or_path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        version: str = "v1.0",
        paced: bool = True,
        retry_ambiguous: bool = True,
    ) -> dict[str, Any]:
        """One logical request with retries; returns the JSON object ({} when there is no body).

        ``paced=False`` skips the family budget (the ``$batch`` envelope: its items were paid).
        ``retry_ambiguous=False``: no retry after an answer that leaves open whether the request
        took effect (timeout, connection error, 5xx); 429 is still retried.
        """
        url = self.resolve(url_or_path, version)
        if params:
            url = url.extend_query({k: str(v) for k, v in params.items()})
        path = url.path
        label = route_label(method, path)
        is_delta = _is_delta_path(path)
        family = family_of(path)
        base_headers = {
            "Accept": "application/json",
            "client-request-id": str(uuid.uuid4()),  # one per logical request, kept across retries
            **(dict(headers) if headers else {}),
        }
        auth_retried = False
        attempt = 0
        while True:
            attempt += 1
            if paced:
                await self.pacing.acquire(family)
            token = await self._bearer(attempt)
            if token is None:
                continue
            req_headers = {**base_headers, "Authorization": f"Bearer {token}"}
            try:
                status, resp_headers, body = await self._send(method, url, req_headers, json)
            except (TimeoutError, aiohttp.ClientError) as exc:
                self._report(label, 0)
                kind = "timeout" if isinstance(exc, TimeoutError) else "connection"
                decision = self.retry.decide(attempt, None, repeat_ambiguous=retry_ambiguous)
                if not decision.retry:
                    raise GraphTransportError(
                        0, kind, f"{type(exc).__name__} after {attempt} attempts", path=path
                    ) from None
                log.warning("%s %s: %s, retry %d in %.2fs", method, path, kind, attempt, decision.delay)
                await asyncio.sleep(decision.delay)
                continue
            self._report(label, status)
            if 200 <= status < 300:
                return self._decode(status, body, path, resp_headers)
            if status == 401 and not auth_retried:
                auth_retried = True
                self._tokens.invalidate()
                log.warning("%s %s: 401, refreshing the token once", method, path)
                attempt -= 1  # the auth retry does not use up an attempt
                continue
            retry_after = parse_retry_after(resp_headers.get("Retry-After"))
            decision = self.retry.decide(attempt, status, retry_after, repeat_ambiguous=retry_ambiguous)
            if not decision.retry:
                err = make_error(
                    status, body, resp_headers, path=path, is_delta=is_delta, retry_after=retry_after
                )
                if isinstance(err, SegmentNotFound):
                    self._segment_missing(label)
                raise err
            if status == 429 and retry_after is not None:
                self.pacing.hold(family, decision.delay)  # throttling is per app and tenant
            request_id = resp_headers.get("request-id")
            log.warning(
                "%s %s: %d, retry %d in %.2fs (request-id %s)", method, path, status, attempt, decision.delay,
                request_id,
            )
            await asyncio.sleep(decision.delay)

    async def _bearer(self, attempt: int) -> str | None:
        """The access token; None after waiting out a transient token failure (try again)."""
        try:
            return await self._tokens.token()
        except GraphAuthError as exc:
            decision = self.retry.decide(attempt, None)
            if not exc.transient or not decision.retry:
                raise
            await asyncio.sleep(decision.delay)
            return None

    def _segment_missing(self, label: str) -> None:
        """A URL Graph does not know: always loud (a wrong URL must never read as "no data")."""
        log.warning("Graph does not know this URL (400 Resource not found for the segment): %s", label)
        if self._on_segment_missing is not None:
            try:
                self._on_segment_missing(label)
            except Exception:  # a metrics hook must never break a request
                log.exception("on_segment_missing hook failed")

    async def _send(
        self, method: str, url: URL, headers: dict[str, str], json: Any
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = aiohttp.ClientTimeout(total=self.request_timeout, sock_read=self.request_timeout)
        data: bytes | None = None
        if json is not None:
            data = jsonlib.dumps(json).encode()
            headers = {**headers, "Content-Type": "application/json"}
        async with asyncio.timeout(self.request_timeout + 5):
            async with self._session.request(
                method, url, headers=headers, data=data, timeout=timeout, allow_redirects=False
            ) as resp:
                body = await resp.read()
                return resp.status, resp.headers, body

    @staticmethod
    def _decode(status: int, body: bytes, path: str, headers: Mapping[str, str]) -> dict[str, Any]:
        if status == 204 or not body.strip():
            return {}
        try:
            data = jsonlib.loads(body)
        except ValueError:
            raise GraphError(
                status, "invalidJson", "response body is not JSON", headers.get("request-id"), path=path
            ) from None
        if not isinstance(data, dict):
            raise GraphError(
                status, "invalidJson", "response is not a JSON object", headers.get("request-id"), path=path
            )
        return data
