"""Reading J1's graph back with J1QL through J1's GraphQL API (``queryV1``).

syncd writes through the sync API; it reads only to prove how an account behaves (the capability
probe in syncd/j1/probe.py). Same account headers and retry policy as the sync API client, whose
transport this reuses.
"""

from __future__ import annotations

from typing import Any

from syncd.j1.client import SyncApiClient, serialize
from syncd.j1.errors import J1Error

QUERY_V1 = (
    "query J1QL($query: String!, $variables: JSON, $cursor: String) {"
    " queryV1(query: $query, variables: $variables, cursor: $cursor) { type data cursor } }"
)
MAX_PAGES = 40


class J1QueryClient:
    """Runs J1QL queries; returns the rows of every page."""

    def __init__(self, transport: SyncApiClient, url: str) -> None:
        self._transport = transport
        self._url = url

    async def query(self, j1ql: str) -> list[dict[str, Any]]:
        """All result rows (``list`` items or ``table`` rows), following the cursor."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            variables: dict[str, Any] = {"query": j1ql}
            if cursor:
                variables["cursor"] = cursor
            answer = await self._transport.request_json(
                "POST", self._url, serialize({"query": QUERY_V1, "variables": variables})
            )
            result = _query_result(answer)
            data = result.get("data")
            if isinstance(data, list):
                rows.extend(item for item in data if isinstance(item, dict))
            cursor = result.get("cursor") if isinstance(result.get("cursor"), str) else None
            if not cursor:
                return rows
        raise J1Error(200, "QUERY_TOO_LARGE", f"more than {MAX_PAGES} pages of results")


def _query_result(answer: dict[str, Any]) -> dict[str, Any]:
    """The ``queryV1`` object of a GraphQL answer, or a J1Error naming the GraphQL error."""
    errors = answer.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0] if isinstance(errors[0], dict) else {}
        raise J1Error(200, "GRAPHQL_ERROR", str(first.get("message", "query failed"))[:300])
    data = answer.get("data")
    result = data.get("queryV1") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise J1Error(200, "INVALID_RESPONSE", "GraphQL answer has no data.queryV1")
    return result


def column(row: dict[str, Any], name: str) -> Any:
    """A RETURN column by its AS name, tolerating servers that nest or prefix it."""
    if name in row:
        return row[name]
    for key, value in row.items():
        if key.split(".")[-1] == name:
            return value
    return None
