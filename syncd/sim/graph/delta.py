"""Delta query for users, groups and devices.

A round is computed from the tenant's change log when its first page is requested and kept
server-side; `$skiptoken`s address its pages and the final `$deltatoken` records (resource,
$select, $filter, watermark, issuedAt). Objects are rendered from current state when a page is
served, as the real service does (replication is not a snapshot).

Replication delay (`replication_delay_min/max`): a change is visible to delta only once its own
random delay has passed. A round reports the visible changes; the token's watermark stops before
the first change still invisible, and the visible ones after it are remembered in the token, so
the late change comes in a later round and nothing is reported twice. A full round leaves out
objects whose creation is not visible yet.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from syncd.sim.graph import odata
from syncd.sim.graph.faults import DeltaSelectError
from syncd.sim.graph.keys import GRAPH_SIM

if TYPE_CHECKING:
    from syncd.sim.graph.app import GraphSim
    from syncd.sim.tenant import ChangeRecord

SYNC_STATE_MSG = (
    "The sync state generation is not found. The delta token is expired and data must be synchronized again."
)
RESYNC_MSG = "The delta token is no longer valid, app must reset sync state."
_FILTER_TERM = re.compile(r"^\s*id\s+eq\s+'([^']+)'\s*$", re.IGNORECASE)
_ALLOWED = {"$select", "$filter", "$deltatoken", "$skiptoken", "$top"}
_MAX_ROUNDS = 256
_TOP_NOT_SUPPORTED = ("users", "groups")
"""The delta overview: `$top` is not supported for users and groups."""

DELTA_UNSUPPORTED_SELECT: dict[str, frozenset[str]] = {
    "users": frozenset(
        {
            # stored outside the directory (SharePoint / Exchange) or not tracked by delta
            "aboutMe",
            "birthday",
            "hireDate",
            "interests",
            "mySite",
            "pastProjects",
            "preferredName",
            "responsibilities",
            "schools",
            "skills",
            "mailboxSettings",
            "signInActivity",
        }
    ),
    "groups": frozenset(
        {
            # Exchange-side group settings: "supported only on the Get group API"
            "allowExternalSenders",
            "autoSubscribeNewMembers",
            "hideFromAddressLists",
            "hideFromOutlookClients",
            "isSubscribedByMail",
            "unseenCount",
        }
    ),
}
"""Properties that delta refuses in `$select` (400, microsoft-graph.md addendum: seen for
`birthday` and `signInActivity`)."""

# item: (obj_id, kind, changed props or None, members@delta slice or None); kind: full|partial|changed|deleted
Item = tuple[str, str, frozenset[str] | None, list[tuple[str, bool]] | None]


@dataclass(frozen=True)
class DeltaToken:
    """Server-side state behind a `$deltatoken`: every change up to `seq` was reported, and so
    were the changes in `seen` (later ones that became visible before an earlier one)."""

    resource: str
    select: tuple[str, ...] | None
    ids: tuple[str, ...] | None
    seq: int
    issued_at: float
    seen: frozenset[int] = frozenset()


@dataclass
class Round:
    """Pages of one delta round (addressed by `$skiptoken`)."""

    resource: str
    select: tuple[str, ...] | None
    ids: tuple[str, ...] | None
    upto: int
    created_at: float
    pages: list[list[Item]] = field(default_factory=list)
    seen: frozenset[int] = frozenset()


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
            raise odata.QueryError(
                "Request_UnsupportedQuery",
                "Unsupported query: delta $filter supports only 'id eq' terms combined with 'or'.",
            )
        ids.append(m.group(1))
    if resource in ("users", "groups") and len(ids) > 50:
        raise odata.QueryError("Request_UnsupportedQuery", "Too many ids in $filter: the maximum is 50.")
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

    def _dead_error(
        self,
        request: web.Request,
        why: str,
        resource: str,
        select: tuple[str, ...] | None,
        ids: tuple[str, ...] | None,
    ) -> odata.GraphError:
        if why == "410":
            location = self._initial_url(request, resource, select, ids) + "$deltatoken="
            return odata.GraphError(410, "resyncRequired", RESYNC_MSG, {"Location": location})
        return _sync_state_not_found()

    def _initial_url(
        self, request: web.Request, resource: str, select: tuple[str, ...] | None, ids: tuple[str, ...] | None
    ) -> str:
        q = []
        if select is not None:
            q.append("$select=" + quote(",".join(select), safe=","))
        if ids is not None:
            q.append("$filter=" + quote(" or ".join(f"id eq '{i}'" for i in ids), safe=""))
        return f"{odata.base_url(request)}{request.path}?" + "".join(p + "&" for p in q)

    # ---------------------------------------------------------------- handler
    async def handle(self, request: web.Request) -> web.Response:
        """GET /{ver}/{users|groups|devices}/delta (and /microsoft.graph.delta)."""
        resource = request.path.split("/")[2]
        q = request.query
        for key in q:
            if key.startswith("$") and key.lower() not in _ALLOWED:
                raise odata.QueryError(
                    "Request_UnsupportedQuery",
                    f"The query option '{key}' is not supported with delta queries.",
                )
        select = odata.parse_select(q.get("$select"), resource)
        _check_delta_select(select, resource, self.sim.faults.delta_select_error)
        ids = parse_filter(q.get("$filter"), resource)
        if "$top" in q and resource in _TOP_NOT_SUPPORTED and self.sim.faults.delta_top != "ignore":
            raise odata.QueryError(
                "Request_UnsupportedQuery",
                f"The query option '$top' is not supported with delta queries on {resource}.",
            )
        skip = q.get("$skiptoken")
        token = q.get("$deltatoken")
        if (skip is not None or token not in (None, "", "latest")) and (
            select is not None or ids is not None
        ):
            raise odata.GraphError(
                400,
                "BadRequest",
                "Query options cannot be combined with $skiptoken or $deltatoken: the token "
                "already encodes the original query.",
            )
        if skip is not None:
            return self._serve_skip(request, resource, skip)
        if token == "latest":  # noqa: S105 - the documented "sync from now" keyword
            watermark, seen, _invisible = self._visibility(resource)
            return self._final(request, resource, select, ids, watermark, [], seen)
        if token:
            state = self.tokens.get(token)
            if state is None or state.resource != resource:
                raise _sync_state_not_found()
            why = self._dead(state.issued_at)
            if why:
                raise self._dead_error(request, why, resource, state.select, state.ids)
            rnd = self._build(resource, state.select, state.ids, state)
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
            raise _sync_state_not_found()
        why = self._dead(rnd.created_at)
        if why:
            raise self._dead_error(request, why, resource, rnd.select, rnd.ids)
        return self._serve_page(request, rid, rnd, int(page_s))

    def _serve_page(self, request: web.Request, rid: str, rnd: Round, idx: int) -> web.Response:
        minimal = "return=minimal" in request.headers.get("Prefer", "").replace(" ", "")
        values = [self._render(rnd, item, minimal) for item in rnd.pages[idx]]
        if idx + 1 < len(rnd.pages):
            body = {
                "@odata.context": odata.context_url(request, rnd.resource, rnd.select),
                "@odata.nextLink": f"{odata.base_url(request)}{request.path}?$skiptoken={rid}{idx + 1}",
                "value": values,
            }
            resp = odata.json_response(body)
        else:
            resp = self._final(request, rnd.resource, rnd.select, rnd.ids, rnd.upto, values, rnd.seen)
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
        seen: frozenset[int] = frozenset(),
    ) -> web.Response:
        tok = secrets.token_urlsafe(32)
        self.tokens[tok] = DeltaToken(resource, select, ids, seq, self.sim.clock(), seen)
        body = {
            "@odata.context": odata.context_url(request, resource, select),
            "@odata.deltaLink": f"{odata.base_url(request)}{request.path}?$deltatoken={tok}",
            "value": values,
        }
        return odata.json_response(body)

    # ---------------------------------------------------------------- round construction
    def _tracked(self, resource: str, select: tuple[str, ...] | None) -> set[str] | None:
        if select is not None:
            return {s for s in select if s not in ("members", "owners", "manager")}
        default = odata.default_props(resource)
        return set(default) if default is not None else None

    # ---------------------------------------------------------------- replication delay
    def delay_of(self, seq: int) -> float:
        """The replication delay of change `seq`: random per change, stable for a seed."""
        f = self.sim.faults
        if f.replication_delay_max <= 0:
            return 0.0
        low = min(f.replication_delay_min, f.replication_delay_max)
        digest = hashlib.blake2b(f"{f.seed}:{seq}".encode(), digest_size=8).digest()
        fraction = int.from_bytes(digest, "big") / 2.0**64
        return low + (f.replication_delay_max - low) * fraction

    def visible(self, rec: ChangeRecord, now: float | None = None) -> bool:
        """Whether delta already shows this change."""
        return rec.at + self.delay_of(rec.seq) <= (self.sim.clock() if now is None else now)

    def _visibility(self, resource: str) -> tuple[int, frozenset[int], list[ChangeRecord]]:
        """(watermark, visible seqs after it, invisible records) of the resource's log now.

        Only the log's recent tail can hold invisible changes (older than the maximum delay).
        """
        tenant = self.sim.tenant
        horizon = self.sim.faults.replication_delay_max
        if horizon <= 0:
            return tenant.seq, frozenset(), []
        now = self.sim.clock()
        tail: list[ChangeRecord] = []
        for rec in reversed(tenant.log[resource]):
            if rec.at + horizon < now:
                break
            tail.append(rec)
        tail.reverse()
        invisible = [r for r in tail if not self.visible(r, now)]
        if not invisible:
            return tenant.seq, frozenset(), []
        watermark = invisible[0].seq - 1
        seen = frozenset(r.seq for r in tail if r.seq > watermark and self.visible(r, now))
        return watermark, seen, invisible

    def _pending(self, resource: str, state: DeltaToken) -> tuple[list[ChangeRecord], int, frozenset[int]]:
        """The changes a round from `state` reports, with the next token's watermark and seen set."""
        now = self.sim.clock()
        upto = self.sim.tenant.seq
        records = self.sim.tenant.changes_since(resource, state.seq, upto)
        report: list[ChangeRecord] = []
        watermark = state.seq
        blocked = False
        seen: set[int] = set()
        for rec in records:
            shown = self.visible(rec, now)
            if shown and rec.seq not in state.seen:
                report.append(rec)
            if not shown:
                blocked = True
            elif blocked:
                seen.add(rec.seq)
            else:
                watermark = rec.seq
        if not blocked:
            watermark = upto
        return report, watermark, frozenset(seen)

    def _build(
        self,
        resource: str,
        select: tuple[str, ...] | None,
        ids: tuple[str, ...] | None,
        since: DeltaToken | None,
    ) -> Round:
        tenant = self.sim.tenant
        faults = self.sim.faults
        rng = self.sim.injector.rng
        with_members = resource == "groups" and select is not None and "members" in select
        wanted = set(ids) if ids is not None else None
        items: list[Item] = []
        if since is None:
            upto, seen, invisible = self._visibility(resource)
            unborn = {r.obj_id for r in invisible if r.kind in ("created", "restored")}
            for obj in tenant.list(resource):
                oid = obj["id"]
                if (wanted is not None and oid not in wanted) or oid in unborn:
                    continue
                members = [(m, False) for m in tenant.member_ids(oid)] if with_members else None
                items.append((oid, "full", None, members or None))
        else:
            records, upto, seen = self._pending(resource, since)
            items = self._changes(resource, records, wanted, with_members, self._tracked(resource, select))
            if faults.replay_rate > 0:
                replays: list[Item] = [
                    (it[0], "full", None, None)
                    for it in items
                    if it[1] in ("full", "partial") and rng.random() < faults.replay_rate
                ]
                for rec in tenant.changes_since(
                    resource, max(0, since.seq - faults.delta_page_size), since.seq
                ):
                    live = tenant.get(resource, rec.obj_id) is not None
                    if (
                        live
                        and (wanted is None or rec.obj_id in wanted)
                        and rng.random() < faults.replay_rate
                    ):
                        replays.append((rec.obj_id, "full", None, None))
                items.extend(replays)
        rnd = Round(resource, select, ids, upto, self.sim.clock(), seen=seen)
        rnd.pages = self._paginate(items)
        return rnd

    def _changes(
        self,
        resource: str,
        records: list[ChangeRecord],
        wanted: set[str] | None,
        with_members: bool,
        tracked: set[str] | None,
    ) -> list[Item]:
        tenant = self.sim.tenant
        aggs: dict[str, _Agg] = {}
        for rec in records:
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
            out = odata.project(obj, rnd.select, odata.default_props(rnd.resource))
        if members is not None:
            md = []
            for mid, removed in members:
                entry: dict[str, Any] = {"@odata.type": tenant.odata_type_of(mid), "id": mid}
                if removed:
                    entry["@removed"] = {"reason": "deleted"}
                md.append(entry)
            out["members@delta"] = md
        return out


def _sync_state_not_found() -> odata.GraphError:
    """A token (or page) the service no longer knows."""
    return odata.GraphError(400, "syncStateNotFound", SYNC_STATE_MSG)


def _check_delta_select(
    select: tuple[str, ...] | None, resource: str, form: DeltaSelectError = "400"
) -> None:
    """400 for `$select` properties delta does not support (the real message lists them); the
    `delta_select_error` switch gives the other readings (a bare 400, the older 501)."""
    refused = [p for p in select or () if p in DELTA_UNSUPPORTED_SELECT.get(resource, frozenset())]
    if not refused:
        return
    if form == "501":
        raise odata.QueryError("NotImplemented", "This operation target is not yet supported.", status=501)
    if form == "400-bare":
        raise odata.QueryError("BadRequest", "Invalid request for delta query.")
    raise odata.QueryError(
        "BadRequest",
        "Invalid request for delta query: $select is not supported for the following "
        f"properties: {', '.join(refused)}.",
    )


async def delta_handler(request: web.Request) -> web.Response:
    """Route entry point."""
    return await request.app[GRAPH_SIM].delta.handle(request)


def register_delta_routes(app: web.Application) -> None:
    """Both `/delta` and `/microsoft.graph.delta` forms, under both version roots."""
    for ver in ("v1.0", "beta"):
        for res in ("users", "groups", "devices"):
            app.router.add_get(f"/{ver}/{res}/delta", delta_handler)
            app.router.add_get(f"/{ver}/{res}/microsoft.graph.delta", delta_handler)
