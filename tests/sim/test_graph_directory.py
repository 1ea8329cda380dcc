"""Directory listings: paging, $select, $top limits, envelopes, headers, fixture round-trip."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from syncd.sim.graph.odata import ODATA_CONTENT_TYPE, USER_DEFAULT_PROPS
from syncd.sim.tenant import tenant_from_recording
from tests.helpers.graph_sim import GraphSimClient, graph_sim
from tests.paths import FIXTURES


async def test_users_paging_default_100_and_top(harness: GraphSimClient) -> None:
    assert len(harness.tenant.stores["users"]) == 30
    status, body, headers = await harness.get("/v1.0/users")
    assert status == 200
    assert headers["Content-Type"] == ODATA_CONTENT_TYPE
    assert body["@odata.context"] == f"{harness.base}/v1.0/$metadata#users"
    assert len(body["value"]) == 30 and "@odata.nextLink" not in body
    values, _, pages = await harness.follow("/v1.0/users?$top=7")
    assert [len(p["value"]) for p in pages] == [7, 7, 7, 7, 2]
    assert "$skiptoken=" in pages[0]["@odata.nextLink"]
    assert len({v["id"] for v in values}) == 30


async def test_default_and_selected_properties(harness: GraphSimClient) -> None:
    _, body, _ = await harness.get("/v1.0/users?$top=3")
    assert set(body["value"][0]) == set(USER_DEFAULT_PROPS)
    _, body, _ = await harness.get("/v1.0/users?$select=displayName,accountEnabled")
    assert body["@odata.context"].endswith("#users(displayName,accountEnabled)")
    assert all(set(u) == {"id", "displayName", "accountEnabled"} for u in body["value"])
    status, body, _ = await harness.get("/v1.0/users?$select=noSuchProp")
    assert status == 400 and "noSuchProp" in body["error"]["message"]


async def test_top_above_999_is_rejected(harness: GraphSimClient) -> None:
    status, body, _ = await harness.get("/v1.0/users?$top=1000")
    assert status == 400
    assert (
        body["error"]["message"]
        == "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    )
    status, _, _ = await harness.get("/v1.0/users?$top=999")
    assert status == 200


async def test_tampered_skiptoken_rejected(harness: GraphSimClient) -> None:
    _, body, _ = await harness.get("/v1.0/users?$top=5")
    bad = body["@odata.nextLink"].replace("$skiptoken=RFNwdAIA", "$skiptoken=RFNwdAIAx")
    status, err, _ = await harness.get(bad)
    assert status == 400 and err["error"]["code"] == "Directory_ExpiredPageToken"


async def test_request_ids_echo(harness: GraphSimClient) -> None:
    status, _, headers = await harness.get("/v1.0/organization", {"client-request-id": "abc-123"})
    assert status == 200
    assert headers["client-request-id"] == "abc-123"
    assert len(headers["request-id"]) == 36


async def test_single_objects_and_404(harness: GraphSimClient) -> None:
    user = next(iter(harness.tenant.list("users")))
    status, body, _ = await harness.get(f"/v1.0/users/{user['id']}?$select=userType")
    assert status == 200 and body["userType"] == user["userType"] and body["id"] == user["id"]
    assert body["@odata.context"].endswith("#users/$entity(userType)")
    status, body, _ = await harness.get("/v1.0/users/00000000-0000-0000-0000-000000000000")
    assert status == 404 and body["error"]["code"] == "Request_ResourceNotFound"
    status, body, _ = await harness.get("/beta/devices")
    assert status == 200 and len(body["value"]) == 6 and "deviceId" in body["value"][0]


async def test_group_members_and_get_by_ids(harness: GraphSimClient) -> None:
    gid = next(g for g, m in harness.tenant.members.items() if len(m) > 2)
    status, body, _ = await harness.get(f"/v1.0/groups/{gid}/members?$top=2")
    assert status == 200 and body["@odata.context"].endswith("#directoryObjects")
    values, _, _ = await harness.follow(f"/v1.0/groups/{gid}/members?$top=2")
    assert {v["id"] for v in values} == set(harness.tenant.member_ids(gid))
    assert all(v["@odata.type"].startswith("#microsoft.graph.") for v in values)
    ids = [values[0]["id"], "00000000-0000-0000-0000-000000000000"]
    status, body = await harness.call("POST", "/v1.0/directoryObjects/getByIds", {"ids": ids})
    assert status == 200 and [o["id"] for o in body["value"]] == [ids[0]]


async def test_unknown_segment_is_graph_error(harness: GraphSimClient) -> None:
    status, body, _ = await harness.get("/v1.0/nothingHere")
    assert status == 400 and body["error"]["message"] == "Resource not found for the segment 'nothingHere'."


async def test_recorded_users_round_trip(tmp_path: Path) -> None:
    path = FIXTURES / "users-list.json"
    recorded = json.loads(path.read_text())["exchanges"][1]["body"]["value"]
    tenant = tenant_from_recording(path)
    assert tenant.tenant_id == "a76fc728-0cba-45f0-a9eb-d45207e14513"
    async with graph_sim(tenant, tmp_path) as h:
        await h.fetch_token()
        _, body, _ = await h.get("/v1.0/users")
        assert body["value"] == recorded


async def test_recorded_members_and_org_round_trip(tmp_path: Path) -> None:
    tenant = tenant_from_recording(FIXTURES / "group-members.json")
    recorded = json.loads((FIXTURES / "group-members.json").read_text())["exchanges"][1]["body"]["value"]
    async with graph_sim(tenant, tmp_path) as h:
        await h.fetch_token()
        _, body, _ = await h.get("/v1.0/groups/58e48aba-cd45-440f-a851-2bf9715fadc1/members")
        assert body["value"] == recorded
    org_tenant = tenant_from_recording(FIXTURES / "organization.json")
    org = json.loads((FIXTURES / "organization.json").read_text())["exchanges"][1]["body"]["value"][0]
    assert org_tenant.organization == org


def test_web_app_key_is_typed() -> None:
    from syncd.sim.graph.keys import GRAPH_SIM

    assert isinstance(GRAPH_SIM, web.AppKey)
