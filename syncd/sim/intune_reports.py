"""Intune report exports in the Graph simulator, and the storage host their files come from.

What Graph documents (Intune "Export Intune reports using Graph APIs" and "Intune reports and
properties available using Graph API"; Graph ``deviceManagementExportJob``):

* ``POST /{v1.0|beta}/deviceManagement/reports/exportJobs`` ``{"reportName", "select"?,
  "filter"?, "format"?, "localizationType"?}`` -> ``201`` and the job: ``id``
  ``<reportName>_<guid>``, ``status`` ``notStarted``, ``url`` null, ``expirationDateTime``
  ``0001-01-01T00:00:00Z``. Unknown report names, columns not in the report, a missing required
  filter (``DeviceInstallStatusByApp`` needs ``ApplicationId``) or a filter on a column the report
  does not filter on -> ``400``.
* ``GET .../exportJobs/{id}`` (also ``exportJobs('{id}')``) and ``GET .../exportJobs``: the job
  moves ``notStarted`` -> ``inProgress`` -> ``completed`` (or ``failed``) on its own clock; once
  completed ``url`` is a pre-signed URL on **another host** (the storage listener, a SAS-style
  query with an expiry) and ``expirationDateTime`` is set.
* The file is a ZIP holding ``<id>.csv``: a header row of the selected columns in request order;
  with ``LocalizedValuesAsAdditionalColumn`` (the default) each localizable column carries its
  raw value and a ``<column>_loc`` twin follows it; with ``ReplaceLocalizableValues`` the column
  holds the readable value alone.
* The storage host wants no ``Authorization`` header (a foreign bearer token is refused, as Azure
  storage refuses it next to a SAS), checks the signature and the expiry (403
  ``AuthenticationFailed``), and answers 404 ``BlobNotFound`` for anything else.

Where the docs are silent the strictest reading is the default and the other is a switch
(``ReportConfig``): the CSV starts with a UTF-8 BOM and quotes every field; creating a job needs
one of the ``ReadWrite`` permissions the Graph reference lists for it (``read_permissions_ok``
accepts the ``Read`` ones practitioners report working).
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
import json
import re
import secrets
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from aiohttp import web

from syncd.sim.admin_api import refusing, settings_routes
from syncd.sim.graph.odata import GraphError, segment_not_found
from syncd.sim.graph.permissions_fault import PERMISSION_FAULTS
from syncd.sim.intune import IntuneData
from syncd.sim.intune_http import IntuneHost, graph_json, intune_of
from syncd.sim.refusal import answering
from syncd.sim.switches import apply_changes, coerce_like

if TYPE_CHECKING:
    from syncd.sim.graph.app import GraphSim

JSON = dict[str, Any]
NEVER = "0001-01-01T00:00:00Z"
BLOB_SUFFIX = ".zip"
WRITE_PERMISSIONS = frozenset(
    {
        "DeviceManagementConfiguration.ReadWrite.All",
        "DeviceManagementApps.ReadWrite.All",
        "DeviceManagementManagedDevices.ReadWrite.All",
    }
)
"""What the Graph reference lists (application) for creating an export job."""
READ_PERMISSIONS = frozenset(
    {
        "DeviceManagementConfiguration.Read.All",
        "DeviceManagementApps.Read.All",
        "DeviceManagementManagedDevices.Read.All",
    }
)
PLATFORM_LABELS = {
    "windows": "Windows",
    "ios": "iOS",
    "macos": "macOS",
    "android": "Android",
    "androidworkprofile": "Android Work Profile",
    "androiddeviceadministrator": "Android device administrator",
    "chromeos": "ChromeOS",
}
"""detectedApp ``platform`` -> the label the inventory report shows."""
INSTALL_STATE_CODES = {
    "installed": 1,
    "failed": 2,
    "notInstalled": 3,
    "uninstallFailed": 4,
    "pendingInstall": 5,
    "unknown": 99,
    "notApplicable": 98,
}
INSTALL_STATE_LABELS = {
    "installed": "Installed",
    "failed": "Failed",
    "notInstalled": "Not installed",
    "uninstallFailed": "Uninstall failed",
    "pendingInstall": "Install pending",
    "unknown": "Unknown",
    "notApplicable": "Not applicable",
}
_FILTER_TERM = re.compile(r"^\(?\s*([A-Za-z_]+)\s+eq\s+'((?:[^']|'')*)'\s*\)?$")


ApplicationKeys = Literal["detectedApp", "ownKey"]
"""What ``AppInvRawData``'s ``ApplicationKey`` holds: the detectedApp id, or a key of its own."""


def _coerce(current: object, value: Any) -> Any:
    """Report settings: lists of names as strings, the rest like any switch."""
    return [str(v) for v in value] if isinstance(current, list) else coerce_like(current, value)


class ReportError(Exception):
    """A request Graph answers with 400 (``message`` is the text)."""


@dataclass
class ReportConfig:
    """Switches of the export simulation (``PUT /_sim/intune/reports``)."""

    job_seconds: float = 1.0
    """Seconds from creation to ``completed`` (``inProgress`` from a third of it)."""
    fail_next: int = 0
    """The next N jobs end ``failed``."""
    unavailable: list[str] = field(default_factory=list)
    """Report names this tenant cannot export: creating one answers 400."""
    csv_bom: bool = True
    quote_all: bool = True
    url_ttl_seconds: float = 6 * 3600.0
    download_error_next: int = 0
    """The next N downloads answer 503 ``ServerBusy`` (with Retry-After 0.1)."""
    read_permissions_ok: bool = False
    """Accept the Read permissions for creating a job (the docs list only ReadWrite)."""
    application_keys: ApplicationKeys = "detectedApp"
    """What ``AppInvRawData``'s ``ApplicationKey`` holds (the docs do not say): the detectedApp id
    (``detectedApp``), or a key of its own (``ownKey``: a hash of name, version and platform)."""

    def update(self, changes: JSON) -> None:
        """Apply a partial update (``PUT /_sim/intune/reports``); unknown names are a ValueError."""
        unknown = apply_changes(self, changes, _coerce)
        if unknown:
            raise ValueError(f"unknown report settings {unknown}")

    def to_json(self) -> JSON:
        return asdict(self)


# --- the reports -------------------------------------------------------------------------------
RowSource = Callable[[IntuneData, dict[str, str], ReportConfig], Iterator[JSON]]


@dataclass(frozen=True)
class ReportSpec:
    """One exportable report: its columns, localizable columns and filters."""

    name: str
    columns: tuple[str, ...]
    rows: RowSource
    filters: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    localizable: frozenset[str] = frozenset()
    """Columns whose raw value differs from the readable one: row key ``<col>`` holds the raw
    value and ``<col>_loc`` the readable one."""


def _short_version(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else version


def _app_inventory(data: IntuneData, where: dict[str, str], config: ReportConfig) -> Iterator[JSON]:
    for device in data.list("managedDevices"):
        for app in data.sub("managedDevices", str(device["id"]), "detectedApps"):
            version = str(app.get("version") or "")
            platform = str(app.get("platform") or "")
            key = app.get("id")
            if config.application_keys == "ownKey":
                key = hashlib.sha1(f"{app.get('displayName')}|{version}|{platform}".encode()).hexdigest()  # noqa: S324
            yield {
                "ApplicationKey": key,
                "ApplicationName": app.get("displayName"),
                "ApplicationPublisher": app.get("publisher"),
                "ApplicationShortVersion": _short_version(version),
                "ApplicationVersion": version,
                "DeviceId": device.get("id"),
                "DeviceName": device.get("deviceName"),
                "EmailAddress": device.get("emailAddress"),
                "OSDescription": device.get("operatingSystem"),
                "OSVersion": device.get("osVersion"),
                "Platform": PLATFORM_LABELS.get(platform.lower(), platform),
                "UserId": device.get("userId"),
                "UserName": device.get("userDisplayName"),
            }


def _hex_error(code: Any) -> str:
    try:
        value = int(code)
    except (TypeError, ValueError):
        return ""
    return f"0x{value & 0xFFFFFFFF:08X}"


def _install_status(data: IntuneData, where: dict[str, str], config: ReportConfig) -> Iterator[JSON]:
    app_id = where.get("ApplicationId", "")
    app = data.get("mobileApps", app_id)
    if app is None:
        return
    for st in data.sub("mobileApps", app_id, "deviceStatuses"):
        state = str(st.get("installState") or "unknown")
        detail = str(st.get("installStateDetail") or "noAdditionalDetails")
        device = data.get("managedDevices", str(st.get("deviceId"))) or {}
        yield {
            "ApplicationId": app_id,
            "DeviceName": st.get("deviceName"),
            "DeviceId": st.get("deviceId"),
            "UserId": device.get("userId"),
            "UserName": st.get("userName"),
            "UserPrincipalName": st.get("userPrincipalName"),
            "Platform": st.get("osDescription"),
            "AppVersion": st.get("displayVersion"),
            "AssignmentFilterIdsExist": "False",
            "LastModifiedDateTime": st.get("lastSyncDateTime"),
            "InstallState": state,
            "InstallStateDetail": detail,
            "ErrorCode": st.get("errorCode"),
            "HexErrorCode": _hex_error(st.get("errorCode")),
            "AppInstallState": INSTALL_STATE_CODES.get(state, 99),
            "AppInstallState_loc": INSTALL_STATE_LABELS.get(state, state),
            "AppInstallStateDetails": detail,
            "AppInstallStateDetails_loc": detail,
        }


_APP_INVENTORY_COLUMNS = (
    "ApplicationKey",
    "ApplicationName",
    "ApplicationPublisher",
    "ApplicationShortVersion",
    "ApplicationVersion",
    "DeviceId",
    "DeviceName",
    "EmailAddress",
    "OSDescription",
    "OSVersion",
    "Platform",
    "UserId",
    "UserName",
)
"""``AppInvRawData``'s columns; it filters on every one of them but ``ApplicationKey``."""

REPORTS: dict[str, ReportSpec] = {
    spec.name: spec
    for spec in (
        ReportSpec(
            "AppInvRawData",
            _APP_INVENTORY_COLUMNS,
            _app_inventory,
            filters=frozenset(_APP_INVENTORY_COLUMNS) - {"ApplicationKey"},
        ),
        ReportSpec(
            "DeviceInstallStatusByApp",
            (
                "AppInstallState",
                "AppInstallStateDetails",
                "ApplicationId",
                "AppVersion",
                "AssignmentFilterIdsExist",
                "DeviceId",
                "DeviceName",
                "ErrorCode",
                "HexErrorCode",
                "InstallState",
                "InstallStateDetail",
                "LastModifiedDateTime",
                "Platform",
                "UserId",
                "UserName",
                "UserPrincipalName",
            ),
            _install_status,
            filters=frozenset({"ApplicationId", "AppInstallState", "HexErrorCode"}),
            required=frozenset({"ApplicationId"}),
            localizable=frozenset({"AppInstallState", "AppInstallStateDetails"}),
        ),
    )
}


def parse_filter(text: str | None) -> dict[str, str]:
    """``(A eq 'x') and (B eq 'y')`` -> {A: x, B: y}; anything else is a ReportError."""
    out: dict[str, str] = {}
    if not text or not text.strip():
        return out
    body = text.strip()
    while body.startswith("(") and body.endswith(")") and _balanced(body[1:-1]):
        body = body[1:-1].strip()
    for term in re.split(r"\s+and\s+", body, flags=re.IGNORECASE):
        m = _FILTER_TERM.match(term.strip())
        if m is None:
            raise ReportError(f"Invalid filter clause '{term.strip()}'.")
        out[m.group(1)] = m.group(2).replace("''", "'")
    return out


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


# --- jobs -------------------------------------------------------------------------------------
@dataclass
class ExportJob:
    id: str
    report: ReportSpec
    select: list[str]
    where: dict[str, str]
    filter: str | None
    format: str
    localization: str
    requested: datetime
    created: float
    fails: bool
    status: str = "notStarted"
    url: str | None = None
    expires: datetime | None = None
    content: bytes | None = None

    @property
    def blob(self) -> str:
        """The name of the job's file on the storage host."""
        return f"{self.id}{BLOB_SUFFIX}"

    def to_json(self) -> JSON:
        return {
            "@odata.type": "#microsoft.graph.deviceManagementExportJob",
            "id": self.id,
            "reportName": self.report.name,
            "filter": self.filter,
            "select": list(self.select),
            "format": self.format,
            "snapshotId": None,
            "localizationType": self.localization,
            "status": self.status,
            "url": self.url,
            "requestDateTime": _iso(self.requested),
            "expirationDateTime": _iso(self.expires) if self.expires else NEVER,
        }


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


class ReportStore:
    """Export jobs of one simulated tenant and the files the storage host serves."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = ReportConfig()
        self.jobs: dict[str, ExportJob] = {}
        self.container = str(uuid.uuid4())
        self.key = secrets.token_bytes(32)
        self.storage_base: str | None = None
        """``https://host:port`` of the storage listener (set by whoever starts it)."""
        self.clock = clock
        self.created = 0
        self.downloads = 0

    def create(self, body: Any) -> ExportJob:
        if not isinstance(body, dict):
            raise ReportError("The request body must be a JSON object.")
        name = body.get("reportName")
        if not isinstance(name, str) or name not in REPORTS:
            raise ReportError(f"Invalid report name '{name}'.")
        if name in self.config.unavailable:
            raise ReportError(f"The report '{name}' is not available for this tenant.")
        spec = REPORTS[name]
        select = body.get("select")
        if select is None:
            select = list(spec.columns)
        if not isinstance(select, list) or not all(isinstance(c, str) for c in select):
            raise ReportError("'select' must be a list of column names.")
        unknown = [c for c in select if c not in spec.columns]
        if unknown:
            raise ReportError(f"Invalid select columns {unknown} for report '{name}'.")
        flt = body.get("filter")
        if flt is not None and not isinstance(flt, str):
            raise ReportError("'filter' must be a string.")
        where = parse_filter(flt)
        bad = [c for c in where if c not in spec.filters]
        if bad:
            raise ReportError(f"Filtering on {bad} is not supported by report '{name}'.")
        missing = sorted(spec.required - set(where))
        if missing:
            raise ReportError(f"The report '{name}' requires a filter on {missing}.")
        fmt = str(body.get("format") or "csv").lower()
        if fmt not in ("csv", "json"):
            raise ReportError(f"Format '{fmt}' is not supported for report '{name}'.")
        localization = str(body.get("localizationType") or "LocalizedValuesAsAdditionalColumn")
        if localization not in ("LocalizedValuesAsAdditionalColumn", "ReplaceLocalizableValues"):
            raise ReportError(f"Invalid localizationType '{localization}'.")
        job_id = f"{name}_{uuid.uuid4()}"
        fails = self.config.fail_next > 0
        if fails:
            self.config.fail_next -= 1
        job = ExportJob(
            id=job_id,
            report=spec,
            select=list(select),
            where=where,
            filter=flt,
            format=fmt,
            localization=localization,
            requested=datetime.now(UTC),
            created=self.clock(),
            fails=fails,
        )
        self.jobs[job_id] = job
        self.created += 1
        return job

    async def refresh(self, job: ExportJob, data: IntuneData | None) -> ExportJob:
        """Advance a job on its clock; a completed job gets its file (written in a worker
        thread, as a separate service would: the loop keeps serving) and its URL then."""
        if job.status in ("completed", "failed"):
            return job
        elapsed = self.clock() - job.created
        total = max(0.0, self.config.job_seconds)
        if elapsed < total / 3:
            job.status = "notStarted"
        elif elapsed < total:
            job.status = "inProgress"
        elif job.fails or data is None or self.storage_base is None:
            job.status = "failed"
        else:
            if job.content is None:
                job.content = await asyncio.to_thread(build_file, job, data, self.config)
            if job.status not in ("completed", "failed"):
                job.expires = datetime.now(UTC) + timedelta(seconds=self.config.url_ttl_seconds)
                job.url = self._sign(job)
                job.status = "completed"
        return job

    def _signature(self, blob: str, expiry: str) -> str:
        mac = hmac.new(self.key, f"{self.container}/{blob}\n{expiry}".encode(), hashlib.sha256)
        return base64.b64encode(mac.digest()).decode()

    def _sign(self, job: ExportJob) -> str:
        assert job.expires is not None and self.storage_base is not None
        expiry = job.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        sig = self._signature(job.blob, expiry)
        return (
            f"{self.storage_base}/{self.container}/{job.blob}?sv=2019-02-02&sr=b"
            f"&sig={quote(sig, safe='')}&se={quote(expiry, safe='')}&sp=r"
        )

    def blob(self, container: str, blob: str, sig: str | None, expiry: str | None) -> bytes | str:
        """The file, or the Azure-style error code that refuses it."""
        job = self.jobs.get(blob.removesuffix(BLOB_SUFFIX))
        if container != self.container or job is None or job.blob != blob or job.content is None:
            return "BlobNotFound"
        if not sig or not expiry or not hmac.compare_digest(sig, self._signature(blob, expiry)):
            return "AuthenticationFailed"
        try:
            until = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "AuthenticationFailed"
        if until < datetime.now(UTC):
            return "AuthenticationFailed"
        self.downloads += 1
        return job.content


def build_file(job: ExportJob, data: IntuneData, config: ReportConfig) -> bytes:
    """The ZIP with the job's rows, as the export service would write it."""
    header: list[str] = []
    keys: list[str] = []
    for col in job.select:
        if col in job.report.localizable and job.localization == "ReplaceLocalizableValues":
            header.append(col)
            keys.append(f"{col}_loc")
        else:
            header.append(col)
            keys.append(col)
            if col in job.report.localizable:
                header.append(f"{col}_loc")
                keys.append(f"{col}_loc")
    rows = [
        r
        for r in job.report.rows(data, job.where, config)
        if all(str(r.get(k) or "") == v for k, v in job.where.items() if k in r)
    ]
    if job.format == "json":
        payload = json.dumps([{h: r.get(k) for h, k in zip(header, keys, strict=True)} for r in rows])
        text, member = payload, f"{job.id}.json"
    else:
        out = io.StringIO()
        writer = csv.writer(out, quoting=csv.QUOTE_ALL if config.quote_all else csv.QUOTE_MINIMAL)
        writer.writerow(header)
        for r in rows:
            writer.writerow(["" if r.get(k) is None else r.get(k) for k in keys])
        text, member = out.getvalue(), f"{job.id}.csv"
    encoded = text.encode("utf-8-sig" if config.csv_bom and job.format == "csv" else "utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, encoded)
    return buffer.getvalue()


# --- the storage host --------------------------------------------------------------------------
def _azure_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{code}</Code><Message>{message}\nRequestId:{uuid.uuid4()}</Message></Error>"
    )
    return web.Response(
        status=status,
        text=body,
        content_type="application/xml",
        headers={"x-ms-request-id": str(uuid.uuid4()), "x-ms-error-code": code},
    )


def create_storage_app(store: ReportStore) -> web.Application:
    """The file host of the exports: ``GET /{container}/{blob}?<sas>``, nothing else."""

    async def get_blob(request: web.Request) -> web.StreamResponse:
        if "Authorization" in request.headers:
            return _azure_error(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization "
                "header is formed correctly including the signature.",
            )
        if store.config.download_error_next > 0:
            store.config.download_error_next -= 1
            resp = _azure_error(503, "ServerBusy", "The server is currently unable to receive requests.")
            resp.headers["Retry-After"] = "0.1"
            return resp
        found = store.blob(
            request.match_info["container"],
            request.match_info["blob"],
            request.query.get("sig"),
            request.query.get("se"),
        )
        if found == "BlobNotFound":
            return _azure_error(404, "BlobNotFound", "The specified blob does not exist.")
        if isinstance(found, str):
            return _azure_error(403, found, "Signature did not match or the signed expiry time has passed.")
        return web.Response(
            body=found,
            content_type="application/octet-stream",
            headers={
                "x-ms-blob-type": "BlockBlob",
                "x-ms-version": "2019-02-02",
                "x-ms-request-id": str(uuid.uuid4()),
                "ETag": f'"0x{hashlib.sha1(found).hexdigest()[:16].upper()}"',  # noqa: S324
            },
        )

    app = web.Application()
    app.router.add_get("/{container}/{blob}", get_blob)
    return app


# --- Graph routes ------------------------------------------------------------------------------
_JOB_KEY = re.compile(r"^exportJobs\('((?:[^']|'')+)'\)$")


def report_store(sim: GraphSim) -> ReportStore:
    """The simulator's export jobs and their switches (tests and benches drive them)."""
    return sim.intune_switches.reports


def register_report_routes(app: web.Application, host: IntuneHost, store: ReportStore) -> None:
    """``/{v1.0|beta}/deviceManagement/reports/exportJobs`` (create, list, get)."""

    def context(request: web.Request, entity: bool) -> str:
        ver = request.match_info["ver"]
        base = f"{request.url.origin()}/{ver}/$metadata#deviceManagement/reports/exportJobs"
        return base + ("/$entity" if entity else "")

    def may_create(request: web.Request) -> bool:
        faults = request.app.get(PERMISSION_FAULTS)
        denied = faults.denied if faults is not None else set()
        allowed = set(WRITE_PERMISSIONS)
        if store.config.read_permissions_ok:
            allowed |= READ_PERMISSIONS
        return not allowed <= set(denied)

    async def create(request: web.Request) -> web.StreamResponse:
        intune_of(host)
        if not may_create(request):
            raise GraphError(403, "Forbidden", "Application is not authorized to perform this operation.")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise GraphError(400, "BadRequest", "The request body is not valid JSON.") from None
        try:
            job = store.create(body)
        except ReportError as exc:
            raise GraphError(400, "BadRequest", str(exc)) from None
        return graph_json(request, {"@odata.context": context(request, True), **job.to_json()}, 201)

    async def one(request: web.Request, job_id: str) -> web.StreamResponse:
        data = intune_of(host)
        job = store.jobs.get(job_id)
        if job is None:
            raise GraphError(404, "ResourceNotFound", f"Resource not found: exportJobs('{job_id}')")
        await store.refresh(job, data)
        return graph_json(request, {"@odata.context": context(request, True), **job.to_json()})

    async def get_by_segment(request: web.Request) -> web.StreamResponse:
        return await one(request, request.match_info["id"])

    async def get_or_list(request: web.Request) -> web.StreamResponse:
        seg = request.match_info["seg"]
        if seg == "exportJobs":
            data = intune_of(host)
            jobs = [(await store.refresh(j, data)).to_json() for j in list(store.jobs.values())]
            return graph_json(request, {"@odata.context": context(request, False), "value": jobs})
        m = _JOB_KEY.match(seg)
        if m is None:
            raise segment_not_found(seg)
        return await one(request, m.group(1).replace("''", "'"))

    ver = r"{ver:v1\.0|beta}"
    app.router.add_post(f"/{ver}/deviceManagement/reports/exportJobs", answering(create))
    app.router.add_get(f"/{ver}/deviceManagement/reports/exportJobs/{{id}}", answering(get_by_segment))
    app.router.add_get(f"/{ver}/deviceManagement/reports/{{seg}}", answering(get_or_list))


def register_report_admin_routes(app: web.Application, store: ReportStore) -> None:
    """``GET``/``PUT /_sim/intune/reports``: the export switches and a summary of the jobs."""

    def show(request: web.Request) -> JSON:
        return {
            "config": store.config.to_json(),
            "jobs": {j.id: j.status for j in store.jobs.values()},
            "created": store.created,
            "downloads": store.downloads,
            "storage": store.storage_base,
        }

    def change(request: web.Request, body: JSON) -> None:
        with refusing(ValueError, TypeError, status=400):
            store.config.update(body)

    app.router.add_routes(settings_routes("/_sim/intune/reports", show, change))
