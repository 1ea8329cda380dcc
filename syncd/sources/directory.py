"""Users, groups (with members) and Entra devices, followed by delta query.

A round starts from the stored deltaLink (or from scratch: a *full* round), stages every page in
the mirror, and commits the changes together with the new deltaLink in one transaction. A token
that Graph no longer knows (``syncStateNotFound``, ``resyncRequired``, 410) discards the round and
starts a full one, whose sweep removes whatever was not seen (mark and sweep).

A full round whose ``$select`` Graph refuses (400 naming properties delta does not support; 501
in older docs) is started again without them, and the log says which properties are no longer
tracked; their J1 properties then stay empty instead of the whole source failing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import structlog

from syncd.graph.delta import (
    delta_pages,
    initial_delta_url,
    is_removed,
    members_delta,
    refused_select,
    select_refused,
)
from syncd.graph.errors import DeltaResetRequired, GraphError
from syncd.mirror import RoundWriter
from syncd.model import schema
from syncd.model.convert.common import Derived
from syncd.model.convert.directory import (
    ODATA_GROUP,
    ODATA_USER,
    convert_group,
    convert_membership,
    convert_user,
)
from syncd.model.selects import DEVICE_SELECT, GROUP_SELECT, USER_SELECT
from syncd.pausepoints import pause_point
from syncd.sources.alerting import change_hook_for
from syncd.sources.base import RoundReport, SourceContext
from syncd.sources.members import MemberDetails
from syncd.sources.signins import SIGN_IN_FIELD, SignInPoll

log = structlog.get_logger(__name__)

MEMBER_ENTITY_OWNER = "member:"
"""Group-member entities are shared by every group that holds them: they get their own owner."""
ESSENTIAL_SELECT: dict[str, tuple[str, ...]] = {
    "users": ("id",),
    "groups": ("id", "members"),
    "devices": ("id",),
}
"""Never dropped from a refused `$select`: without them the source is pointless."""


class DeltaSource:
    """One delta-tracked Graph collection: ``users``, ``groups`` or ``devices``."""

    depends_on: tuple[str, ...] = ()

    def __init__(self, resource: str, select: Sequence[str], *, sign_ins: SignInPoll | None = None) -> None:
        self.resource = resource
        self.origin = resource
        self.select = list(select)
        self.cursor_name = f"delta:{resource}"
        self.member_details = MemberDetails()
        self.sign_ins = sign_ins
        """Users only: the last sign-in poll, whose stored values delta rounds keep (delta does not
        track ``signInActivity``); the engine runs the poll itself (`Engine.poll_sign_ins`)."""

    def initial_url(self) -> str:
        return initial_delta_url(self.resource, self.select)

    async def run(self, ctx: SourceContext, *, force_full: bool = False) -> RoundReport:
        link = None if force_full else await ctx.mirror.get_cursor(self.cursor_name)
        if link is None:
            return await self._full_round(ctx)
        try:
            return await self._round(ctx, link)
        except DeltaResetRequired as exc:
            log.warning("delta token rejected, starting a full round", origin=self.origin, code=exc.code)
            return await self._full_round(ctx)

    async def _full_round(self, ctx: SourceContext) -> RoundReport:
        """A round from scratch; a refused `$select` is narrowed (once per property) and retried."""
        while True:
            try:
                return await self._round(ctx, None)
            except GraphError as exc:
                if not select_refused(exc):
                    raise
                keep = ESSENTIAL_SELECT.get(self.resource, ("id",))
                refused = await refused_select(ctx.graph, self.resource, self.select, exc, keep=keep)
                if not refused:
                    raise
                self.select = [f for f in self.select if f not in refused]
                log.warning(
                    "Graph refuses these properties in a delta $select: they are no longer tracked "
                    "and stay empty in J1",
                    origin=self.origin,
                    properties=refused,
                    status=exc.status,
                )

    async def _round(self, ctx: SourceContext, link: str | None) -> RoundReport:
        full = link is None
        baseline = full and await ctx.mirror.get_cursor(self.cursor_name) is None
        report = RoundReport(origin=self.origin, kind="full" if full else "delta", baseline=baseline)
        started = time.monotonic()
        round_ = await ctx.mirror.begin_round(self.origin, full=full)
        delta_link: str | None = None
        try:
            # signInActivity is not tracked by delta: the stored value is kept (one query a round).
            sign_ins = await self.sign_ins.stored_values(ctx) if self.sign_ins is not None else {}
            async for page in delta_pages(ctx.graph, link or self.initial_url()):
                await pause_point("source.page")
                report.pages += 1
                await self._stage_page(ctx, round_, page.objects, full, report, sign_ins)
                if page.delta_link:
                    delta_link = page.delta_link
        except BaseException:
            await round_.discard()
            raise
        if delta_link is None:
            await round_.discard()
            raise RuntimeError(f"{self.origin}: delta round ended without a deltaLink")
        orphan_rules = (
            {schema.GROUP_MEMBER.type: schema.GROUP_HAS_MEMBER.type} if self.resource == "groups" else {}
        )
        hook = None if baseline else change_hook_for(ctx)
        # The Change objects are not kept (only alert rules read them, through the hook): a full
        # round of a large tenant would hold every entity and relationship in memory twice.
        result = await round_.commit(
            cursors={self.cursor_name: delta_link},
            orphan_rules=orphan_rules,
            change_hook=hook,
            collect_changes=False,
        )
        report.count_changes(result.counts)
        report.outbox_added = result.outbox_added
        report.alerts = result.counts.get("alerts_added", 0)
        report.duration = time.monotonic() - started
        return report

    async def _stage_page(
        self,
        ctx: SourceContext,
        round_: RoundWriter,
        objects: list[dict[str, Any]],
        full: bool,
        report: RoundReport,
        sign_ins: dict[str, Any] | None = None,
    ) -> None:
        raw: list[dict[str, Any]] = []
        gone: list[str] = []
        details = await self._other_member_details(ctx, objects) if self.resource == "groups" else {}
        for obj in objects:
            obj_id = obj.get("id")
            if not isinstance(obj_id, str) or not obj_id:
                continue
            report.objects += 1
            # Entra devices are matched to managed devices by `deviceId` (azureADDeviceId).
            device_id = obj.get("deviceId") if self.resource == "devices" else None
            report.changed_ids.append(device_id if isinstance(device_id, str) and device_id else obj_id)
            if is_removed(obj) is not None:
                gone.append(obj_id)
                continue
            props = {k: v for k, v in obj.items() if not k.endswith("@delta")}
            if sign_ins and obj_id in sign_ins and SIGN_IN_FIELD not in props:
                props[SIGN_IN_FIELD] = sign_ins[obj_id]
            raw.append(props)
            if self.resource == "users":
                # A user's delta entry is its whole (selected) state: its rows are replaced.
                await _stage(round_, obj_id, convert_user(props, ctx.convert), True)
            elif self.resource == "groups":
                await _stage(round_, obj_id, convert_group(props, ctx.convert), full)
                await self._stage_members(ctx, round_, obj_id, members_delta(obj), full, details)
        if raw:
            await round_.stage_raw(self.resource, raw)
        if gone:
            report.removed += len(gone)
            if self.resource != "devices":
                await round_.delete_owners(gone)
            await round_.delete_raw(self.resource, gone)

    async def _other_member_details(
        self, ctx: SourceContext, objects: list[dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """One lookup per page for the members that are neither users nor groups (they get entities)."""
        ids = [
            str(member["id"])
            for obj in objects
            for member in members_delta(obj)
            if isinstance(member.get("id"), str)
            and is_removed(member) is None
            and member.get("@odata.type") not in (ODATA_USER, ODATA_GROUP)
        ]
        return await self.member_details.fetch(ctx.graph, ids)

    async def _stage_members(
        self,
        ctx: SourceContext,
        round_: RoundWriter,
        group_id: str,
        members: list[dict[str, Any]],
        full: bool,
        details: dict[str, dict[str, Any]],
    ) -> None:
        removed: list[str] = []
        rels: list[dict[str, Any]] = []
        for member in members:
            member_id = member.get("id")
            if not isinstance(member_id, str) or not member_id:
                continue
            if is_removed(member) is not None:
                removed.append(f"{group_id}|{schema.HAS.lower()}|{member_id}")
                continue
            derived = convert_membership(group_id, member, ctx.convert, member_details=details.get(member_id))
            rels.extend(derived.relationships)
            for entity in derived.entities:
                await round_.stage(MEMBER_ENTITY_OWNER + entity["_key"], [entity], (), replace=full)
        if rels:
            await round_.stage(group_id, (), rels, replace=full)
        if removed:
            await round_.delete_relationships(removed)


async def _stage(round_: RoundWriter, owner: str, derived: Derived, full: bool) -> None:
    await round_.stage(owner, derived.entities, derived.relationships, replace=full)


def directory_sources(sign_ins: SignInPoll) -> dict[str, DeltaSource]:
    """The three delta-tracked collections, keyed by origin; users keep the sign-in poll's values."""
    return {
        "users": DeltaSource("users", USER_SELECT, sign_ins=sign_ins),
        "groups": DeltaSource("groups", GROUP_SELECT),
        "devices": DeltaSource("devices", DEVICE_SELECT),
    }
