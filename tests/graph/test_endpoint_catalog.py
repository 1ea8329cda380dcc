"""The Graph URL catalog (`syncd.graph.endpoints`): documented, complete, and what syncd really calls.

* every row is an endpoint the documentation describes (`documented_endpoints.toml`, with the
  page each comes from), none is one Graph answers "Resource not found for the segment";
* every Graph path spelled in syncd's code, every Intune collection/sub-resource URL and every
  permission probe is a catalog row;
* every request a full sync (and an early device re-fetch) sends to the simulator is a row;
* the simulator answers the real 400 for the undocumented paths, and the client logs and counts it.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.kit.tenants import intune_of, intune_tenant
from syncd.commands.permissions import PERMISSION_PROBES
from syncd.graph import endpoints
from syncd.graph.errors import SegmentNotFound
from syncd.graph.reports import EXPORT_JOBS, EXPORT_VERSION
from syncd.sources.intune import COLLECTIONS, INSTALLS, INVENTORY
from tests.helpers.harness import running_harness
from tests.helpers.inprocess import intune_runtime

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED = tomllib.loads((Path(__file__).with_name("documented_endpoints.toml")).read_text())
GRAPH_ROOTS = {
    "users",
    "groups",
    "devices",
    "organization",
    "subscriptions",
    "directoryObjects",
    "deviceManagement",
    "deviceAppManagement",
    "$batch",
    "me",
    "applications",
    "servicePrincipals",
    "auditLogs",
}


def _rows(kind: str) -> set[tuple[str, str, str]]:
    return {(r["method"], r["version"], r["path"]) for r in DOCUMENTED[kind]}


def test_every_catalog_row_is_documented_and_listed_once() -> None:
    documented, undocumented = _rows("endpoint"), _rows("undocumented")
    assert all(r["doc"] for r in DOCUMENTED["endpoint"])
    rows = [(e.method, e.version, e.template) for e in endpoints.CATALOG]
    assert len(rows) == len(set(rows)), "a URL is listed twice"
    assert [r for r in rows if r not in documented] == []
    assert [r for r in rows if r in undocumented] == []
    assert all(e.version in (endpoints.V1, endpoints.BETA) and e.purpose for e in endpoints.CATALOG)


def _literal_paths(tree: ast.AST) -> list[str]:
    """String constants and f-strings that begin with a Graph root, `{x}` for interpolations."""
    out: list[str] = []
    for node in ast.walk(tree):
        text: str | None = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            text = "".join(str(v.value) if isinstance(v, ast.Constant) else "{id}" for v in node.values)
        if text is None or not text.startswith("/") or " " in text:
            continue
        path = text.split("?", 1)[0]
        first = path.strip("/").split("/", 1)[0]
        if first in ("v1.0", "beta"):
            path = "/" + path.strip("/").split("/", 1)[1] if "/" in path.strip("/") else "/"
            first = path.strip("/").split("/", 1)[0]
        if first in GRAPH_ROOTS:
            out.append(path)
    return out


def test_code_names_no_graph_path_outside_the_catalog() -> None:
    found: dict[str, list[str]] = {}
    for file in sorted((ROOT / "syncd").rglob("*.py")):
        rel = file.relative_to(ROOT).as_posix()
        if rel.startswith("syncd/sim/"):
            continue  # the simulator serves Graph; it does not call it
        for path in _literal_paths(ast.parse(file.read_text(), rel)):
            found.setdefault(path, []).append(rel)
    assert found, "the scan found no Graph path at all: it is broken"
    templates = {e.template for e in endpoints.CATALOG}
    unknown = {
        p: files
        for p, files in found.items()
        if p not in templates and not any(e.matches(e.method, e.version, p) for e in endpoints.CATALOG)
    }
    # Bare roots used as prefixes (e.g. "/deviceManagement" joined with a collection) are fine.
    unknown = {p: f for p, f in unknown.items() if not any(t.startswith(p + "/") for t in templates)}
    assert unknown == {}, f"Graph paths not in syncd.graph.endpoints: {unknown}"


def test_intune_collections_and_probes_call_catalogued_urls() -> None:
    missing: list[str] = []

    def need(method: str, version: str, path: str) -> None:
        if endpoints.find(method, version, path) is None:
            missing.append(f"{method} /{version}{path}")

    for c in COLLECTIONS:
        need("GET", c.version, c.path)
        for sub in c.subs:
            if sub.kind == INSTALLS:
                continue  # read through the export (below)
            bases = list(sub.typed.values()) if sub.typed else [c.path]
            for base in bases:
                need("GET", sub.version, f"{base}/x/{sub.path}")
            if sub.kind == INVENTORY:
                need("GET", c.version, f"{c.path}/x")  # the early re-fetch of one device
    need("POST", EXPORT_VERSION, EXPORT_JOBS)
    need("GET", EXPORT_VERSION, f"{EXPORT_JOBS}/x")
    for version, probe in PERMISSION_PROBES.values():
        need("GET", version, probe)
    assert missing == []


async def test_a_full_sync_calls_only_catalogued_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    monkeypatch.setattr("syncd.runtime._on_graph_request", lambda route, status: seen.append(route))
    tenant = intune_tenant()
    async with running_harness(tenant, tmp_path, notifications=False) as h, intune_runtime(h) as rt:
        report = await rt.engine.resync()
        assert report.failed == {}
        device = next(iter(intune_of(tenant).list("managedDevices")))
        source: Any = rt.engine.sources["intune:managedDevices"]
        await source.refetch_for_entra_devices(rt.engine, [device["azureADDeviceId"]])
    assert len(seen) > 50
    stray: set[str] = set()
    for label in seen:
        method, _, path = label.removeprefix("$batch ").partition(" ")
        if path.startswith("<"):
            continue  # a report download: not Graph
        version, _, rest = path.lstrip("/").partition("/")
        if endpoints.find(method, version, "/" + rest) is None:
            stray.add(label)
    assert stray == set()
    assert any("/reports/exportJobs" in label for label in seen)  # the bulk path really ran


async def test_the_simulator_refuses_undocumented_paths_and_the_client_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing: list[str] = []
    monkeypatch.setattr("syncd.runtime._on_segment_missing", missing.append)
    tenant = intune_tenant()
    intune = intune_of(tenant)
    app = intune.list("mobileApps")[0]["id"]
    policy = next(p for p in intune.list("managedAppPolicies") if "ios" in p["@odata.type"].lower())
    async with running_harness(tenant, tmp_path, notifications=False) as h, intune_runtime(h) as rt:
        for version, path, segment in (
            ("beta", f"/deviceAppManagement/mobileApps/{app}/deviceStatuses", "deviceStatuses"),
            ("v1.0", f"/deviceAppManagement/managedAppPolicies/{policy['id']}/apps", "apps"),
        ):
            with pytest.raises(SegmentNotFound) as err:
                await rt.graph.get(path, version=version)
            assert err.value.status == 400
            assert err.value.message == f"Resource not found for the segment '{segment}'."
        with pytest.raises(SegmentNotFound):
            await rt.graph.post("/deviceManagement/reports/getDeviceInstallStatusReport", {}, version="beta")
        # Inside $batch the item keeps its 400, and is counted the same way.
        url = f"/deviceAppManagement/mobileApps/{app}/deviceStatuses"
        out = await rt.graph.batch([{"id": "1", "method": "GET", "url": url}], version="beta")
        assert out[0]["status"] == 400
        # The documented home of the same data answers.
        apps = await rt.graph.get(
            f"/deviceAppManagement/iosManagedAppProtections/{policy['id']}/apps", version="v1.0"
        )
        assert [a["mobileAppIdentifier"]["bundleId"] for a in apps["value"]]
    assert len(missing) == 4
    assert all("deviceStatuses" in m or "apps" in m or "getDeviceInstallStatusReport" in m for m in missing)


async def test_typed_views_show_only_their_type(tmp_path: Path) -> None:
    tenant = intune_tenant()
    policies = intune_of(tenant).list("managedAppPolicies")
    ios = {p["id"] for p in policies if p["@odata.type"] == "#microsoft.graph.iosManagedAppProtection"}
    async with running_harness(tenant, tmp_path, notifications=False) as h, intune_runtime(h) as rt:
        listed = await rt.graph.get("/deviceAppManagement/iosManagedAppProtections", version="v1.0")
        assert {p["id"] for p in listed["value"]} == ios
        other = next(p["id"] for p in policies if p["id"] not in ios)
        url = f"{h.sims.graph_http_url}/v1.0/deviceAppManagement/iosManagedAppProtections/{other}/apps"
        token = await rt.graph._tokens.token()
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            assert resp.status == 404
