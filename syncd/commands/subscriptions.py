"""`syncd subscriptions list|delete` for operators."""

from __future__ import annotations

from syncd.config import Settings
from syncd.graph.errors import GraphError
from syncd.runtime import open_runtime
from syncd.subscriptions import delete_recorded


async def subscriptions_command(settings: Settings, action: str) -> int:
    async with open_runtime(settings) as rt:
        api = rt.subscriptions_api
        if action == "list":
            stored = {s["id"]: s for s in await rt.mirror.list_subscriptions()}
            try:
                remote = await api.list()
            except GraphError as exc:
                print(f"FAIL listing subscriptions: {exc}")
                return 1
            for sub in remote:
                mark = "syncd" if sub.get("id") in stored else "other"
                print(
                    f"{sub.get('id')}  {sub.get('resource')}  {sub.get('changeType')}  "
                    f"expires {sub.get('expirationDateTime')}  [{mark}]"
                )
            for sub_id in set(stored) - {s.get("id") for s in remote}:
                print(f"{sub_id}  (in the mirror, unknown to Graph: will be recreated)")
            return 0
        deletion = await delete_recorded(api, rt.mirror)
        for sub_id, error in deletion.failures:
            print(f"FAIL deleting {sub_id}: {error}")
        if deletion.failures:
            return 1
        print(f"deleted {deletion.deleted} subscription(s)")
        return 0
