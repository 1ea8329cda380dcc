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
from syncd.mirror import Mirror, MirrorError
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
            tenant = conn.execute("SELECT value FROM kv WHERE key = ?", (TENANT_KEY,)).fetchone()
            stored = json.loads(tenant[0]) if tenant else None
            return {
                "tenant_id": stored.get("id") if isinstance(stored, dict) else None,
                "origins": origins,
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
    for s in data["subscriptions"]:
        print(f"subscription {s.get('resource')}: {s.get('id')} expires {s.get('expiration')}")
    return 0
