"""A small J1QL: the subset syncd uses to read the graph back (its capability probe and checks).

    FIND <sel> [WITH <cond> (AND <cond>)*] [AS <alias>]
         [THAT (<VERB> | RELATES TO) [AS <relAlias>] <sel> [WITH ...] [AS <alias>]]
         [RETURN <alias>.<prop> [AS <name>] (, <alias>.<prop> [AS <name>])*]
         [LIMIT <n>]
    <sel>  := * | snake_case _type | TitleCase _class
    <cond> := <prop> = <literal> | <prop> != <literal> | <prop> ^= '<prefix>'

Keywords are case-insensitive; selectors, property names and values are case-sensitive (J1 docs);
relationship verbs match `_class` case-insensitively and relationships are followed in both
directions. Anything outside the subset is a `J1QLError` (the GraphQL layer reports it), never a
silent guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from syncd.sim.j1.graph import AccountGraph
from syncd.sim.j1.validation import JsonObj

Scalar = str | int | float | bool
"""A J1QL literal (and a token's value)."""
KEYWORDS = frozenset({"FIND", "WITH", "AND", "AS", "THAT", "RELATES", "TO", "RETURN", "LIMIT"})
ENTITY_VIEW_FIELDS = (
    "_id",
    "_key",
    "_type",
    "_class",
    "_scope",
    "_source",
    "_accountId",
    "_createdOn",
    "_beginOn",
    "_version",
)
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
  | (?P<op>!=|\^=|=|,|\*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*)
    """,
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class J1QLError(ValueError):
    """A query outside the supported subset, or malformed."""


TokenKind = Literal["string", "number", "keyword", "bool", "word", "op"]
Comparison = Literal["=", "!=", "^="]
_COMPARISONS: dict[str, Comparison] = {"=": "=", "!=": "!=", "^=": "^="}
"""Comparison token text -> the operator (typed)."""


@dataclass(frozen=True)
class Token:
    """One lexeme: keywords upper-cased, strings unescaped, numbers parsed (`value`)."""

    kind: TokenKind
    text: str
    value: Scalar
    pos: int


@dataclass(frozen=True)
class Condition:
    """`<prop> = | != | ^= <value>` of a `WITH` clause."""

    prop: str
    op: Comparison
    value: Scalar


@dataclass(frozen=True)
class Selector:
    """`* | snake_type | TitleClass` with its `WITH` conditions and `AS` alias."""

    kind: Literal["any", "class", "type"]
    name: str | None
    conditions: tuple[Condition, ...]
    alias: str | None


@dataclass(frozen=True)
class Traversal:
    """`THAT <VERB> | RELATES TO [AS alias] <selector>`: one hop, either direction."""

    verb: str | None
    """The relationship `_class` to follow; None for `RELATES TO` (any class)."""
    alias: str | None
    target: Selector


@dataclass(frozen=True)
class ReturnItem:
    """`RETURN <alias>.<prop> [AS <name>]`: one column of a table result."""

    alias: str
    prop: str
    name: str


@dataclass(frozen=True)
class Query:
    """A parsed query of the subset."""

    first: Selector
    traversal: Traversal | None
    returns: tuple[ReturnItem, ...]
    limit: int | None


@dataclass(frozen=True)
class Result:
    """`type` is "list" (entity items) or "table" (rows keyed by RETURN names)."""

    type: Literal["list", "table"]
    rows: list[JsonObj]


# -- parsing ------------------------------------------------------------------------------------
def tokenize(text: str) -> list[Token]:
    """Split a query into tokens; keywords are upper-cased, strings unescaped."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise J1QLError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "string":
            tokens.append(Token("string", raw, _ESCAPE.sub(r"\1", raw[1:-1]), pos))
        elif kind == "number":
            tokens.append(Token("number", raw, float(raw) if "." in raw else int(raw), pos))
        elif kind == "word":
            upper = raw.upper()
            if upper in KEYWORDS:
                tokens.append(Token("keyword", upper, upper, pos))
            elif upper in ("TRUE", "FALSE"):
                tokens.append(Token("bool", raw, upper == "TRUE", pos))
            else:
                tokens.append(Token("word", raw, raw, pos))
        elif kind == "op":
            tokens.append(Token("op", raw, raw, pos))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self, what: str) -> Token:
        tok = self.peek()
        if tok is None:
            raise J1QLError(f"unexpected end of query, expected {what}")
        self.i += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "keyword" and tok.text in words

    def keyword(self, word: str) -> None:
        tok = self.next(word)
        if tok.kind != "keyword" or tok.text != word:
            raise J1QLError(f"expected {word} at position {tok.pos}, found {tok.text!r}")

    def word(self, what: str) -> str:
        tok = self.next(what)
        if tok.kind != "word":
            raise J1QLError(f"expected {what} at position {tok.pos}, found {tok.text!r}")
        return tok.text

    def alias(self) -> str | None:
        if not self.at_keyword("AS"):
            return None
        self.i += 1
        name = self.word("an alias")
        if "." in name:
            raise J1QLError(f"alias {name!r} must not contain '.'")
        return name

    def selector(self) -> Selector:
        tok = self.next("a class, a type or '*'")
        kind: Literal["any", "class", "type"]
        if tok.kind == "op" and tok.text == "*":
            kind, name = "any", None
        elif tok.kind == "word" and "." not in tok.text:
            kind, name = ("class" if tok.text[0].isupper() else "type"), tok.text
        else:
            raise J1QLError(f"expected a class, a type or '*' at position {tok.pos}, found {tok.text!r}")
        conditions: list[Condition] = []
        if self.at_keyword("WITH"):
            self.i += 1
            conditions.append(self.condition())
            while self.at_keyword("AND"):
                self.i += 1
                conditions.append(self.condition())
        return Selector(kind, name, tuple(conditions), self.alias())

    def condition(self) -> Condition:
        prop = self.word("a property name")
        op = self.next("'=', '!=' or '^='")
        if op.kind != "op" or op.text not in _COMPARISONS:
            raise J1QLError(f"expected '=', '!=' or '^=' at position {op.pos}, found {op.text!r}")
        value = self.next("a value")
        if value.kind not in ("string", "number", "bool"):
            raise J1QLError(f"expected a quoted string, a number, true or false at position {value.pos}")
        if op.text == "^=" and value.kind != "string":
            raise J1QLError(f"'^=' takes a quoted prefix (position {value.pos})")
        return Condition(prop, _COMPARISONS[op.text], value.value)

    def traversal(self) -> Traversal:
        self.keyword("THAT")
        if self.at_keyword("RELATES"):
            self.i += 1
            self.keyword("TO")
            verb = None
        else:
            verb = self.word("a relationship verb or RELATES TO")
        alias = self.alias()
        return Traversal(verb, alias, self.selector())

    def returns(self) -> tuple[ReturnItem, ...]:
        self.keyword("RETURN")
        items = [self.return_item()]
        while (tok := self.peek()) is not None and tok.kind == "op" and tok.text == ",":
            self.i += 1
            items.append(self.return_item())
        return tuple(items)

    def return_item(self) -> ReturnItem:
        ref = self.word("alias.property")
        alias, dot, prop = ref.partition(".")
        if not dot or not prop:
            raise J1QLError(f"RETURN takes alias.property, found {ref!r}")
        name = ref
        if self.at_keyword("AS"):
            self.i += 1
            tok = self.next("a column name")
            if tok.kind not in ("word", "string"):
                raise J1QLError(f"expected a column name at position {tok.pos}")
            name = str(tok.value)
        return ReturnItem(alias, prop, name)

    def query(self) -> Query:
        self.keyword("FIND")
        first = self.selector()
        traversal = self.traversal() if self.at_keyword("THAT") else None
        returns = self.returns() if self.at_keyword("RETURN") else ()
        limit = None
        if self.at_keyword("LIMIT"):
            self.i += 1
            tok = self.next("a row limit")
            if tok.kind != "number" or not isinstance(tok.value, int) or tok.value < 1:
                raise J1QLError(f"LIMIT takes a positive integer (position {tok.pos})")
            limit = tok.value
        rest = self.peek()
        if rest is not None:
            raise J1QLError(f"unexpected {rest.text!r} at position {rest.pos}")
        return Query(first, traversal, returns, limit)


def parse(text: str) -> Query:
    """Parse a query of the subset; aliases must be distinct and RETURN may only use them."""
    if not isinstance(text, str) or not text.strip():
        raise J1QLError("the query is empty")
    query = _Parser(text).query()
    aliases = [query.first.alias]
    if query.traversal is not None:
        aliases += [query.traversal.alias, query.traversal.target.alias]
    named = [a for a in aliases if a is not None]
    if len(named) != len(set(named)):
        raise J1QLError("aliases must be distinct")
    for item in query.returns:
        if item.alias not in named:
            raise J1QLError(f"RETURN uses an unknown alias {item.alias!r}")
    return query


# -- evaluation ---------------------------------------------------------------------------------
def _equal(stored: Any, wanted: Scalar) -> bool:
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(wanted, bool) and isinstance(stored, bool) and stored == wanted
    if isinstance(wanted, int | float):
        return isinstance(stored, int | float) and stored == wanted
    return isinstance(stored, str) and stored == wanted


def condition_holds(obj: JsonObj, cond: Condition) -> bool:
    """`=` / `^=` hold when the value (or, for a list, one element) matches; `!=` when none does
    (so a missing property is `!=` anything)."""
    stored = obj.get(cond.prop)
    values = stored if isinstance(stored, list) else [stored]
    if cond.op == "^=":
        return any(isinstance(v, str) and v.startswith(str(cond.value)) for v in values)
    hit = any(_equal(v, cond.value) for v in values)
    return hit if cond.op == "=" else not hit


def _selects(entity: JsonObj, sel: Selector) -> bool:
    if sel.kind != "any":
        field = "_class" if sel.kind == "class" else "_type"
        if not condition_holds(entity, Condition(field, "=", str(sel.name))):
            return False
    return all(condition_holds(entity, c) for c in sel.conditions)


def _candidate_ids(graph: AccountGraph, sel: Selector) -> Iterable[str]:
    """A superset of the selector's matches, from an index when one applies."""
    for cond in sel.conditions:
        if cond.op == "=" and isinstance(cond.value, str):
            if cond.prop == "_scope":
                return graph.entity_ids_in_scope(cond.value)
            if cond.prop in ("_key", "_type", "_class"):
                return graph.entity_ids_with(cond.prop, cond.value)
    if sel.kind == "class":
        return graph.entity_ids_with("_class", sel.name)
    if sel.kind == "type":
        return graph.entity_ids_with("_type", sel.name)
    return graph.entities.keys()


def _matches(graph: AccountGraph, sel: Selector) -> list[JsonObj]:
    found = (graph.entities.get(eid) for eid in sorted(_candidate_ids(graph, sel)))
    return [e for e in found if e is not None and _selects(e, sel)]


def _class_is(rel: JsonObj, verb: str) -> bool:
    classes = rel.get("_class")
    items = classes if isinstance(classes, list) else [classes]
    return any(isinstance(c, str) and c.upper() == verb.upper() for c in items)


def _triples(graph: AccountGraph, query: Query) -> Iterator[tuple[JsonObj, JsonObj | None, JsonObj | None]]:
    traversal = query.traversal
    for entity in _matches(graph, query.first):
        if traversal is None:
            yield entity, None, None
            continue
        eid = entity["_id"]
        for rid in sorted(graph.relationship_ids_of(eid)):
            rel = graph.relationships[rid]
            if traversal.verb is not None and not _class_is(rel, traversal.verb):
                continue
            other_id = rel["_toEntityId"] if rel["_fromEntityId"] == eid else rel["_fromEntityId"]
            other = graph.entities.get(other_id)
            if other is not None and _selects(other, traversal.target):  # a dangling edge leads nowhere
                yield entity, rel, other


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def entity_view(entity: JsonObj) -> JsonObj:
    """One `type: "list"` item: J1's `{id, entity, properties}` shape."""
    meta: JsonObj = {name: entity.get(name) for name in ENTITY_VIEW_FIELDS}
    meta["_type"] = _as_list(entity.get("_type"))
    meta["_class"] = _as_list(entity.get("_class"))
    meta["_deleted"] = False
    if "displayName" in entity:
        meta["displayName"] = entity["displayName"]
    props = {k: v for k, v in entity.items() if not k.startswith("_")}
    return {"id": entity["_id"], "entity": meta, "properties": props}


def _property(obj: JsonObj, prop: str, *, entity: bool) -> Any:
    if prop == "_deleted":
        return False
    if entity and prop in ("_type", "_class"):
        return _as_list(obj.get(prop))
    return obj.get(prop)


def evaluate(query: Query, graph: AccountGraph) -> Result:
    """Run a parsed query against one account's graph (all scopes, mapper entities included)."""
    rows: list[JsonObj] = []
    if not query.returns:
        seen: set[str] = set()
        for entity, _, _ in _triples(graph, query):
            if entity["_id"] not in seen:
                seen.add(entity["_id"])
                rows.append(entity_view(entity))
                if query.limit is not None and len(rows) >= query.limit:
                    break
        return Result("list", rows)
    traversal = query.traversal
    for entity, rel, other in _triples(graph, query):
        bound: dict[str, tuple[JsonObj, bool]] = {}
        if query.first.alias:
            bound[query.first.alias] = (entity, True)
        if traversal is not None and rel is not None and other is not None:
            if traversal.alias:
                bound[traversal.alias] = (rel, False)
            if traversal.target.alias:
                bound[traversal.target.alias] = (other, True)
        rows.append(
            {
                item.name: _property(bound[item.alias][0], item.prop, entity=bound[item.alias][1])
                for item in query.returns
            }
        )
        if query.limit is not None and len(rows) >= query.limit:
            break
    return Result("table", rows)


def run(text: str, graph: AccountGraph) -> Result:
    """Parse and evaluate."""
    return evaluate(parse(text), graph)
