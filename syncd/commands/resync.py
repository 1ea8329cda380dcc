"""`syncd resync`: full rounds of every enabled source, then a DIFF of every J1 partition.

Exits non-zero on failure."""

from __future__ import annotations

import sys
import time

import structlog

from syncd.config import Settings
from syncd.runtime import open_runtime
from syncd.sources.catalog import disabled_origins, mark_disabled

log = structlog.get_logger(__name__)

PRUNED_REASON = "source switched off; its data was removed from J1 (resync --prune-disabled)"


async def resync_command(settings: Settings, *, prune_disabled: bool = False) -> int:
    try:
        async with open_runtime(settings) as rt:
            disabled = disabled_origins(settings)
            if prune_disabled:
                # An empty full round sweeps the origin's rows out of the mirror; the DIFF below
                # then omits them (and does not list their types as partial): J1 deletes them.
                for origin in disabled:
                    await rt.engine.remove_origin(origin, PRUNED_REASON)
                log.info("pruning the data of switched-off sources", origins=disabled)
            else:
                await mark_disabled(rt.engine, settings)
            # Data Graph definitively says the tenant does not have (no Intune) goes now; the
            # daemon waits a day first. A 403 or an outage fails the round instead: nothing goes.
            rt.engine.absent_grace = 0.0
            report = await rt.engine.resync()
            await rt.mirror.set_cursor("full_push", str(time.time()))
    except Exception as exc:
        print(f"syncd resync: failed: {type(exc).__name__}: {str(exc)[:500]}", file=sys.stderr)
        return 1
    push = report.push
    print(
        f"resync: {len(report.rounds)} rounds ok, {len(report.failed)} failed; "
        f"pushed {push.entity_upserts if push else 0} entities and "
        f"{(push.relationship_upserts + push.mapped_relationships) if push else 0} relationships"
        f" in {push.job_count if push else 0} DIFF jobs (one per J1 partition)"
    )
    if disabled:
        verb = "removed from J1" if prune_disabled else "kept in J1 as partial (--prune-disabled removes it)"
        print(f"  switched off: {', '.join(disabled)}: data {verb}")
    for origin, reason in sorted(report.failed.items()):
        print(
            f"  FAILED {origin}: {reason} (its types were sent as partialDatasets: nothing deleted)",
            file=sys.stderr,
        )
    return 1 if report.failed else 0
