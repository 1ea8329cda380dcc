"""Start the Graph and J1 simulators on 127.0.0.1 and print the matching syncd configuration.

Used by `python -m syncd.sim` and the `syncd sim` CLI subcommand (`main(argv)`), and by tests
(`start_simulators`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from syncd.sim.generator import generate_tenant
from syncd.sim.graph.app import GraphSim
from syncd.sim.graph.faults import Faults
from syncd.sim.graph.notifications import DeliveryConfig
from syncd.sim.intune_reports import create_storage_app, report_store
from syncd.sim.j1 import J1Behaviour, J1SimConfig, J1SimState, create_j1_app
from syncd.sim.j1.behaviour import add_behaviour_arguments, behaviour_from_args
from syncd.sim.j1.validation import ApiError
from syncd.sim.tenant import Tenant, ensure_app, load_tenant, save_tenant, tenant_from_recording
from syncd.sim.tls import TlsFiles, ensure_tls

HOST = "127.0.0.1"


@dataclass
class RunningSims:
    """Addresses and credentials of running simulators; `await stop()` shuts them down."""

    graph_url: str
    graph_http_url: str
    authority_host: str
    tenant_id: str
    client_id: str
    client_secret: str
    tls: TlsFiles
    graph: GraphSim
    j1_url: str | None = None
    j1_account_id: str = ""
    j1_api_key: str = ""
    storage_url: str | None = None
    """The report-export file host (another origin than Graph; no Graph token accepted)."""
    runners: list[web.AppRunner] = field(default_factory=list)
    j1: J1SimState | None = None
    """The J1 simulator's state; None when started with `j1=False`."""

    @property
    def j1_state(self) -> J1SimState:
        """The J1 simulator's state (it runs unless started with `j1=False`)."""
        if self.j1 is None:
            raise RuntimeError("the J1 simulator is not running (start_simulators(j1=False))")
        return self.j1

    @property
    def ca_file(self) -> Path:
        """The private CA to trust."""
        return self.tls.ca_cert

    async def stop(self) -> None:
        """Stop every listener (and the notification worker)."""
        for r in reversed(self.runners):
            await r.cleanup()
        self.runners.clear()


async def _listen(runner: web.AppRunner, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
    """Serve `runner` on HOST:`port` (0: a free one) and return the bound port.

    The socket is bound here, so its port is known without reading the site's internals."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    except BaseException:
        sock.close()
        raise
    return int(sock.getsockname()[1])


async def start_simulators(
    *,
    tenant: Tenant,
    graph_port: int = 0,
    graph_http_port: int = 0,
    j1_port: int = 0,
    state_dir: Path,
    faults: Faults | None = None,
    delivery: DeliveryConfig | None = None,
    j1: bool = True,
    j1_account_id: str = "sim-account",
    j1_api_key: str | None = None,
    j1_behaviour: Mapping[str, Any] | None = None,
) -> RunningSims:
    """Start Graph (HTTPS + plain HTTP) and, when available, the J1 simulator (HTTPS) on 127.0.0.1.

    `j1_behaviour` sets the J1 simulator's readings of the open points of the J1 docs (names and
    values of `syncd.sim.j1.J1Behaviour`, e.g. `{"explicit_deletes": "apply"}`); unset switches keep
    their strict defaults. A bad name or value raises `ValueError` before anything starts."""
    behaviour = _j1_behaviour(j1_behaviour)
    tls = ensure_tls(state_dir)
    client_id, client_secret = ensure_app(tenant)
    sim = GraphSim(tenant, faults=faults, delivery=delivery, client_ssl=tls.client_context())
    runner = web.AppRunner(sim.create_app(), access_log=None)
    await runner.setup()
    runners = [runner]
    try:
        https_port = await _listen(runner, graph_port, tls.server_context())
        http_port = await _listen(runner, graph_http_port)
        graph_url = f"https://{HOST}:{https_port}"
        running = RunningSims(
            graph_url=graph_url,
            graph_http_url=f"http://{HOST}:{http_port}",
            authority_host=graph_url,
            tenant_id=tenant.tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            tls=tls,
            graph=sim,
            runners=runners,
        )
        sim.extra_resources |= {graph_url, running.graph_http_url}
        running.storage_url = await _start_storage(running, tls)
        if j1:
            await _start_j1(
                running, j1_port, j1_account_id, j1_api_key or f"j1sim-{secrets.token_hex(16)}", behaviour
            )
    except BaseException:
        for r in runners:
            await r.cleanup()
        raise
    return running


async def _start_storage(running: RunningSims, tls: TlsFiles) -> str:
    """The report-export file host: its own HTTPS listener (another origin than Graph)."""
    runner = web.AppRunner(create_storage_app(report_store(running.graph)), access_log=None)
    await runner.setup()
    running.runners.append(runner)
    url = f"https://{HOST}:{await _listen(runner, 0, tls.server_context())}"
    report_store(running.graph).storage_base = url
    return url


def _j1_behaviour(changes: Mapping[str, Any] | None) -> J1Behaviour:
    """The J1 simulator's behaviour: strict defaults overridden by `changes`."""
    try:
        return J1Behaviour.from_mapping(changes)
    except ApiError as err:
        raise ValueError(f"j1_behaviour: {err.message}") from None


async def _start_j1(
    running: RunningSims, port: int, account_id: str, api_key: str, behaviour: J1Behaviour
) -> None:
    """Start the J1 simulator (HTTPS, same CA as Graph)."""
    state = J1SimState({account_id: api_key}, J1SimConfig(behaviour=behaviour))
    runner = web.AppRunner(create_j1_app(state), access_log=None)
    await runner.setup()
    running.runners.append(runner)
    running.j1_url = f"https://{HOST}:{await _listen(runner, port, running.tls.server_context())}"
    running.j1_account_id = account_id
    running.j1_api_key = api_key
    running.j1 = state


def toml_value(value: object) -> str:
    """A TOML value (string, number, boolean or list of them) for the configurations written here."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def render_syncd_config(running: RunningSims) -> str:
    """The syncd TOML keys that point the daemon at these simulators."""
    lines = [
        "[graph]",
        f"tenant_id = {toml_value(running.tenant_id)}",
        f"client_id = {toml_value(running.client_id)}",
        f"client_secret = {toml_value(running.client_secret)}",
        f"authority_host = {toml_value(running.authority_host)}",
        f"base_url = {toml_value(running.graph_url)}",
        "",
        "[j1]",
        f"account_id = {toml_value(running.j1_account_id)}",
        f"api_key = {toml_value(running.j1_api_key)}",
        f"base_url = {toml_value(running.j1_url or '')}",
        f"scope = {toml_value('syncd-microsoft-365-' + running.tenant_id)}",
        "",
        "[tls]",
        f"ca_file = {toml_value(str(running.tls.ca_cert))}",
        "",
        "[webhook]",
        f"tls_cert = {toml_value(str(running.tls.webhook_cert))}",
        f"tls_key = {toml_value(str(running.tls.webhook_key))}",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of `python -m syncd.sim` / `syncd sim`."""
    p = argparse.ArgumentParser(
        prog="syncd sim", description="Run the Microsoft Graph and JupiterOne simulators."
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tenant", type=Path, help="tenant file (JSON) to serve")
    src.add_argument("--recording", type=Path, help="recorded Graph exchange file to serve")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--groups", type=int, default=20)
    p.add_argument("--devices", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--graph-port", type=int, default=0)
    p.add_argument("--graph-http-port", type=int, default=0)
    p.add_argument("--j1-port", type=int, default=0)
    p.add_argument("--state-dir", type=Path, default=Path(".syncd-sim"))
    p.add_argument("--allow-http-notification-url", action="store_true")
    p.add_argument("--save-tenant", type=Path, help="write the (generated) tenant file here and continue")
    add_behaviour_arguments(p)
    return p


def tenant_from_args(args: argparse.Namespace) -> Tenant:
    """Load or generate the tenant described by the arguments."""
    if args.tenant:
        return load_tenant(args.tenant)
    if args.recording:
        return tenant_from_recording(args.recording)
    return generate_tenant(seed=args.seed, users=args.users, groups=args.groups, devices=args.devices)


async def _serve(args: argparse.Namespace) -> None:
    tenant = tenant_from_args(args)
    if args.save_tenant:
        save_tenant(tenant, args.save_tenant)
    faults = Faults(allow_http_notification_url=bool(args.allow_http_notification_url))
    running = await start_simulators(
        tenant=tenant,
        graph_port=args.graph_port,
        graph_http_port=args.graph_http_port,
        j1_port=args.j1_port,
        state_dir=args.state_dir,
        faults=faults,
        j1_behaviour=behaviour_from_args(args),
    )
    print(render_syncd_config(running), flush=True)
    print(
        f"# graph (http, no TLS): {running.graph_http_url}   admin: {running.graph_http_url}/_sim/stats",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await running.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point for `python -m syncd.sim` and `syncd sim`."""
    args = build_parser().parse_args(argv)
    asyncio.run(_serve(args))
    return 0
