"""Last sign-in of users (``signInActivity``), polled: users delta does not track it.

``GET /users?$select=id,signInActivity&$top=500`` (Graph caps the page at 500 when
``signInActivity`` is selected) needs AuditLog.Read.All and an Entra ID P1/P2 licence; without
them Graph answers 403. In ``auto`` mode that 403 switches the feature off for the process with
one info line; in ``on`` mode it fails the round like any other error.

A poll compares each user's ``signInActivity`` with the stored raw user and re-stages only the
users whose value changed, in ONE non-full round of origin ``users`` (the engine's per-origin lock
keeps it from overlapping a users delta round). Delta rounds keep the stored value (see
``DeltaSource``), so a delta update never drops ``lastSignInOn``.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import structlog

from syncd.graph.errors import PermissionDenied
from syncd.model.convert.directory import convert_user
from syncd.model.selects import USER_SIGN_IN_SELECT, select_param
from syncd.sources.alerting import change_hook_for
from syncd.sources.base import RoundReport, SourceContext

if TYPE_CHECKING:
    from syncd.config import SignInMode

log = structlog.get_logger(__name__)

SIGN_IN_FIELD = "signInActivity"
PAGE_SIZE = 500
OFF_MESSAGE = "last sign-in not collected: needs AuditLog.Read.All and Entra ID P1"


def parse_stored(value: Any) -> Any:
    """A stored raw value (``json_extract`` gives objects as JSON text) back to a Python value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class SignInPoll:
    """The sign-in feature of the ``users`` origin: its mode and whether a 403 switched it off."""

    origin = "users"
    """Its polls are rounds of the users origin (`Engine.poll_sign_ins`)."""

    def __init__(self, mode: SignInMode = "auto") -> None:
        self.mode = mode
        self.denied = False
        """``auto`` got a 403: off until the process restarts."""

    @property
    def enabled(self) -> bool:
        return self.mode == "on" or (self.mode == "auto" and not self.denied)

    async def stored_values(self, ctx: SourceContext) -> dict[str, Any]:
        """id → stored ``signInActivity`` (parsed) of every user that has one; {} when disabled."""
        if not self.enabled:
            return {}
        values = await ctx.mirror.raw_field_values("users", SIGN_IN_FIELD)
        return {k: parse_stored(v) for k, v in values.items() if v is not None}

    async def run(self, ctx: SourceContext) -> RoundReport:
        report = RoundReport(origin=self.origin, kind="poll")
        started = time.monotonic()
        if not self.enabled:
            return report
        try:
            fetched = await self._fetch(ctx, report)
        except PermissionDenied:
            if self.mode == "on":
                raise
            self.denied = True
            log.info(OFF_MESSAGE)
            report.duration = time.monotonic() - started
            return report
        stored = await ctx.mirror.raw_field_values("users", SIGN_IN_FIELD)
        changed = [
            (user_id, value)
            for user_id, value in fetched.items()
            if user_id in stored and parse_stored(stored[user_id]) != value
        ]
        if changed:
            round_ = await ctx.mirror.begin_round(self.origin, full=False)
            try:
                for user_id, value in changed:
                    raw = await ctx.mirror.get_raw("users", user_id)
                    if raw is None:  # removed since: the next delta round owns it
                        continue
                    raw[SIGN_IN_FIELD] = value
                    derived = convert_user(raw, ctx.convert)
                    await round_.stage(user_id, derived.entities, derived.relationships, replace=True)
                    await round_.stage_raw("users", [raw])
                    report.changed_ids.append(user_id)
            except BaseException:
                await round_.discard()
                raise
            result = await round_.commit(change_hook=change_hook_for(ctx), collect_changes=False)
            report.count_changes(result.counts)
            report.outbox_added = result.outbox_added
            report.alerts = result.counts.get("alerts_added", 0)
        report.duration = time.monotonic() - started
        return report

    async def _fetch(self, ctx: SourceContext, report: RoundReport) -> dict[str, Any]:
        """id → ``signInActivity`` (None when Graph has none) of every user."""
        params = {"$select": select_param(USER_SIGN_IN_SELECT), "$top": str(PAGE_SIZE)}
        out: dict[str, Any] = {}
        async for page in ctx.graph.iter_pages("/users", params=params):
            report.pages += 1
            for obj in page.get("value") or []:
                if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                    report.objects += 1
                    out[obj["id"]] = obj.get(SIGN_IN_FIELD)
        return out
