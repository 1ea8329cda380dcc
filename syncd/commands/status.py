"""`syncd status`: what the mirror knows, readable while the daemon runs; never prints secrets."""

from __future__ import annotations

import json
import time
from typing import Any

from syncd.config import Settings
from syncd.mirror import Mirror, MirrorError


async def collect_status(mirror: Mirror) -> dict[str, Any]:
    now = time.time()
    origins = await mirror.origin_status()
    for entry in origins:
        for key in ("last_success", "cursor_updated_at"):
            value = entry.get(key)
            if isinstance(value, (int, float)):
                entry[f"{key}_age_s"] = round(now - value, 1)
    return {
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


async def status_command(settings: Settings, *, as_json: bool) -> int:
    if not settings.mirror_path.exists():
        print(f"no mirror at {settings.mirror_path}: syncd has not run yet")
        return 1
    try:
        mirror = await Mirror.open(settings.mirror_path)
    except MirrorError as exc:
        print(f"syncd status: {exc}")
        return 1
    try:
        data = await collect_status(mirror)
    finally:
        await mirror.close()
    if as_json:
        print(json.dumps(data, indent=2, default=str, sort_keys=True))
        return 0
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
