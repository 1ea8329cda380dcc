"""`syncd subscriptions list|delete` for operators."""

from __future__ import annotations

from syncd.config import Settings
from syncd.graph.errors import GraphError
from syncd.runtime import open_runtime


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
        count = 0
        for record in await rt.mirror.list_subscriptions():
            try:
                await api.delete(str(record["id"]))
            except GraphError as exc:
                if exc.status != 404:
                    print(f"FAIL deleting {record['id']}: {exc}")
                    return 1
            await rt.mirror.delete_subscription(str(record["id"]))
            count += 1
        print(f"deleted {count} subscription(s)")
        return 0
