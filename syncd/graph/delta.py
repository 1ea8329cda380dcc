"""Delta query rounds (users, groups, devices): pages until a deltaLink.

What callers must know (microsoft-graph.md §3):

* Pages may be empty and still carry a nextLink; the round ends only at the page that carries
  ``@odata.deltaLink``. Persist that link only after the whole round is applied.
* Order is not guaranteed and **the same object can appear more than once in a round**, on any
  page. A large group is repeated on several pages, each time with another slice of
  ``members@delta``. Merging is the caller's job: stage every page into the mirror by id.
* A removed object is ``{"id": ..., "@removed": {"reason": "changed" | "deleted"}}``; the same
  annotation marks removed members inside ``members@delta``.
* A dead token raises :class:`~syncd.graph.errors.DeltaResetRequired`: restart with a full round.
* A ``$select`` property delta does not support is refused when a round starts: 400 naming the
  properties (older docs: 501 NotImplemented). :func:`refused_select` tells which ones, from the
  message or, when it does not name them, by probing ``$deltatoken=latest`` requests (no data).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from syncd.graph.client import GraphClient
from syncd.graph.errors import DeltaResetRequired, GraphError

_NAMED = re.compile(r"following properties\s*:\s*(.+)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class DeltaPage:
    """One page of a delta round; exactly one of the links is set, except on odd responses."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    delta_link: str | None = None
    next_link: str | None = None


async def delta_pages(
    client: GraphClient, url: str, *, headers: dict[str, str] | None = None
) -> AsyncIterator[DeltaPage]:
    """Every page of a delta round starting at ``url`` (an initial path or a stored deltaLink).

    The last page yields the deltaLink. ``headers`` (e.g. ``Prefer: return=minimal``) are sent on
    every page. A page with neither link ends the round with ``delta_link=None``; the caller
    must then not advance its cursor.
    """
    current: str | None = url
    while current is not None:
        page = await client.get(current, headers=headers)
        values = page.get("value")
        objects = [o for o in values if isinstance(o, dict)] if isinstance(values, list) else []
        next_link = page.get("@odata.nextLink")
        delta_link = page.get("@odata.deltaLink")
        next_link = next_link if isinstance(next_link, str) and next_link else None
        delta_link = delta_link if isinstance(delta_link, str) and delta_link else None
        yield DeltaPage(objects=objects, delta_link=delta_link, next_link=next_link)
        current = next_link if delta_link is None else None


def _select_query(select: Sequence[str]) -> str:
    fields = [s for s in dict.fromkeys(select) if s]
    return "$select=" + ",".join(quote(f, safe="@.") for f in fields) if fields else ""


def _delta_path(resource: str, version: str) -> str:
    path = "/" + resource.strip("/") + "/delta"
    return path if version == "v1.0" else f"/{version}{path}"


def initial_delta_url(resource: str, select: Sequence[str], version: str = "v1.0") -> str:
    """Start of a full round, e.g. ``/users/delta?$select=id,displayName``.

    For groups include ``members`` in ``select`` to get ``members@delta``. Non-v1.0 versions
    are put into the path (``/beta/users/delta``) so the string alone is enough for the client.
    """
    query = _select_query(select)
    path = _delta_path(resource, version)
    return f"{path}?{query}" if query else path


def latest_delta_url(resource: str, select: Sequence[str], version: str = "v1.0") -> str:
    """'Sync from now': a deltaLink with no data (``$deltatoken=latest``)."""
    query = _select_query(select)
    path = _delta_path(resource, version)
    return f"{path}?{query}&$deltatoken=latest" if query else f"{path}?$deltatoken=latest"


def is_removed(obj: dict[str, Any]) -> str | None:
    """The removal reason (``changed`` = soft-deleted, ``deleted`` = gone), or None if present."""
    removed = obj.get("@removed")
    if removed is None:
        return None
    if isinstance(removed, dict):
        reason = removed.get("reason")
        if isinstance(reason, str) and reason:
            return reason
    return "deleted"


def members_delta(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """This page's slice of ``members@delta`` (added members plain, removed ones with @removed).

    Only a slice: the same group may come again later in the round with more members.
    """
    members = obj.get("members@delta")
    if not isinstance(members, list):
        return []
    return [m for m in members if isinstance(m, dict)]


def select_refused(exc: BaseException) -> bool:
    """Whether a failed start of a delta round looks like a refused ``$select`` (400 / 501)."""
    if not isinstance(exc, GraphError) or isinstance(exc, DeltaResetRequired):
        return False
    if exc.status == 501:
        return True
    text = f"{exc.code} {exc.message}".lower()
    return exc.status == 400 and ("select" in text or "delta" in text or "not supported" in text)


def named_in_error(exc: GraphError, select: Sequence[str]) -> list[str]:
    """The selected properties an error message names as unsupported (case-insensitive)."""
    found = _NAMED.search(exc.message or "")
    if found is None:
        return []
    named = {w.strip(".").lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_@.]*", found.group(1))}
    return [s for s in select if s.lower() in named]


async def refused_select(
    client: GraphClient,
    resource: str,
    select: Sequence[str],
    error: GraphError,
    *,
    keep: Sequence[str] = ("id",),
    max_probes: int = 40,
) -> list[str]:
    """Which of ``select`` the delta of ``resource`` refuses: named in ``error``, else found by
    bisecting ``$deltatoken=latest`` probes (cheap: no data). ``keep`` is never probed away; [] if
    nothing can be pinned down (the caller then reports the original error)."""
    named = [s for s in named_in_error(error, select) if s not in keep]
    if named:
        return named
    probes = 0

    async def accepted(fields: Sequence[str]) -> bool:
        nonlocal probes
        probes += 1
        try:
            await client.get(latest_delta_url(resource, [*keep, *fields]))
        except GraphError as exc:
            if select_refused(exc):
                return False
            raise
        return True

    if not await accepted([]):
        return []  # even the bare minimum is refused: not a property problem we can fix
    refused: list[str] = []

    async def search(fields: list[str]) -> None:
        if not fields or probes >= max_probes or await accepted(fields):
            return
        if len(fields) == 1:
            refused.append(fields[0])
            return
        middle = len(fields) // 2
        await search(fields[:middle])
        await search(fields[middle:])

    await search([s for s in select if s not in keep])
    return refused
