"""The Grafana dashboard and the Prometheus rules in monitoring/ only use metrics syncd exports,
under the names and labels it exports them with."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from syncd import metrics

MONITORING = Path(__file__).resolve().parent.parent / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
RULES = MONITORING / "prometheus-rules.yml"
PROMETHEUS_OWN = {"up"}
"""Series Prometheus itself makes for every scrape target."""
METRIC = re.compile(r"\b((?:syncd|process)_[a-z0-9_]+)\b")
SELECTOR = re.compile(r"\b((?:syncd|process)_[a-z0-9_]+)\{([^}]*)\}")
BY = re.compile(r"\b(?:by|on) \(([^)]*)\)")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
PROMQL_FUNCTIONS = {"rate", "increase", "sum", "max", "min", "histogram_quantile", "label_values"}


def _exported() -> dict[str, set[str]]:
    """Sample name → label names, as a scrape of syncd's registry sees them (every labelled
    metric given one sample, so that its series and labels appear)."""
    metrics.ROUNDS.labels(resource="users", kind="delta", status="ok").inc(0)
    metrics.ROUND_DURATION.labels(resource="users").observe(0)
    metrics.CHANGES_PUSHED.labels(type="t", op="upsert").inc(0)
    metrics.GRAPH_REQUESTS.labels(route="/v1.0/users", status="200").inc(0)
    metrics.GRAPH_THROTTLED.labels(route="/v1.0/users").inc(0)
    metrics.J1_JOBS.labels(mode="PATCH", status="finished").inc(0)
    metrics.J1_ERRORS.labels(code="500").inc(0)
    metrics.NOTIFICATIONS.labels(result="accepted").inc(0)
    metrics.LISTENER_CONNECTIONS.labels(listener="webhook").set(0)
    metrics.LISTENER_CLOSED.labels(listener="webhook", reason="read_timeout").inc(0)
    metrics.set_last_success("users")
    metrics.set_subscription_expiry("users", 0.0)
    from prometheus_client import generate_latest

    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.REGISTRY).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _dashboard_exprs() -> list[str]:
    def walk(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["expr"]] if isinstance(node.get("expr"), str) else []
            own += [node["query"]] if isinstance(node.get("query"), str) and "(" in node["query"] else []
            return own + [e for v in node.values() for e in walk(v)]
        if isinstance(node, list):
            return [e for v in node for e in walk(v)]
        return []

    return walk(json.loads(DASHBOARD.read_text()))


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _check(expr: str, exported: dict[str, set[str]]) -> None:
    assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    names = set(METRIC.findall(expr)) - PROMQL_FUNCTIONS
    assert names, expr
    for name in names:
        assert name in exported, f"{name} (in {expr!r}) is not exported; exported: {sorted(exported)}"
    for name, selector in SELECTOR.findall(expr):
        labels = set(MATCHER.findall(selector))
        assert labels - {"instance", "job"} <= exported[name], (name, labels, exported[name])
    by_labels = {label.strip() for group in BY.findall(expr) for label in group.split(",") if label.strip()}
    known = set().union(*(exported[n] for n in names)) | {"instance", "job", "le"}
    assert by_labels <= known, (expr, by_labels - known)


@pytest.fixture(scope="module")
def exported() -> Iterator[dict[str, set[str]]]:
    yield _exported()
    metrics.reset()  # the zero-valued series made above are not other tests' business


def test_every_dashboard_query_uses_exported_metrics_and_labels(exported: dict[str, set[str]]) -> None:
    exprs = _dashboard_exprs()
    assert len(exprs) >= 20
    for expr in exprs:
        _check(expr, exported)


def test_dashboard_is_importable_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in dash["templating"]["list"]}
    assert names == {"datasource", "instance"}
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        assert all('instance=~"$instance"' in t["expr"] for t in panel["targets"]), panel["title"]


def test_alerting_rules_cover_lag_outbox_rounds_and_j1_with_exported_metrics(
    exported: dict[str, set[str]],
) -> None:
    rules = _rules()
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("info", "warning", "critical")
        assert rule["annotations"]["summary"]
        expr = rule["expr"]
        if set(METRIC.findall(expr)) or not any(own in expr for own in PROMETHEUS_OWN):
            _check(expr, exported)
    by_metric = {m for rule in rules for m in METRIC.findall(rule["expr"])}
    # what operators must hear about: lag, a stuck outbox, failing rounds, J1 rejects, a stall
    assert {
        "syncd_resource_lag_seconds",
        "syncd_outbox_depth",
        "syncd_rounds_total",
        "syncd_j1_jobs_total",
        "syncd_j1_errors_total",
        "syncd_stalled",
    } <= by_metric
