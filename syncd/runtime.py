"""Builds the long-lived objects from settings, once, for the daemon and the one-shot commands."""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from syncd import metrics
from syncd.config import Settings
from syncd.engine import Engine, Source
from syncd.graph.auth import MsalTokenProvider
from syncd.graph.budget import INTUNE, Pacing, RequestBudget
from syncd.graph.client import GraphClient
from syncd.graph.subscriptions import SubscriptionsApi
from syncd.j1.capabilities import KV_KEY, Capabilities
from syncd.j1.client import SyncApiClient
from syncd.j1.probe import AccountProbe
from syncd.j1.query import J1QueryClient
from syncd.j1.writer import AlertSink, J1Writer
from syncd.mirror import Mirror
from syncd.model.convert.common import ConvertContext
from syncd.sources.account import AccountSource
from syncd.sources.alerting import AlertPipeline, build_alert_pipeline
from syncd.sources.base import SourceContext
from syncd.sources.catalog import build_sources, origin_types
from syncd.sources.signins import SignInPoll
from syncd.tenant import default_scope, resolve_tenant_id


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """System trust store plus the configured extra CA (simulators, TLS-inspecting proxies)."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


def convert_context(settings: Settings, tenant_id: str) -> ConvertContext:
    """Converters build keys from `tenant_id`: the resolved GUID, never the configured spelling."""
    return ConvertContext(
        tenant_id=tenant_id,
        account_name=settings.j1.account_name or None,
        tag_with_account_name=settings.j1.tag_with_account_name,
        map_users_to_persons=settings.j1.map_users_to_persons,
        person_match_keys=tuple(settings.j1.person_match_keys),
        person_skip_target_creation=settings.j1.person_skip_target_creation,
    )


def _on_graph_request(route: str, status: int) -> None:
    label = metrics.route_template(route)
    metrics.GRAPH_REQUESTS.labels(route=label, status=str(status)).inc()
    if status == 429:
        metrics.GRAPH_THROTTLED.labels(route=label).inc()


def _on_segment_missing(route: str) -> None:
    metrics.GRAPH_SEGMENT_NOT_FOUND.labels(route=metrics.route_template(route)).inc()


def graph_pacing(settings: Settings) -> Pacing:
    """One budget per throttling family for the whole process (every source shares it)."""
    return Pacing(budgets={INTUNE: RequestBudget(settings.sync.intune_requests_per_20s)})


def operational_alert_sink(pipeline: AlertPipeline | None, mirror: Mirror) -> AlertSink:
    """Alerts about syncd itself (a J1 job that did not do what was sent): logged always, and
    queued for every configured target like a change alert."""
    from syncd.alerts.delivery import alerts_to_rows, log_alert
    from syncd.alerts.types import Alert
    from syncd.j1.writer import alert_id

    async def sink(rule_id: str, severity: str, message: str, details: dict[str, Any]) -> None:
        alert = Alert(
            alert_id=alert_id(rule_id, str(details.get("job_id", "")), str(details.get("scope", ""))),
            rule_id=rule_id,
            severity=severity,
            message=message,
            change={"kind": "syncd", **details},
            timestamp=time.time(),
        )
        if pipeline is None or not pipeline.targets:
            log_alert(alert)
            return
        await mirror.enqueue_alerts(alerts_to_rows([alert], pipeline.targets))

    return sink


def query_client(settings: Settings, j1: SyncApiClient) -> J1QueryClient:
    return J1QueryClient(j1, settings.j1.graphql_url)


async def probe_account(settings: Settings, j1: SyncApiClient) -> Capabilities:
    """Run the capability probe on the configured J1 account (throw-away scopes, cleaned up)."""
    probe = AccountProbe(
        j1,
        query_client(settings, j1),
        settings.j1.scope,
        wait=settings.j1.probe_wait,
        job_timeout=min(settings.j1.job_timeout, 300.0),
    )
    capabilities = await probe.run()
    capabilities.account_id = settings.j1.account_id
    return capabilities


@dataclass
class Runtime:
    """Everything a command needs; closed by `open_runtime`."""

    settings: Settings
    session: aiohttp.ClientSession
    mirror: Mirror
    graph: GraphClient
    j1: SyncApiClient
    engine: Engine
    account: AccountSource
    tenant_id: str
    """The tenant's GUID, resolved once at start (`syncd.tenant`): webhook checks, keys, scope."""

    @property
    def scope(self) -> str:
        """The J1 scope syncd writes to: `[j1] scope`, else `syncd-microsoft-365-<tenant GUID>`
        (`open_runtime` writes it back into `settings.j1.scope` once the tenant is resolved)."""
        return self.settings.j1.scope

    @property
    def subscriptions_api(self) -> SubscriptionsApi:
        return SubscriptionsApi(self.graph)

    async def probe_j1(self) -> Capabilities:
        """The capability probe, recorded in the mirror and taken up by the writer at once (what
        the daemon does once, at its first start)."""
        capabilities = await probe_account(self.settings, self.j1)
        await self.mirror.set_value(KV_KEY, capabilities.to_json())
        await self.engine.writer.reload_capabilities()
        return capabilities


def token_provider(settings: Settings) -> MsalTokenProvider:
    g = settings.graph
    return MsalTokenProvider(
        tenant_id=g.tenant_id,
        client_id=g.client_id,
        client_secret=g.client_secret.get() if g.client_secret else None,
        client_certificate_pem=Path(g.client_certificate).read_text() if g.client_certificate else None,
        client_certificate_key_pem=g.client_certificate_key.get() if g.client_certificate_key else None,
        authority_host=g.authority_host,
        graph_base_url=g.base_url,
        ca_file=settings.tls.ca_file,
        timeout=g.request_timeout,
    )


def http_session(settings: Settings, *, limit: int = 32) -> aiohttp.ClientSession:
    """The one aiohttp session of a command: trusted CAs, connect and read timeouts."""
    connector = aiohttp.TCPConnector(ssl=ssl_context(settings.tls.ca_file), limit=limit)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=settings.graph.request_timeout),
    )


def j1_client(settings: Settings, session: aiohttp.ClientSession, *, max_attempts: int = 5) -> SyncApiClient:
    """The J1 sync API client of the settings (`syncd check` tries fewer times than the daemon)."""
    return SyncApiClient(
        session,
        base_url=settings.j1.base_url,
        account_id=settings.j1.account_id,
        api_key=settings.j1.api_key.get() if settings.j1.api_key else "",
        request_timeout=settings.j1.request_timeout,
        max_attempts=max_attempts,
    )


@asynccontextmanager
async def open_runtime(settings: Settings, *, mirror: Mirror | None = None) -> AsyncIterator[Runtime]:
    """Open the mirror and one HTTP session; close both on exit."""
    own_mirror = mirror is None
    if mirror is None:
        mirror = await Mirror.open(settings.mirror_path)
    session = http_session(settings)
    try:
        tokens = token_provider(settings)
        graph = GraphClient(
            session,
            tokens,
            base_url=settings.graph.base_url,
            request_timeout=settings.graph.request_timeout,
            on_request=_on_graph_request,
            pacing=graph_pacing(settings),
            on_segment_missing=_on_segment_missing,
        )
        tenant_id = await resolve_tenant_id(
            settings.graph.tenant_id, tokens=tokens, graph=graph, mirror=mirror
        )
        if not settings.j1.scope:
            settings.j1.scope = default_scope(tenant_id)
        j1 = j1_client(settings, session)
        ctx = SourceContext(graph=graph, mirror=mirror, convert=convert_context(settings, tenant_id),
                            alerts=build_alert_pipeline(settings))
        account = AccountSource()
        sign_ins = SignInPoll(settings.sync.sign_in_activity)
        sources: dict[str, Source] = {"account": account, **build_sources(settings, account, sign_ins)}
        engine_ref: list[Engine] = []
        writer = J1Writer(
            j1,
            mirror,
            scope=settings.j1.scope,
            strategy=settings.j1.strategy,
            job_timeout=settings.j1.job_timeout,
            concurrency=settings.j1.concurrency,
            partial_types=lambda: engine_ref[0].partial_types() if engine_ref else [],
            on_job=lambda mode, status: metrics.J1_JOBS.labels(mode=mode, status=status).inc(),
            alert_sink=operational_alert_sink(ctx.alerts, mirror),
        )
        engine = Engine(ctx, writer, sources, origin_types=origin_types(), sign_ins=sign_ins)
        engine_ref.append(engine)
        yield Runtime(settings, session, mirror, graph, j1, engine, account, tenant_id)
    finally:
        await session.close()
        if own_mirror:
            await mirror.close()
