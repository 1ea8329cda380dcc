"""delete_recorded: the one way syncd deletes its subscriptions (uninstall, the CLI, the manager)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from syncd.graph.errors import GraphAuthError, GraphError, NotFound
from syncd.graph.subscriptions import SubscriptionsApi
from syncd.mirror import Mirror
from syncd.subscriptions import delete_recorded


class ScriptedApi(SubscriptionsApi):
    """DELETE answers by subscription id: nothing (deleted) or the error given."""

    def __init__(self, errors: dict[str, Exception]) -> None:
        self.errors = errors
        self.deleted: list[str] = []

    async def delete(self, subscription_id: str) -> None:
        self.deleted.append(subscription_id)
        if subscription_id in self.errors:
            raise self.errors[subscription_id]


async def recorded(mirror: Mirror, *ids: str) -> None:
    soon = datetime.now(UTC) + timedelta(days=1)
    for n, sub_id in enumerate(ids):
        await mirror.save_subscription(sub_id, "users", soon + timedelta(minutes=n), "hash")


async def remaining(mirror: Mirror) -> list[str]:
    return [str(r["id"]) for r in await mirror.list_subscriptions()]


async def test_deleted_and_already_gone_go_failures_keep_their_record(tmp_path: Path) -> None:
    async with await Mirror.open(tmp_path / "mirror.sqlite") as mirror:
        await recorded(mirror, "ok", "gone", "down", "ok2")
        api = ScriptedApi(
            {
                "gone": NotFound(404, "ResourceNotFound", "no such subscription"),
                "down": GraphError(503, "serviceNotAvailable", "try later"),
            }
        )
        result = await delete_recorded(api, mirror)
        assert api.deleted == ["ok", "gone", "down", "ok2"]  # one failure does not stop the others
        assert result.deleted == 3
        assert [(sub_id, type(exc)) for sub_id, exc in result.failures] == [("down", GraphError)]
        assert await remaining(mirror) == ["down"]  # kept: a second run tries it again

        api.errors.clear()
        again = await delete_recorded(api, mirror)
        assert again.deleted == 1 and again.failures == [] and await remaining(mirror) == []


async def test_a_token_failure_stops_at_once(tmp_path: Path) -> None:
    async with await Mirror.open(tmp_path / "mirror.sqlite") as mirror:
        await recorded(mirror, "a", "b")
        api = ScriptedApi({"a": GraphAuthError("invalid_client", "AADSTS7000215: invalid secret")})
        result = await delete_recorded(api, mirror)
        assert api.deleted == ["a"]
        assert result.deleted == 0 and [sub_id for sub_id, _ in result.failures] == ["a"]
        assert await remaining(mirror) == ["a", "b"]
