"""Details of non-user group members (devices, contacts, service principals) for their entities.

`members@delta` entries carry only `@odata.type` and `id`; one `POST /directoryObjects/getByIds`
(up to 1,000 ids) per page names them. It is best effort: that call needs `Directory.Read.All`,
which syncd does not require, so without it the member entities are named by their id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from syncd.graph.client import GraphClient
from syncd.graph.errors import GraphError, PermissionDenied

log = structlog.get_logger(__name__)

GET_BY_IDS_LIMIT = 1000


class MemberDetails:
    """Looks member objects up; remembers a missing permission so it asks only once."""

    def __init__(self) -> None:
        self.denied = False

    async def fetch(self, graph: GraphClient, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(ids))
        if self.denied or not unique:
            return found
        for start in range(0, len(unique), GET_BY_IDS_LIMIT):
            chunk = unique[start : start + GET_BY_IDS_LIMIT]
            try:
                body = await graph.post("/directoryObjects/getByIds", {"ids": chunk})
            except PermissionDenied:
                self.denied = True
                log.info(
                    "group members other than users and groups are named by id: "
                    "POST /directoryObjects/getByIds needs Directory.Read.All"
                )
                return found
            except GraphError as exc:
                log.debug("member details unavailable", status=exc.status, code=exc.code)
                return found
            for obj in body.get("value") or []:
                if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                    found[obj["id"]] = obj
        return found
