"""Simulators + a syncd configuration pointing at them: shared by the tests, the benches and the demo."""

from __future__ import annotations

import secrets
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config import Settings, load_settings
from syncd.j1.partitions import ENTITY_PART, MAX_BITS, Layout, PartKind, parse_scope
from syncd.mirror.keyhash import key_hash
from syncd.sim.graph.faults import Faults
from syncd.sim.graph.notifications import DeliveryConfig
from syncd.sim.j1.state import object_id
from syncd.sim.runner import RunningSims, render_syncd_config, start_simulators, toml_value
from syncd.sim.tenant import Tenant

PRIVILEGED_GROUP_ID = "7f0e2f5e-0000-4000-8000-00000000ad01"


def add_privileged_group(tenant: Tenant, group_id: str = PRIVILEGED_GROUP_ID) -> str:
    """A "Global Administrators" security group (matched by the default privileged-group rules)."""
    tenant.upsert(
        "groups",
        {
            "id": group_id,
            "displayName": "Global Administrators",
            "securityEnabled": True,
            "mailEnabled": False,
            "groupTypes": [],
            "mailNickname": "globaladmins",
            "createdDateTime": "2024-01-01T00:00:00Z",
            "visibility": None,
            "description": None,
            "mail": None,
        },
    )
    return group_id


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PICKED_PORT = 10_000


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands to outgoing connections (Linux default when unreadable)."""
    try:
        low, high = (int(x) for x in EPHEMERAL_RANGE_FILE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port that was free a moment ago (the webhook needs its URL before it listens).

    Picked below the kernel's ephemeral range: a daemon restarted on the same port (crash tests)
    must not find it taken by some outgoing connection in between, which an ephemeral port can be.
    """
    low, _high = _ephemeral_range()
    if low - 1 > LOWEST_PICKED_PORT:
        for _ in range(50):
            port = LOWEST_PICKED_PORT + secrets.randbelow(low - 1 - LOWEST_PICKED_PORT)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emit_table(lines: list[str], name: str, values: dict[str, Any]) -> None:
    """One TOML table, its plain keys first, then its sub-tables (`[alerts.targets.x]`)."""
    lines.append(f"[{name}]")
    lines.extend(f"{k} = {toml_value(v)}" for k, v in values.items() if not isinstance(v, dict))
    lines.append("")
    for key, value in values.items():
        if isinstance(value, dict):
            _emit_table(lines, f"{name}.{key}", value)


@dataclass
class SimHarness:
    """Running simulators and everything needed to point syncd at them."""

    sims: RunningSims
    state_dir: Path
    notifications: bool
    webhook_port: int
    health_port: int = field(default_factory=free_port)
    client_state: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def tenant(self) -> Tenant:
        return self.sims.graph.tenant

    @property
    def scope(self) -> str:
        return f"syncd-microsoft-365-{self.sims.tenant_id}"

    def config_text(self, extra: dict[str, dict[str, Any]] | None = None) -> str:
        """The TOML: the simulators' keys, the webhook, the state dir, plus `extra` sections."""
        sections: dict[str, dict[str, Any]] = tomllib.loads(render_syncd_config(self.sims))
        sections["webhook"]["listen"] = f"127.0.0.1:{self.webhook_port}"
        sections["health"] = {"listen": f"127.0.0.1:{self.health_port}"}
        if self.notifications:
            sections["webhook"]["public_url"] = f"https://127.0.0.1:{self.webhook_port}"
            sections["webhook"]["client_state"] = self.client_state
        sections["state"] = {"dir": str(self.state_dir / "syncd")}
        sections["sync"] = {"debounce": 0.5, "full_resync_interval": 0.0}
        for name, values in (extra or {}).items():
            sections.setdefault(name, {}).update(values)
        lines: list[str] = []
        for name, values in sections.items():
            _emit_table(lines, name, values)
        return "\n".join(lines)

    def settings(self, extra: dict[str, dict[str, Any]] | None = None) -> Settings:
        path = self.state_dir / "syncd.toml"
        path.write_text(self.config_text(extra))
        path.chmod(0o600)
        return load_settings(path, environ={})

    def config_path(self, extra: dict[str, dict[str, Any]] | None = None) -> Path:
        self.settings(extra)
        return self.state_dir / "syncd.toml"

    @property
    def health_url(self) -> str:
        """The daemon's `/healthz` and `/metrics` listener (plain HTTP on loopback)."""
        return f"http://127.0.0.1:{self.health_port}"

    def j1_objects(self) -> dict[str, list[dict[str, Any]]]:
        """Every object the J1 simulator stores in syncd's partition scopes (``<scope>-e<n>-<i>``,
        ``<scope>-r<n>-<i>``), whatever the layout: {"entities": [...], "relationships": [...]}."""
        found = self.sims.j1_state.query_graph(None, None, self.sims.j1_account_id)
        return {
            kind: [o for o in objs if _is_partition_of(str(o.get("_scope")), self.scope)]
            for kind, objs in found.items()
        }

    def j1_graph(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The J1 simulator's stored graph in syncd's scopes: (entities by key, relationships by key)."""
        found = self.j1_objects()
        return ({e["_key"]: e for e in found["entities"]}, {r["_key"]: r for r in found["relationships"]})

    def j1_object(self, kind: PartKind, key: str) -> dict[str, Any] | None:
        """One stored object by key, in O(1) whatever the partition count (benches poll this):
        its partition scope is one of a few candidates, one per possible partition count."""
        graph = self.sims.j1_state.graphs.get(self.sims.j1_account_id)
        if graph is None:
            return None
        store = graph.entities if kind == ENTITY_PART else graph.relationships
        khash = key_hash(key)
        for bits in range(MAX_BITS + 1):
            scope = Layout(self.scope, bits, bits).partition_of(kind, khash).scope(self.scope)
            found = store.get(object_id(scope, key))
            if found is not None:
                return found
        return None

    def is_syncd_scope(self, scope: str) -> bool:
        """A scope of syncd's partition layout (jobs on probe or isolation scopes are not)."""
        return _is_partition_of(scope, self.scope)

    async def stop(self) -> None:
        await self.sims.stop()


def _is_partition_of(scope: str, base: str) -> bool:
    parsed = parse_scope(scope)
    return parsed is not None and parsed[0] == base


DEFAULT_J1_BEHAVIOUR: dict[str, Any] = {}
"""J1 simulator switches (docs/simulators.md) a harness starts with when its caller names none:
the e2e suites that must hold under every reading of the J1 docs set it for a run."""


async def start_harness(
    tenant: Tenant,
    state_dir: Path,
    *,
    notifications: bool = True,
    faults: Faults | None = None,
    delivery: DeliveryConfig | None = None,
    j1: bool = True,
    j1_behaviour: Mapping[str, Any] | None = None,
    j1_account_id: str = "sim-account",
    j1_api_key: str | None = None,
    graph_port: int = 0,
    graph_http_port: int = 0,
    j1_port: int = 0,
) -> SimHarness:
    """Start the simulators (see `start_simulators`) with their files under `state_dir/sim`;
    `notifications` gives the daemon a public webhook URL (Graph then delivers change notifications)."""
    state_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before any loop work
    if j1_behaviour is None and DEFAULT_J1_BEHAVIOUR:
        j1_behaviour = dict(DEFAULT_J1_BEHAVIOUR)
    sims = await start_simulators(
        tenant=tenant,
        state_dir=state_dir / "sim",
        faults=faults,
        delivery=delivery,
        j1=j1,
        j1_behaviour=j1_behaviour,
        j1_account_id=j1_account_id,
        j1_api_key=j1_api_key,
        graph_port=graph_port,
        graph_http_port=graph_http_port,
        j1_port=j1_port,
    )
    return SimHarness(sims=sims, state_dir=state_dir, notifications=notifications, webhook_port=free_port())
