"""The tenant itself: the ``microsoft_365_account`` entity, polled slowly."""

from __future__ import annotations

import time
from typing import Any

import structlog

from syncd.graph.errors import GraphError, NotApplicableTenant
from syncd.model.convert.directory import convert_account
from syncd.sources.base import RoundReport, SourceContext

log = structlog.get_logger(__name__)


class AccountSource:
    """``GET /organization`` (+ the Intune account id when the tenant has Intune)."""

    origin = "account"
    depends_on: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.intune_available: bool | None = None

    async def run(self, ctx: SourceContext, *, force_full: bool = True) -> RoundReport:
        started = time.monotonic()
        report = RoundReport(origin=self.origin, kind="poll")
        page = await ctx.graph.get("/organization")
        orgs: list[dict[str, Any]] = [o for o in page.get("value") or [] if isinstance(o, dict)]
        if not orgs:
            raise GraphError(404, "NotFound", "GET /organization returned no organization", None)
        org = orgs[0]
        intune_account_id = await self._intune_account_id(ctx)
        entity = convert_account(org, ctx.convert, intune_account_id=intune_account_id)
        round_ = await ctx.mirror.begin_round(self.origin, full=True)
        try:
            await round_.stage(str(org.get("id") or ctx.convert.tenant_id), [entity], (), replace=True)
            await round_.stage_raw("organization", [org])
        except BaseException:
            await round_.discard()
            raise
        result = await round_.commit(collect_changes=False)
        report.pages = 1
        report.objects = 1
        report.count_changes(result.counts)
        report.outbox_added = result.outbox_added
        report.duration = time.monotonic() - started
        return report

    async def _intune_account_id(self, ctx: SourceContext) -> str | None:
        """None when the tenant has no Intune (Graph: 400 "Request not applicable to target tenant.")."""
        try:
            body = await ctx.graph.get("/deviceManagement", params={"$select": "intuneAccountId"})
        except NotApplicableTenant:
            if self.intune_available is not False:
                log.info("tenant has no Intune: Intune types are disabled")
            self.intune_available = False
            return None
        except GraphError as exc:
            log.debug("intune account id unavailable", status=exc.status, code=exc.code)
            return None
        self.intune_available = True
        value = body.get("intuneAccountId")
        return value if isinstance(value, str) else None
