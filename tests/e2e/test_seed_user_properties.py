"""User entity properties that J1 alerts and questions rely on."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bench.kit.tenants import feature_tenant
from syncd.commands.resync import resync_command
from syncd.model import schema as m
from tests.helpers.harness import running_harness


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


async def test_user_properties_for_alerts(tmp_path: Path) -> None:
    async with running_harness(
        feature_tenant(users=40, with_intune=False), tmp_path, notifications=False
    ) as h:
        raw = {u["id"]: u for u in h.tenant.list("users")}
        disabled = next(u for u in raw.values() if u["accountEnabled"] is False)
        guest = next(u for u in raw.values() if u["userType"] == "Guest")
        assert await resync_command(h.settings()) == 0
        entities, _ = h.j1_graph()
        users = {k: e for k, e in entities.items() if e["_type"] == m.USER.type}
        assert set(users) == set(raw)
        for key, user in users.items():
            src = raw[key]
            assert user["_class"] == "User"
            assert user["accountEnabled"] is src["accountEnabled"]
            assert user["active"] is src["accountEnabled"]
            assert user["userType"] == src["userType"]
            assert user["username"] == src["userPrincipalName"]
            assert user.get("email") == (src.get("mail") or None)
            assert user["createdOn"] == _ms(src["createdDateTime"])
        assert users[disabled["id"]]["active"] is False
        assert users[guest["id"]]["userType"] == "Guest"
        assert "#EXT#" in users[guest["id"]]["username"] and "#EXT#" not in users[guest["id"]]["email"]

        # a change to a tracked property reaches J1 on the next delta round
        h.tenant.update("users", guest["id"], {"accountEnabled": False})
        assert await resync_command(h.settings()) == 0
        entities, _ = h.j1_graph()
        assert entities[guest["id"]]["active"] is False
