"""Unit tests of the J1QL subset (parser and evaluator) over a small stored graph."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.sim.j1 import J1SimState, object_id
from syncd.sim.j1.graph import AccountGraph
from syncd.sim.j1.j1ql import J1QLError, parse, run, tokenize

ACCOUNT = "acct-q"


def entity(state: J1SimState, scope: str, key: str, type_: str, cls: str | list[str], **props: Any) -> str:
    stored = state.seed_entity(
        ACCOUNT, scope, props.pop("_source", "api"), {"_key": key, "_type": type_, "_class": cls, **props}
    )
    return str(stored["_id"])


def link(graph: AccountGraph, scope: str, cls: str, frm: str, to: str, **props: Any) -> None:
    a, b = graph.entities[frm], graph.entities[to]
    key = f"{a['_key']}|{cls.lower()}|{b['_key']}"
    graph.put_relationship(
        {
            "_id": object_id(scope, key),
            "_key": key,
            "_type": f"{a['_type']}_{cls.lower()}_{b['_type']}",
            "_class": cls,
            "_scope": scope,
            "_source": "api",
            "_fromEntityKey": a["_key"],
            "_toEntityKey": b["_key"],
            "_fromEntityId": frm,
            "_toEntityId": to,
            **props,
        }
    )


@pytest.fixture
def graph() -> AccountGraph:
    state = J1SimState({ACCOUNT: "k"})
    alice = entity(
        state,
        "dir-00",
        "user-alice",
        "azure_user",
        "User",
        displayName="Alice",
        active=True,
        level=3,
        tags=["a", "b"],
    )
    bob = entity(state, "dir-01", "user-bob", "azure_user", "User", displayName="Bob", active=False, level=1)
    entity(
        state, "dir-01", "user-carol", "azure_user", ["User", "Person"], displayName="Carol", mail="c@x.io"
    )
    laptop = entity(
        state, "dev-00", "device-laptop", "azure_device", "Device", displayName="Laptop", os="Windows"
    )
    phone = entity(state, "dev-00", "device-phone", "azure_device", "Device", displayName="Phone", os="iOS")
    group = entity(state, "dir-00", "group-admins", "azure_group", "UserGroup", displayName="Admins")
    person = entity(
        state,
        "system-mapper",
        "person-alice",
        "employee",
        "Person",
        _source="system-mapper",
        email="alice@x.io",
    )
    g = state.graph(ACCOUNT)
    link(g, "links", "OWNS", alice, laptop, since=2020)
    link(g, "links", "OWNS", bob, phone)
    link(g, "dir-00", "HAS", group, alice)
    link(g, "dir-01", "HAS", group, bob)
    link(g, "dir-00", "IS", alice, person)
    return g


def keys(result_rows: list[dict[str, Any]]) -> list[str]:
    return [row["entity"]["_key"] for row in result_rows]


# -- parsing ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "FIND",
        "SELECT * FROM users",
        "FIND User WITH",
        "FIND User WITH active",
        "FIND User WITH active ~ true",
        "FIND User WITH level ^= 3",
        "FIND User WITH name = 'unterminated",
        "FIND User WITH a = 'x' OR b = 'y'",
        "FIND User AS",
        "FIND User AS u.x",
        "FIND User RETURN x.name",
        "FIND User AS u RETURN u",
        "FIND User AS u RETURN u.name,",
        "FIND User LIMIT 0",
        "FIND User LIMIT 2.5",
        "FIND User LIMIT many",
        "FIND User THAT",
        "FIND User THAT HAS",
        "FIND User THAT RELATES Device",
        "FIND User AS u THAT HAS Device AS u",
        "FIND User AS u THAT HAS AS u Device",
        "FIND User.name",
        "FIND User extra",
        "FIND User WITH name = {x}",
    ],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(J1QLError):
        parse(text)


def test_tokens_keywords_strings_numbers() -> None:
    toks = tokenize("find User with name = 'O\\'Brien' and n != -2.5 and ok = TRUE")
    assert [t.kind for t in toks] == [
        "keyword", "word", "keyword", "word", "op", "string", "keyword",
        "word", "op", "number", "keyword", "word", "op", "bool",
    ]  # fmt: skip
    assert toks[5].value == "O'Brien" and toks[9].value == -2.5 and toks[13].value is True
    q = parse(
        'Find User With displayName = "Alice" As u That Relates To As r * As d'
        " Return u._key As k, r._class Limit 5"
    )
    assert q.first.alias == "u" and q.first.conditions[0].value == "Alice"
    assert q.traversal is not None and q.traversal.verb is None and q.traversal.alias == "r"
    assert q.traversal.target.kind == "any" and q.traversal.target.alias == "d"
    assert [(i.alias, i.prop, i.name) for i in q.returns] == [("u", "_key", "k"), ("r", "_class", "r._class")]
    assert q.limit == 5


# -- selectors and conditions ------------------------------------------------------------------------
def test_titlecase_is_class_snake_case_is_type(graph: AccountGraph) -> None:
    rows = run("FIND User", graph).rows
    assert set(keys(rows)) == {"user-alice", "user-bob", "user-carol"}
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # a stable order, for paging
    assert set(keys(run("FIND Person", graph).rows)) == {
        "user-carol",
        "person-alice",
    }  # class list, mapper too
    assert set(keys(run("FIND azure_device", graph).rows)) == {"device-laptop", "device-phone"}
    assert run("FIND user", graph).rows == []  # snake_case: a _type, and there is no type "user"
    assert run("FIND AZURE_USER", graph).rows == []  # TitleCase-ish: a _class, none has it
    assert len(run("FIND *", graph).rows) == 7


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("FIND User WITH displayName = 'Alice'", {"user-alice"}),
        ('FIND User WITH displayName = "Bob"', {"user-bob"}),
        ("FIND User WITH displayName = 'alice'", set()),  # values are case-sensitive
        ("FIND User WITH active = true", {"user-alice"}),
        ("FIND User WITH active = false", {"user-bob"}),
        ("FIND User WITH active != true", {"user-bob", "user-carol"}),  # missing counts as not equal
        ("FIND User WITH level = 3", {"user-alice"}),
        ("FIND User WITH level = 3.0", {"user-alice"}),
        ("FIND User WITH level = true", set()),  # a number is not a boolean
        ("FIND User WITH active = 1", set()),
        ("FIND User WITH level = '3'", set()),
        ("FIND User WITH tags = 'b'", {"user-alice"}),  # list property: any element
        ("FIND User WITH tags != 'b'", {"user-bob", "user-carol"}),
        ("FIND * WITH _key ^= 'device-'", {"device-laptop", "device-phone"}),
        ("FIND * WITH _scope = 'dir-01'", {"user-bob", "user-carol"}),
        ("FIND * WITH _scope ^= 'dir-'", {"user-alice", "user-bob", "user-carol", "group-admins"}),
        ("FIND * WITH _class = 'Person'", {"user-carol", "person-alice"}),
        ("FIND * WITH _type = 'azure_group' AND displayName ^= 'Ad'", {"group-admins"}),
        ("FIND User WITH _scope = 'dir-01' AND mail = 'c@x.io'", {"user-carol"}),
        ("FIND * WITH _source = 'system-mapper'", {"person-alice"}),
        ("FIND * WITH _key = 'user-bob' AND _scope = 'dir-00'", set()),
        ("FIND Device WITH os ^= ''", {"device-laptop", "device-phone"}),
    ],
)
def test_conditions(graph: AccountGraph, query: str, expected: set[str]) -> None:
    assert set(keys(run(query, graph).rows)) == expected


# -- traversal -------------------------------------------------------------------------------------
def test_that_verb_both_directions_and_case(graph: AccountGraph) -> None:
    assert set(keys(run("FIND User THAT OWNS Device", graph).rows)) == {"user-alice", "user-bob"}
    assert set(keys(run("FIND Device THAT owns User", graph).rows)) == {"device-laptop", "device-phone"}
    assert set(keys(run("FIND User THAT HAS UserGroup", graph).rows)) == {"user-alice", "user-bob"}
    assert keys(run("FIND UserGroup THAT HAS User", graph).rows) == ["group-admins"]  # distinct
    assert run("FIND User THAT USES Device", graph).rows == []
    assert set(keys(run("FIND User THAT RELATES TO *", graph).rows)) == {"user-alice", "user-bob"}
    assert keys(run("FIND User WITH active = true THAT RELATES TO Person", graph).rows) == ["user-alice"]
    assert keys(run("FIND User THAT OWNS Device WITH os = 'iOS'", graph).rows) == ["user-bob"]


def test_dangling_relationship_leads_nowhere(graph: AccountGraph) -> None:
    graph.remove_entity(object_id("dev-00", "device-phone"))  # its OWNS edge stays, dangling
    assert keys(run("FIND User THAT OWNS *", graph).rows) == ["user-alice"]


# -- result shapes ---------------------------------------------------------------------------------
def test_list_item_shape(graph: AccountGraph) -> None:
    result = run("FIND User WITH displayName = 'Carol'", graph)
    assert result.type == "list"
    (item,) = result.rows
    stored = graph.entities[object_id("dir-01", "user-carol")]
    assert item["id"] == stored["_id"]
    assert item["entity"] == {
        "_id": stored["_id"],
        "_key": "user-carol",
        "_type": ["azure_user"],
        "_class": ["User", "Person"],
        "_scope": "dir-01",
        "_source": "api",
        "_accountId": ACCOUNT,
        "_createdOn": stored["_createdOn"],
        "_beginOn": stored["_beginOn"],
        "_version": 1,
        "_deleted": False,
        "displayName": "Carol",
    }
    assert item["properties"] == {"displayName": "Carol", "mail": "c@x.io"}


def test_table_rows(graph: AccountGraph) -> None:
    result = run(
        "FIND User AS u THAT OWNS AS r Device AS d RETURN u._key AS user, r._class, r.since,"
        " r._fromEntityKey, r._toEntityKey, r._scope, r._source, r._type, r._key, d.os, d._class, u.missing",
        graph,
    )
    assert result.type == "table"
    rows = sorted(result.rows, key=lambda row: row["user"])
    assert rows[0] == {
        "user": "user-alice",
        "r._class": "OWNS",
        "r.since": 2020,
        "r._fromEntityKey": "user-alice",
        "r._toEntityKey": "device-laptop",
        "r._scope": "links",
        "r._source": "api",
        "r._type": "azure_user_owns_azure_device",
        "r._key": "user-alice|owns|device-laptop",
        "d.os": "Windows",
        "d._class": ["Device"],
        "u.missing": None,
    }
    assert rows[1]["user"] == "user-bob" and rows[1]["r.since"] is None and rows[1]["d.os"] == "iOS"
    # One row per match: the group has two members.
    member_rows = run("FIND UserGroup AS g THAT HAS User AS m RETURN g._key, m._key", graph).rows
    assert sorted(row["m._key"] for row in member_rows) == ["user-alice", "user-bob"]
    assert run("FIND azure_device AS d RETURN d.displayName AS 'Device name'", graph).rows[0].keys() == {
        "Device name"
    }


def test_limit(graph: AccountGraph) -> None:
    assert len(run("FIND * LIMIT 2", graph).rows) == 2
    assert len(run("FIND UserGroup AS g THAT HAS User AS m RETURN m._key LIMIT 1", graph).rows) == 1
    assert len(run("FIND User LIMIT 100", graph).rows) == 3
