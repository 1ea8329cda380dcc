"""`POST /graphql` on the J1 simulator: queryV1 documents, auth, errors and cursor paging."""

from __future__ import annotations

from typing import Any

from tests.sim.j1_helpers import ACCOUNT, KEY, OTHER_ACCOUNT, OTHER_KEY, Sim, ent, error_code, rel

# The shape J1's Python client sends (variables, deferredResponse enum, flags, __typename).
CURSOR_DOCUMENT = """
  query J1QL_v2($query: String!, $variables: JSON, $flags: QueryV1Flags, $includeDeleted: Boolean,
                $cursor: String) {
    queryV1(
      query: $query
      variables: $variables
      deferredResponse: DISABLED
      flags: $flags
      includeDeleted: $includeDeleted
      cursor: $cursor
    ) {
      type
      data
      cursor
      __typename
    }
  }
"""


async def gql(
    sim: Sim, body: Any, *, headers: dict[str, str] | None = None, status: int = 200
) -> dict[str, Any]:
    got, data, _ = await sim.call("POST", "/graphql", body, headers=headers)
    assert got == status, data
    return dict(data)


async def j1ql(sim: Sim, query: str, cursor: str | None = None, **headers: str) -> dict[str, Any]:
    variables: dict[str, Any] = {"query": query, "variables": {}, "flags": {"variableResultSize": True}}
    if cursor is not None:
        variables["cursor"] = cursor
    answer = await gql(sim, {"query": CURSOR_DOCUMENT, "variables": variables}, headers=headers or None)
    assert "errors" not in answer, answer
    return dict(answer["data"]["queryV1"])


async def test_auth_required(sim: Sim) -> None:
    body = {"query": CURSOR_DOCUMENT, "variables": {"query": "FIND *"}}
    for headers in (
        {},
        {"Authorization": f"Bearer {KEY}"},
        {"JupiterOne-Account": ACCOUNT},
        {"Authorization": "Bearer nope", "JupiterOne-Account": ACCOUNT},
        {"Authorization": f"Bearer {OTHER_KEY}", "JupiterOne-Account": ACCOUNT},
    ):
        status, data, _ = await sim.call("POST", "/graphql", body, headers=headers)
        assert status == 401 and error_code(data) == "UNAUTHORIZED"
        assert KEY not in str(data)


async def test_list_and_table_answers(sim: Sim) -> None:
    await sim.run(
        "scope-a",
        entities=[ent("user-000001", title="eng"), ent("thing-00001", "test_thing", "Device")],
        relationships=[rel("user-000001", "thing-00001", since=3)],
    )
    listed = await j1ql(sim, "FIND User")
    assert listed["type"] == "list" and listed["cursor"] is None and listed["__typename"] == "QueryV1Response"
    (item,) = listed["data"]
    assert item["entity"]["_key"] == "user-000001" and item["entity"]["_class"] == ["User"]
    assert item["properties"] == {"displayName": "user-000001", "title": "eng"}
    table = await j1ql(sim, "find User as u that has as r Device as d return u._key as user, r.since, d._key")
    assert table["type"] == "table"
    assert table["data"] == [{"user": "user-000001", "r.since": 3, "d._key": "thing-00001"}]
    # Another account sees its own (empty) graph.
    other = await j1ql(
        sim, "FIND *", Authorization=f"Bearer {OTHER_KEY}", **{"JupiterOne-Account": OTHER_ACCOUNT}
    )
    assert other["data"] == []


async def test_inline_arguments_and_selection_subset(sim: Sim) -> None:
    await sim.run("scope-a", entities=[ent("user-000001")])
    document = "{ queryV1(query: \"FIND User WITH _key = 'user-000001'\", includeDeleted: false) { data } }"
    answer = await gql(sim, {"query": document})
    assert list(answer["data"]["queryV1"]) == ["data"]
    assert answer["data"]["queryV1"]["data"][0]["id"]
    block = '{ queryV1(query: """FIND * WITH _scope = "scope-a" """) { type data cursor } }'
    assert len((await gql(sim, {"query": block}))["data"]["queryV1"]["data"]) == 1
    aliased = "query Q($q: String!) { result: queryV1(query: $q) { data } }"
    answer = await gql(sim, {"query": aliased, "variables": {"q": "FIND User"}})
    assert list(answer["data"]) == ["result"] and len(answer["data"]["result"]["data"]) == 1


async def test_request_errors_are_graphql_errors(sim: Sim) -> None:
    for body in (
        {"query": "query { me { id } }"},
        {"query": "query { queryV1(query: $q, bogus: 1) { data } }", "variables": {"q": "FIND *"}},
        {"query": "query { queryV1(query: $q) { data rows } }", "variables": {"q": "FIND *"}},
        {"query": "query { queryV1(query: $q) { } }", "variables": {"q": "FIND *"}},
        {"query": "query { queryV1(query: $q", "variables": {"q": "FIND *"}},
        {"query": CURSOR_DOCUMENT, "variables": ["FIND *"]},
        {"variables": {"query": "FIND *"}},
        ["not", "an", "object"],
    ):
        answer = await gql(sim, body, status=400)
        assert set(answer) == {"errors"} and answer["errors"][0]["message"], body


async def test_j1ql_errors_are_200_with_errors(sim: Sim) -> None:
    for variables in (
        {"query": "FIND User WITH"},
        {"query": "MATCH (n) RETURN n"},
        {},  # no query at all
        {"query": "FIND *", "cursor": "not-a-cursor"},
    ):
        answer = await gql(sim, {"query": CURSOR_DOCUMENT, "variables": variables})
        assert answer["data"] is None and answer["errors"][0]["message"], variables


async def test_paging_with_cursor(sim: Sim) -> None:
    await sim.run("scope-a", entities=[ent(f"user-{i:06d}") for i in range(600)])
    seen: list[str] = []
    pages = []
    cursor = None
    while True:
        page = await j1ql(sim, "FIND User", cursor)
        pages.append(len(page["data"]))
        seen.extend(item["id"] for item in page["data"])
        cursor = page["cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
    assert pages == [250, 250, 100]
    assert len(set(seen)) == 600
    first = await j1ql(sim, "FIND User")
    # A cursor belongs to its query.
    answer = await gql(
        sim, {"query": CURSOR_DOCUMENT, "variables": {"query": "FIND *", "cursor": first["cursor"]}}
    )
    assert answer["data"] is None and "cursor" in answer["errors"][0]["message"].lower()
    table = await j1ql(sim, "FIND User AS u RETURN u._key LIMIT 300")
    assert len(table["data"]) == 250 and table["cursor"]
    rest = await j1ql(sim, "FIND User AS u RETURN u._key LIMIT 300", table["cursor"])
    assert len(rest["data"]) == 50 and rest["cursor"] is None


async def test_faults_apply_to_graphql(sim: Sim) -> None:
    await sim.faults(outage=True)
    status, data, _ = await sim.call(
        "POST", "/graphql", {"query": CURSOR_DOCUMENT, "variables": {"query": "FIND *"}}
    )
    assert status == 503 and error_code(data) == "SERVICE_UNAVAILABLE"
    await sim.faults(outage=False, count_429=1, path_filter="/persister/")
    assert (await j1ql(sim, "FIND *"))["data"] == []  # the filter keeps the 429 off GraphQL
