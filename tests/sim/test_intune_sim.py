"""The Intune side of the Graph simulator: data shapes, routes, $batch, admin API, generator."""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler

from syncd.sim.graph.app import GraphSim
from syncd.sim.intune import COLLECTIONS, ZERO_GUID, IntuneData, generate_intune
from syncd.sim.intune_routes import register_intune_admin_routes, register_intune_routes
from syncd.sim.tenant import Tenant, ensure_app
from tests.paths import FIXTURES

HEX64 = re.compile(r"[0-9a-f]{64}")
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PROBLEM = {"nonCompliant", "error", "conflict"}


def _guid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def make_tenant(users: int, devices: int, groups: int, seed: int = 3) -> Tenant:
    """A directory tenant built with the public Tenant API (fast, independent of the generator)."""
    rng = random.Random(seed)
    t = Tenant(_guid(rng))
    for i in range(users):
        t.load_object(
            "users",
            {
                "id": _guid(rng),
                "userPrincipalName": f"u{i}@sim.example",
                "displayName": f"User {i}",
                "mail": f"u{i}@sim.example",
            },
        )
    for i in range(groups):
        t.load_object("groups", {"id": _guid(rng), "displayName": f"Group {i}"})
    for i in range(devices):
        os_name = ("Windows", "iOS", "Android", "MacMDM")[i % 4]
        managed = i % 5 != 0
        t.load_object(
            "devices",
            {
                "id": _guid(rng),
                "deviceId": _guid(rng),
                "displayName": f"DEV-{i:05d}",
                "operatingSystem": os_name,
                "isManaged": managed,
                "isCompliant": (i % 7 != 0) if managed else None,
            },
        )
    return t


def recorded(name: str, url_part: str) -> dict[str, Any]:
    doc = json.loads((FIXTURES / name).read_text())
    for ex in doc["exchanges"]:
        if url_part in ex["url"]:
            return dict(ex)
    raise AssertionError(f"{url_part} not in {name}")


@pytest.fixture(scope="module")
def small() -> tuple[Tenant, IntuneData]:
    tenant = make_tenant(users=120, devices=400, groups=15)
    tenant.intune = generate_intune(random.Random(11), tenant, 300)
    return tenant, tenant.intune


# --- generator --------------------------------------------------------------------------------
def test_generator_is_deterministic_and_round_trips(small: tuple[Tenant, IntuneData]) -> None:
    tenant, data = small
    again = generate_intune(random.Random(11), tenant, 300)
    assert json.dumps(again.to_json()) == json.dumps(data.to_json())
    other = generate_intune(random.Random(12), tenant, 300)
    assert other.to_json() != data.to_json()
    reloaded = IntuneData.from_json(json.loads(json.dumps(data.to_json())))
    assert reloaded.to_json() == data.to_json()


def test_generator_links_to_the_tenant(small: tuple[Tenant, IntuneData]) -> None:
    tenant, data = small
    entra = {d["deviceId"]: d for d in tenant.list("devices")}
    users = {u["id"]: u for u in tenant.list("users")}
    groups = {g["id"] for g in tenant.list("groups")}
    devices = data.list("managedDevices")
    assert len(devices) == 300
    aad_ids = [d["azureADDeviceId"] for d in devices]
    assert all(a in entra for a in aad_ids) and len(set(aad_ids)) == 300
    assert all(entra[a]["isManaged"] for a in aad_ids)  # 320 managed Entra devices suffice
    for d in devices:
        assert d["azureActiveDirectoryDeviceId"] == d["azureADDeviceId"]
        if d["userId"]:
            assert d["userPrincipalName"] == users[d["userId"]]["userPrincipalName"]
        if entra[d["azureADDeviceId"]]["isCompliant"] is True:
            assert d["complianceState"] == "compliant"
    categories = {c["displayName"] for c in data.list("deviceCategories")}
    assert {d["deviceCategoryDisplayName"] for d in devices} <= categories | {"Unknown"}
    assert len({d["deviceCategoryDisplayName"] for d in devices}) > 1
    targets = [
        a["target"]
        for coll in ("deviceCompliancePolicies", "deviceConfigurations", "intents", "mobileApps")
        for o in data.list(coll)
        for a in data.sub(coll, o["id"], "assignments")
    ]
    group_targets = [t for t in targets if t["@odata.type"] == "#microsoft.graph.groupAssignmentTarget"]
    assert group_targets and all(t["groupId"] in groups for t in group_targets)
    for s in data.list("deviceManagementScripts"):
        assert all(
            g["targetGroupId"] in groups
            for g in data.sub("deviceManagementScripts", s["id"], "groupAssignments")
        )
        assert base64.b64decode(s["scriptContent"]).startswith(b"#")
    for s in data.list("deviceComplianceScripts"):
        assert base64.b64decode(s["detectionScriptContent"]).startswith(b"#")
    app_ids = {a["id"] for a in data.list("mobileApps")}
    # A policy's apps (managedMobileApp) name tenant apps by bundle / package id, not by id.
    identifiers = {a.get("bundleId") or a.get("packageId") for a in data.list("mobileApps")}
    for p in data.list("managedAppPolicies"):
        targets = data.sub("managedAppPolicies", p["id"], "apps")
        named = {
            a["mobileAppIdentifier"].get("bundleId") or a["mobileAppIdentifier"].get("packageId")
            for a in targets
        }
        assert named <= identifiers
        assert not {a["id"] for a in targets} & app_ids
    assert all(set(c["targetedMobileApps"]) <= app_ids for c in data.list("mobileAppConfigurations"))
    referenced = [
        a
        for i in data.list("intents")
        for s in data.sub("intents", i["id"], "settings")
        for a in app_ids
        if a in s["valueJson"]
    ]
    assert referenced, "some intent setting must reference a mobileApp id"


def test_generated_shapes_match_the_recordings(small: tuple[Tenant, IntuneData]) -> None:
    _, data = small
    rec_dev = recorded("managed-devices-with-users.json", "/beta/deviceManagement/managedDevices")["body"][
        "value"
    ][0]
    gen_dev = data.list("managedDevices")[0]
    assert list(gen_dev) == list(rec_dev)
    assert list(gen_dev["hardwareInformation"]) == list(rec_dev["hardwareInformation"])
    assert all(isinstance(d["jailBroken"], str) for d in data.list("managedDevices"))
    rec_cs = recorded("compliance-policies-and-statuses.json", "/deviceStatuses")["body"]["value"][0]
    rec_conf = recorded("device-configurations-and-statuses.json", "/deviceStatuses")["body"]["value"][0]
    device_ids = {d["id"] for d in data.list("managedDevices")}
    states: list[str] = []
    for coll, rec in (("deviceCompliancePolicies", rec_cs), ("deviceConfigurations", rec_conf)):
        for pol in data.list(coll):
            for st in data.sub(coll, pol["id"], "deviceStatuses"):
                assert set(st) == set(rec)
                acct, pid, did = st["id"].split("_")
                assert acct == data.intune_account_id and pid == pol["id"] and did in device_ids
                states.append(st["status"])
    share = sum(s in PROBLEM for s in states) / len(states)
    assert 0.02 < share < 0.3
    for d in data.list("managedDevices"):
        apps = data.sub("managedDevices", d["id"], "detectedApps")
        assert apps and all(HEX64.fullmatch(a["id"]) for a in apps)
    for app in data.list("mobileApps"):
        for st in data.sub("mobileApps", app["id"], "deviceStatuses"):
            assert st["id"] == app["id"] + st["deviceId"] and st["deviceId"] in device_ids
    for s in data.list("deviceComplianceScripts"):
        assert all(
            r["managedDevice"]["id"] in device_ids
            for r in data.sub("deviceComplianceScripts", s["id"], "deviceRunStates")
        )
    for i in data.list("intents"):
        assert all(st["deviceId"] in device_ids for st in data.sub("intents", i["id"], "deviceStates"))


def test_more_devices_than_entra_devices_get_the_zero_guid() -> None:
    tenant = make_tenant(users=10, devices=5, groups=2)
    data = generate_intune(random.Random(1), tenant, 8)
    aad = [d["azureADDeviceId"] for d in data.list("managedDevices")]
    assert sum(a != ZERO_GUID for a in aad) == 5 and aad.count(ZERO_GUID) == 3


def test_twenty_thousand_devices_have_the_shape_of_a_large_tenant() -> None:
    # how fast it is built is bench/sim_bench.py's question, not a unit test's
    tenant = make_tenant(users=12000, devices=21000, groups=300)
    data = generate_intune(random.Random(5), tenant, 20000)
    counts = data.counts()
    assert counts["managedDevices"] == 20000
    assert 10 <= counts["deviceCompliancePolicies"] <= 60
    assert 10 <= counts["deviceConfigurations"] <= 60
    assert 100 <= counts["mobileApps"] <= 1000
    assert counts["managedDevices/detectedApps"] > 20000 * 3
    assert counts["deviceCompliancePolicies/deviceStatuses"] > 20000


# --- HTTP fixtures ----------------------------------------------------------------------------
@pytest.fixture
async def graph(
    small: tuple[Tenant, IntuneData],
) -> AsyncIterator[tuple[TestClient[Any, Any], GraphSim, dict[str, str]]]:
    """The real GraphSim app (its auth/fault middleware) with the Intune routes it registers."""
    tenant, _ = small
    fresh = Tenant.from_json(json.loads(json.dumps(tenant.to_json())))
    client_id, _ = ensure_app(fresh)
    sim = GraphSim(fresh)
    token = sim.tokens.issue(client_id, fresh.tenant_id, "https://graph.microsoft.com", 3600)
    client: TestClient[Any, Any] = TestClient(TestServer(sim.create_app(), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, sim, {"Authorization": f"Bearer {token}"}
    finally:
        await client.close()


async def get_json(client: TestClient[Any, Any], url: str, headers: dict[str, str], status: int = 200) -> Any:
    if url.startswith("http"):  # an @odata.nextLink is followed verbatim
        resp = await client.session.get(url, headers=headers)
    else:
        resp = await client.get(url, headers=headers)
    body = await resp.json(content_type=None)
    assert resp.status == status, (url, resp.status, body)
    return body


# --- routes -----------------------------------------------------------------------------------
async def test_versions_contexts_and_counts(graph: Any) -> None:
    client, sim, auth = graph
    data: IntuneData = sim.tenant.intune
    dev = data.list("managedDevices")[0]["id"]
    body = await get_json(client, "/beta/deviceManagement/managedDevices?$top=2", auth)
    assert body["@odata.context"].endswith("/beta/$metadata#deviceManagement/managedDevices")
    assert body["@odata.count"] == 300 and len(body["value"]) == 2
    for ver in ("v1.0", "beta"):
        for spec in COLLECTIONS.values():
            oid = data.list(spec.name)[0]["id"]
            url = f"/{ver}/{spec.root}/{spec.name}"
            if ver not in spec.versions:
                err = await get_json(client, url, auth, 400)
                assert err["error"]["message"] == f"Resource not found for the segment '{spec.name}'."
                continue
            assert (await get_json(client, url + "?$top=1", auth))["value"][0]["id"] == oid
            for sub, versions in spec.subs.items():
                if ver in versions:
                    page = await get_json(client, f"{url}/{oid}/{sub}", auth)
                    assert page["@odata.context"].endswith(f"#{spec.root}/{spec.name}('{oid}')/{sub}")
                    assert page["@odata.count"] == len(page["value"]) or "@odata.nextLink" in page
                else:
                    err = await get_json(client, f"{url}/{oid}/{sub}", auth, 400)
                    assert err["error"]["code"] == "BadRequest" and sub in err["error"]["message"]
    expanded = await get_json(
        client, f"/beta/deviceManagement/managedDevices/{dev}?$expand=detectedApps", auth
    )
    assert expanded["@odata.context"].endswith("#deviceManagement/managedDevices(detectedApps())/$entity")
    assert expanded["detectedApps"] == data.sub("managedDevices", dev, "detectedApps")
    await get_json(client, f"/v1.0/deviceManagement/managedDevices/{dev}?$expand=detectedApps", auth, 400)
    await get_json(client, "/beta/deviceManagement/managedDevices/nope", auth, 404)
    await get_json(client, "/beta/deviceManagement/bogus", auth, 400)
    unauth = await client.get("/beta/deviceManagement/managedDevices")
    assert unauth.status == 401


async def test_paging_select_and_expand(graph: Any) -> None:
    client, sim, auth = graph
    data: IntuneData = sim.tenant.intune
    sim.intune_page_size = 7
    url: str | None = "/beta/deviceManagement/managedDevices?$select=id,deviceName,complianceState"
    seen: list[str] = []
    pages = 0
    while url:
        body = await get_json(client, url, auth)
        assert ("@odata.count" in body) == (pages == 0)
        assert all(set(v) == {"id", "deviceName", "complianceState"} for v in body["value"])
        seen += [v["id"] for v in body["value"]]
        url = body.get("@odata.nextLink")
        pages += 1
    assert seen == [d["id"] for d in data.list("managedDevices")] and pages == 43
    policy = data.list("deviceCompliancePolicies")[0]["id"]
    base = f"/v1.0/deviceManagement/deviceCompliancePolicies/{policy}/scheduledActionsForRule"
    plain = await get_json(client, base, auth)
    assert "scheduledActionConfigurations" not in plain["value"][0]
    rich = await get_json(client, base + "?$expand=scheduledActionConfigurations", auth)
    assert rich["value"][0]["scheduledActionConfigurations"][0]["actionType"] == "block"
    script = data.list("deviceComplianceScripts")[0]["id"]
    runs = await get_json(
        client,
        f"/beta/deviceManagement/deviceComplianceScripts/{script}/deviceRunStates?$expand=managedDevice($select=id)",
        auth,
    )
    assert runs["value"] and all(set(r["managedDevice"]) == {"id"} for r in runs["value"])
    bare = await get_json(
        client, f"/beta/deviceManagement/deviceComplianceScripts/{script}/deviceRunStates", auth
    )
    assert all("managedDevice" not in r for r in bare["value"])


async def test_account_reads_and_tenant_without_intune(graph: Any) -> None:
    client, sim, auth = graph
    tid = sim.tenant.tenant_id
    dm = await get_json(client, "/v1.0/deviceManagement?$select=intuneAccountId", auth)
    assert dm["intuneAccountId"] == sim.tenant.intune.intune_account_id
    org = await get_json(client, f"/v1.0/organization/{tid}?$select=mobileDeviceManagementAuthority", auth)
    assert org["mobileDeviceManagementAuthority"] == "intune"
    assert (await get_json(client, "/beta/deviceManagement/subscriptionState", auth))["value"] == "active"
    sim.tenant.intune = None
    expected = recorded("tenant-without-intune.json", "deviceManagement?")["body"]["error"]
    for url in (
        "/v1.0/deviceManagement?$select=intuneAccountId",
        "/beta/deviceManagement/subscriptionState",
        f"/v1.0/organization/{tid}?$select=mobileDeviceManagementAuthority",
        "/beta/deviceManagement/managedDevices",
        "/v1.0/deviceAppManagement/mobileApps",
    ):
        err = (await get_json(client, url, auth, 400))["error"]
        assert (err["code"], err["message"]) == (expected["code"], expected["message"])
        assert set(err["innerError"]) >= {"date", "request-id", "client-request-id"}
    assert (await get_json(client, "/v1.0/organization", auth))["value"][0]["id"] == tid


# --- $batch -----------------------------------------------------------------------------------
async def test_batch_limits_dependencies_and_order(graph: Any) -> None:
    client, sim, auth = graph
    data: IntuneData = sim.tenant.intune
    too_many = {
        "requests": [
            {"id": str(i), "method": "GET", "url": "/deviceManagement/deviceCategories"} for i in range(21)
        ]
    }
    resp = await client.post("/v1.0/$batch", json=too_many, headers=auth)
    assert resp.status == 400
    dup = {
        "requests": [
            {"id": "a", "method": "GET", "url": "/users"},
            {"id": "A", "method": "GET", "url": "/users"},
        ]
    }
    assert (await client.post("/v1.0/$batch", json=dup, headers=auth)).status == 400
    dev = data.list("managedDevices")[0]["id"]
    reqs = [
        {"id": "1", "method": "GET", "url": "/deviceManagement/managedDevices/missing"},
        {"id": "2", "method": "GET", "url": "/deviceManagement/deviceCategories", "dependsOn": ["1"]},
        {"id": "3", "method": "GET", "url": f"/deviceManagement/managedDevices/{dev}?$expand=detectedApps"},
        {"id": "4", "method": "GET", "url": "deviceManagement/intents?$top=1", "dependsOn": ["3"]},
        {"id": "5", "method": "GET", "url": "/users?$top=1"},
    ]
    resp = await client.post("/beta/$batch", json={"requests": reqs}, headers=auth)
    assert resp.status == 200
    out = {r["id"]: r for r in (await resp.json())["responses"]}
    assert set(out) == {"1", "2", "3", "4", "5"}
    assert out["1"]["status"] == 404 and out["2"]["status"] == 424
    assert out["3"]["status"] == 200 and HEX64.fullmatch(out["3"]["body"]["detectedApps"][0]["id"])
    assert out["4"]["status"] == 200 and len(out["4"]["body"]["value"]) == 1
    assert out["5"]["status"] == 200 and out["5"]["body"]["value"]
    # every inner item went through the GraphSim middleware and its counters
    routes = sim.counters.routes
    assert any("managedDevices/{id}" in k and v["requests"] >= 2 for k, v in routes.items())


async def test_batch_items_are_throttled_and_authorised_individually() -> None:
    """Stand-in middleware: auth + throttling of one route; the batch reports them per item."""
    tenant = make_tenant(users=20, devices=30, groups=3)
    tenant.intune = generate_intune(random.Random(2), tenant, 25)
    throttled: list[str] = []

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer good":
            return web.json_response({"error": {"code": "InvalidAuthenticationToken"}}, status=401)
        if request.path.endswith("/deviceCategories"):
            throttled.append(request.path)
            return web.json_response(
                {"error": {"code": "TooManyRequests", "message": "Please retry again later."}},
                status=429,
                headers={"Retry-After": "2.5"},
            )
        return await handler(request)

    app = web.Application(middlewares=[gate])
    register_intune_routes(app, SimpleNamespace(tenant=tenant))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        reqs = [
            {"id": "cats", "method": "GET", "url": "/deviceManagement/deviceCategories"},
            {"id": "apps", "method": "GET", "url": "/deviceAppManagement/mobileApps?$top=3"},
            {
                "id": "after",
                "method": "GET",
                "url": "/deviceAppManagement/mobileAppCategories",
                "dependsOn": ["cats"],
            },
        ]
        resp = await client.post(
            "/v1.0/$batch", json={"requests": reqs}, headers={"Authorization": "Bearer good"}
        )
        assert resp.status == 200
        out = {r["id"]: r for r in (await resp.json())["responses"]}
        assert out["cats"]["status"] == 429 and out["cats"]["headers"]["Retry-After"] == "2.5"
        assert out["apps"]["status"] == 200 and out["apps"]["body"]["@odata.count"] == len(
            tenant.intune.list("mobileApps")
        )
        assert out["after"]["status"] == 424
        assert throttled == ["/v1.0/deviceManagement/deviceCategories"]
        denied = await client.post(
            "/v1.0/$batch", json={"requests": reqs}, headers={"Authorization": "Bearer bad"}
        )
        assert denied.status == 401


# --- admin API --------------------------------------------------------------------------------
async def test_admin_compliance_change_reaches_policies_and_entra(graph: Any) -> None:
    client, sim, auth = graph
    tenant: Tenant = sim.tenant
    data = tenant.intune
    assert isinstance(data, IntuneData)
    device = next(d for d in data.list("managedDevices") if d["complianceState"] == "compliant")
    entra = next(d for d in tenant.list("devices") if d["deviceId"] == device["azureADDeviceId"])
    seq = tenant.seq
    resp = await client.post(
        f"/_sim/intune/managedDevices/{device['id']}/compliance", json={"complianceState": "noncompliant"}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["entraDeviceObjectId"] == entra["id"]
    assert entra["isCompliant"] is False
    assert [r.obj_id for r in tenant.changes_since("devices", seq, tenant.seq)] == [entra["id"]]
    got = await get_json(client, f"/beta/deviceManagement/managedDevices/{device['id']}", auth)
    assert got["complianceState"] == "noncompliant"
    statuses = [
        st
        for p in data.list("deviceCompliancePolicies")
        for st in data.sub("deviceCompliancePolicies", p["id"], "deviceStatuses")
        if st["id"].rsplit("_", 1)[-1] == device["id"]
    ]
    assert statuses and any(st["status"] == "nonCompliant" for st in statuses)
    assert all(st["status"] in ("nonCompliant", "notApplicable") for st in statuses)
    back = await client.post(
        f"/_sim/intune/managedDevices/{device['id']}/compliance", json={"complianceState": "compliant"}
    )
    assert back.status == 200 and entra["isCompliant"] is True
    bad = await client.post(
        f"/_sim/intune/managedDevices/{device['id']}/compliance", json={"complianceState": "x"}
    )
    assert bad.status == 400


async def test_admin_crud_and_intune_toggle(graph: Any) -> None:
    client, sim, auth = graph
    created = await client.post(
        "/_sim/intune/deviceCategories", json={"displayName": "Lab", "description": "x"}
    )
    assert created.status == 201
    cat = await created.json()
    assert GUID.fullmatch(cat["id"])
    patched = await client.patch(
        f"/_sim/intune/deviceCategories/{cat['id']}", json={"description": "lab kit"}
    )
    assert (await patched.json())["description"] == "lab kit"
    graph_cat = await get_json(client, f"/v1.0/deviceManagement/deviceCategories/{cat['id']}", auth)
    assert graph_cat["description"] == "lab kit"
    app_id = sim.tenant.intune.list("mobileApps")[0]["id"]
    added = await client.post(
        f"/_sim/intune/mobileApps/{app_id}/assignments",
        json={
            "@odata.type": "#microsoft.graph.mobileAppAssignment",
            "intent": "required",
            "target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"},
        },
    )
    assert added.status == 201
    item = await added.json()
    listed = await get_json(client, f"/v1.0/deviceAppManagement/mobileApps/{app_id}/assignments", auth)
    assert item["id"] in {a["id"] for a in listed["value"]}
    assert (await client.delete(f"/_sim/intune/mobileApps/{app_id}/assignments/{item['id']}")).status == 204
    assert (await client.delete(f"/_sim/intune/deviceCategories/{cat['id']}")).status == 204
    assert (await client.delete(f"/_sim/intune/deviceCategories/{cat['id']}")).status == 404
    assert (await client.post("/_sim/intune/nope", json={})).status == 404
    section = sim.tenant.intune.to_json()
    assert (await client.delete("/_sim/intune")).status == 204
    await get_json(client, "/beta/deviceManagement/managedDevices", auth, 400)
    assert (await (await client.get("/_sim/intune")).json()) == {"enabled": False}
    restored = await client.put("/_sim/intune", json=section)
    assert restored.status == 200 and (await restored.json())["counts"]["managedDevices"] == 300
    await get_json(client, "/beta/deviceManagement/managedDevices", auth)


def test_admin_routes_register_on_a_plain_app() -> None:
    app = web.Application()
    register_intune_admin_routes(app, SimpleNamespace(tenant=make_tenant(1, 1, 1)))
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert "/_sim/intune/managedDevices/{id}/compliance" in paths
