"""J1's GraphQL query endpoint, reduced to the one field syncd reads with: `queryV1`.

This is not a GraphQL implementation. A request is a GraphQL document that calls
`queryV1(query: ..., variables: ..., cursor: ..., ...)` and selects some of `type`, `data`,
`cursor` (and `__typename`), optionally under an alias; argument values may be `$variables` or
inline literals. The J1QL runs
through `syncd.sim.j1.j1ql`; results are paged at 250 rows with an opaque cursor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.sim.j1 import j1ql
from syncd.sim.j1.graph import AccountGraph
from syncd.sim.j1.validation import JsonObj

PAGE_SIZE = 250
TYPENAME = "QueryV1Response"
ARGUMENTS = frozenset(
    {"query", "variables", "cursor", "includeDeleted", "deferredResponse", "flags", "dryRun", "scopeFilters"}
)
"""The `queryV1` arguments J1's own clients send; anything else is an unknown argument."""
RESULT_FIELDS = frozenset({"type", "data", "cursor", "__typename"})

_CALL = re.compile(r"(?:\b([A-Za-z_][A-Za-z0-9_]*)\s*:\s*)?\bqueryV1\s*\(")
_LEX = re.compile(
    r"""
    (?P<space>[\s,]+|\#[^\n]*)
  | (?P<block>\"\"\"(?:[^"\\]|\\.|"(?!""))*\"\"\")
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<var>\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[():\[\]{}])
    """,
    re.VERBOSE,
)


class GraphQLError(ValueError):
    """A request this endpoint cannot run; reported as `{"errors": [{"message"}]}`."""


@dataclass(frozen=True)
class QueryV1Call:
    """What a document asks of `queryV1`."""

    arguments: dict[str, Any]
    selection: tuple[str, ...]
    response_key: str = "queryV1"
    """The field's alias when the document gives one (`result: queryV1(...)`)."""


class _Reader:
    """Reads GraphQL tokens on demand from the `queryV1(` call on (what follows it is not ours)."""

    def __init__(self, text: str, pos: int, variables: Mapping[str, Any]) -> None:
        self.text = text
        self.pos = pos
        self.variables = variables
        self.ahead: tuple[str, str] | None = None

    def peek(self) -> tuple[str, str]:
        if self.ahead is None:
            while True:
                if self.pos >= len(self.text):
                    raise GraphQLError("Syntax Error: unexpected end of document")
                match = _LEX.match(self.text, self.pos)
                if match is None:
                    raise GraphQLError(f"Syntax Error: unexpected character {self.text[self.pos]!r}")
                self.pos = match.end()
                if match.lastgroup != "space":
                    self.ahead = (match.lastgroup or "", match.group())
                    break
        return self.ahead

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        self.ahead = None
        return tok

    def expect(self, punct: str) -> None:
        kind, text = self.take()
        if kind != "punct" or text != punct:
            raise GraphQLError(f"Syntax Error: expected {punct!r}, found {text!r}")

    def value(self) -> Any:
        kind, text = self.take()
        if kind == "var":
            return self.variables.get(text[1:])
        if kind in ("string", "number"):
            return json.loads(text)
        if kind == "block":
            return text[3:-3]
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)  # enums stay names
        if text == "[":
            items = []
            while self.peek() != ("punct", "]"):
                items.append(self.value())
            self.take()
            return items
        if text == "{":
            obj: dict[str, Any] = {}
            while self.peek() != ("punct", "}"):
                key_kind, key = self.take()
                if key_kind != "name":
                    raise GraphQLError(f"Syntax Error: expected a field name, found {key!r}")
                self.expect(":")
                obj[key] = self.value()
            self.take()
            return obj
        raise GraphQLError(f"Syntax Error: unexpected {text!r}")


def parse_call(document: str, variables: Mapping[str, Any]) -> QueryV1Call:
    """Find the `queryV1(...) { ... }` call of a document and resolve its arguments."""
    match = _CALL.search(document)
    if match is None:
        raise GraphQLError("This endpoint only serves queryV1: the document does not call it")
    reader = _Reader(document, match.end(), variables)
    arguments: dict[str, Any] = {}
    while True:
        kind, text = reader.take()
        if kind == "punct" and text == ")":
            break
        if kind != "name":
            raise GraphQLError(f"Syntax Error: expected an argument name, found {text!r}")
        if text not in ARGUMENTS:
            raise GraphQLError(f'Unknown argument "{text}" on field "Query.queryV1".')
        reader.expect(":")
        arguments[text] = reader.value()
    reader.expect("{")
    selection: list[str] = []
    while True:
        kind, text = reader.take()
        if kind == "punct" and text == "}":
            break
        if kind != "name" or text not in RESULT_FIELDS:
            raise GraphQLError(f'Cannot query field "{text}" on type "{TYPENAME}".')
        selection.append(text)
    if not selection:
        raise GraphQLError("queryV1 needs a selection of type, data and cursor")
    return QueryV1Call(arguments, tuple(selection), match.group(1) or "queryV1")


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def encode_cursor(query: str, offset: int) -> str:
    """Opaque to clients: the next row offset, bound to the query it pages."""
    raw = json.dumps({"q": _fingerprint(query), "o": offset}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: str, cursor: str) -> int:
    """The offset a cursor stands for; a cursor of another query or a forged one is an error."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = data["o"]
        if data["q"] != _fingerprint(query) or not isinstance(offset, int) or offset < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise GraphQLError("Invalid cursor") from None
    return int(offset)


def execute(body: Any, graph: AccountGraph) -> tuple[int, JsonObj]:
    """Run one GraphQL request: (HTTP status, response body).

    A malformed request or a document without `queryV1` is a 400 (like GraphQL servers' request
    validation); a J1QL error is a 200 with `errors` and `data: null` (an execution error)."""
    try:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise GraphQLError("Body must be a JSON object with a string 'query'")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise GraphQLError("'variables' must be a JSON object")
        call = parse_call(body["query"], variables)
    except GraphQLError as err:
        return 400, {"errors": [{"message": str(err)}]}
    args = call.arguments
    try:
        text = args.get("query")
        if not isinstance(text, str):
            raise GraphQLError('Argument "query" of type "String!" is required')
        if args.get("variables") is not None and not isinstance(args["variables"], dict):
            raise GraphQLError('Argument "variables" must be a JSON object')
        cursor = args.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise GraphQLError('Argument "cursor" must be a string')
        offset = decode_cursor(text, cursor) if cursor else 0
        result = j1ql.run(text, graph)
    except (GraphQLError, j1ql.J1QLError) as err:
        return 200, {"errors": [{"message": str(err)}], "data": None}
    page = result.rows[offset : offset + PAGE_SIZE]
    more = offset + PAGE_SIZE < len(result.rows)
    full = {
        "type": result.type,
        "data": page,
        "cursor": encode_cursor(text, offset + PAGE_SIZE) if more else None,
        "__typename": TYPENAME,
    }
    return 200, {"data": {call.response_key: {name: full[name] for name in call.selection}}}
