"""No secret ever leaves the process: a whole cycle at DEBUG (JSON logs), `syncd status`, the mirror."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.kit.daemon import directory_config, run_cli, start_daemon
from bench.kit.tenants import directory_tenant
from bench.kit.waiting import wait_for
from tests.helpers.harness import j1_faults, running_harness


async def test_debug_cycle_status_and_mirror_hold_no_secret(tmp_path: Path) -> None:
    async with running_harness(directory_tenant(), tmp_path, notifications=True) as h:
        cfg = directory_config(h, log={"level": "DEBUG", "format": "json"}, sync={"safety_net_interval": 1.0})
        d = await start_daemon(cfg, tmp_path / "logs")
        await d.wait_event("syncd ready", 40)  # resync + subscriptions (validation handshakes)
        users = list(h.tenant.list("users"))
        h.tenant.update("users", users[0]["id"], {"displayName": "notified change"})  # notification
        await wait_for(
            lambda: h.j1_graph()[0][users[0]["id"]].get("displayName") == "notified change",
            20,
            "the notified change in J1",
        )
        # a failing J1 push (errors carry request details), then recovery
        j1_faults(h, count_5xx=2, status_5xx=500)
        j1_faults(h, outage=True)
        h.tenant.update("users", users[1]["id"], {"jobTitle": "while J1 is down"})
        await d.wait_event("push to J1 failed; the outbox keeps the changes", 30)
        j1_faults(h, outage=False)
        await wait_for(
            lambda: h.j1_graph()[0][users[1]["id"]].get("jobTitle") == "while J1 is down",
            30,
            "the change after the outage",
        )
        # Graph re-authentication: every token expires, the daemon gets a fresh one
        h.sims.graph.tokens.expire_all()
        h.tenant.update("users", users[2]["id"], {"jobTitle": "after token expiry"})
        await wait_for(
            lambda: h.j1_graph()[0][users[2]["id"]].get("jobTitle") == "after token expiry",
            30,
            "the change after token expiry",
        )
        status = await run_cli("status", config=cfg)  # while the daemon runs
        assert status.code == 0, status.err
        assert "outbox depth" in status.out
        status_json = await run_cli("status", "--json", config=cfg)
        assert status_json.code == 0
        state = tmp_path / "syncd"
        # the files as they are while the daemon runs (WAL not yet checkpointed), then after stop
        running_files = {f"running {p.name}": p.read_bytes() for p in state.iterdir() if p.is_file()}
        assert any(name.endswith("-wal") for name in running_files), sorted(running_files)
        assert await d.stop() == 0
        output = d.output()
        assert any(e.get("level") == "debug" for e in d.events())

        tokens = list(h.sims.graph.tokens._tokens)
        assert len(tokens) >= 2  # the first token and the one after expire_all
        secrets = {
            "client secret": h.sims.client_secret,
            "J1 API key": h.sims.j1_api_key,
            "clientState": h.client_state,
            **{f"bearer token {i}": t for i, t in enumerate(tokens)},
        }
        blobs = {"logs": output.encode(), "status": (status.out + status.err + status_json.out).encode()}
        blobs.update(running_files)
        for p in state.iterdir():
            if p.is_file():
                blobs[p.name] = p.read_bytes()
        assert any(name.endswith(".sqlite") for name in blobs)
        for what, secret in secrets.items():
            assert len(secret) >= 16, what
            for where, blob in blobs.items():
                for form in {secret, secret[:16]}:
                    assert form.encode() not in blob, f"{what} found in {where}"
        await asyncio.sleep(0)
