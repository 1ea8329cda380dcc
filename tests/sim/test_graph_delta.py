"""Delta query behaviour: rounds, paging, $select tracking, members@delta, removals, tokens."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.helpers.graph_sim import GraphSimClient


def _by_id(values: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for v in values:
        out.setdefault(v["id"], []).append(v)
    return out


async def test_initial_round_pages_then_deltalink(harness: GraphSimClient) -> None:
    await harness.admin("PUT", "/faults", {"delta_page_size": 8})
    values, delta_link, pages = await harness.follow("/v1.0/users/delta?$select=displayName,accountEnabled")
    assert [len(p["value"]) for p in pages] == [8, 8, 8, 6]
    assert all("@odata.nextLink" in p and "$skiptoken=" in p["@odata.nextLink"] for p in pages[:-1])
    assert "$deltatoken=" in delta_link and "@odata.nextLink" not in pages[-1]
    assert pages[0]["@odata.context"].endswith("#users(displayName,accountEnabled)")
    assert {v["id"] for v in values} == {u["id"] for u in harness.tenant.list("users")}
    assert all(set(v) == {"id", "displayName", "accountEnabled"} for v in values)
    # nothing changed: empty final page with a fresh deltaLink
    again, link2, pages2 = await harness.follow(delta_link)
    assert again == [] and len(pages2) == 1 and link2 and link2 != delta_link


async def test_top_ignored_and_long_form(harness: GraphSimClient) -> None:
    # the delta overview: `$top` is not supported for users and groups (strict reading: 400) ...
    for resource in ("users", "groups"):
        status, body, _ = await harness.get(f"/v1.0/{resource}/delta?$top=2")
        assert status == 400 and body["error"]["code"] == "Request_UnsupportedQuery", body
        assert "$top" in body["error"]["message"]
    # ... the observed reading (silently ignored) is a switch
    await harness.admin("PUT", "/faults", {"delta_page_size": 10, "delta_top": "ignore"})
    _, _, pages = await harness.follow("/v1.0/users/microsoft.graph.delta?$top=2")
    assert len(pages[0]["value"]) == 10


async def test_select_tracking(harness: GraphSimClient) -> None:
    _, link, _ = await harness.follow("/v1.0/users/delta?$select=displayName,jobTitle")
    users = list(harness.tenant.list("users"))
    a, b = users[0]["id"], users[1]["id"]
    await harness.admin("PATCH", f"/users/{a}", {"displayName": "Renamed A"})
    await harness.admin("PATCH", f"/users/{b}", {"department": "Nowhere"})  # not selected → invisible
    values, link2, _ = await harness.follow(link)
    assert [v["id"] for v in values] == [a]
    assert values[0] == {"id": a, "displayName": "Renamed A", "jobTitle": users[0]["jobTitle"]}
    # Prefer: return=minimal → only the changed property
    await harness.admin("PATCH", f"/users/{a}", {"jobTitle": "Chief"})
    status, body, headers = await harness.get(link2, {"Prefer": "return=minimal"})
    assert status == 200 and body["value"] == [{"id": a, "jobTitle": "Chief"}]
    assert headers["Preference-Applied"] == "return=minimal"


async def test_default_select_tracks_default_properties_only(harness: GraphSimClient) -> None:
    _, link, _ = await harness.follow("/v1.0/users/delta")
    uid = next(iter(harness.tenant.list("users")))["id"]
    await harness.admin("PATCH", f"/users/{uid}", {"accountEnabled": False})
    values, link, _ = await harness.follow(link)
    assert values == []
    await harness.admin("PATCH", f"/users/{uid}", {"surname": "Zed"})
    values, _, _ = await harness.follow(link)
    assert len(values) == 1 and values[0]["surname"] == "Zed"


async def test_latest_returns_deltalink_without_data(harness: GraphSimClient) -> None:
    status, body, _ = await harness.get("/v1.0/users/delta?$deltatoken=latest&$select=displayName")
    assert status == 200 and body["value"] == [] and "@odata.deltaLink" in body
    await harness.admin("POST", "/users", {"displayName": "New Person", "userPrincipalName": "np@x"})
    values, _, _ = await harness.follow(body["@odata.deltaLink"])
    assert [v["displayName"] for v in values] == ["New Person"]


async def test_removed_changed_deleted_and_restore(harness: GraphSimClient) -> None:
    _, link, _ = await harness.follow("/v1.0/users/delta?$select=displayName")
    users = [u["id"] for u in harness.tenant.list("users")]
    await harness.admin("POST", f"/users/{users[0]}/soft-delete")
    await harness.admin("POST", f"/users/{users[1]}/hard-delete")
    values, link, _ = await harness.follow(link)
    got = _by_id(values)
    assert got[users[0]] == [{"id": users[0], "@removed": {"reason": "changed"}}]
    assert got[users[1]] == [{"id": users[1], "@removed": {"reason": "deleted"}}]
    await harness.admin("POST", f"/users/{users[0]}/restore")
    values, _, _ = await harness.follow(link)
    assert len(values) == 1 and values[0]["id"] == users[0] and "@removed" not in values[0]
    assert values[0]["displayName"]


async def test_members_delta_initial_split_and_changes(harness: GraphSimClient) -> None:
    await harness.admin("PUT", "/faults", {"delta_page_size": 50, "members_slice": 4})
    gid = max(harness.tenant.members, key=lambda g: len(harness.tenant.members[g]))
    n = len(harness.tenant.member_ids(gid))
    assert n > 8
    values, link, pages = await harness.follow(
        f"/v1.0/groups/delta?$select=displayName,members&$filter=id eq '{gid}'"
    )
    slices = [v["members@delta"] for v in values]
    assert all(v["id"] == gid for v in values)
    assert len(values) == -(-n // 4) and len(pages) == len(values)  # one slice per page, consecutive pages
    assert all(len(s) <= 4 for s in slices)
    merged = [m["id"] for s in slices for m in s]
    assert merged == harness.tenant.member_ids(gid)
    assert all(set(m) == {"@odata.type", "id"} for s in slices for m in s)
    # later round: only added and removed members
    outsider = (await harness.admin("POST", "/users", {"displayName": "Outsider"}))["id"]
    removed = harness.tenant.member_ids(gid)[0]
    await harness.admin("POST", f"/groups/{gid}/members", {"id": outsider})
    async with harness.session.delete(f"{harness.base}/_sim/groups/{gid}/members/{removed}") as r:
        assert r.status == 200
    values, link, _ = await harness.follow(link)
    assert len(values) == 1
    md = values[0]["members@delta"]
    assert {"@odata.type": "#microsoft.graph.user", "id": outsider} in md
    assert {"@odata.type": "#microsoft.graph.user", "id": removed, "@removed": {"reason": "deleted"}} in md
    assert len(md) == 2


async def test_soft_deleted_member_removed_then_restored(harness: GraphSimClient) -> None:
    gid = max(harness.tenant.members, key=lambda g: len(harness.tenant.members[g]))
    member = next(m for m in harness.tenant.member_ids(gid) if harness.tenant.store_of(m) == "users")
    _, glink, _ = await harness.follow("/v1.0/groups/delta?$select=displayName,members")
    await harness.admin("POST", f"/users/{member}/soft-delete")
    values, glink, _ = await harness.follow(glink)
    entry = next(v for v in values if v["id"] == gid)
    assert {"@odata.type": "#microsoft.graph.user", "id": member, "@removed": {"reason": "deleted"}} in entry[
        "members@delta"
    ]
    await harness.admin("POST", f"/users/{member}/restore")
    values, _, _ = await harness.follow(glink)
    entry = next(v for v in values if v["id"] == gid)
    assert {"@odata.type": "#microsoft.graph.user", "id": member} in entry["members@delta"]


async def test_replay_fault_redelivers(harness: GraphSimClient) -> None:
    _, link, _ = await harness.follow("/v1.0/users/delta?$select=displayName")
    uid = next(iter(harness.tenant.list("users")))["id"]
    await harness.admin("PATCH", f"/users/{uid}", {"displayName": "X1"})
    await harness.admin("PUT", "/faults", {"replay_rate": 1.0})
    values, _, _ = await harness.follow(link)
    assert [v["id"] for v in values].count(uid) >= 2
    assert all(v["displayName"] == "X1" for v in values if v["id"] == uid)


async def test_empty_pages_with_nextlink(harness: GraphSimClient) -> None:
    await harness.admin("PUT", "/faults", {"empty_page_rate": 1.0, "delta_page_size": 10})
    values, link, pages = await harness.follow("/v1.0/users/delta")
    assert any(p["value"] == [] and "@odata.nextLink" in p for p in pages)
    assert len(values) == 30 and link


async def test_expired_and_garbled_tokens(harness: GraphSimClient) -> None:
    _, link, _ = await harness.follow("/v1.0/users/delta")
    await harness.admin("POST", "/delta/expire")
    status, body, _ = await harness.get(link)
    assert status == 400 and body["error"]["code"] == "syncStateNotFound"
    status, body, _ = await harness.get("/v1.0/users/delta?$deltatoken=garbage")
    assert status == 400 and body["error"]["code"] == "syncStateNotFound"
    status, body, _ = await harness.get("/v1.0/users/delta?$skiptoken=garbage")
    assert status == 400 and body["error"]["code"] == "syncStateNotFound"
    # a token from another resource is not valid here
    _, glink, _ = await harness.follow("/v1.0/groups/delta")
    tok = parse_qs(urlsplit(glink).query)["$deltatoken"][0]
    status, _, _ = await harness.get(f"/v1.0/users/delta?$deltatoken={tok}")
    assert status == 400


async def test_token_ttl(harness: GraphSimClient) -> None:
    now = [1_000_000.0]
    harness.sim.clock = lambda: now[0]
    _, link, _ = await harness.follow("/v1.0/devices/delta")
    now[0] += 7 * 86400 - 10
    status, _, _ = await harness.get(link)
    assert status == 200
    _, link, _ = await harness.follow(link)
    now[0] += 7 * 86400 + 1
    status, body, _ = await harness.get(link)
    assert status == 400 and body["error"]["message"].startswith("The sync state generation is not found.")


async def test_resync_410_with_location(harness: GraphSimClient) -> None:
    _, link, _ = await harness.follow("/v1.0/users/delta?$select=displayName")
    await harness.admin("PUT", "/faults", {"resync_410": True})
    async with harness.session.get(link, headers={"Authorization": f"Bearer {harness.token}"}) as r:
        assert r.status == 410
        body = await r.json()
        location = r.headers["Location"]
    assert body["error"]["code"] == "resyncRequired"
    assert "$select=displayName" in location and location.endswith("$deltatoken=")
    values, new_link, _ = await harness.follow(location)  # a fresh initial round
    assert len(values) == 30 and all(set(v) == {"id", "displayName"} for v in values)
    status, _, _ = await harness.get(new_link)
    assert status == 200


async def test_filter_and_option_strictness(harness: GraphSimClient) -> None:
    ids = [u["id"] for u in harness.tenant.list("users")][:3]
    flt = " or ".join(f"id eq '{i}'" for i in ids)
    values, link, _ = await harness.follow(f"/v1.0/users/delta?$filter={flt}")
    assert sorted(v["id"] for v in values) == sorted(ids)
    status, _, _ = await harness.get(f"{link}&$select=displayName")
    assert status == 400
    too_many = " or ".join(f"id eq '{i}'" for i in range(51))
    status, _body, _ = await harness.get(f"/v1.0/users/delta?$filter={too_many}")
    assert status == 400
    status, _, _ = await harness.get("/v1.0/users/delta?$filter=displayName eq 'x'")
    assert status == 400
    status, _, _ = await harness.get("/v1.0/groups/delta?$expand=members")
    assert status == 400
