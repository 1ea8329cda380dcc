"""Intune data read through report exports instead of one request per object.

* **Detected apps** (``managedDevices/{id}/detectedApps``, one request per device) come from one
  ``AppInvRawData`` export: a row per (device, app) with the app's key, name, version, publisher
  and platform. A full pass of 20k devices costs a handful of Graph requests and one download.
* **App install statuses** (``mobileApps/{id}/deviceStatuses`` is not a valid segment since
  2023) come from ``DeviceInstallStatusByApp`` exports, one per app (the report requires an
  ``ApplicationId`` filter).

Both are checked and fall back safely. The export can be refused (creating a job needs a
``ReadWrite`` permission in the Graph reference; a tenant may lack the report): the detected
apps then come from the per-device path and the install statuses keep their last known state;
each fallback is logged and counted (``syncd_intune_bulk_fallbacks``), and a refused export is
not retried for ``RETRY_REFUSED_AFTER``. What syncd cannot know in advance (that the report's
``ApplicationKey`` and ``DeviceId`` are the ids Graph uses elsewhere) is checked once per pass
against one device's own ``detectedApps`` listing; a mismatch falls back too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd import metrics
from syncd.graph.client import GraphClient
from syncd.graph.errors import GraphError
from syncd.graph.reports import (
    ExportRequest,
    ExportUnavailable,
    ReportExporter,
    Rows,
    escape_filter_value,
)

log = structlog.get_logger(__name__)

INVENTORY_REPORT = "AppInvRawData"
INVENTORY_COLUMNS = (
    "ApplicationKey",
    "ApplicationName",
    "ApplicationPublisher",
    "ApplicationVersion",
    "DeviceId",
    "Platform",
)
INSTALL_REPORT = "DeviceInstallStatusByApp"
INSTALL_COLUMNS = ("DeviceId", "InstallState", "InstallStateDetail", "ErrorCode")
RETRY_REFUSED_AFTER = 6 * 3600.0
"""A refused export (403/400) is tried again after this long (permissions and licences change)."""


@dataclass
class Inventory:
    """The reduced ``AppInvRawData`` rows: distinct apps and, per device, its app keys."""

    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_device: dict[str, list[str]] = field(default_factory=dict)

    def detected_apps(self, device_id: str) -> list[dict[str, Any]]:
        """The device's detected apps in the shape ``managedDevices/{id}/detectedApps`` gives."""
        return [self.apps[key] for key in self.by_device.get(device_id, ())]


def reduce_inventory(rows: Rows) -> Inventory:
    """Runs in a worker thread: one dict per distinct app, one key list per device."""
    out = Inventory()
    for row in rows:
        key = (row.get("ApplicationKey") or "").strip()
        device = (row.get("DeviceId") or "").strip()
        if not key or not device:
            continue
        app = out.apps.get(key)
        if app is None:
            app = out.apps[key] = {
                "id": key,
                "displayName": row.get("ApplicationName") or None,
                "version": row.get("ApplicationVersion") or None,
                "publisher": row.get("ApplicationPublisher") or None,
                "platform": row.get("Platform") or None,
            }
        key = app["id"]  # one string object per app, not one per row (20k devices: 160k rows)
        keys = out.by_device.setdefault(device, [])
        if key not in keys:
            keys.append(key)
    return out


def reduce_installs(rows: Rows) -> list[dict[str, Any]]:
    """Runs in a worker thread: the rows as install-status records (``deviceId``, states, code)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        device = (row.get("DeviceId") or "").strip()
        if not device:
            continue
        out.append(
            {
                "deviceId": device,
                "installState": row.get("InstallState") or None,
                "installStateDetail": row.get("InstallStateDetail") or None,
                "errorCode": _int_or_text(row.get("ErrorCode")),
            }
        )
    return out


def _refusal(exc: ExportUnavailable) -> bool:
    """A definitive no (permission, unknown report, no Intune), not a transient failure."""
    return exc.error is None or exc.error.status in (400, 401, 403, 404)


def _int_or_text(value: str | None) -> int | str | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return value


class BulkReports:
    """Export state shared by the Intune sources of one process: which exports were refused."""

    def __init__(self) -> None:
        self.refused: dict[str, float] = {}
        """report name -> monotonic time until which a refused export is not tried again."""

    def available(self, report: str) -> bool:
        return self.refused.get(report, 0.0) <= time.monotonic()

    def fallback(self, report: str, reason: str, *, refused: bool = False) -> None:
        """One log line and one count per fallback; a refusal also pauses the export."""
        kind = "refused" if refused else "failed"
        metrics.INTUNE_BULK_FALLBACKS.labels(report=report, reason=kind).inc()
        if refused:
            self.refused[report] = time.monotonic() + RETRY_REFUSED_AFTER
        log.warning(
            "Intune report export unavailable: using the per-object source",
            report=report,
            reason=reason,
            retry_in_s=RETRY_REFUSED_AFTER if refused else None,
        )

    async def inventory(self, graph: GraphClient) -> Inventory | None:
        """Every device's detected apps from one export, or None (the caller falls back)."""
        if not self.available(INVENTORY_REPORT):
            return None
        exporter = ReportExporter(graph)
        try:
            request = ExportRequest(INVENTORY_REPORT, INVENTORY_COLUMNS)
            results = await exporter.run([request], reduce_inventory)
        except ExportUnavailable as exc:
            self.fallback(INVENTORY_REPORT, exc.reason, refused=_refusal(exc))
            return None
        result = results[0]
        if result.value is None:
            self.fallback(INVENTORY_REPORT, result.error or "no data")
            return None
        return result.value

    async def check_inventory(
        self, graph: GraphClient, inventory: Inventory, devices: Iterable[str], *, path: str, version: str
    ) -> bool:
        """The report speaks Graph's ids: one device's own ``detectedApps`` share keys with it.

        One request per pass. False (and a fallback) when the ids cannot be matched.
        """
        known = [d for d in devices if inventory.by_device.get(d)]
        if not inventory.by_device:
            return True  # nothing detected anywhere: nothing to compare (and nothing to lose)
        if not known:
            self.fallback(INVENTORY_REPORT, "report device ids match no managed device")
            return False
        device = sorted(known)[0]
        try:
            page = await graph.get(f"{path}/{device}/detectedApps", version=version)
        except GraphError as exc:
            log.info("detected-apps id check skipped", error=str(exc)[:200])
            return True
        own = {str(a.get("id")) for a in page.get("value") or [] if isinstance(a, Mapping)}
        if own and not own & set(inventory.by_device[device]):
            self.fallback(INVENTORY_REPORT, "report application keys are not detectedApp ids")
            return False
        return True

    async def installs(
        self, graph: GraphClient, app_ids: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]] | None:
        """app id -> its install statuses (apps whose export failed are absent), or None when
        the export is refused: the caller keeps the last known statuses."""
        if not app_ids:
            return {}
        if not self.available(INSTALL_REPORT):
            return None
        requests = [
            ExportRequest(INSTALL_REPORT, INSTALL_COLUMNS, f"(ApplicationId eq '{escape_filter_value(a)}')")
            for a in app_ids
        ]
        exporter = ReportExporter(graph)
        try:
            results = await exporter.run(requests, reduce_installs)
        except ExportUnavailable as exc:
            self.fallback(INSTALL_REPORT, exc.reason, refused=_refusal(exc))
            return None
        out: dict[str, list[dict[str, Any]]] = {}
        failed = 0
        for app_id, result in zip(app_ids, results, strict=True):
            if result.value is not None:
                out[app_id] = result.value
            else:
                failed += 1
        if failed:
            self.fallback(INSTALL_REPORT, f"{failed} of {len(app_ids)} app exports failed")
        return out
