"""`syncd check`: config, token, one probe per needed permission, J1 auth, and the J1 capability
probe; one OK/FAIL line each.

Only the permissions of the enabled `[sync] sources` are probed (a switched-off source needs
nothing). The J1 probe runs a few jobs on throw-away scopes (emptied afterwards) and reads the
outcome back with J1QL; its findings are recorded in the mirror when one exists and no daemon
holds it (the daemon probes on its own at its first start otherwise).
"""

from __future__ import annotations

import uuid

from syncd.commands.permissions import needed_permissions, probe_permissions
from syncd.config import Settings
from syncd.graph.client import GraphClient
from syncd.graph.errors import GraphAuthError
from syncd.j1.capabilities import DESCRIPTIONS, DOCUMENTED_BASELINE, KV_KEY, Behaviour, Capabilities
from syncd.j1.client import SyncApiClient
from syncd.j1.errors import J1Error
from syncd.mirror import Mirror, MirrorError
from syncd.runtime import http_session, j1_client, probe_account, token_provider
from syncd.tenant import token_tenant

HINTS = {
    "denied": "not granted: add it as an Application permission and grant admin consent (see `syncd setup`)",
    "not_applicable": "tenant has no Intune: Intune types will be disabled",
}


def _line(ok: bool, what: str, detail: str = "") -> str:
    return f"{'OK  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail else "")


async def _j1_probe_lines(settings: Settings, j1: SyncApiClient) -> tuple[list[str], bool]:
    """One line per J1 behaviour; True when a documented behaviour the layout needs failed."""
    capabilities = await probe_account(settings, j1)
    lines: list[str] = []
    failed = False
    for name in (DOCUMENTED_BASELINE, *Behaviour):
        finding = capabilities.findings.get(name)
        ok = finding is not None and finding.ok is True
        detail = finding.detail if finding is not None else "not tested"
        if name == DOCUMENTED_BASELINE:
            failed = finding is not None and finding.ok is False  # unknown (not testable) is no failure
        elif not ok:
            detail += " -- syncd uses the documented DIFF path instead"
        lines.append(_line(ok, f"J1 behaviour {name}", f"{DESCRIPTIONS[name]}: {detail}"))
    lines.append(await _record(settings, capabilities))
    return lines, failed


async def _record(settings: Settings, capabilities: Capabilities) -> str:
    if not settings.mirror_path.exists():
        return "J1 probe not recorded: no mirror yet (the daemon probes at its first start)"
    try:
        mirror = await Mirror.open(settings.mirror_path)
    except MirrorError as exc:
        return f"J1 probe not recorded: {exc}"
    try:
        await mirror.set_value(KV_KEY, capabilities.to_json())
    finally:
        await mirror.close()
    return f"J1 probe recorded in {settings.mirror_path}"


async def check_command(settings: Settings, *, j1_probe: bool = True) -> int:
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
        j1_ok = False
        try:
            await j1.get_job(str(uuid.uuid4()))
            lines.append(_line(True, "J1 API key", f"account {settings.j1.account_id}"))
            j1_ok = True
        except J1Error as exc:
            if exc.status == 404:  # authenticated: the made-up job just does not exist
                lines.append(_line(True, "J1 API key", f"account {settings.j1.account_id}"))
                j1_ok = True
            else:
                failed = True
                lines.append(_line(False, "J1 API key", f"{exc.status} {exc.code}"))
        except Exception as exc:
            failed = True
            lines.append(_line(False, "J1 API", f"{type(exc).__name__}: {str(exc)[:200]}"))
        if j1_ok and j1_probe:
            probe_lines, probe_failed = await _j1_probe_lines(settings, j1)
            lines += probe_lines
            failed = failed or probe_failed
    if missing:
        lines.append(f"missing permissions: {', '.join(missing)} (grant them, then run `syncd check` again)")
    print("\n".join(lines))
    return 1 if failed else 0
