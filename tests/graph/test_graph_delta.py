"""Delta rounds: nextLinks to a deltaLink, repeated groups, and token resets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from syncd.graph.client import GraphClient
from syncd.graph.delta import delta_pages, initial_delta_url, is_removed, latest_delta_url, members_delta
from syncd.graph.errors import DeltaResetRequired

MakeClient = Callable[..., GraphClient]


def test_url_helpers() -> None:
    assert initial_delta_url("users", ["id", "displayName"]) == "/users/delta?$select=id,displayName"
    assert initial_delta_url("/groups", ["displayName", "members"], "beta") == (
        "/beta/groups/delta?$select=displayName,members"
    )
    assert initial_delta_url("devices", []) == "/devices/delta"
    assert latest_delta_url("users", ["id"]) == "/users/delta?$select=id&$deltatoken=latest"


def test_removed_and_members() -> None:
    assert is_removed({"id": "1"}) is None
    assert is_removed({"id": "1", "@removed": {"reason": "changed"}}) == "changed"
    assert is_removed({"id": "1", "@removed": {}}) == "deleted"
    group = {"id": "g", "members@delta": [{"id": "u1"}, {"id": "u2", "@removed": {"reason": "deleted"}}, 3]}
    assert [m["id"] for m in members_delta(group)] == ["u1", "u2"]
    assert members_delta({"id": "g"}) == []


async def test_delta_round_ends_with_delta_link(serve: Any, make_client: MakeClient) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        base = f"http://{request.host}/v1.0/groups/delta"
        q = request.query
        if "$skiptoken" not in q and "$deltatoken" not in q:
            assert q["$select"] == "displayName,members"
            return web.json_response(
                {
                    "value": [{"id": "g1", "displayName": "G", "members@delta": [{"id": "u1"}]}],
                    "@odata.nextLink": f"{base}?$skiptoken=s1",
                }
            )
        if q.get("$skiptoken") == "s1":
            return web.json_response({"value": [], "@odata.nextLink": f"{base}?$skiptoken=s2"})
        if q.get("$skiptoken") == "s2":
            return web.json_response(
                {
                    "value": [
                        {"id": "g1", "members@delta": [{"id": "u2"}]},
                        {"id": "x", "@removed": {"reason": "deleted"}},
                    ],
                    "@odata.deltaLink": f"{base}?$deltatoken=d1",
                }
            )
        return web.json_response({"value": [], "@odata.deltaLink": f"{base}?$deltatoken=d2"})

    app = web.Application()
    app.router.add_get("/v1.0/groups/delta", handler)
    client = make_client(await serve(app))
    pages = [p async for p in delta_pages(client, initial_delta_url("groups", ["displayName", "members"]))]
    assert len(pages) == 3
    assert [p.delta_link is not None for p in pages] == [False, False, True]
    assert pages[1].objects == [] and pages[1].next_link is not None
    assert pages[-1].delta_link is not None and pages[-1].delta_link.endswith("$deltatoken=d1")
    members = [m["id"] for p in pages for o in p.objects if o["id"] == "g1" for m in members_delta(o)]
    assert members == ["u1", "u2"]
    again = [p async for p in delta_pages(client, pages[-1].delta_link)]
    assert len(again) == 1 and again[0].delta_link is not None and again[0].delta_link.endswith("d2")


async def test_sync_state_not_found_raises_reset(serve: Any, make_client: MakeClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        body = {
            "error": {
                "code": "syncStateNotFound",
                "message": "The sync state generation is not found.",
                "innerError": {"request-id": "r"},
            }
        }
        return web.json_response(body, status=400)

    app = web.Application()
    app.router.add_get("/v1.0/users/delta", handler)
    client = make_client(await serve(app))
    with pytest.raises(DeltaResetRequired) as info:
        async for _ in delta_pages(client, "/users/delta?$deltatoken=old"):
            pass
    assert info.value.status == 400 and info.value.code == "syncStateNotFound"
    assert info.value.location is None


async def test_410_with_location_raises_reset(serve: Any, make_client: MakeClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        loc = f"http://{request.host}/v1.0/users/delta?$deltatoken="
        return web.Response(status=410, headers={"Location": loc}, text="")

    app = web.Application()
    app.router.add_get("/v1.0/users/delta", handler)
    base = await serve(app)
    client = make_client(base)
    with pytest.raises(DeltaResetRequired) as info:
        async for _ in delta_pages(client, f"{base}/v1.0/users/delta?$deltatoken=abc"):
            pass
    assert info.value.status == 410
    assert info.value.location == f"{base}/v1.0/users/delta?$deltatoken="


async def test_410_resync_required_code(serve: Any, make_client: MakeClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "resyncRequired", "message": "reset"}}, status=410)

    app = web.Application()
    app.router.add_get("/v1.0/devices/delta", handler)
    client = make_client(await serve(app))
    with pytest.raises(DeltaResetRequired):
        async for _ in delta_pages(client, "/devices/delta"):
            pass
