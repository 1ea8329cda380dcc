"""Delta query for users, groups and devices.

A round is computed from the tenant's change log when its first page is requested (snapshot
sequence `upto`) and kept server-side; `$skiptoken`s address its pages and the final
`$deltatoken` records (resource, $select, $filter, upto, issuedAt). Objects are rendered from
current state when a page is served, as the real service does (replication is not a snapshot).
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from syncd.sim.graph.keys import GRAPH_SIM
from syncd.sim.graph.odata import (
    QueryError,
    base_url,
    context_url,
    default_props,
    graph_error,
    json_response,
    parse_select,
    project,
)

if TYPE_CHECKING:
    from syncd.sim.graph.app import GraphSim

SYNC_STATE_MSG = (
    "The sync state generation is not found. The delta token is expired and data must be synchronized again."
)
RESYNC_MSG = "The delta token is no longer valid, app must reset sync state."
_FILTER_TERM = re.compile(r"^\s*id\s+eq\s+'([^']+)'\s*$", re.IGNORECASE)
_ALLOWED = {"$select", "$filter", "$deltatoken", "$skiptoken", "$top"}
_MAX_ROUNDS = 256

# item: (obj_id, kind, changed props or None, members@delta slice or None); kind: full|partial|changed|deleted
Item = tuple[str, str, frozenset[str] | None, list[tuple[str, bool]] | None]


@dataclass(frozen=True)
class DeltaToken:
    """Server-side state behind a `$deltatoken`."""

    resource: str
    select: tuple[str, ...] | None
    ids: tuple[str, ...] | None
    seq: int
    issued_at: float


@dataclass
class Round:
    """Pages of one delta round (addressed by `$skiptoken`)."""

    resource: str
    select: tuple[str, ...] | None
    ids: tuple[str, ...] | None
    upto: int
    created_at: float
    pages: list[list[Item]] = field(default_factory=list)


@dataclass
class _Agg:
    created: bool = False
    restored: bool = False
    props: set[str] = field(default_factory=set)
    members: dict[str, list[bool]] = field(default_factory=dict)  # mid -> [first_is_add, last_is_add]


def parse_filter(raw: str | None, resource: str) -> tuple[str, ...] | None:
    """Only `id eq '…'` terms OR-combined; at most 50 for users/groups."""
    if raw is None:
        return None
    ids = []
    for term in re.split(r"\s+or\s+", raw.strip(), flags=re.IGNORECASE):
        m = _FILTER_TERM.match(term)
        if m is None:
            raise QueryError(
                "Request_UnsupportedQuery",
                "Unsupported query: delta $filter supports only 'id eq' terms combined with 'or'.",
            )
        ids.append(m.group(1))
    if resource in ("users", "groups") and len(ids) > 50:
        raise QueryError("Request_UnsupportedQuery", "Too many ids in $filter: the maximum is 50.")
    return tuple(ids)


class DeltaEngine:
    """Tokens, rounds and page rendering for /{resource}/delta."""

    def __init__(self, sim: GraphSim) -> None:
        self.sim = sim
        self.tokens: dict[str, DeltaToken] = {}
        self.rounds: OrderedDict[str, Round] = OrderedDict()
        self.expired_before: float = 0.0
        self.resync_since: float | None = None

    # ---------------------------------------------------------------- admin knobs
    def expire_all(self) -> None:
        """Every token issued so far answers 400 syncStateNotFound."""
        self.expired_before = self.sim.clock() + 1e-6

    def set_resync(self, on: bool) -> None:
        """410 mode: tokens issued before switching on answer 410 resyncRequired."""
        self.resync_since = self.sim.clock() + 1e-6 if on else None

    # ---------------------------------------------------------------- state checks
    def _dead(self, issued_at: float) -> str | None:
        if self.resync_since is not None and issued_at < self.resync_since:
            return "410"
        if (
            issued_at < self.expired_before
            or self.sim.clock() - issued_at > self.sim.faults.delta_token_ttl_seconds
        ):
            return "400"
        return None

    def _dead_response(
        self,
        request: web.Request,
        why: str,
        resource: str,
        select: tuple[str, ...] | None,
        ids: tuple[str, ...] | None,
    ) -> web.Response:
        if why == "410":
            location = self._initial_url(request, resource, select, ids) + "$deltatoken="
            return graph_error(request, 410, "resyncRequired", RESYNC_MSG, {"Location": location})
        return graph_error(request, 400, "syncStateNotFound", SYNC_STATE_MSG)

    def _initial_url(
        self, request: web.Request, resource: str, select: tuple[str, ...] | None, ids: tuple[str, ...] | None
    ) -> str:
        q = []
        if select is not None:
            q.append("$select=" + quote(",".join(select), safe=","))
        if ids is not None:
            q.append("$filter=" + quote(" or ".join(f"id eq '{i}'" for i in ids), safe=""))
        return f"{base_url(request)}{request.path}?" + "".join(p + "&" for p in q)

    # ---------------------------------------------------------------- handler
    async def handle(self, request: web.Request) -> web.Response:
        """GET /{ver}/{users|groups|devices}/delta (and /microsoft.graph.delta)."""
        resource = request.path.split("/")[2]
        q = request.query
        try:
            for key in q:
                if key.startswith("$") and key.lower() not in _ALLOWED:
                    raise QueryError(
                        "Request_UnsupportedQuery",
                        f"The query option '{key}' is not supported with delta queries.",
                    )
            select = parse_select(q.get("$select"), resource)
            ids = parse_filter(q.get("$filter"), resource)
        except QueryError as e:
            return graph_error(request, e.status, e.code, e.message)
        skip = q.get("$skiptoken")
        token = q.get("$deltatoken")
        if (skip is not None or token not in (None, "", "latest")) and (
            select is not None or ids is not None
        ):
            return graph_error(
                request,
                400,
                "BadRequest",
                "Query options cannot be combined with $skiptoken or $deltatoken: the token "
                "already encodes the original query.",
            )
        if skip is not None:
            return self._serve_skip(request, resource, skip)
        if token == "latest":  # noqa: S105 - the documented "sync from now" keyword
            return self._final(request, resource, select, ids, self.sim.tenant.seq, [])
        if token:
            state = self.tokens.get(token)
            if state is None or state.resource != resource:
                return graph_error(request, 400, "syncStateNotFound", SYNC_STATE_MSG)
            why = self._dead(state.issued_at)
            if why:
                return self._dead_response(request, why, resource, state.select, state.ids)
            rnd = self._build(resource, state.select, state.ids, state.seq)
        else:
            rnd = self._build(resource, select, ids, None)
        rid = secrets.token_urlsafe(24)
        self.rounds[rid] = rnd
        while len(self.rounds) > _MAX_ROUNDS:
            self.rounds.popitem(last=False)
        return self._serve_page(request, rid, rnd, 0)

    def _serve_skip(self, request: web.Request, resource: str, skip: str) -> web.Response:
        rid, page_s = skip[:32], skip[32:]
        rnd = self.rounds.get(rid)
        if rnd is None or rnd.resource != resource or not page_s.isdigit() or int(page_s) >= len(rnd.pages):
            return graph_error(request, 400, "syncStateNotFound", SYNC_STATE_MSG)
        why = self._dead(rnd.created_at)
        if why:
            return self._dead_response(request, why, resource, rnd.select, rnd.ids)
        return self._serve_page(request, rid, rnd, int(page_s))

    def _serve_page(self, request: web.Request, rid: str, rnd: Round, idx: int) -> web.Response:
        minimal = "return=minimal" in request.headers.get("Prefer", "").replace(" ", "")
        values = [self._render(rnd, item, minimal) for item in rnd.pages[idx]]
        if idx + 1 < len(rnd.pages):
            body = {
                "@odata.context": context_url(request, rnd.resource, rnd.select),
                "@odata.nextLink": f"{base_url(request)}{request.path}?$skiptoken={rid}{idx + 1}",
                "value": values,
            }
            resp = json_response(body)
        else:
            resp = self._final(request, rnd.resource, rnd.select, rnd.ids, rnd.upto, values)
        if minimal:
            resp.headers["Preference-Applied"] = "return=minimal"
        return resp

    def _final(
        self,
        request: web.Request,
        resource: str,
        select: tuple[str, ...] | None,
        ids: tuple[str, ...] | None,
        seq: int,
        values: list[dict[str, Any]],
    ) -> web.Response:
        tok = secrets.token_urlsafe(32)
        self.tokens[tok] = DeltaToken(resource, select, ids, seq, self.sim.clock())
        body = {
            "@odata.context": context_url(request, resource, select),
            "@odata.deltaLink": f"{base_url(request)}{request.path}?$deltatoken={tok}",
            "value": values,
        }
        return json_response(body)

    # ---------------------------------------------------------------- round construction
    def _tracked(self, resource: str, select: tuple[str, ...] | None) -> set[str] | None:
        if select is not None:
            return {s for s in select if s not in ("members", "owners", "manager")}
        default = default_props(resource)
        return set(default) if default is not None else None

    def _build(
        self, resource: str, select: tuple[str, ...] | None, ids: tuple[str, ...] | None, since: int | None
    ) -> Round:
        tenant = self.sim.tenant
        faults = self.sim.faults
        rng = self.sim.injector.rng
        upto = tenant.seq
        with_members = resource == "groups" and select is not None and "members" in select
        wanted = set(ids) if ids is not None else None
        items: list[Item] = []
        if since is None:
            for obj in tenant.list(resource):
                oid = obj["id"]
                if wanted is not None and oid not in wanted:
                    continue
                members = [(m, False) for m in tenant.member_ids(oid)] if with_members else None
                items.append((oid, "full", None, members or None))
        else:
            items = self._changes(
                resource, since, upto, wanted, with_members, self._tracked(resource, select)
            )
            if faults.replay_rate > 0:
                replays: list[Item] = [
                    (it[0], "full", None, None)
                    for it in items
                    if it[1] in ("full", "partial") and rng.random() < faults.replay_rate
                ]
                for rec in tenant.changes_since(resource, max(0, since - faults.delta_page_size), since):
                    live = tenant.get(resource, rec.obj_id) is not None
                    if (
                        live
                        and (wanted is None or rec.obj_id in wanted)
                        and rng.random() < faults.replay_rate
                    ):
                        replays.append((rec.obj_id, "full", None, None))
                items.extend(replays)
        rnd = Round(resource, select, ids, upto, self.sim.clock())
        rnd.pages = self._paginate(items)
        return rnd

    def _changes(
        self,
        resource: str,
        since: int,
        upto: int,
        wanted: set[str] | None,
        with_members: bool,
        tracked: set[str] | None,
    ) -> list[Item]:
        tenant = self.sim.tenant
        aggs: dict[str, _Agg] = {}
        for rec in tenant.changes_since(resource, since, upto):
            if wanted is not None and rec.obj_id not in wanted:
                continue
            agg = aggs.setdefault(rec.obj_id, _Agg())
            if rec.kind == "created":
                agg.created = True
            elif rec.kind == "restored":
                agg.restored = True
            elif rec.kind == "updated":
                agg.props |= rec.props
            elif rec.kind in ("member_added", "member_removed") and rec.member_id is not None:
                is_add = rec.kind == "member_added"
                ops = agg.members.setdefault(rec.member_id, [is_add, is_add])
                ops[1] = is_add
        items: list[Item] = []
        for oid, agg in aggs.items():
            if tenant.get(resource, oid) is None:
                gone = tenant.get_deleted(resource, oid) is None
                items.append((oid, "deleted" if gone else "changed", None, None))
                continue
            if agg.created or agg.restored:
                members = [(m, False) for m in tenant.member_ids(oid)] if with_members else None
                items.append((oid, "full", None, members or None))
                continue
            hit = agg.props if tracked is None else agg.props & tracked
            mdelta: list[tuple[str, bool]] = []
            if with_members:
                for mid, (first_add, last_add) in agg.members.items():
                    start_present = not first_add
                    if start_present != last_add:
                        mdelta.append((mid, not last_add))
            if hit or mdelta:
                items.append((oid, "partial", frozenset(hit), mdelta or None))
        return items

    def _paginate(self, items: list[Item]) -> list[list[Item]]:
        faults = self.sim.faults
        size = max(1, faults.delta_page_size)
        slice_n = max(1, faults.members_slice)
        pages: list[list[Item]] = []
        cur: list[Item] = []

        def close() -> None:
            nonlocal cur
            if faults.empty_page_rate > 0 and self.sim.injector.rng.random() < faults.empty_page_rate:
                pages.append([])
            pages.append(cur)
            cur = []

        for oid, kind, props, members in items:
            if members is not None and len(members) > slice_n:
                chunks = [members[i : i + slice_n] for i in range(0, len(members), slice_n)]
                for n, chunk in enumerate(chunks):
                    cur.append((oid, kind, props, chunk))
                    if n + 1 < len(chunks) or len(cur) >= size:
                        close()
                continue
            cur.append((oid, kind, props, members))
            if len(cur) >= size:
                close()
        if cur or not pages:
            close()
        return pages

    def _render(self, rnd: Round, item: Item, minimal: bool) -> dict[str, Any]:
        tenant = self.sim.tenant
        oid, kind, props, members = item
        obj = tenant.get(rnd.resource, oid) if kind in ("full", "partial") else None
        if obj is None:
            if kind in ("full", "partial"):
                kind = "changed" if tenant.get_deleted(rnd.resource, oid) is not None else "deleted"
            return {"id": oid, "@removed": {"reason": kind}}
        if kind == "partial" and minimal:
            out: dict[str, Any] = {"id": oid}
            for k in sorted(props or ()):
                out[k] = obj.get(k)
        else:
            out = project(obj, rnd.select, default_props(rnd.resource))
        if members is not None:
            md = []
            for mid, removed in members:
                entry: dict[str, Any] = {"@odata.type": tenant.odata_type_of(mid), "id": mid}
                if removed:
                    entry["@removed"] = {"reason": "deleted"}
                md.append(entry)
            out["members@delta"] = md
        return out


async def delta_handler(request: web.Request) -> web.Response:
    """Route entry point."""
    return await request.app[GRAPH_SIM].delta.handle(request)


def register_delta_routes(app: web.Application) -> None:
    """Both `/delta` and `/microsoft.graph.delta` forms, under both version roots."""
    for ver in ("v1.0", "beta"):
        for res in ("users", "groups", "devices"):
            app.router.add_get(f"/{ver}/{res}/delta", delta_handler)
            app.router.add_get(f"/{ver}/{res}/microsoft.graph.delta", delta_handler)
