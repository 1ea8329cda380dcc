"""/metrics served from an aiohttp app, scraped over HTTP and parsed with prometheus_client's parsers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import prometheus_client
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from syncd import metrics


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    metrics.reset()
    yield
    metrics.reset()


def _app(handler: Handler | None = None) -> web.Application:
    app = web.Application()
    app.router.add_get("/metrics", handler or metrics.metrics_handler())
    return app


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(_app())) as c:
        yield c


async def _scrape(client: TestClient[web.Request, web.Application]) -> dict[str, list[Sample]]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


async def test_counters_and_gauges_are_scraped(client: TestClient[web.Request, web.Application]) -> None:
    metrics.CHANGES_PUSHED.labels(type="azure_user", op="created").inc(3)
    metrics.CHANGES_PUSHED.labels(type="azure_user", op="deleted").inc()
    metrics.GRAPH_REQUESTS.labels(route="/v1.0/users/delta", status="200").inc(5)
    metrics.GRAPH_REQUESTS.labels(route="/v1.0/users/delta", status="429").inc()
    metrics.GRAPH_THROTTLED.labels(route="/v1.0/users/delta").inc()
    metrics.J1_JOBS.labels(mode="patch", status="FINISHED").inc()
    metrics.J1_ERRORS.labels(code="429").inc(2)
    metrics.OUTBOX_DEPTH.set(17)
    metrics.ALERT_OUTBOX_DEPTH.set(2)
    metrics.NOTIFICATIONS.labels(result="accepted").inc(4)
    metrics.NOTIFICATIONS.labels(result="rejected_client_state").inc()

    fam = await _scrape(client)

    pushed = fam["syncd_changes_pushed"]
    assert _value(pushed, "syncd_changes_pushed_total", type="azure_user", op="created") == 3
    assert _value(pushed, "syncd_changes_pushed_total", type="azure_user", op="deleted") == 1
    requests = fam["syncd_graph_requests"]
    assert _value(requests, "syncd_graph_requests_total", route="/v1.0/users/delta", status="429") == 1
    assert _value(fam["syncd_graph_throttled"], "syncd_graph_throttled_total", route="/v1.0/users/delta") == 1
    assert _value(fam["syncd_j1_jobs"], "syncd_j1_jobs_total", mode="patch", status="FINISHED") == 1
    assert _value(fam["syncd_j1_errors"], "syncd_j1_errors_total", code="429") == 2
    assert _value(fam["syncd_outbox_depth"], "syncd_outbox_depth") == 17
    assert _value(fam["syncd_alert_outbox_depth"], "syncd_alert_outbox_depth") == 2
    notifications = fam["syncd_notifications"]
    assert _value(notifications, "syncd_notifications_total", result="accepted") == 4
    assert _value(notifications, "syncd_notifications_total", result="rejected_client_state") == 1


async def test_rounds_histogram_and_lag(client: TestClient[web.Request, web.Application]) -> None:
    now = time.time()
    metrics.observe_round("users", "delta", "ok", 1.7, at=now - 120)
    metrics.observe_round("users", "delta", "error", 0.2)  # a failure does not reset the lag
    metrics.observe_round("groups", "full", "ok", 42.0)

    fam = await _scrape(client)

    rounds = fam["syncd_rounds"]
    assert _value(rounds, "syncd_rounds_total", resource="users", kind="delta", status="ok") == 1
    assert _value(rounds, "syncd_rounds_total", resource="users", kind="delta", status="error") == 1
    duration = fam["syncd_round_duration_seconds"]
    assert _value(duration, "syncd_round_duration_seconds_count", resource="users") == 2
    assert _value(duration, "syncd_round_duration_seconds_sum", resource="users") == pytest.approx(1.9)
    assert _value(duration, "syncd_round_duration_seconds_bucket", resource="groups", le="30.0") == 0
    assert _value(duration, "syncd_round_duration_seconds_bucket", resource="groups", le="60.0") == 1

    lag = fam["syncd_resource_lag_seconds"]
    assert 119 <= _value(lag, "syncd_resource_lag_seconds", resource="users") < 130
    assert _value(lag, "syncd_resource_lag_seconds", resource="groups") < 10
    assert metrics.resource_lag("users") == pytest.approx(120, abs=10)
    assert metrics.resource_lag("devices") is None
    assert set(metrics.lags()) == {"users", "groups"}


async def test_lag_grows_between_scrapes_without_success(
    client: TestClient[web.Request, web.Application],
) -> None:
    metrics.set_last_success("devices", time.time() - 5)
    first = _value(
        (await _scrape(client))["syncd_resource_lag_seconds"],
        "syncd_resource_lag_seconds",
        resource="devices",
    )
    assert metrics.resource_lag("devices", now=time.time() + 100) == pytest.approx(first + 100, abs=2)


async def test_subscription_expiry(client: TestClient[web.Request, web.Application]) -> None:
    metrics.set_subscription_expiry("users", time.time() + 3600)
    metrics.set_subscription_expiry("groups", time.time() - 60)
    metrics.set_subscription_expiry("devices", time.time() + 10)
    metrics.set_subscription_expiry("devices", None)  # subscription deleted

    expiry = (await _scrape(client))["syncd_subscription_expiry_seconds"]

    assert 3590 < _value(expiry, "syncd_subscription_expiry_seconds", resource="users") <= 3600
    assert _value(expiry, "syncd_subscription_expiry_seconds", resource="groups") < 0
    assert not [s for s in expiry if s.labels.get("resource") == "devices"]


async def test_process_metrics_need_only_proc_self(client: TestClient[web.Request, web.Application]) -> None:
    fam = await _scrape(client)
    assert _value(fam["process_resident_memory_bytes"], "process_resident_memory_bytes") > 1_000_000
    assert _value(fam["process_open_fds"], "process_open_fds") > 0
    assert _value(fam["process_cpu_seconds"], "process_cpu_seconds_total") > 0
    assert "python_info" in fam


async def test_openmetrics_negotiation(client: TestClient[web.Request, web.Application]) -> None:
    metrics.OUTBOX_DEPTH.set(3)
    resp = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    # prometheus_client's OpenMetrics parser has no annotations (its other parser has)
    families = {f.name: f for f in parse_openmetrics(await resp.text())}  # type: ignore[no-untyped-call]
    assert families["syncd_outbox_depth"].samples[0].value == 3


async def test_private_registry_not_the_global_one(client: TestClient[web.Request, web.Application]) -> None:
    assert metrics.REGISTRY is not prometheus_client.REGISTRY
    metrics.OUTBOX_DEPTH.set(9)
    assert prometheus_client.REGISTRY.get_sample_value("syncd_outbox_depth") is None
    assert metrics.REGISTRY.get_sample_value("syncd_outbox_depth") == 9
    stray = prometheus_client.Counter("syncd_test_global_stray", "registered on the global registry")
    try:
        assert "syncd_test_global_stray" not in await _scrape(client)
    finally:
        prometheus_client.REGISTRY.unregister(stray)


async def test_fallback_handler_serves_same_registry() -> None:
    metrics.J1_ERRORS.labels(code="500").inc()
    async with TestClient(TestServer(_app(metrics._fallback_handler()))) as c:
        fam = await _scrape(c)
    assert _value(fam["syncd_j1_errors"], "syncd_j1_errors_total", code="500") == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://graph.microsoft.com/v1.0/users/delta?$select=id", "/v1.0/users/delta"),
        (
            "https://graph.microsoft.com/v1.0/groups/0b9c6e5a-1d3f-4c1e-9a0e-3f2b1c4d5e6f/members?$top=999",
            "/v1.0/groups/{id}/members",
        ),
        (
            "/beta/deviceManagement/deviceCompliancePolicies/"
            "0b9c6e5a-1d3f-4c1e-9a0e-3f2b1c4d5e6f_1b9c6e5a-1d3f-4c1e-9a0e-3f2b1c4d5e6f/deviceStatuses",
            "/beta/deviceManagement/deviceCompliancePolicies/{id}/deviceStatuses",
        ),
        ("/v1.0/subscriptions/12345", "/v1.0/subscriptions/{id}"),
        ("/v1.0/users(id='abc')/memberOf", "/v1.0/users({id})/memberOf"),
        (
            "/v1.0/deviceManagement/deviceCompliancePolicyDeviceStateSummary",
            "/v1.0/deviceManagement/deviceCompliancePolicyDeviceStateSummary",
        ),
        ("/v1.0/$batch", "/v1.0/$batch"),
    ],
)
def test_route_template(url: str, expected: str) -> None:
    assert metrics.route_template(url) == expected
