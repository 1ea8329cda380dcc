"""Intune report exports: many rows for a handful of requests.

The documented flow (Intune "Export Intune reports using Graph APIs"; Graph
``deviceManagementExportJob``): ``POST /beta/deviceManagement/reports/exportJobs`` with a
``reportName``, the columns to ``select`` and an optional ``filter`` creates a job
(``notStarted``); the job is polled until its ``status`` is ``completed`` (or ``failed``); its
``url`` then names a ZIP holding one CSV, on a storage host (not Graph: downloaded without the
Graph token, see ``GraphClient.download``). Jobs expire (``expirationDateTime``).

Every job is created with ``localizationType: ReplaceLocalizableValues`` (one column per
property, human-readable values) and ``format: csv``; the CSV is read leniently (a UTF-8 BOM,
any quoting, extra columns, a ``<column>_loc`` twin are all accepted). Parsing runs in a worker
thread: the loop never decompresses or parses.
"""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeVar
from urllib.parse import quote

import structlog

from syncd.graph.client import BATCH_LIMIT, GraphClient
from syncd.graph.errors import GraphError, batch_item_error

log = structlog.get_logger(__name__)

EXPORT_VERSION = "beta"
EXPORT_JOBS = "/deviceManagement/reports/exportJobs"
COMPLETED = "completed"
FAILED = "failed"
POLL_DELAYS: tuple[float, ...] = (1.0, 1.0, 2.0, 3.0, 5.0, 5.0, 10.0, 10.0, 15.0, 30.0)
"""Seconds between status polls (the last one repeats until the timeout)."""
LIST_POLL_MIN = 3
"""From this many pending jobs on, one list request reads them all instead of one read each."""
MAX_DOWNLOAD_BYTES = 4 << 30
SPOOL_BYTES = 32 << 20
"""Downloads larger than this go to a temporary file instead of memory."""

T = TypeVar("T")
Rows = Iterator[dict[str, str]]


@dataclass(frozen=True)
class ExportRequest:
    """One report to export: the report name, the columns wanted and an optional filter."""

    report: str
    select: tuple[str, ...]
    filter: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "reportName": self.report,
            "select": list(self.select),
            "format": "csv",
            "localizationType": "ReplaceLocalizableValues",
        }
        if self.filter:
            body["filter"] = self.filter
        return body


class ExportUnavailable(Exception):
    """The export API refused to create a job (403 permission, 400 report unknown/not enabled,
    tenant without Intune ...): callers fall back to another source."""

    def __init__(self, reason: str, error: GraphError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


@dataclass
class ExportResult(Generic[T]):
    """What one request gave: the reduced rows, or why it failed (a failed job, a download error)."""

    request: ExportRequest
    value: T | None = None
    error: str | None = None
    job_id: str | None = None


@dataclass
class ExportStats:
    """Counts for logs and benches."""

    jobs: int = 0
    polls: int = 0
    downloads: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failed: list[str] = field(default_factory=list)


def escape_filter_value(value: str) -> str:
    """An OData string literal body: single quotes doubled."""
    return value.replace("'", "''")


def read_report_csv(data: IO[bytes]) -> Rows:
    """Rows of the CSV inside an export ZIP (the first ``.csv`` member), as column -> value.

    A ``<column>_loc`` twin is dropped when its plain column is present (it only appears with
    the other localization mode). Values are returned as the strings the CSV holds.
    """
    with zipfile.ZipFile(data) as archive:
        names = [n for n in archive.namelist() if n.lower().endswith(".csv")] or archive.namelist()
        if not names:
            raise ValueError("report archive is empty")
        with archive.open(names[0]) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.DictReader(text)
            fields = [f for f in reader.fieldnames or [] if f]
            keep = [f for f in fields if not (f.endswith("_loc") and f[: -len("_loc")] in fields)]
            for row in reader:
                yield {f: row.get(f) or "" for f in keep}


class ReportExporter:
    """Runs export jobs: create (bounded in flight), poll, download, reduce rows in a thread."""

    def __init__(
        self,
        graph: GraphClient,
        *,
        timeout: float = 900.0,
        poll_delays: Sequence[float] = POLL_DELAYS,
        max_in_flight: int = 50,
        download_concurrency: int = 4,
        max_bytes: int = MAX_DOWNLOAD_BYTES,
    ) -> None:
        self.graph = graph
        self.timeout = timeout
        self.poll_delays = tuple(poll_delays) or (1.0,)
        self.max_in_flight = max(1, max_in_flight)
        self.download_concurrency = max(1, download_concurrency)
        self.max_bytes = max_bytes
        self.stats = ExportStats()
        self.list_refused = False

    async def run(
        self, requests: Sequence[ExportRequest], reduce: Callable[[Rows], T]
    ) -> list[ExportResult[T]]:
        """Export every request and reduce its rows with ``reduce`` (run in a worker thread).

        Raises ``ExportUnavailable`` when the first job cannot be created (the export is not
        usable at all); later per-job failures are reported in their result.
        """
        started = time.monotonic()
        results = [ExportResult[T](request=r) for r in requests]
        downloads = asyncio.Semaphore(self.download_concurrency)
        for start in range(0, len(results), self.max_in_flight):
            wave = results[start : start + self.max_in_flight]
            await self._create(wave, first=start == 0)
            jobs = await self._wait([r.job_id for r in wave if r.job_id and r.error is None])
            await asyncio.gather(*(self._finish(r, jobs, reduce, downloads) for r in wave))
        self.stats.seconds += time.monotonic() - started
        return results

    # --- create ------------------------------------------------------------------------------
    async def _create(self, wave: list[ExportResult[T]], *, first: bool) -> None:
        if len(wave) == 1:
            try:
                job = await self.graph.post(EXPORT_JOBS, wave[0].request.body(), version=EXPORT_VERSION)
            except GraphError as exc:
                if first:
                    raise ExportUnavailable(_reason(exc), exc) from exc
                wave[0].error = _reason(exc)
                return
            self._created(wave[0], job)
            return
        items = [
            {
                "id": str(i),
                "method": "POST",
                "url": EXPORT_JOBS,
                "headers": {"Content-Type": "application/json"},
                "body": r.request.body(),
            }
            for i, r in enumerate(wave)
        ]
        responses = await self.graph.batch(items, version=EXPORT_VERSION)
        for index, (result, resp) in enumerate(zip(wave, responses, strict=True)):
            status = int(resp.get("status") or 0)
            body = resp.get("body")
            if 200 <= status < 300 and isinstance(body, Mapping):
                self._created(result, body)
                continue
            error = batch_item_error(resp, EXPORT_JOBS)
            if first and index == 0:
                raise ExportUnavailable(_reason(error), error)
            result.error = _reason(error)

    def _created(self, result: ExportResult[T], job: Mapping[str, Any]) -> None:
        job_id = job.get("id")
        if not isinstance(job_id, str) or not job_id:
            result.error = "export job created without an id"
            return
        result.job_id = job_id
        self.stats.jobs += 1

    # --- poll ----------------------------------------------------------------------------------
    async def _wait(self, ids: list[str]) -> dict[str, Mapping[str, Any]]:
        """Poll until every job is completed or failed (or the timeout): id -> last job body."""
        done: dict[str, Mapping[str, Any]] = {}
        pending = list(ids)
        deadline = time.monotonic() + self.timeout
        step = 0
        while pending:
            delay = self.poll_delays[min(step, len(self.poll_delays) - 1)]
            step += 1
            if time.monotonic() + delay > deadline:
                for job_id in pending:
                    done[job_id] = {"id": job_id, "status": "timeout"}
                break
            await asyncio.sleep(delay)
            for job_id, job in (await self._poll(pending)).items():
                if str(job.get("status") or "").lower() in (COMPLETED, FAILED):
                    done[job_id] = job
            pending = [j for j in pending if j not in done]
        return done

    async def _poll(self, ids: list[str]) -> dict[str, Mapping[str, Any]]:
        """The status of each job: one read per job while there are few, else the job list
        (``GET exportJobs``, every job in one answer; a job missing from it is read alone)."""
        if len(ids) >= LIST_POLL_MIN and not self.list_refused:
            found: dict[str, Mapping[str, Any]] = {}
            wanted = set(ids)
            try:
                async for page in self.graph.iter_pages(EXPORT_JOBS, version=EXPORT_VERSION):
                    self.stats.polls += 1
                    for job in page.get("value") or []:
                        if isinstance(job, Mapping) and job.get("id") in wanted:
                            found[str(job["id"])] = job
            except GraphError as exc:
                self.list_refused = True
                log.info("export job list unavailable: polling jobs one by one", error=str(exc)[:200])
            else:
                rest = [j for j in ids if j not in found]
                if rest:
                    found.update(await self._poll_each(rest))
                return found
        return await self._poll_each(ids)

    async def _poll_each(self, ids: list[str]) -> dict[str, Mapping[str, Any]]:
        """One status read per job (``$batch`` when several): id -> job body."""
        paths = {job_id: f"{EXPORT_JOBS}/{quote(job_id, safe='')}" for job_id in ids}
        self.stats.polls += len(ids)
        if len(ids) == 1:
            job_id = ids[0]
            return {job_id: await self.graph.get(paths[job_id], version=EXPORT_VERSION)}
        out: dict[str, Mapping[str, Any]] = {}
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start : start + BATCH_LIMIT]
            responses = await self.graph.batch(
                [{"id": str(i), "method": "GET", "url": paths[j]} for i, j in enumerate(chunk)],
                version=EXPORT_VERSION,
            )
            for job_id, resp in zip(chunk, responses, strict=True):
                body = resp.get("body")
                if 200 <= int(resp.get("status") or 0) < 300 and isinstance(body, Mapping):
                    out[job_id] = body
                else:
                    log.warning("export job status unreadable", job=job_id, status=resp.get("status"))
        return out

    # --- download ------------------------------------------------------------------------------
    async def _finish(
        self,
        result: ExportResult[T],
        jobs: Mapping[str, Mapping[str, Any]],
        reduce: Callable[[Rows], T],
        downloads: asyncio.Semaphore,
    ) -> None:
        if result.error is not None or result.job_id is None:
            self.stats.failed.append(result.request.report)
            return
        job = jobs.get(result.job_id) or {}
        status = str(job.get("status") or "unknown")
        url = job.get("url")
        if status.lower() != COMPLETED or not isinstance(url, str) or not url:
            result.error = f"export job {status}" if status != "timeout" else "export job timed out"
            self.stats.failed.append(result.request.report)
            return
        async with downloads:
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as sink:
                try:
                    size = await self.graph.download(url, sink, max_bytes=self.max_bytes)
                except GraphError as exc:
                    result.error = f"download failed: {exc}"
                    self.stats.failed.append(result.request.report)
                    return
                self.stats.downloads += 1
                self.stats.bytes += size

                def parse() -> T:
                    sink.seek(0)
                    return reduce(read_report_csv(sink))

                try:
                    result.value = await asyncio.to_thread(parse)
                except (zipfile.BadZipFile, ValueError, csv.Error, UnicodeDecodeError) as exc:
                    result.error = f"unreadable report file: {type(exc).__name__}: {exc}"
                    self.stats.failed.append(result.request.report)


def _reason(exc: GraphError) -> str:
    return f"{exc.status} {exc.code}: {exc.message}"[:300]
