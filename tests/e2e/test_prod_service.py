"""`syncd run` as a systemd service: sd_notify, SIGTERM, SIGHUP, /metrics and /healthz.

The daemon is a real subprocess with a local NOTIFY_SOCKET; the simulators run in this process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

from bench.kit.daemon import directory_config, start_daemon
from bench.kit.tenants import directory_tenant
from bench.kit.truth import directory_truth, j1_directory, wait_converged
from bench.kit.waiting import wait_for
from syncd.model import schema as m
from syncd.sim.harness import SimHarness, start_harness
from tests.helpers.harness import j1_faults, running_harness
from tests.helpers.service import NotifySocket, health_get, metric_value
from tests.systemd_units import UNIT_FILES, exec_start_argv


async def test_notify_ready_watchdog_status_stopping_and_metrics(tmp_path: Path) -> None:
    h = await start_harness(directory_tenant(), tmp_path, notifications=True)
    sock = NotifySocket(tmp_path / "notify.sock")
    try:
        cfg = directory_config(h, health={"max_lag": 3600, "outbox_stuck_after": 3600})
        d = await start_daemon(cfg, tmp_path / "logs", notify=sock.path, watchdog_usec=400_000)
        await wait_for(lambda: sock.seen("READY=1"), 40, "READY=1")
        ready_at = next(t for t, msg in sock.messages if "READY=1" in msg.split("\n"))
        # READY only once the first cycle is in J1
        assert not directory_truth(h.tenant).diff(j1_directory(h))
        status = [ln for ln in sock.lines() if ln.startswith("STATUS=lag ")]
        assert status and "users=" in status[-1] and "outbox" in status[-1]
        # WATCHDOG=1 pings from the loop: every WATCHDOG_USEC/2 = 0.2 s
        await asyncio.sleep(1.5)
        pings = [t for t, msg in sock.messages if msg == "WATCHDOG=1" and t > ready_at]
        assert len(pings) >= 4, pings

        # a change arrives by notification and is pushed; metrics reflect it
        user = next(iter(h.tenant.list("users")))
        h.tenant.update("users", user["id"], {"displayName": "Renamed by the test"})

        def pushed() -> bool:
            entities, _ = h.j1_graph()
            return entities[user["id"]].get("displayName") == "Renamed by the test"

        await wait_for(pushed, 20, "the rename in J1")

        async def drained() -> bool:
            _, page = await health_get(h, "/metrics")
            return metric_value(page, "syncd_outbox_depth") == 0

        await wait_for(drained, 10, "outbox depth 0")  # the rename is acked after the last job
        code, text = await health_get(h, "/metrics")
        assert code == 200
        assert metric_value(text, "syncd_resource_lag_seconds", resource="users") is not None
        assert (metric_value(text, "syncd_changes_pushed_total", type=m.USER.type, op="diff") or 0) >= 40
        assert (metric_value(text, "syncd_changes_pushed_total", type=m.USER.type, op="upsert") or 0) >= 1
        assert (metric_value(text, "syncd_graph_requests_total") or 0) > 0
        assert (metric_value(text, "syncd_j1_jobs_total", mode="DIFF", status="finished") or 0) >= 1
        assert (metric_value(text, "syncd_j1_jobs_total", mode="PATCH", status="finished") or 0) >= 1
        assert (metric_value(text, "syncd_notifications_total", result="accepted") or 0) >= 1
        expiry = metric_value(text, "syncd_subscription_expiry_seconds", resource="users")
        assert expiry is not None and expiry > 3600
        code, body = await health_get(h, "/healthz")
        assert code == 200, body

        t0 = time.monotonic()
        assert await d.stop() == 0
        assert time.monotonic() - t0 < 10
        assert sock.seen("STOPPING=1")
        # one structured event per round, nothing per object at INFO
        events = d.events()
        assert any(e.get("event") == "round" and "changes" in e for e in events)
        assert all(e.get("level") != "debug" for e in events)
        assert len(events) < 60, [e.get("event") for e in events]
        assert "Traceback" not in d.output()
    finally:
        sock.close()
        await h.stop()


async def test_sigterm_during_slow_push_exits_0_and_restart_converges(tmp_path: Path) -> None:
    async with running_harness(directory_tenant(), tmp_path, notifications=True) as h:
        cfg = directory_config(h, j1={"request_timeout": 30})
        d = await start_daemon(cfg, tmp_path / "logs")
        await d.wait_event("syncd ready", 40)
        # every J1 call now takes 2 s: the next push spans several seconds
        j1_faults(h, latency_ms=2000)
        users = list(h.tenant.list("users"))
        for i, u in enumerate(users[:5]):
            h.tenant.update("users", u["id"], {"displayName": f"slow push {i}"})
        h.tenant.hard_delete("users", users[6]["id"])
        jobs_before = len(h.sims.j1_state.jobs)
        await wait_for(lambda: len(h.sims.j1_state.jobs) > jobs_before, 20, "a J1 job in flight")
        t0 = time.monotonic()
        code = await d.stop(timeout=40)
        took = time.monotonic() - t0
        assert code == 0, d.output()[-2000:]
        assert took < 25, took
        assert "Traceback" not in d.output()
        j1_faults(h, latency_ms=0)
        d2 = await start_daemon(cfg, tmp_path / "logs")
        await d2.wait_event("syncd ready", 40)
        await wait_converged(h, 20)
        entities, _ = h.j1_graph()
        assert entities[users[0]["id"]]["displayName"] == "slow push 0"
        assert users[6]["id"] not in entities
        assert await d2.stop() == 0


async def test_sighup_reloads_log_level_and_refuses_a_broken_config(tmp_path: Path) -> None:
    async with running_harness(directory_tenant(), tmp_path, notifications=False) as h:
        cfg = directory_config(h, sync={"safety_net_interval": 0.5})
        d = await start_daemon(cfg, tmp_path / "logs")
        await d.wait_event("syncd ready", 40)
        await asyncio.sleep(1.0)
        assert not any(e.get("level") == "debug" for e in d.events())
        text = cfg.read_text().replace('level = "INFO"', 'level = "DEBUG"')
        assert 'level = "DEBUG"' in text
        cfg.write_text(text)
        d.signal(signal.SIGHUP)
        await d.wait_event("configuration reloaded", 10, log_level="DEBUG")
        await wait_for(lambda: any(e.get("level") == "debug" for e in d.events()), 10, "a DEBUG line")
        # a broken file is refused; the daemon keeps running with what it has
        cfg.write_text(text + "\n[graph]\nnot_a_key = 1\n")
        d.signal(signal.SIGHUP)
        await d.wait_event("reload refused: configuration invalid; keeping the running one", 10)
        await asyncio.sleep(0.5)
        assert d.proc.returncode is None
        assert await d.stop() == 0


async def _unhealthy(h: SimHarness) -> bool:
    code, _ = await health_get(h, "/healthz")
    return code == 503


async def _healthy(h: SimHarness) -> bool:
    code, _ = await health_get(h, "/healthz")
    return code == 200


async def test_healthz_503_while_the_outbox_is_stuck_then_200(tmp_path: Path) -> None:
    async with running_harness(directory_tenant(), tmp_path, notifications=False) as h:
        # the safety-net round (every 0.5 s) keeps the lag low; J1 down makes the outbox stuck
        cfg = directory_config(
            h, sync={"safety_net_interval": 0.5}, health={"max_lag": 30, "outbox_stuck_after": 2}
        )
        d = await start_daemon(cfg, tmp_path / "logs")
        await d.wait_event("syncd ready", 40)
        code, body = await health_get(h, "/healthz")
        assert code == 200, body
        j1_faults(h, outage=True)
        h.tenant.update("users", next(iter(h.tenant.list("users")))["id"], {"jobTitle": "queued"})
        await wait_for(lambda: _unhealthy(h), 20, "/healthz 503 while J1 is down")
        _, body = await health_get(h, "/healthz")
        assert '"outbox_stuck": true' in body and '"stale": []' in body and '"stalled": null' in body

        async def j1_errors_counted() -> bool:
            _, page = await health_get(h, "/metrics")
            return (metric_value(page, "syncd_j1_errors_total") or 0) >= 1

        await wait_for(j1_errors_counted, 30, "syncd_j1_errors_total")
        _, text = await health_get(h, "/metrics")
        assert (metric_value(text, "syncd_outbox_depth") or 0) >= 1
        j1_faults(h, outage=False)
        await wait_for(lambda: _healthy(h), 20, "/healthz 200 after J1 is back")
        assert await d.stop() == 0


async def test_healthz_503_while_a_resource_is_stale_then_200(tmp_path: Path) -> None:
    async with running_harness(directory_tenant(), tmp_path, notifications=False) as h:
        # staleness: Graph fails every request, so the lag passes max_lag
        cfg = directory_config(
            h,
            sync={"safety_net_interval": 0.5},
            health={"max_lag": 3, "outbox_stuck_after": 600},
            graph={"request_timeout": 2},
        )
        d = await start_daemon(cfg, tmp_path / "logs")
        await d.wait_event("syncd ready", 40)
        h.sims.graph.set_faults({"error_rate": 1.0, "error_retry_after": "0"})

        async def users_stale() -> bool:
            code, body = await health_get(h, "/healthz")
            return code == 503 and "users" in json.loads(body)["stale"]

        await wait_for(users_stale, 30, "/healthz 503 naming users as stale")
        h.sims.graph.set_faults({"error_rate": 0.0})
        await wait_for(lambda: _healthy(h), 30, "/healthz 200 once rounds succeed again")
        assert await d.stop() == 0


async def test_each_units_own_command_line_starts_the_daemon(tmp_path: Path) -> None:
    """The ExecStart= line of every unit in systemd/, only the binary (the venv's) and the config
    path (the simulators') swapped: the daemon gets ready, serves /healthz, stops with 0."""
    async with running_harness(directory_tenant(), tmp_path, notifications=False) as h:
        cfg = directory_config(h)
        for unit in UNIT_FILES:
            argv = exec_start_argv(unit, "ci-tenant")
            argv[argv.index("--config") + 1] = str(cfg)
            d = await start_daemon(cfg, tmp_path / "logs" / unit.name, argv=argv)
            await d.wait_event("syncd ready", 40)
            code, body = await health_get(h, "/healthz")
            assert code == 200 and json.loads(body)["ready"] is True, (unit.name, body)
            assert await d.stop() == 0, unit.name
