"""Shared helpers for the production-grade tests (tests/e2e/test_prod_*.py) and bench/crash_loop.py.

`syncd run` runs as a real subprocess (signals, exit codes, sd_notify, stdout/stderr) while the
simulators keep running in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from syncd.model import schema as m
from syncd.sim.generator import generate_tenant
from syncd.sim.harness import SimHarness
from syncd.sim.tenant import Tenant

ROOT = Path(__file__).resolve().parents[2]
DIRECTORY_ONLY = {"sync": {"sources": [m.SOURCE_USERS, m.SOURCE_GROUPS]}}


def small_tenant(seed: int = 5, users: int = 40, groups: int = 6) -> Tenant:
    return generate_tenant(seed=seed, users=users, groups=groups, devices=3, managed_devices=0)


def config(h: SimHarness, **sections: dict[str, Any]) -> Path:
    """The harness config for the directory sources, fast timings, JSON logs, plus `sections`."""
    extra: dict[str, dict[str, Any]] = {
        "sync": {
            "sources": [m.SOURCE_USERS, m.SOURCE_GROUPS],
            "debounce": 0.2,
            "drain_interval": 0.5,
            "safety_net_interval": 3600,
        },
        "log": {"level": "INFO", "format": "json"},
    }
    for name, values in sections.items():
        extra.setdefault(name, {}).update(values)
    return h.config_path(extra)


# --- truth vs J1 ------------------------------------------------------------------------------------

USER_PROPERTIES = ("displayName", "jobTitle", "accountEnabled", "userPrincipalName")
GROUP_PROPERTIES = ("displayName", "description")
"""Graph properties syncd carries to J1 under the same name (the data model's pass-through)."""

Props = tuple[tuple[str, Any], ...]


def _props(obj: dict[str, Any], names: tuple[str, ...]) -> Props:
    return tuple((name, obj.get(name)) for name in names)


@dataclass(frozen=True)
class Directory:
    """Users and groups (key → the properties compared) and membership relationship keys."""

    users: dict[str, Props]
    groups: dict[str, Props]
    memberships: frozenset[str]
    duplicated: frozenset[str] = frozenset()
    """Keys stored more than once across syncd's J1 scopes (always a bug)."""

    def diff(self, other: Directory) -> dict[str, dict[str, Any]]:
        """What `other` (J1) gets wrong compared with `self` (the truth): empty when equal."""
        out: dict[str, dict[str, Any]] = {}
        for name in ("users", "groups"):
            mine, theirs = getattr(self, name), getattr(other, name)
            missing, extra = sorted(mine.keys() - theirs.keys()), sorted(theirs.keys() - mine.keys())
            changed = {
                key: {
                    p: [want, got]
                    for (p, want), (_, got) in zip(mine[key], theirs[key], strict=True)
                    if want != got
                }
                for key in sorted(mine.keys() & theirs.keys())
                if mine[key] != theirs[key]
            }
            if missing or extra or changed:
                out[name] = {
                    "missing": missing[:10],
                    "left_over": extra[:10],
                    "changed": dict(list(changed.items())[:10]),
                }
        missing_m, extra_m = (
            sorted(self.memberships - other.memberships),
            sorted(other.memberships - self.memberships),
        )
        if missing_m or extra_m:
            out["memberships"] = {"missing": missing_m[:10], "left_over": extra_m[:10]}
        if other.duplicated:
            out["duplicated"] = {"keys": sorted(other.duplicated)[:10]}
        return out


def tenant_truth(tenant: Tenant) -> Directory:
    """Computed from the simulator's tenant alone (not from syncd's converters or mirror)."""
    users = {u["id"]: _props(u, USER_PROPERTIES) for u in tenant.list("users")}
    groups = {g["id"]: _props(g, GROUP_PROPERTIES) for g in tenant.list("groups")}
    memberships = {
        f"{gid}|has|{mid}"
        for gid in groups
        for mid in tenant.member_ids(gid)
        if mid in users or mid in groups
    }
    return Directory(users, groups, frozenset(memberships))


def j1_objects(h: SimHarness) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every entity and relationship syncd wrote for this tenant, across all of its J1 scopes
    (scope `[j1] scope` or one starting with it), in the harness's J1 account."""
    found = h.sims.j1_state.query_graph(None, None, h.sims.j1_account_id)
    mine = [o for o in found["entities"] if str(o.get("_scope", "")).startswith(h.scope)]
    rels = [o for o in found["relationships"] if str(o.get("_scope", "")).startswith(h.scope)]
    return mine, rels


def j1_directory(h: SimHarness) -> Directory:
    entities, relationships = j1_objects(h)
    seen: set[str] = set()
    duplicated: set[str] = set()
    for obj in (*entities, *relationships):
        key = str(obj["_key"])
        (duplicated if key in seen else seen).add(key)
    users = {e["_key"]: _props(e, USER_PROPERTIES) for e in entities if e["_type"] == m.USER.type}
    groups = {e["_key"]: _props(e, GROUP_PROPERTIES) for e in entities if e["_type"] == m.GROUP.type}
    member_types = {m.GROUP_HAS_USER.type, m.GROUP_HAS_GROUP.type}
    memberships = {r["_key"] for r in relationships if r["_type"] in member_types}
    return Directory(users, groups, frozenset(memberships), frozenset(duplicated))


async def wait_for(
    cond: Callable[[], bool | Awaitable[bool]], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = cond()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_converged(h: SimHarness, timeout: float) -> None:
    last: dict[str, Any] = {}

    def ok() -> bool:
        nonlocal last
        last = tenant_truth(h.tenant).diff(j1_directory(h))
        return not last

    try:
        await wait_for(ok, timeout, "J1 to equal the tenant", interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {json.dumps(last)[:2000]}") from None


# --- tenant churn ------------------------------------------------------------------------------------


class Churn:
    """Random directory changes: renames, creations, soft/hard deletes, membership changes."""

    def __init__(self, tenant: Tenant, seed: int) -> None:
        self.tenant = tenant
        self.rng = random.Random(seed)
        self.n = 0

    def step(self) -> str:
        t, rng = self.tenant, self.rng
        users = [u["id"] for u in t.list("users")]
        groups = [g["id"] for g in t.list("groups")]
        self.n += 1
        roll = rng.random()
        if roll < 0.35 and users:
            uid = rng.choice(users)
            t.update("users", uid, {"displayName": f"Churned {self.n}", "jobTitle": f"title {self.n}"})
            return "update"
        if roll < 0.55:  # creations outweigh deletions: the tenant does not shrink away
            t.upsert(
                "users",
                {
                    "displayName": f"New {self.n}",
                    "userPrincipalName": f"new{self.n}.{rng.randrange(10**9)}@{t.domain}",
                    "accountEnabled": True,
                    "userType": "Member",
                },
            )
            return "create"
        if roll < 0.62 and len(users) > 10:
            t.soft_delete("users", rng.choice(users))
            return "soft_delete"
        if roll < 0.67 and len(users) > 10:
            t.hard_delete("users", rng.choice(users))
            return "hard_delete"
        if roll < 0.85 and users and groups:
            t.add_member(rng.choice(groups), rng.choice(users))
            return "add_member"
        if groups:
            gid = rng.choice(groups)
            members = t.member_ids(gid)
            if members:
                t.remove_member(gid, rng.choice(members))
                return "remove_member"
        return "noop"


# --- the daemon as a subprocess ----------------------------------------------------------------------


class NotifySocket:
    """A local `$NOTIFY_SOCKET` (AF_UNIX datagram) that records every sd_notify message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                data = self.sock.recv(65536)
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))

    def lines(self) -> list[str]:
        return [line for _, msg in self.messages for line in msg.split("\n")]

    def seen(self, line: str) -> bool:
        return line in self.lines()

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        self.path.unlink(missing_ok=True)


@dataclass
class DaemonProc:
    """`python -m syncd -c CONFIG run` with stdout/stderr in files (no pipe can fill up)."""

    proc: asyncio.subprocess.Process
    out_path: Path
    err_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.out_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    out.append(item)
        return out

    def has_event(self, event: str, **fields: Any) -> bool:
        return any(
            e.get("event") == event and all(e.get(k) == v for k, v in fields.items()) for e in self.events()
        )

    async def wait_event(self, event: str, timeout: float, **fields: Any) -> None:
        def ok() -> bool:
            if self.proc.returncode is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.output()[-3000:]}")
            return self.has_event(event, **fields)

        await wait_for(ok, timeout, f"log event {event!r} {fields}")

    def signal(self, sig: int) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, sig)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (kill -9 if it overruns, then fail)."""
        self.signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.proc.wait()
            raise AssertionError(f"daemon did not stop within {timeout}s:\n{self.output()[-3000:]}") from None

    async def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        await self.proc.wait()


async def start_daemon(
    cfg: Path,
    logs: Path,
    *,
    notify: Path | None = None,
    watchdog_usec: int | None = None,
    command: tuple[str, ...] = ("run",),
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
) -> DaemonProc:
    """`python -m syncd -c CFG run` (or `command`), or exactly `argv` when given."""
    logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob("*.out")))
    out_path, err_path = logs / f"{n:03d}.out", logs / f"{n:03d}.err"
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1", **(env or {})}
    if notify is not None:
        full_env["NOTIFY_SOCKET"] = str(notify)
    if watchdog_usec is not None:
        full_env["WATCHDOG_USEC"] = str(watchdog_usec)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *(argv or [sys.executable, "-m", "syncd", "-c", str(cfg), *command]),
            stdout=out,
            stderr=err,
            stdin=asyncio.subprocess.DEVNULL,
            env=full_env,
            cwd=str(ROOT),
        )
    return DaemonProc(proc, out_path, err_path)


async def run_cli(cfg: Path, *args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        "-c",
        str(cfg),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        cwd=str(ROOT),
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# --- HTTP to the daemon's webhook listener ------------------------------------------------------------


async def http_get(h: SimHarness, path: str) -> tuple[int, str]:
    """GET on the daemon's health listener (`/healthz`, `/metrics`)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{h.health_url}{path}", timeout=aiohttp.ClientTimeout(total=10)) as resp,
    ):
        return resp.status, await resp.text()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels...}` from a Prometheus text page (labels: a subset that must match)."""
    total: float | None = None
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part)
        found = {k: v.strip('"') for k, v in found.items()}
        if all(found.get(k) == v for k, v in labels.items()):
            total = (total or 0.0) + float(value)
    return total


def j1_faults(h: SimHarness, **changes: Any) -> None:
    h.sims.j1_state.faults.update(changes)


def graph_faults(h: SimHarness, **changes: Any) -> None:
    h.sims.graph.set_faults(changes)


# --- the daemon in this process (fault tests: reach into the mirror, capture logs) -----------------


@contextlib.asynccontextmanager
async def inprocess_daemon(h: SimHarness, cfg: Path, logs: io.StringIO | None = None) -> AsyncIterator[Any]:
    """`Daemon` on this loop (no signal handlers), logs as JSON into `logs`; stopped on exit."""
    from syncd import log as syncd_log
    from syncd.config import load_settings
    from syncd.daemon import Daemon

    settings = load_settings(cfg, environ={})
    syncd_log.configure_logging(
        settings.log.level, "json", stream=logs if logs is not None else io.StringIO()
    )
    syncd_log.register_secrets(settings.secrets())
    daemon = Daemon(settings, config_path=cfg, install_signals=False)
    ready = asyncio.Event()
    daemon.on_ready(ready.set)
    task = asyncio.create_task(daemon.run())
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise AssertionError("daemon returned before it was ready")
    if waiter not in done:
        task.cancel()
        raise AssertionError("daemon not ready within 60 s")
    try:
        yield daemon
    finally:
        daemon.request_stop()
        assert await asyncio.wait_for(task, 40) == 0


def log_events(buf: io.StringIO) -> list[dict[str, Any]]:
    out = []
    for line in buf.getvalue().splitlines():
        with contextlib.suppress(ValueError):
            item = json.loads(line)
            if isinstance(item, dict):
                out.append(item)
    return out
