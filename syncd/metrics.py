"""Prometheus metrics for syncd, on a registry this module owns.

A private registry (not ``prometheus_client.REGISTRY``) keeps ``/metrics`` limited to what syncd
defines and lets tests build apps without "duplicated timeseries" errors from other libraries.

Label values must come from small fixed sets (resource names, op names, HTTP status codes,
route *templates*): never ids, URLs with ids, or anything secret. Use :func:`route_template`
for Graph paths.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp.typedefs import Handler
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "ALERT_OUTBOX_DEPTH",
    "CHANGES_PUSHED",
    "GRAPH_REQUESTS",
    "GRAPH_SEGMENT_NOT_FOUND",
    "GRAPH_THROTTLED",
    "INTUNE_BULK_FALLBACKS",
    "INTUNE_OBJECTS_KEPT",
    "J1_BEHAVIOUR_PROVEN",
    "J1_ERRORS",
    "J1_JOBS",
    "J1_PARTITIONS_FAILING",
    "J1_PARTITIONS_PENDING_DIFF",
    "J1_REFUSED_OBJECTS",
    "J1_UPLOADED_OBJECTS",
    "J1_VERIFICATION_FAILURES",
    "LISTENER_CLOSED",
    "LISTENER_CONNECTIONS",
    "NOTIFICATIONS",
    "OUTBOX_DEPTH",
    "REGISTRY",
    "ROUNDS",
    "ROUND_DURATION",
    "STALLED",
    "lags",
    "metrics_handler",
    "observe_round",
    "reset",
    "resource_lag",
    "route_template",
    "set_last_success",
    "set_subscription_expiry",
]

REGISTRY = CollectorRegistry()
"""The registry ``/metrics`` serves."""

ROUND_STATUS_OK = "ok"

CHANGES_PUSHED = Counter(
    "syncd_changes_pushed",
    "Entities/relationships acknowledged by JupiterOne, by type and op: upsert and delete (PATCH or"
    " CROSS_SCOPE jobs), diff (objects sent in a partition's DIFF job).",
    ["type", "op"],
    registry=REGISTRY,
)
GRAPH_REQUESTS = Counter(
    "syncd_graph_requests",
    "Microsoft Graph HTTP requests by route template and status code.",
    ["route", "status"],
    registry=REGISTRY,
)
GRAPH_THROTTLED = Counter(
    "syncd_graph_throttled",
    "Microsoft Graph 429 (throttled) responses by route template.",
    ["route"],
    registry=REGISTRY,
)
GRAPH_SEGMENT_NOT_FOUND = Counter(
    "syncd_graph_segment_not_found",
    "Graph 400 'Resource not found for the segment' answers (a URL Graph does not know), by route.",
    ["route"],
    registry=REGISTRY,
)
INTUNE_BULK_FALLBACKS = Counter(
    "syncd_intune_bulk_fallbacks",
    "Intune report exports that could not be used (refused|failed), by report name.",
    ["report", "reason"],
    registry=REGISTRY,
)
INTUNE_OBJECTS_KEPT = Counter(
    "syncd_intune_objects_kept",
    "Intune objects whose sub-resources failed after retries and kept their last state, by origin.",
    ["origin"],
    registry=REGISTRY,
)
J1_JOBS = Counter(
    "syncd_j1_jobs",
    "JupiterOne synchronization jobs by mode (DIFF|PATCH|CROSS_SCOPE) and final status.",
    ["mode", "status"],
    registry=REGISTRY,
)
J1_ERRORS = Counter(
    "syncd_j1_errors",
    "JupiterOne API errors by code (HTTP status or API error code).",
    ["code"],
    registry=REGISTRY,
)
J1_VERIFICATION_FAILURES = Counter(
    "syncd_j1_verification_failures",
    "JupiterOne jobs FINISHED whose counters did not match what was sent (never acknowledged).",
    ["mode"],
    registry=REGISTRY,
)
J1_REFUSED_OBJECTS = Gauge(
    "syncd_j1_refused_objects",
    "Objects JupiterOne refused, set aside (left out of uploads) until they change.",
    registry=REGISTRY,
)
J1_PARTITIONS_FAILING = Gauge(
    "syncd_j1_partitions_failing",
    "J1 partitions whose last job failed and wait for a retry (back-off).",
    registry=REGISTRY,
)
J1_PARTITIONS_PENDING_DIFF = Gauge(
    "syncd_j1_partitions_pending_diff",
    "J1 partitions waiting for a DIFF job (full resync, verification mismatch, recovery).",
    registry=REGISTRY,
)
J1_BEHAVIOUR_PROVEN = Gauge(
    "syncd_j1_behaviour_proven",
    "1 when the capability probe proved an undocumented J1 behaviour on this account (faster path used).",
    ["behaviour"],
    registry=REGISTRY,
)
J1_UPLOADED_OBJECTS = Counter(
    "syncd_j1_uploaded_objects",
    "Objects uploaded to JupiterOne jobs, by job mode.",
    ["mode"],
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge(
    "syncd_outbox_depth",
    "Changes committed to the mirror and not yet acknowledged by JupiterOne.",
    registry=REGISTRY,
)
ALERT_OUTBOX_DEPTH = Gauge(
    "syncd_alert_outbox_depth",
    "Alerts waiting for delivery.",
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "syncd_notifications",
    "Graph change notification items and requests received, by result (accepted, lifecycle, "
    "validation, rejected_client_state, rejected_tenant, malformed, unknown_resource, over_limit, "
    "too_large, too_complex, read_timeout, unsupported_media_type, bad_validation_token).",
    ["result"],
    registry=REGISTRY,
)
LISTENER_CONNECTIONS = Gauge(
    "syncd_listener_connections",
    "Open connections per listener (webhook, health).",
    ["listener"],
    registry=REGISTRY,
)
LISTENER_CLOSED = Counter(
    "syncd_listener_closed",
    "Connections closed by syncd's limits, by listener and reason (connection_limit|read_timeout).",
    ["listener", "reason"],
    registry=REGISTRY,
)
STALLED = Gauge(
    "syncd_stalled",
    "1 while syncd makes no progress (mirror writer not answering, a round or push hung): the "
    "systemd watchdog ping is withheld.",
    registry=REGISTRY,
)
ROUNDS = Counter(
    "syncd_rounds",
    "Source rounds by resource, kind (delta|full|poll) and status (ok|error).",
    ["resource", "kind", "status"],
    registry=REGISTRY,
)
ROUND_DURATION = Histogram(
    "syncd_round_duration_seconds",
    "Wall time of one source round, fetch to commit.",
    ["resource"],
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)


class _TimeCollector(Collector):
    """Gauges that depend on "now" (lag, time to subscription expiry), computed at scrape time.

    Storing timestamps instead of setting a gauge keeps the lag growing while nothing succeeds,
    which is exactly when someone needs to see it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_success: dict[str, float] = {}
        self._expiry: dict[str, float] = {}

    def set_last_success(self, resource_name: str, at: float) -> None:
        with self._lock:
            self._last_success[resource_name] = at

    def set_expiry(self, resource_name: str, expires_at: float | None) -> None:
        with self._lock:
            if expires_at is None:
                self._expiry.pop(resource_name, None)
            else:
                self._expiry[resource_name] = expires_at

    def lags(self, now: float | None = None) -> dict[str, float]:
        current = time.time() if now is None else now
        with self._lock:
            return {name: max(0.0, current - at) for name, at in self._last_success.items()}

    def clear(self) -> None:
        with self._lock:
            self._last_success.clear()
            self._expiry.clear()

    def describe(self) -> Iterable[Metric]:
        return [
            GaugeMetricFamily("syncd_resource_lag_seconds", "", labels=["resource"]),
            GaugeMetricFamily("syncd_subscription_expiry_seconds", "", labels=["resource"]),
        ]

    def collect(self) -> Iterable[Metric]:
        now = time.time()
        lag = GaugeMetricFamily(
            "syncd_resource_lag_seconds",
            "Seconds since the last successful round of each resource.",
            labels=["resource"],
        )
        for name, value in sorted(self.lags(now).items()):
            lag.add_metric([name], value)
        expiry = GaugeMetricFamily(
            "syncd_subscription_expiry_seconds",
            "Seconds until the Graph change-notification subscription expires (negative: expired).",
            labels=["resource"],
        )
        with self._lock:
            items = sorted(self._expiry.items())
        for name, at in items:
            expiry.add_metric([name], at - now)
        return [lag, expiry]


class _ProcessCollector(Collector):
    """Standard ``process_*`` metrics using only ``/proc/self`` and getrusage.

    prometheus_client's ProcessCollector needs ``/proc/stat``, which the unit's ``ProcSubset=pid``
    hides; it would then export nothing at all.
    """

    def __init__(self) -> None:
        self._start = time.time()
        self._pagesize = resource.getpagesize()

    def describe(self) -> Iterable[Metric]:
        return [
            GaugeMetricFamily(f"process_{n}", "")
            for n in (
                "resident_memory_bytes",
                "virtual_memory_bytes",
                "open_fds",
                "max_fds",
                "start_time_seconds",
            )
        ] + [CounterMetricFamily("process_cpu_seconds", "")]

    def collect(self) -> Iterable[Metric]:
        out: list[Metric] = []
        try:
            with open("/proc/self/statm", "rb") as f:
                size, rss = (int(x) for x in f.read().split()[:2])
            out.append(
                GaugeMetricFamily(
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.",
                    value=size * self._pagesize,
                )
            )
            out.append(
                GaugeMetricFamily(
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    value=rss * self._pagesize,
                )
            )
        except (OSError, ValueError):
            pass
        with contextlib.suppress(OSError):
            out.append(
                GaugeMetricFamily(
                    "process_open_fds",
                    "Number of open file descriptors.",
                    value=len(os.listdir("/proc/self/fd")),
                )
            )
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        out.append(
            GaugeMetricFamily("process_max_fds", "Maximum number of open file descriptors.", value=soft)
        )
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out.append(
            CounterMetricFamily(
                "process_cpu_seconds",
                "Total user and system CPU time in seconds.",
                value=usage.ru_utime + usage.ru_stime,
            )
        )
        out.append(
            GaugeMetricFamily(
                "process_start_time_seconds",
                "Start time of the process since unix epoch (at metrics import).",
                value=self._start,
            )
        )
        return out


_TIME = _TimeCollector()
REGISTRY.register(_TIME)
REGISTRY.register(_ProcessCollector())
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)


def set_last_success(resource_name: str, at: float | None = None) -> None:
    """Record a successful round (epoch seconds); also used at start-up to seed from the mirror."""
    _TIME.set_last_success(resource_name, time.time() if at is None else at)


def observe_round(
    resource_name: str, kind: str, status: str, duration: float, *, at: float | None = None
) -> None:
    """Count one round and its duration; a round with status ``"ok"`` resets the lag."""
    ROUNDS.labels(resource=resource_name, kind=kind, status=status).inc()
    ROUND_DURATION.labels(resource=resource_name).observe(max(0.0, duration))
    if status == ROUND_STATUS_OK:
        set_last_success(resource_name, at)


def resource_lag(resource_name: str, now: float | None = None) -> float | None:
    """Seconds since the resource's last successful round; None if it never succeeded."""
    return _TIME.lags(now).get(resource_name)


def lags(now: float | None = None) -> dict[str, float]:
    """Lag of every resource that succeeded at least once (for ``/healthz`` and ``max_lag``)."""
    return _TIME.lags(now)


def set_subscription_expiry(resource_name: str, expires_at: float | None) -> None:
    """Record when a resource's Graph subscription expires (epoch seconds); None removes it."""
    _TIME.set_expiry(resource_name, expires_at)


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_OPAQUE = re.compile(r"^(?:\d+|(?=[^/]*\d)[A-Za-z0-9_\-=+.]{24,})$")


def route_template(url_or_path: str) -> str:
    """Turn a Graph URL into a low-cardinality label: no host, query or ids.

    ``https://graph.microsoft.com/v1.0/groups/<guid>/members?$top=999`` → ``/v1.0/groups/{id}/members``.
    """
    path = urlsplit(url_or_path).path or "/"
    segments = []
    for segment in path.split("/"):
        if _GUID.search(segment) or _OPAQUE.match(segment):
            segments.append("{id}")
        elif "(" in segment and "=" in segment:  # OData key syntax: users(id='…'), delta(token='…')
            segments.append(segment.split("(", 1)[0] + "({id})")
        else:
            segments.append(segment)
    return "/".join(segments) or "/"


def reset() -> None:
    """Forget every labelled series and timestamp (tests; never needed in the daemon)."""
    for metric in (
        CHANGES_PUSHED,
        GRAPH_REQUESTS,
        GRAPH_SEGMENT_NOT_FOUND,
        GRAPH_THROTTLED,
        INTUNE_BULK_FALLBACKS,
        INTUNE_OBJECTS_KEPT,
        J1_JOBS,
        J1_ERRORS,
        J1_VERIFICATION_FAILURES,
        J1_BEHAVIOUR_PROVEN,
        J1_UPLOADED_OBJECTS,
        NOTIFICATIONS,
        ROUNDS,
        ROUND_DURATION,
        LISTENER_CONNECTIONS,
        LISTENER_CLOSED,
    ):
        metric.clear()
    J1_REFUSED_OBJECTS.set(0)
    J1_PARTITIONS_FAILING.set(0)
    J1_PARTITIONS_PENDING_DIFF.set(0)
    OUTBOX_DEPTH.set(0)
    STALLED.set(0)
    ALERT_OUTBOX_DEPTH.set(0)
    _TIME.clear()


def metrics_handler() -> Handler:
    """aiohttp handler serving :data:`REGISTRY` in the Prometheus (or OpenMetrics) text format."""
    try:
        from prometheus_client.aiohttp import make_aiohttp_handler
    except ImportError:  # prometheus-client < 0.22 has no aiohttp integration
        return _fallback_handler()
    return make_aiohttp_handler(REGISTRY)


def _fallback_handler() -> Handler:
    """generate_latest-based handler for older prometheus-client releases."""
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def handler(request: web.Request) -> web.StreamResponse:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
