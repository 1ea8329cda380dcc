"""`syncd check`: config, token, one probe per needed permission, J1 auth; one OK/FAIL line each."""

from __future__ import annotations

import uuid

from syncd.commands.permissions import needed_permissions
from syncd.config import Settings
from syncd.graph.errors import GraphAuthError
from syncd.graph.permissions import probe_permissions
from syncd.j1.errors import J1Error
from syncd.runtime import open_runtime, token_provider

HINTS = {
    "denied": "not granted: add it as an Application permission and grant admin consent (see `syncd setup`)",
    "not_applicable": "tenant has no Intune: Intune types will be disabled",
}


def _line(ok: bool, what: str, detail: str = "") -> str:
    return f"{'OK  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail else "")


async def check_command(settings: Settings) -> int:
    lines = [_line(True, "configuration")]
    failed = False
    try:
        await token_provider(settings).token()
        lines.append(_line(True, "token", f"client credentials for tenant {settings.graph.tenant_id}"))
        token_ok = True
    except GraphAuthError as exc:
        lines.append(_line(False, "token", str(exc)))
        token_ok = failed = True
        token_ok = False
    async with open_runtime(settings) as rt:
        if token_ok:
            needed = needed_permissions(settings)
            results = await probe_permissions(rt.graph, list(needed))
            for perm, result in results.items():
                ok = result in ("ok", "not_applicable")
                failed |= not ok
                reason = HINTS.get(result, result if result != "ok" else "")
                lines.append(
                    _line(ok, f"permission {perm}", reason or f"needed by {', '.join(needed[perm])}")
                )
        try:
            await rt.j1.get_job(str(uuid.uuid4()))
            lines.append(_line(True, "J1 API key", f"account {settings.j1.account_id}"))
        except J1Error as exc:
            if exc.status == 404:
                lines.append(_line(True, "J1 API key", f"account {settings.j1.account_id}"))
            else:
                failed = True
                lines.append(_line(False, "J1 API key", f"{exc.status} {exc.code}"))
        except Exception as exc:
            failed = True
            lines.append(_line(False, "J1 API", f"{type(exc).__name__}: {str(exc)[:200]}"))
    print("\n".join(lines))
    return 1 if failed else 0
