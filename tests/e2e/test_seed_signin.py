"""The user entity carries last sign-in (``lastSignInOn``) where the permission exists.

``signInActivity`` is not tracked by users delta: a poll of ``/users?$select=id,signInActivity``
re-stages the users whose value changed, and delta rounds keep the stored value.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bench.kit.sim_admin import sim_admin
from bench.kit.tenants import feature_tenant
from syncd.commands.resync import resync_command
from syncd.daemon import Daemon
from syncd.graph.errors import GraphError, PermissionDenied
from syncd.model import schema as m
from syncd.runtime import open_runtime
from syncd.sim.graph.directory import sign_in_activity
from syncd.sources.directory import DeltaSource
from syncd.sources.signins import OFF_MESSAGE
from tests.helpers.harness import permission_faults, running_harness
from tests.helpers.inprocess import source_of


def _ms(iso: str | None) -> int | None:
    if iso is None:
        return None
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _users(h: Any) -> dict[str, dict[str, Any]]:
    entities, _ = h.j1_graph()
    return {k: e for k, e in entities.items() if e["_type"] == m.USER.type}


async def test_sign_in_reaches_j1_and_survives_delta(tmp_path: Path) -> None:
    async with running_harness(
        feature_tenant(users=20, with_intune=False), tmp_path, notifications=False
    ) as h:
        assert await resync_command(h.settings()) == 0
        assert all("lastSignInOn" not in u for u in _users(h).values())

        async with open_runtime(h.settings()) as rt:
            report = await rt.engine.poll_sign_ins()
            assert report.kind == "poll" and report.changes > 0
            await rt.engine.drain()
        users = _users(h)
        expected = {u["id"]: sign_in_activity(u) for u in h.tenant.list("users")}
        assert any(v["lastSignInDateTime"] for v in expected.values())
        assert any(v["lastSignInDateTime"] is None for v in expected.values())
        for key, value in expected.items():
            assert users[key].get("lastSignInOn") == _ms(value["lastSignInDateTime"])
            assert users[key].get("lastNonInteractiveSignInOn") == _ms(
                value["lastNonInteractiveSignInDateTime"]
            )

        # a new sign-in: not seen by delta, reaches J1 after one poll
        user_id = next(iter(expected))
        when = "2026-03-04T05:06:07Z"
        async with sim_admin(h) as admin:
            await admin.patch_user(user_id, signInActivity={"lastSignInDateTime": when})
        async with open_runtime(h.settings()) as rt:
            delta = await rt.engine.run_round("users")
            assert delta.objects == 0  # signInActivity is not tracked by delta
            poll = await rt.engine.poll_sign_ins()
            assert poll.changed_ids == [user_id]
            again = await rt.engine.poll_sign_ins()
            assert again.changes == 0 and not again.changed_ids
            await rt.engine.drain()
        assert _users(h)[user_id]["lastSignInOn"] == _ms(when)

        # a following delta round (rename) keeps it
        h.tenant.update("users", user_id, {"displayName": "Renamed After Sign-in"})
        async with open_runtime(h.settings()) as rt:
            delta = await rt.engine.run_round("users")
            assert delta.objects == 1
            await rt.engine.drain()
            raw = await rt.mirror.get_raw("users", user_id)
            assert raw is not None and raw["signInActivity"]["lastSignInDateTime"] == when
        user = _users(h)[user_id]
        assert user["displayName"] == "Renamed After Sign-in"
        assert user["lastSignInOn"] == _ms(when)

        # and so does a full resync
        assert await resync_command(h.settings()) == 0
        assert _users(h)[user_id]["lastSignInOn"] == _ms(when)


async def test_denied_in_auto_mode_switches_off_quietly(tmp_path: Path) -> None:
    async with running_harness(
        feature_tenant(users=15, with_intune=False), tmp_path, notifications=False
    ) as h:
        async with sim_admin(h) as admin:
            await admin.call("PUT", "/_sim/permissions", {"denied_permissions": ["AuditLog.Read.All"]})
        faults = permission_faults(h)
        assert await resync_command(h.settings()) == 0
        async with open_runtime(h.settings()) as rt:
            with capture_logs() as logs:
                first = await rt.engine.poll_sign_ins()
                second = await rt.engine.poll_sign_ins()
            assert first.kind == second.kind == "poll"
            assert "users" not in rt.engine.partial and "users" not in rt.engine.last_error
            assert faults.sign_in_requests == 1  # switched off: no further request, no error loop
            lines = [e for e in logs if e.get("event") == OFF_MESSAGE]
            assert len(lines) == 1 and lines[0]["log_level"] == "info"
            assert not [e for e in logs if e.get("log_level") in ("warning", "error")]
            # a delta round after the switch-off does not read the stored sign-ins either
            await rt.engine.run_round("users")
        users = _users(h)
        assert set(users) == {u["id"] for u in h.tenant.list("users")}
        assert all("lastSignInOn" not in u for u in users.values())

        # "on" mode: the 403 fails the round (the source's types become partial)
        async with open_runtime(h.settings()) as rt:
            poll = source_of(rt, "users", DeltaSource).sign_ins
            assert poll is not None
            poll.mode = "on"
            with pytest.raises(PermissionDenied):
                await rt.engine.poll_sign_ins()
            assert "users" in rt.engine.partial

        # a tenant without the premium licence answers 403 too
        async with sim_admin(h) as admin:
            await admin.call("PUT", "/_sim/permissions", {"denied_permissions": ["EntraID.P1"]})
        async with open_runtime(h.settings()) as rt:
            report = await rt.engine.poll_sign_ins()
            assert report.kind == "poll"
            poll = source_of(rt, "users", DeltaSource).sign_ins
            assert poll is not None and poll.denied


async def test_off_makes_no_sign_in_request(tmp_path: Path) -> None:
    async with running_harness(
        feature_tenant(users=10, with_intune=False), tmp_path, notifications=False
    ) as h:
        faults = permission_faults(h)
        settings = h.settings({"sync": {"sign_in_activity": "off"}})
        assert settings.sync.sign_in_activity == "off"
        async with open_runtime(settings) as rt:
            daemon = Daemon(settings, install_signals=False)
            daemon.rt = rt
            await rt.engine.resync()
            report = await rt.engine.poll_sign_ins()
            assert report.kind == "poll" and report.pages == 0
            daemon._start_scheduler()
            assert daemon.scheduler is not None
            assert daemon.scheduler.get_job("sign-ins") is None
            daemon.scheduler.shutdown(wait=False)
        assert faults.sign_in_requests == 0
        assert all("lastSignInOn" not in u for u in _users(h).values())

        auto = h.settings()
        async with open_runtime(auto) as rt:
            daemon = Daemon(auto, install_signals=False)
            daemon.rt = rt
            daemon._start_scheduler()
            assert daemon.scheduler is not None
            job = daemon.scheduler.get_job("sign-ins")
            assert job is not None and job.trigger.interval.total_seconds() == auto.sync.sign_in_interval
            daemon.scheduler.shutdown(wait=False)
            # Graph caps the page at 500 when signInActivity is selected
            with pytest.raises(GraphError) as info:
                params = {"$select": "id,signInActivity", "$top": "999"}
                await rt.engine.ctx.graph.get("/users", params=params)
            assert info.value.status == 400


def test_sign_in_config_validated(tmp_path: Path) -> None:
    from syncd.config import ConfigError, load_settings

    path = tmp_path / "syncd.toml"
    path.write_text('[sync]\nsign_in_activity = "sometimes"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "sign_in_activity" in str(info.value)
