"""Group members that are neither users nor groups become entities named after the real object."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from syncd.graph.client import GraphClient
from syncd.graph.errors import PermissionDenied
from syncd.model import schema
from syncd.runtime import open_runtime
from syncd.sim.generator import generate_tenant
from syncd.sources.members import MemberDetails
from tests.helpers.harness import running_harness


async def test_non_user_members_carry_their_directory_names(tmp_path: Path) -> None:
    tenant = generate_tenant(seed=5, users=60, groups=8, devices=10, with_intune=False)
    async with running_harness(tenant, tmp_path, notifications=False) as h:
        async with open_runtime(h.settings()) as rt:
            await rt.engine.resync()
        entities, _ = h.j1_graph()
        members = [e for e in entities.values() if e["_type"] == schema.GROUP_MEMBER.type]
        assert members, "the generated tenant has non-user members"
        names = {}
        for store in ("devices", "contacts", "servicePrincipals"):
            for obj in tenant.list(store):
                names[obj["id"]] = obj.get("displayName")
        for member in members:
            expected = names.get(member["_key"])
            assert expected, member["_key"]
            assert member["displayName"] == expected  # not the bare id
        kinds = {m["memberType"] for m in members}
        assert len(kinds) >= 2, kinds


class _Denied:
    calls = 0

    async def post(self, path: str, body: Any) -> Any:
        self.calls += 1
        raise PermissionDenied(403, "Authorization_RequestDenied", "Insufficient privileges", None)


async def test_missing_directory_permission_is_asked_once_then_skipped() -> None:
    details = MemberDetails()
    graph = _Denied()
    client = cast(GraphClient, graph)  # only `post` is called
    assert await details.fetch(client, ["a", "b"]) == {}
    assert await details.fetch(client, ["c"]) == {}
    assert graph.calls == 1 and details.denied
