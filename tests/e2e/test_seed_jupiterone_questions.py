"""The J1QL questions in jupiterone/questions: J1's question shape, only our `_type`s (and the
Person class), a minimal FIND parse, and only properties that synced entities actually carry."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench.kit.tenants import feature_tenant
from syncd.commands.resync import resync_command
from syncd.model import schema as m
from tests.helpers.harness import running_harness
from tests.paths import ROOT

QUESTIONS = sorted((ROOT / "jupiterone" / "questions").glob("*.json"))
TYPES = {e.type for e in m.ENTITY_TYPES}
CLASSES = {m.PERSON_CLASS}
VERBS = {r.cls for r in m.RELATIONSHIP_TYPES} | {m.USER_IS_PERSON_CLASS}
OPERATOR = r"(?:!=|>=|<=|=|>|<|~=|\^=|\$=)"
# FIND <type|Class> [WITH ...] [AS x] (THAT [!]VERB [<<|>>] <type|Class> [WITH ...] [AS y])* [RETURN ...]
NODE = re.compile(
    r"(?:FIND|THAT\s+!?(?P<verb>[A-Z_]+)(?:\s+(?:<<|>>))?)\s+(?P<target>[A-Za-z0-9_]+)"
    r"(?P<rest>(?:(?!\bTHAT\b|\bRETURN\b).)*)",
    re.S,
)


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def parse(query: str) -> list[dict[str, Any]]:
    """The query's nodes: target, verb (None for FIND), alias, properties used in WITH."""
    assert query.lstrip().startswith("FIND "), query
    body = query.split("RETURN")[0]
    nodes = []
    for match in NODE.finditer(body):
        rest = match.group("rest")
        alias = re.search(r"\bAS\s+([a-z]\w*)", rest)
        with_part = rest.split(" AS ")[0]
        props = re.findall(rf"(?:WITH|AND|OR)\s+([A-Za-z_][\w.]*)\s*{OPERATOR}", with_part)
        nodes.append(
            {
                "target": match.group("target"),
                "verb": match.group("verb"),
                "alias": alias.group(1) if alias else None,
                "props": set(props),
            }
        )
    assert nodes, query
    return nodes


def returned(query: str) -> dict[str, set[str]]:
    """alias → properties named in RETURN (`u.email`)."""
    out: dict[str, set[str]] = {}
    if "RETURN" in query:
        for alias, prop in re.findall(r"\b([a-z]\w*)\.([A-Za-z_][\w.]*)", query.split("RETURN", 1)[1]):
            out.setdefault(alias, set()).add(prop)
    return out


def test_questions_have_j1_shape_and_known_types() -> None:
    assert len(QUESTIONS) >= 6
    names = set()
    for path in QUESTIONS:
        q = _load(path)
        assert set(q) >= {"name", "title", "description", "queries", "tags"}, path
        assert q["name"] == path.stem and q["name"] not in names
        names.add(q["name"])
        assert q["title"].endswith("?") and q["description"]
        assert q["queries"] and all(set(x) == {"name", "query"} for x in q["queries"])
        assert "microsoft-365" in q["tags"]
        for item in q["queries"]:
            for node in parse(item["query"]):
                target = node["target"]
                assert target in TYPES or target in CLASSES, f"{path.name}: unknown type {target}"
                assert node["verb"] is None or node["verb"] in VERBS, f"{path.name}: verb {node['verb']}"


def test_parser_rejects_what_it_should() -> None:
    bad = parse("FIND microsoft_365_usr WITH active = false")
    assert bad[0]["target"] not in TYPES
    assert parse("FIND managed_device WITH compliant = false AS d THAT OWNS << microsoft_365_user AS u")[
        1
    ] == {"target": "microsoft_365_user", "verb": "OWNS", "alias": "u", "props": set()}


async def test_question_properties_exist_on_synced_entities(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(users=60, groups=10), tmp_path, notifications=False) as h:
        assert await resync_command(h.settings()) == 0
        entities, _ = h.j1_graph()
    seen: dict[str, set[str]] = {}
    for e in entities.values():
        seen.setdefault(e["_type"], set()).update(e)
    # properties set on *some* entity of a type in the sim, plus selected Graph properties the
    # simulated tenant never sets (Graph sends null; J1 drops nulls)
    sparse = {m.GROUP.type: {"isAssignableToRole"}}
    from syncd.model.selects import GROUP_SELECT

    assert "isAssignableToRole" in GROUP_SELECT
    for path in QUESTIONS:
        for item in _load(path)["queries"]:
            nodes = parse(item["query"])
            aliases = {n["alias"]: n["target"] for n in nodes if n["alias"]}
            uses = [(n["target"], p) for n in nodes for p in n["props"]]
            uses += [(aliases[a], p) for a, props in returned(item["query"]).items() for p in props]
            for typ, prop in uses:
                if typ in CLASSES:
                    continue
                known = seen.get(typ, set()) | sparse.get(typ, set())
                assert prop in known, f"{path.name}: {typ} has no property {prop!r} in synced data"
