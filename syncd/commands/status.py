"""`syncd status`: what the mirror knows, readable while the daemon runs; never prints secrets."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.config import Settings
from syncd.j1.capabilities import KV_KEY, Capabilities
from syncd.j1.writer import LAYOUT_KEY, PENDING_LAYOUT_KEY
from syncd.mirror import Mirror, MirrorError, partition_state
from syncd.mirror.mirror import DEFAULT_BUSY_TIMEOUT, _origin_status, describe_error
from syncd.tenant import KV_KEY as TENANT_KEY
from syncd.tenant import stored_tenant_id

IN_USE = "in use by another process"


async def collect_status(mirror: Mirror) -> dict[str, Any]:
    now = time.time()
    origins = await mirror.origin_status()
    for entry in origins:
        for key in ("last_success", "cursor_updated_at"):
            value = entry.get(key)
            if isinstance(value, (int, float)):
                entry[f"{key}_age_s"] = round(now - value, 1)
    return {
        "tenant_id": await stored_tenant_id(mirror),
        "origins": origins,
        "j1": await mirror.read_with("reading the J1 state", j1_status),
        "outbox_depth": await mirror.outbox_depth(),
        "alert_outbox_depth": await mirror.alert_depth(),
        "subscriptions": [
            {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in s.items()
                if k != "client_state_hash"
            }
            for s in await mirror.list_subscriptions()
        ],
    }


def _kv(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def j1_status(conn: sqlite3.Connection, refused_shown: int = 20) -> dict[str, Any]:
    """The J1 side: scope layout, proven behaviours, partitions failing or waiting for a DIFF,
    objects J1 refused (set aside), jobs in flight."""
    layout, pending = _kv(conn, LAYOUT_KEY), _kv(conn, PENDING_LAYOUT_KEY)
    capabilities = Capabilities.from_json(_kv(conn, KV_KEY))
    failing = [
        {
            "scope": scope,
            "attempts": attempts,
            "next_attempt_in_s": round(max(0.0, nxt - time.time()), 1),
            "last_error": error,
        }
        for scope, attempts, nxt, error in conn.execute(
            "SELECT scope, attempts, next_attempt, last_error FROM j1_partitions WHERE attempts > 0"
            " ORDER BY next_attempt LIMIT 20"
        )
    ]
    refused = [
        {"kind": r.kind, "key": r.key, "type": r.type, "scope": r.scope, "code": r.code, "message": r.message}
        for r in partition_state.refused(conn, refused_shown)
    ]
    return {
        "layout": layout,
        "layout_pending": pending,
        "behaviours": {name: f.to_json() for name, f in capabilities.findings.items()},
        "partitions_pending_diff": int(
            conn.execute("SELECT count(*) FROM j1_partitions WHERE needs_diff = 1").fetchone()[0]
        ),
        "partitions_failing": failing,
        "refused_count": partition_state.refused_count(conn),
        "refused": refused,
        "jobs_in_flight": len(partition_state.jobs_in_flight(conn)),
    }


def _print_j1(j1: dict[str, Any]) -> None:
    layout = j1.get("layout_pending") or j1.get("layout")
    if layout:
        base = layout["base"]
        note = (
            " (being filled: the previous scopes are emptied once it is complete)"
            if j1.get("layout_pending")
            else ""
        )
        print(
            f"J1 scopes: {base}-e{1 << layout['entity_bits']}-*, {base}-r{1 << layout['relationship_bits']}-*"
            f" ({(1 << layout['entity_bits']) + (1 << layout['relationship_bits'])} partitions){note}"
        )
    else:
        print("J1 scopes: none yet (the first full push sizes the partitions)")
    proven = sorted(n for n, f in j1.get("behaviours", {}).items() if f.get("ok") is True)
    print(f"J1 behaviours proven on this account: {', '.join(proven) or 'none (documented writes only)'}")
    print(
        f"J1 partitions waiting for a DIFF: {j1.get('partitions_pending_diff', 0)}"
        f"   failing: {len(j1.get('partitions_failing', []))}   jobs in flight: {j1.get('jobs_in_flight', 0)}"
    )
    for p in j1.get("partitions_failing", []):
        print(
            f"  failing {p['scope']}: {p['attempts']} attempt(s), next in {p['next_attempt_in_s']}s:"
            f" {p['last_error']}"
        )
    if j1.get("refused_count"):
        print(f"J1 refused {j1['refused_count']} object(s), set aside until they change:")
        for r in j1.get("refused", []):
            print(f"  {r['kind']} {r['key']} ({r['type']}): {r['code'] or ''} {r['message']}")


def _read_only_status(path: Path) -> dict[str, Any]:
    """The same figures through a read-only connection: used while the daemon holds the mirror.

    WAL lets this read a consistent snapshot next to the daemon's writer; nothing is written.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    doing = "reading the status (read-only, the daemon is running)"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=DEFAULT_BUSY_TIMEOUT, isolation_level=None)
        try:
            now = time.time()
            origins = _origin_status(conn, now)
            for entry in origins:
                for key in ("last_success", "cursor_updated_at"):
                    value = entry.get(key)
                    if isinstance(value, (int, float)):
                        entry[f"{key}_age_s"] = round(now - value, 1)
            subs = conn.execute(
                "SELECT id, resource, expiration FROM subscriptions ORDER BY expiration"
            ).fetchall()
            stored = _kv(conn, TENANT_KEY)
            return {
                "tenant_id": stored.get("id") if isinstance(stored, dict) else None,
                "origins": origins,
                "j1": j1_status(conn),
                "outbox_depth": int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0]),
                "alert_outbox_depth": int(
                    conn.execute("SELECT count(*) FROM alerts WHERE delivered_at IS NULL").fetchone()[0]
                ),
                "subscriptions": [
                    {"id": i, "resource": r, "expiration": datetime.fromisoformat(e).isoformat()}
                    for i, r, e in subs
                ],
            }
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        raise describe_error(exc, path, doing, DEFAULT_BUSY_TIMEOUT) from exc


async def _gather(path: Path) -> dict[str, Any]:
    try:
        mirror = await Mirror.open(path)
    except MirrorError as exc:
        if IN_USE not in str(exc):
            raise
        return await asyncio.to_thread(_read_only_status, path)
    try:
        return await collect_status(mirror)
    finally:
        await mirror.close()


async def status_command(settings: Settings, *, as_json: bool) -> int:
    if not settings.mirror_path.exists():
        print(f"syncd status: no mirror at {settings.mirror_path}: syncd has not run yet", file=sys.stderr)
        return 1
    try:
        data = await _gather(settings.mirror_path)
    except MirrorError as exc:
        print(f"syncd status: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(data, indent=2, default=str, sort_keys=True))
        return 0
    print(f"tenant: {data.get('tenant_id') or 'not resolved yet'}")
    print(f"{'origin':32} {'state':8} {'last success':>14} {'cursor age':>12}  last error / reason")
    for o in data["origins"]:
        state = "partial" if o.get("partial") else "off" if o.get("disabled") else "ok"
        note = (o.get("reason") if o.get("partial") or o.get("disabled") else None) or o.get("last_error")
        age = o.get("last_success_age_s")
        cursor_age = o.get("cursor_updated_at_age_s")
        print(
            f"{o.get('origin', '?'):32} {state:8} "
            f"{(f'{age:.0f}s ago' if age is not None else 'never'):>14} "
            f"{(f'{cursor_age:.0f}s' if cursor_age is not None else '-'):>12}  {note or ''}"
        )
    print(f"outbox depth: {data['outbox_depth']}   alert outbox depth: {data['alert_outbox_depth']}")
    _print_j1(data["j1"])
    for s in data["subscriptions"]:
        print(f"subscription {s.get('resource')}: {s.get('id')} expires {s.get('expiration')}")
    return 0
