"""`syncd check`: config, token, one probe per needed permission, J1 auth; one OK/FAIL line each.

Only the permissions of the enabled `[sync] sources` are probed (a switched-off source needs
nothing). The check never opens the mirror, so it runs next to a live daemon and leaves no state.
"""

from __future__ import annotations

import uuid

from syncd.commands.permissions import needed_permissions
from syncd.config import Settings
from syncd.graph.client import GraphClient
from syncd.graph.errors import GraphAuthError
from syncd.graph.permissions import probe_permissions
from syncd.j1.errors import J1Error
from syncd.runtime import http_session, j1_client, token_provider
from syncd.tenant import token_tenant

HINTS = {
    "denied": "not granted: add it as an Application permission and grant admin consent (see `syncd setup`)",
    "not_applicable": "tenant has no Intune: Intune types will be disabled",
}


def _line(ok: bool, what: str, detail: str = "") -> str:
    return f"{'OK  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail else "")


async def check_command(settings: Settings) -> int:
    lines = [_line(True, "configuration", f"sources {', '.join(settings.sync.sources) or '(none)'}")]
    failed = False
    missing: list[str] = []
    tokens = token_provider(settings)
    try:
        tid = token_tenant(await tokens.token())
        tenant = settings.graph.tenant_id + (f" ({tid})" if tid and tid != settings.graph.tenant_id else "")
        lines.append(_line(True, "token", f"client credentials for tenant {tenant}"))
        token_ok = True
    except GraphAuthError as exc:
        lines.append(_line(False, "token", str(exc)))
        token_ok, failed = False, True
    async with http_session(settings, limit=8) as session:
        if token_ok:
            graph = GraphClient(
                session,
                tokens,
                base_url=settings.graph.base_url,
                request_timeout=settings.graph.request_timeout,
                max_attempts=3,
            )
            needed = needed_permissions(settings)
            results = await probe_permissions(graph, list(needed))
            for perm, result in results.items():
                ok = result in ("ok", "not_applicable")
                if not ok:
                    failed = True
                    missing.append(perm)
                reason = HINTS.get(result, result if result != "ok" else "")
                lines.append(
                    _line(ok, f"permission {perm}", reason or f"needed by {', '.join(needed[perm])}")
                )
        j1 = j1_client(settings, session, max_attempts=2)
        try:
            await j1.get_job(str(uuid.uuid4()))
            lines.append(_line(True, "J1 API key", f"account {settings.j1.account_id}"))
        except J1Error as exc:
            if exc.status == 404:  # authenticated: the made-up job just does not exist
                lines.append(_line(True, "J1 API key", f"account {settings.j1.account_id}"))
            else:
                failed = True
                lines.append(_line(False, "J1 API key", f"{exc.status} {exc.code}"))
        except Exception as exc:
            failed = True
            lines.append(_line(False, "J1 API", f"{type(exc).__name__}: {str(exc)[:200]}"))
    if missing:
        lines.append(f"missing permissions: {', '.join(missing)} (grant them, then run `syncd check` again)")
    print("\n".join(lines))
    return 1 if failed else 0
