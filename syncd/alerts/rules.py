"""Alert rules: compile a YAML rules file once, evaluate it on every diff.

J1's own alert rules poll on a schedule (15 min at best); syncd already holds each change the
moment a round commits, so evaluating here turns a change into an alert within seconds.
Rules are compiled into closures at start so a bad file fails fast (file, line, reason) and the
per-change cost is a few dict lookups.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import structlog

from syncd.alerts.loader import LocDict, LocList, RuleError, load_yaml, load_yaml_file
from syncd.alerts.types import OPS, SEVERITIES, Alert, ChangeLike, Lookup
from syncd.model.schema import ENTITY_TYPE_BY_NAME, RELATIONSHIP_TYPE_BY_NAME

log = structlog.get_logger(__name__)

KIND_ENTITY = "entity"
KIND_RELATIONSHIP = "relationship"
_OP_ALIASES = {
    "created": "created",
    "updated": "updated",
    "deleted": "deleted",
    "added": "created",
    "removed": "deleted",
}
_RULE_KEYS = {"id", "severity", "when", "message", "description", "enabled"}
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SECRETISH = re.compile(r"(?i)(secret|token|credential|apikey|privatekey|password$|passwd$)")
_MAX_CHANGED = 50
_MAX_VALUE_CHARS = 1000
_MAX_MESSAGE_CHARS = 2000
_MAX_FIELD_CHARS = 500


# --- the thing conditions look at --------------------------------------------------------------


class _Resolver:
    """Finds relationship endpoints: lookup first, then this batch's entity changes, then a stub."""

    def __init__(self, lookup: Lookup, batch: Mapping[str, Mapping[str, Any]]) -> None:
        self._lookup = lookup
        self._batch = batch
        self._cache: dict[str, Mapping[str, Any] | None] = {}

    def get(self, key: str) -> Mapping[str, Any] | None:
        if key not in self._cache:
            found: Mapping[str, Any] | None = None
            try:
                found = self._lookup(key)
            except Exception as exc:
                log.warning("alert_lookup_failed", key=key, error=type(exc).__name__)
            if found is None:
                found = self._batch.get(key)
            self._cache[key] = found
        return self._cache[key]


class _Subject:
    """A change (or, inside `from:`/`to:`, an endpoint entity) as conditions see it."""

    def __init__(
        self,
        kind: str,
        op: str | None,
        type_: str,
        key: str,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        resolver: _Resolver | None = None,
        from_key: str | None = None,
        to_key: str | None = None,
    ) -> None:
        self.kind = kind
        self.op = op
        self.type = type_
        self.key = key
        self.old = old
        self.new = new
        self.resolver = resolver
        self.from_key = from_key
        self.to_key = to_key
        self._ends: dict[str, _Subject | None] = {}

    @classmethod
    def of_change(cls, change: ChangeLike, resolver: _Resolver) -> _Subject:
        rel = change.new or change.old or {}
        from_key = change.from_key or _str_or_none(rel.get("_fromEntityKey"))
        to_key = change.to_key or _str_or_none(rel.get("_toEntityKey"))
        return cls(
            change.kind,
            _OP_ALIASES.get(change.op, change.op),
            change.type,
            change.key,
            change.old,
            change.new,
            resolver,
            from_key,
            to_key,
        )

    @classmethod
    def of_entity(cls, entity: Mapping[str, Any]) -> _Subject:
        return cls(
            KIND_ENTITY, None, str(entity.get("_type", "")), str(entity.get("_key", "")), entity, entity
        )

    @property
    def current(self) -> Mapping[str, Any]:
        return self.new if self.new is not None else (self.old or {})

    def endpoint(self, side: str) -> _Subject | None:
        """The relationship's `from` or `to` entity (None for entity changes)."""
        if self.kind != KIND_RELATIONSHIP:
            return None
        if side not in self._ends:
            key = self.from_key if side == "from" else self.to_key
            entity: Mapping[str, Any] | None = None
            if key is not None and self.resolver is not None:
                entity = self.resolver.get(key)
            if entity is None and key is not None:
                entity = {"_key": key, "_type": self.endpoint_type(side) or ""}
            if entity is None and side == "to":
                mapping = self.current.get("_mapping")
                target = mapping.get("targetEntity") if isinstance(mapping, Mapping) else None
                entity = target if isinstance(target, Mapping) else None
            self._ends[side] = _Subject.of_entity(entity) if entity is not None else None
        return self._ends[side]

    def endpoint_type(self, side: str) -> str | None:
        row = RELATIONSHIP_TYPE_BY_NAME.get(self.type)
        if row is not None:
            return row.from_type.type if side == "from" else row.to_type.type
        end = self._ends.get(side)
        return end.type if end is not None else None

    def classes(self) -> list[str]:
        row = RELATIONSHIP_TYPE_BY_NAME.get(self.type) if self.kind == KIND_RELATIONSHIP else None
        if row is not None:
            return [row.cls]
        ent = ENTITY_TYPE_BY_NAME.get(self.type)
        if ent is not None:
            return list(ent.classes)
        value = self.current.get("_class")
        return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


Cond = Callable[[_Subject], bool]


# --- compiling conditions ----------------------------------------------------------------------


class _Compiler:
    """Turns the `when:` tree into closures, validating names, types and values as it goes."""

    def __init__(self, file: str, params: Mapping[str, Any]) -> None:
        self.file = file
        self.params = params
        self.properties: list[str] = []

    def err(self, line: int | None, reason: str) -> RuleError:
        return RuleError(self.file, line, reason)

    def resolve(self, value: Any, line: int) -> Any:
        """Replace a `{param: a.b}` reference by the rule file's (or config's) top-level value."""
        if isinstance(value, Mapping) and set(value) == {"param"}:
            path = value["param"]
            if not isinstance(path, str) or not path:
                raise self.err(line, "param: must be a dotted name like privileged_groups.names")
            cur: Any = self.params
            for part in path.split("."):
                if not isinstance(cur, Mapping) or part not in cur:
                    raise self.err(line, f"unknown param {path!r}")
                cur = cur[part]
            return cur
        return value

    def condition(self, node: Any, line: int, scope: str) -> Cond:
        """scope: 'change' (the diff record) or 'entity' (a relationship endpoint)."""
        if not isinstance(node, LocDict):
            raise self.err(line, "a condition must be a mapping")
        if not node:
            raise self.err(node.line or line, "empty condition")
        parts: list[Cond] = []
        for key, value in node.items():
            kline = node.line_of(key)
            parts.append(self._clause(key, value, kline, scope))
        if len(parts) == 1:
            return parts[0]
        return lambda s: all(p(s) for p in parts)

    def _list(self, value: Any, line: int, what: str) -> LocList:
        if not isinstance(value, LocList) or not value:
            raise self.err(line, f"{what}: must be a non-empty list of conditions")
        return value

    def _strings(self, value: Any, line: int, what: str, allow_empty: bool = False) -> list[str]:
        value = self.resolve(value, line)
        items = value if isinstance(value, list) else [value]
        if (not items and not allow_empty) or not all(isinstance(i, str) and i for i in items):
            raise self.err(line, f"{what}: must be a string or a list of strings")
        return [str(i) for i in items]

    def _clause(self, key: str, value: Any, line: int, scope: str) -> Cond:
        if key in ("all", "any"):
            items = self._list(value, line, key)
            subs = [self.condition(v, items.line_of(i), scope) for i, v in enumerate(items)]
            if key == "all":
                return lambda s: all(c(s) for c in subs)
            return lambda s: any(c(s) for c in subs)
        if key == "not":
            sub = self.condition(value, line, scope)
            return lambda s: not sub(s)
        if key == "kind":
            kind = value
            if kind not in (KIND_ENTITY, KIND_RELATIONSHIP):
                raise self.err(line, "kind: must be entity or relationship")
            return lambda s: s.kind == kind
        if key == "type":
            types = set(self._strings(value, line, key))
            known = set(ENTITY_TYPE_BY_NAME)
            if scope != "entity":
                known |= set(RELATIONSHIP_TYPE_BY_NAME)
            for t in sorted(types):
                if t not in known:
                    raise self.err(line, f"unknown _type {t!r} (not in syncd.model.schema)")
            return lambda s: s.type in types
        if key == "class":
            classes = set(self._strings(value, line, key))
            return lambda s: any(c in classes for c in s.classes())
        if key == "key":
            return self._compare(self._spec(value, line), line, "key", lambda s: s.key)
        if scope == "entity" and key in ("op", "from_type", "to_type", "from", "to"):
            raise self.err(line, f"{key}: not allowed inside a relationship endpoint condition")
        if key == "op":
            ops = self._strings(value, line, key)
            bad = [o for o in ops if o not in _OP_ALIASES]
            if bad:
                raise self.err(line, f"op: unknown {bad[0]!r} (created|updated|deleted, added|removed)")
            norm = {_OP_ALIASES[o] for o in ops}
            return lambda s: s.op in norm
        if key in ("from_type", "to_type"):
            side = key[:-5]
            types = set(self._strings(value, line, key))
            for t in sorted(types):
                if t not in ENTITY_TYPE_BY_NAME:
                    raise self.err(line, f"unknown entity _type {t!r} (not in syncd.model.schema)")

            def end_type(s: _Subject) -> bool:
                if s.kind != KIND_RELATIONSHIP:
                    return False
                t = s.endpoint_type(side)
                if t is None:
                    end = s.endpoint(side)
                    t = end.type if end is not None else None
                return t in types

            return end_type
        if key in ("from", "to"):
            side = key
            sub = self.condition(value, line, "entity")

            def end_cond(s: _Subject) -> bool:
                end = s.endpoint(side)
                return end is not None and sub(end)

            return end_cond
        if key == "property":
            if isinstance(value, LocList):
                subs = [self._property(v, value.line_of(i), scope) for i, v in enumerate(value)]
                return lambda s: all(c(s) for c in subs)
            return self._property(value, line, scope)
        raise self.err(line, f"unknown condition {key!r}")

    def _property(self, node: Any, line: int, scope: str) -> Cond:
        if not isinstance(node, LocDict):
            raise self.err(line, "property: must be a mapping with at least `name`")
        allowed = {
            "name",
            "from",
            "to",
            "changed",
            "old",
            "new",
            "value",
            "eq",
            "ne",
            "in",
            "not_in",
            "matches",
            "exists",
        }
        for k in node:
            if k not in allowed:
                raise self.err(node.line_of(k), f"property: unknown key {k!r}")
        name = node.get("name")
        if not isinstance(name, str) or not name:
            raise self.err(node.line, "property: `name` is required")
        if name not in self.properties:
            self.properties.append(name)
        if scope == "entity":
            for k in ("from", "to", "changed", "old", "new"):
                if k in node:
                    raise self.err(
                        node.line_of(k), f"property: {k!r} compares old and new; an endpoint has only a value"
                    )
        parts: list[Cond] = []

        def old_of(s: _Subject) -> Any:
            return s.old.get(name) if s.old is not None else None

        def new_of(s: _Subject) -> Any:
            return s.new.get(name) if s.new is not None else None

        def cur_of(s: _Subject) -> Any:
            return s.current.get(name)

        if "from" in node:
            parts.append(self._compare({"eq": node["from"]}, node.line_of("from"), "from", old_of))
        if "to" in node:
            parts.append(self._compare({"eq": node["to"]}, node.line_of("to"), "to", new_of))
        if "changed" in node:
            want = node["changed"]
            if not isinstance(want, bool):
                raise self.err(node.line_of("changed"), "changed: must be true or false")
            parts.append(lambda s: (not _same(old_of(s), new_of(s))) == want)
        for k, getter in (("old", old_of), ("new", new_of), ("value", cur_of)):
            if k in node:
                parts.append(self._compare(self._spec(node[k], node.line_of(k)), node.line_of(k), k, getter))
        direct = {k: node[k] for k in ("eq", "ne", "in", "not_in", "matches", "exists") if k in node}
        if direct:
            parts.append(self._compare(direct, node.line, "property", cur_of, lines=node))
        if not parts:
            raise self.err(node.line, f"property {name!r}: no comparison (from/to/changed/old/new/eq/...)")
        if len(parts) == 1:
            return parts[0]
        return lambda s: all(p(s) for p in parts)

    def _spec(self, value: Any, line: int) -> Mapping[str, Any]:
        """A comparison mapping as is; a list (or a param naming one) means `in`; a scalar means `eq`."""
        if isinstance(value, LocDict) and "param" not in value:
            return value
        value = self.resolve(value, line)
        return {"in": value} if isinstance(value, list) else {"eq": value}

    def _compare(
        self,
        spec: Mapping[str, Any],
        line: int,
        what: str,
        getter: Callable[[_Subject], Any],
        lines: LocDict | None = None,
    ) -> Cond:
        """eq / ne / in / not_in / matches (glob, case-insensitive) / exists on one value."""
        if not isinstance(spec, Mapping) or not spec:
            raise self.err(line, f"{what}: expected a value or a mapping of eq/ne/in/not_in/matches/exists")
        tests: list[Callable[[Any], bool]] = []
        for op, raw in spec.items():
            oline = (
                lines.line_of(op)
                if lines is not None
                else (spec.line_of(op) if isinstance(spec, LocDict) else line)
            )
            arg = self.resolve(raw, oline)
            tests.append(self._test(op, arg, oline))
        return lambda s: all(t(getter(s)) for t in tests)

    def _test(self, op: str, arg: Any, line: int) -> Callable[[Any], bool]:
        """One comparison as a predicate on a value."""
        if op in ("eq", "ne") and isinstance(arg, Mapping):
            raise self.err(line, f"{op}: must be a scalar or a list, not a mapping")
        if op == "eq":
            if isinstance(arg, list):
                return lambda v: _same(v, arg)
            return lambda v: _any_item(v, lambda x: _same(x, arg))
        if op == "ne":
            return lambda v: not _same(v, arg)
        if op in ("in", "not_in"):
            if not isinstance(arg, list):
                raise self.err(line, f"{op}: must be a list")
            members = list(arg)

            def member(v: Any) -> bool:
                return _any_item(v, lambda x: any(_same(x, y) for y in members))

            return member if op == "in" else (lambda v: not member(v))
        if op == "matches":
            globs = [g.casefold() for g in self._strings(arg, line, "matches", allow_empty=True)]

            def glob(x: Any) -> bool:
                return isinstance(x, str) and any(fnmatch.fnmatchcase(x.casefold(), g) for g in globs)

            return lambda v: _any_item(v, glob)
        if op == "exists":
            if not isinstance(arg, bool):
                raise self.err(line, "exists: must be true or false")
            want: bool = arg
            return lambda v: (v is not None) == want
        raise self.err(line, f"unknown comparison {op!r} (eq|ne|in|not_in|matches|exists)")


def _same(a: Any, b: Any) -> bool:
    """Equality that does not treat True as 1 (YAML `true` must not match a count of 1)."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _any_item(value: Any, test: Callable[[Any], bool]) -> bool:
    """A list-valued property matches when any element does."""
    if isinstance(value, list):
        return any(test(v) for v in value)
    return test(value)


# --- message templates -------------------------------------------------------------------------

_TEMPLATE_ROOTS = {"new", "old", "entity", "from", "to", "change", "rule", "changed"}
_CHANGE_FIELDS = {"op", "type", "key", "kind", "from_key", "to_key"}
_RULE_FIELDS = {"id", "severity", "description"}
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_@$-]+)*$")


@dataclass(frozen=True)
class Template:
    """`{new.displayName}`-style template: dict lookups only, a missing field renders empty."""

    parts: tuple[str | tuple[str, ...], ...]

    @classmethod
    def parse(cls, text: str, file: str, line: int) -> Template:
        parts: list[str | tuple[str, ...]] = []
        buf: list[str] = []
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "{" and text.startswith("{{", i):
                buf.append("{")
                i += 2
            elif ch == "}" and text.startswith("}}", i):
                buf.append("}")
                i += 2
            elif ch == "{":
                end = text.find("}", i)
                if end < 0:
                    raise RuleError(file, line, "message: unclosed '{'")
                field = text[i + 1 : end].strip()
                if not _FIELD_RE.match(field):
                    raise RuleError(file, line, f"message: bad field {{{field}}} (e.g. {{new.displayName}})")
                path = tuple(field.split("."))
                if path[0] not in _TEMPLATE_ROOTS:
                    raise RuleError(
                        file,
                        line,
                        f"message: unknown field root {path[0]!r} ({'|'.join(sorted(_TEMPLATE_ROOTS))})",
                    )
                if path[0] == "change" and (len(path) != 2 or path[1] not in _CHANGE_FIELDS):
                    raise RuleError(
                        file,
                        line,
                        f"message: {{{field}}}: change fields are {'|'.join(sorted(_CHANGE_FIELDS))}",
                    )
                if path[0] == "rule" and (len(path) != 2 or path[1] not in _RULE_FIELDS):
                    raise RuleError(
                        file, line, f"message: {{{field}}}: rule fields are {'|'.join(sorted(_RULE_FIELDS))}"
                    )
                if path[0] == "changed" and len(path) != 1:
                    raise RuleError(file, line, "message: {changed} takes no field")
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(path)
                i = end + 1
            elif ch == "}":
                raise RuleError(file, line, "message: single '}' (write '}}' for a literal brace)")
            else:
                buf.append(ch)
                i += 1
        if buf:
            parts.append("".join(buf))
        return cls(tuple(parts))

    def render(self, roots: Mapping[str, Any]) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            cur: Any = roots.get(part[0])
            for seg in part[1:]:
                cur = cur.get(seg) if isinstance(cur, Mapping) else None
            out.append(_render_value(cur))
        return "".join(out)[:_MAX_MESSAGE_CHARS]


def _render_value(value: Any) -> str:
    if value is None or isinstance(value, Mapping):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_render_value(v) for v in value)
    return str(value)[:_MAX_FIELD_CHARS]


# --- rules and rule sets -----------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One compiled rule."""

    id: str
    severity: str
    description: str
    message: Template
    condition: Cond
    properties: tuple[str, ...]
    """Properties the rule looks at: shown in the alert's change summary for context."""
    line: int


def changed_properties(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """Names of properties whose value differs (internal `_` keys aside), in a stable order."""
    if old is None or new is None:
        return []
    names = sorted((set(old) | set(new)) - {"_mapping"})
    return [n for n in names if not n.startswith("_") and not _same(old.get(n), new.get(n))]


def _safe_value(name: str, value: Any) -> Any:
    if _SECRETISH.search(name):
        return "[redacted]"
    if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS:
        return value[:_MAX_VALUE_CHARS] + "..."
    if isinstance(value, list):
        return [_safe_value("", v) for v in value[:100]]
    if isinstance(value, Mapping):
        return None
    return value


def data_hash(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """Hash of a change's old/new data: same change, same hash (canonical JSON)."""
    blob = json.dumps({"old": old, "new": new}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def alert_id_for(
    rule_id: str, kind: str, key: str, op: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> str:
    """Stable id: a redelivered or replayed change gives the same id, so receivers can deduplicate."""
    material = "\x1f".join((rule_id, kind, key, op, data_hash(old, new)))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _summary(s: _Subject, rule: Rule) -> dict[str, Any]:
    cur = s.current
    out: dict[str, Any] = {
        "kind": s.kind,
        "type": s.type,
        "key": s.key,
        "op": s.op,
        "displayName": _safe_value("displayName", cur.get("displayName")),
    }
    if s.kind == KIND_RELATIONSHIP:
        for side in ("from", "to"):
            end = s.endpoint(side)
            if end is not None:
                out[side] = {
                    "key": end.key,
                    "type": end.type,
                    "displayName": _safe_value("displayName", end.current.get("displayName")),
                }
    changes = {}
    for name in changed_properties(s.old, s.new)[:_MAX_CHANGED]:
        changes[name] = {
            "old": _safe_value(name, (s.old or {}).get(name)),
            "new": _safe_value(name, (s.new or {}).get(name)),
        }
    out["changes"] = changes
    props = {n: _safe_value(n, cur.get(n)) for n in rule.properties if n in cur and not n.startswith("_")}
    if props:
        out["properties"] = props
    return out


def _fire(rule: Rule, s: _Subject, timestamp: float) -> Alert:
    endpoints: dict[str, Any] = {}
    if s.kind == KIND_RELATIONSHIP:
        for side in ("from", "to"):
            end = s.endpoint(side)
            endpoints[side] = end.current if end is not None else None
    roots = {
        "new": s.new,
        "old": s.old,
        "entity": s.current,
        **endpoints,
        "change": {
            "op": s.op,
            "type": s.type,
            "key": s.key,
            "kind": s.kind,
            "from_key": s.from_key,
            "to_key": s.to_key,
        },
        "rule": {"id": rule.id, "severity": rule.severity, "description": rule.description},
        "changed": changed_properties(s.old, s.new),
    }
    return Alert(
        alert_id=alert_id_for(rule.id, s.kind, s.key, s.op or "", s.old, s.new),
        rule_id=rule.id,
        severity=rule.severity,
        message=rule.message.render(roots),
        change=_summary(s, rule),
        timestamp=timestamp,
        description=rule.description,
    )


def _merge_params(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """Config overrides top-level params; mappings merge one level (override `ids`, keep `names`)."""
    out = dict(base)
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            merged = LocDict(out[key])
            merged.line = getattr(out[key], "line", 0)
            merged.key_lines = dict(getattr(out[key], "key_lines", {}))
            merged.update(value)
            out[key] = merged
        else:
            out[key] = value
    return out


DEFAULT_RULES_NAME = "default_rules.yaml"


def default_rules_path() -> Path:
    """The shipped default rule set."""
    return Path(str(resources.files("syncd.alerts").joinpath(DEFAULT_RULES_NAME)))


class RuleSet:
    """A compiled rules file. Build with `load`, `from_text` or `default`; then `evaluate` per diff."""

    def __init__(self, rules: Sequence[Rule], params: Mapping[str, Any], source: str) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.params = dict(params)
        self.source = source

    @classmethod
    def load(cls, path: Path, *, params: Mapping[str, Any] | None = None) -> RuleSet:
        """Load and compile a rules file; raise RuleError (file, line, reason) when it is invalid."""
        return cls._build(load_yaml_file(path), str(path), params)

    @classmethod
    def from_text(
        cls, text: str, *, file: str = "<rules>", params: Mapping[str, Any] | None = None
    ) -> RuleSet:
        """Compile rules from YAML text (tests, embedded sets)."""
        return cls._build(load_yaml(text, file), file, params)

    @classmethod
    def default(cls, *, params: Mapping[str, Any] | None = None) -> RuleSet:
        """The shipped default rule set, with optional param overrides (e.g. privileged_groups)."""
        return cls.load(default_rules_path(), params=params)

    @classmethod
    def _build(cls, doc: Any, file: str, params: Mapping[str, Any] | None) -> RuleSet:
        if not isinstance(doc, LocDict):
            raise RuleError(file, getattr(doc, "line", 1), "the rules file must be a mapping with `rules:`")
        version = doc.get("version", 1)
        if version != 1:
            raise RuleError(file, doc.line_of("version"), f"unsupported version {version!r} (expected 1)")
        raw_rules = doc.get("rules")
        if not isinstance(raw_rules, LocList):
            raise RuleError(file, doc.line_of("rules"), "`rules:` must be a list")
        file_params = {k: v for k, v in doc.items() if k not in ("version", "rules")}
        merged = _merge_params(file_params, params)
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for i, node in enumerate(raw_rules):
            line = raw_rules.line_of(i)
            rule = _compile_rule(node, line, file, merged)
            if rule is None:
                continue
            if rule.id in seen:
                raise RuleError(file, line, f"duplicate rule id {rule.id!r} (first on line {seen[rule.id]})")
            seen[rule.id] = line
            rules.append(rule)
        return cls(rules, merged, file)

    def evaluate(
        self,
        changes: Sequence[ChangeLike],
        lookup: Lookup,
        *,
        baseline: bool = False,
        now: float | None = None,
    ) -> list[Alert]:
        """Alerts fired by this diff, in change order then rule order.

        ``baseline=True`` (a tenant's first full sync) returns nothing: every object would look
        "created", which is noise, not news.
        """
        if baseline or not changes:
            return []
        ts = time.time() if now is None else now
        batch: dict[str, Mapping[str, Any]] = {}
        for c in changes:
            if c.kind == KIND_ENTITY:
                data = c.new if c.new is not None else c.old
                if data is not None:
                    batch[c.key] = data
        resolver = _Resolver(lookup, batch)
        out: list[Alert] = []
        for change in changes:
            subject = _Subject.of_change(change, resolver)
            for rule in self.rules:
                try:
                    fired = rule.condition(subject)
                    if fired:
                        out.append(_fire(rule, subject, ts))
                except Exception as exc:
                    log.error(
                        "alert_rule_failed",
                        rule_id=rule.id,
                        change_key=change.key,
                        change_type=change.type,
                        error=type(exc).__name__,
                    )
        return out

    def rule_ids(self) -> list[str]:
        """Ids of the enabled rules, in file order."""
        return [r.id for r in self.rules]


def _compile_rule(node: Any, line: int, file: str, params: Mapping[str, Any]) -> Rule | None:
    if not isinstance(node, LocDict):
        raise RuleError(file, line, "each rule must be a mapping (id, severity, when, message)")
    for key in node:
        if key not in _RULE_KEYS:
            raise RuleError(
                file, node.line_of(key), f"unknown rule key {key!r} ({'|'.join(sorted(_RULE_KEYS))})"
            )
    rid = node.get("id")
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        raise RuleError(file, node.line_of("id"), "rule `id` is required: letters, digits, _ . - (max 100)")
    enabled = node.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(file, node.line_of("enabled"), f"rule {rid}: enabled must be true or false")
    severity = node.get("severity")
    if severity not in SEVERITIES:
        raise RuleError(
            file, node.line_of("severity"), f"rule {rid}: severity must be one of {'|'.join(SEVERITIES)}"
        )
    message = node.get("message")
    if not isinstance(message, str) or not message.strip():
        raise RuleError(file, node.line_of("message"), f"rule {rid}: `message` is required")
    description = node.get("description", "")
    if not isinstance(description, str):
        raise RuleError(file, node.line_of("description"), f"rule {rid}: description must be a string")
    if "when" not in node:
        raise RuleError(file, node.line, f"rule {rid}: `when` is required")
    compiler = _Compiler(file, params)
    condition = compiler.condition(node["when"], node.line_of("when"), "change")
    template = Template.parse(message, file, node.line_of("message"))
    if not enabled:
        return None
    return Rule(rid, str(severity), description, template, condition, tuple(compiler.properties), node.line)


def iter_changes(items: Iterable[Mapping[str, Any]]) -> list[ChangeLike]:
    """Build Changes from JSON mappings (the `syncd alerts test` sample format)."""
    from syncd.alerts.types import SampleChange

    out: list[ChangeLike] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"change #{i}: must be an object")
        old = item.get("old")
        new = item.get("new")
        data = new if isinstance(new, Mapping) else old if isinstance(old, Mapping) else {}
        type_ = item.get("type") or data.get("_type")
        key = item.get("key") or data.get("_key")
        op = item.get("op")
        if not isinstance(type_, str) or not isinstance(key, str):
            raise ValueError(f"change #{i}: needs `type` and `key` (or _type/_key in old/new)")
        if op not in OPS:
            op = "created" if old is None else "deleted" if new is None else "updated"
        kind = item.get("kind") or (
            KIND_RELATIONSHIP
            if type_ in RELATIONSHIP_TYPE_BY_NAME or "_fromEntityKey" in data
            else KIND_ENTITY
        )
        out.append(
            SampleChange(
                kind=str(kind),
                op=str(op),
                type=type_,
                key=key,
                old=old if isinstance(old, Mapping) else None,
                new=new if isinstance(new, Mapping) else None,
                from_key=item.get("from_key") or _str_or_none(data.get("_fromEntityKey")),
                to_key=item.get("to_key") or _str_or_none(data.get("_toEntityKey")),
            )
        )
    return out
