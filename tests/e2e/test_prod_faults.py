"""The fault matrix against the simulators: every case ends with J1 equal to the tenant (or a clear
error and an untouched mirror). The daemon runs in this process, except where exit codes matter."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from bench.kit.churn import Churn
from bench.kit.daemon import directory_config, json_events, run_cli
from bench.kit.tenants import directory_tenant
from bench.kit.truth import directory_truth, j1_directory, wait_converged
from bench.kit.waiting import wait_for
from syncd import metrics
from syncd.sim.harness import SimHarness
from tests.helpers.harness import graph_faults, j1_faults, running_harness
from tests.helpers.inprocess import running_daemon


def _harness(tmp_path: Path, **kw: Any) -> AbstractAsyncContextManager[SimHarness]:
    return running_harness(directory_tenant(**kw), tmp_path, notifications=True)


def _churn(h: SimHarness, n: int, seed: int) -> None:
    churn = Churn(h.tenant, seed)
    for _ in range(n):
        churn.step()


def _throttled() -> float:
    return sum(
        s.value for mf in metrics.GRAPH_THROTTLED.collect() for s in mf.samples if s.name.endswith("_total")
    )


@pytest.mark.parametrize(
    ("case", "faults", "extra"),
    [
        ("429 storm with Retry-After", {"throttle_rate": 0.5, "retry_after": "0.2", "seed": 3}, {}),
        ("5xx bursts", {"error_rate": 0.4, "error_retry_after": "0.1", "seed": 4}, {}),
        ("connection resets", {"reset_rate": 0.3, "seed": 5}, {}),
    ],
)
async def test_graph_faults_then_convergence(
    tmp_path: Path, case: str, faults: dict[str, Any], extra: dict[str, Any], j1_reading: str
) -> None:
    async with _harness(tmp_path) as h:
        cfg = directory_config(h, sync={"safety_net_interval": 1.0}, **extra)
        async with running_daemon(cfg, logs=io.StringIO()):
            throttled = _throttled()
            graph_faults(h, **faults)
            for i in range(4):
                _churn(h, 5, seed=i)
                await asyncio.sleep(0.7)
            await wait_converged(h, 40)
            if "429" in case:
                assert _throttled() > throttled  # 429s show in syncd_graph_throttled
            graph_faults(h, throttle_rate=0, error_rate=0, reset_rate=0)


async def _graph_timeouts_then_recover(tmp_path: Path, *, until_round_fails: bool) -> None:
    logs = io.StringIO()
    async with _harness(tmp_path) as h:
        cfg = directory_config(h, graph={"request_timeout": 1}, sync={"safety_net_interval": 0.5})
        async with running_daemon(cfg, logs=logs):
            before = j1_directory(h)
            graph_faults(h, latency_ms=1500)  # every Graph call outlives the client timeout
            _churn(h, 8, seed=11)

            def timed_out(n: int) -> bool:
                return sum("timeout, retry" in str(e.get("event")) for e in json_events(logs.getvalue())) >= n

            if until_round_fails:  # every retry of a round times out: the round fails (~35 s)
                await wait_for(
                    lambda: any(e.get("event") == "round failed" for e in json_events(logs.getvalue())),
                    40,
                    "a failed round",
                )
            else:  # rounds are stuck retrying timed-out calls
                await wait_for(lambda: timed_out(2), 20, "two timed-out Graph calls")
            assert j1_directory(h) == before  # a failed fetch produced no deletion (nor anything else)
            graph_faults(h, latency_ms=0)
            await wait_converged(h, 40)


async def test_graph_timeouts_change_nothing_then_recover(tmp_path: Path) -> None:
    await _graph_timeouts_then_recover(tmp_path, until_round_fails=False)


@pytest.mark.slow
async def test_graph_timeouts_fail_rounds_without_deleting_then_recover(tmp_path: Path) -> None:
    await _graph_timeouts_then_recover(tmp_path, until_round_fails=True)


async def test_j1_outage_over_several_cycles_then_drains_in_order(tmp_path: Path, j1_reading: str) -> None:
    async with _harness(tmp_path) as h:
        cfg = directory_config(h, sync={"safety_net_interval": 0.5})
        async with running_daemon(cfg, logs=io.StringIO()) as daemon:
            assert daemon.rt is not None
            j1_faults(h, outage=True)
            target = next(iter(h.tenant.list("users")))["id"]
            depths = []
            for i in range(5):  # several cycles; the same user changes in each: order matters
                h.tenant.update("users", target, {"jobTitle": f"version {i}"})
                _churn(h, 4, seed=100 + i)
                await asyncio.sleep(1.0)
                depths.append(await daemon.rt.mirror.outbox_depth())
            assert depths[-1] > depths[0] > 0, depths  # the outbox grows while J1 is down
            _ok, details = await daemon.health()
            assert details["outbox_depth"] == depths[-1]
            j1_faults(h, outage=False)
            await wait_converged(h, 40)
            assert h.j1_graph()[0][target]["jobTitle"] == "version 4"  # last write wins: drained in order
            await wait_for(_empty(daemon), 20, "an empty outbox")


def _empty(daemon: Any) -> Any:
    async def check() -> bool:
        return bool(await daemon.rt.mirror.outbox_depth() == 0)

    return check


@pytest.mark.parametrize("death", ["expired token (syncStateNotFound)", "410 resyncRequired"])
async def test_delta_token_death_then_full_round_sweeps_deletions(
    tmp_path: Path, death: str, j1_reading: str
) -> None:
    async with _harness(tmp_path) as h:
        # no notifications reach the daemon while the token is dead: the next round finds it dead
        cfg = directory_config(h, sync={"safety_net_interval": 1.0})
        async with running_daemon(cfg, logs=io.StringIO()):
            graph_faults(h, notify_drop_rate=1.0)
            users = list(h.tenant.list("users"))
            if death.startswith("410"):
                graph_faults(h, resync_410=True)
            else:
                h.sims.graph.delta.expire_all()
            gone = users[3]["id"]
            h.tenant.hard_delete("users", gone)  # deleted while the token is dead
            h.tenant.update("users", users[4]["id"], {"displayName": "changed while dead"})
            await wait_converged(h, 40)
            entities, _ = h.j1_graph()
            assert gone not in entities
            assert entities[users[4]["id"]]["displayName"] == "changed while dead"
            graph_faults(h, resync_410=False, notify_drop_rate=0.0)


async def test_dropped_notifications_are_recovered_by_the_safety_net(tmp_path: Path, j1_reading: str) -> None:
    async with _harness(tmp_path) as h:
        cfg = directory_config(h, sync={"safety_net_interval": 2.0})
        async with running_daemon(cfg, logs=io.StringIO()):
            # lost without a trace: no `missed` lifecycle event either (that case: test_notify_daemon)
            graph_faults(h, notify_drop_rate=1.0, missed_on_drop=False)
            user = next(iter(h.tenant.list("users")))["id"]
            h.tenant.update("users", user, {"displayName": "never notified"})
            await asyncio.sleep(0.6)
            assert h.j1_graph()[0][user]["displayName"] != "never notified"  # no notification came
            await wait_for(
                lambda: h.j1_graph()[0][user]["displayName"] == "never notified", 10, "the safety-net round"
            )


async def test_disk_full_is_a_clear_error_and_the_mirror_stays_sound(tmp_path: Path) -> None:
    """Disk full, simulated honestly: `PRAGMA max_page_count` caps the mirror at its current size, so
    SQLite fails the commit with SQLITE_FULL, the very error it reports when the file system is full
    (a tiny tmpfs is not available here). The round rolls back, the daemon says why, keeps running,
    and carries on once there is room."""
    logs = io.StringIO()
    async with _harness(tmp_path, users=60) as h:
        cfg = directory_config(h, sync={"safety_net_interval": 0.5})
        async with running_daemon(cfg, logs=logs) as daemon:
            assert daemon.rt is not None
            mirror = daemon.rt.mirror

            def cap(conn: sqlite3.Connection) -> int:
                pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
                conn.execute(f"PRAGMA max_page_count = {pages}")
                return pages

            await mirror._write("test: capping the mirror", cap)
            before = j1_directory(h)
            for i in range(150):  # far more than the free pages can hold
                h.tenant.upsert(
                    "users",
                    {
                        "displayName": f"Bulk {i} " + "x" * 200,
                        "userPrincipalName": f"bulk{i}@{h.tenant.domain}",
                        "accountEnabled": True,
                        "jobTitle": "y" * 200,
                    },
                )

            def full_error() -> bool:
                return any(
                    e.get("event") == "round failed: the mirror cannot be written"
                    and "is full" in str(e.get("error"))
                    for e in json_events(logs.getvalue())
                )

            await wait_for(full_error, 30, "the disk-full error")
            assert j1_directory(h) == before
            ok = await mirror._read(
                "test: integrity", lambda c: c.execute("PRAGMA integrity_check").fetchone()[0]
            )
            assert ok == "ok"
            await mirror._write("test: uncapping", lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
            await wait_converged(h, 40)


async def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    async with _harness(tmp_path) as h:
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("a file where the state directory's parent should be")
        cfg = directory_config(h)
        cfg.write_text(
            cfg.read_text().replace(f'dir = "{tmp_path / "syncd"}"', f'dir = "{blocker / "state"}"')
        )
        for args in (("run",), ("status",)):
            res = await run_cli(*args, config=cfg, timeout=60)
            assert res.code != 0 and res.code != 78, (args, res.code, res.err)
            assert "Traceback" not in res.err, res.err
            assert str(blocker) in res.err, res.err
        assert blocker.read_text().startswith("a file")


@pytest.mark.parametrize("damage", ["corrupt", "locked"])
async def test_corrupt_or_locked_mirror_is_never_reset(tmp_path: Path, damage: str) -> None:
    async with _harness(tmp_path) as h:
        cfg = directory_config(h)
        async with running_daemon(cfg, logs=io.StringIO()):
            pass
        mirror = tmp_path / "syncd" / "mirror.sqlite"
        assert mirror.exists()
        holder: sqlite3.Connection | None = None
        if damage == "corrupt":
            data = bytearray(mirror.read_bytes())
            data[0:100] = b"\x00garbage" * 12 + b"\x00" * 4  # the header: no longer SQLite
            for off in range(4096, len(data), 8192):
                data[off : off + 64] = b"\xff" * 64
            mirror.write_bytes(bytes(data))
            expected = "corrupt"
        else:
            expected = "locked"
        snapshot = mirror.read_bytes()
        if damage == "locked":
            # Another program holds the write lock. (Nothing in this process may open the file
            # until it is released: closing any descriptor drops a process's POSIX locks.)
            holder = sqlite3.connect(mirror, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
        try:
            for args in (("run",), ("status",)):
                res = await run_cli(*args, config=cfg, timeout=60)
                assert res.code == 1, (args, res.code, res.out, res.err)
                assert expected in res.err and str(mirror) in res.err, res.err
                assert "Traceback" not in res.err
        finally:
            if holder is not None:
                holder.execute("ROLLBACK")
                holder.close()
        assert mirror.read_bytes() == snapshot  # never reset, never touched
        if damage == "locked":  # once released, the daemon starts on the same data
            async with running_daemon(cfg, logs=io.StringIO()):
                assert not directory_truth(h.tenant).diff(j1_directory(h))
