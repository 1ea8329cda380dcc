"""`syncd uninstall [--purge-j1] [--yes]` against the simulators."""

from __future__ import annotations

import time
from pathlib import Path

from bench.kit.daemon import run_cli
from bench.kit.tenants import feature_tenant
from syncd.commands.resync import resync_command
from syncd.mirror import Mirror
from syncd.sim.graph.subscriptions import Subscription
from syncd.sim.harness import SimHarness
from tests.helpers.harness import running_harness


async def _add_subscription(h: SimHarness, mirror_path: Path, sub_id: str) -> None:
    """A subscription as `syncd run` leaves it: known to Graph and recorded in the mirror."""
    sims = h.sims
    sims.graph.subscriptions.add(
        Subscription(
            id=sub_id,
            resource="users",
            resource_key="users",
            resource_id=None,
            change_types={"updated", "deleted"},
            change_type_raw="updated,deleted",
            notification_url="https://syncd.example.com/graph",
            lifecycle_url="https://syncd.example.com/graph/lifecycle",
            client_state="x",
            expires_at=time.time() + 3600,
            app_id=sims.client_id,
            tls_version="v1_2",
        )
    )
    from datetime import UTC, datetime, timedelta

    mirror = await Mirror.open(mirror_path)
    try:
        await mirror.save_subscription(sub_id, "users", datetime.now(UTC) + timedelta(hours=1), "hash")
    finally:
        await mirror.close()


async def test_uninstall_purges_subscriptions_j1_and_state(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        settings = h.settings()
        assert await resync_command(settings) == 0
        entities, rels = h.j1_graph()
        assert entities and rels
        await _add_subscription(h, settings.mirror_path, "sub-0001")
        other = "sub-not-syncd"
        await _add_subscription(h, tmp_path / "elsewhere.sqlite", other)  # Graph knows it, syncd does not
        cfg = h.config_path()

        # without --yes and without a terminal: everything but the local state
        res = await run_cli("uninstall", config=cfg)
        assert res.code == 0, res.out + res.err
        assert "deleted 1 Graph subscription(s)" in res.out
        assert h.sims.graph.subscriptions.get("sub-0001") is None
        assert h.sims.graph.subscriptions.get(other) is not None  # not ours: untouched
        assert "kept the local state" in res.out and settings.state_dir.exists()
        assert h.j1_graph()[0]  # J1 untouched without --purge-j1

        jobs_before = len(h.sims.j1_state.jobs_view())
        res = await run_cli("uninstall", "--purge-j1", "--yes", config=cfg)
        assert res.code == 0, res.out + res.err
        assert "Traceback" not in res.out + res.err
        assert h.j1_graph() == ({}, {})
        jobs = h.sims.j1_state.jobs_view()
        purges = jobs[jobs_before:]
        # every partition of the layout, plus the pre-partition single scope and the isolation scope
        assert {j["scope"] for j in purges} >= {h.scope, f"{h.scope}-isolate"}
        assert all(h.is_syncd_scope(j["scope"]) for j in purges if j["scope"].startswith(f"{h.scope}-e"))
        assert all(j["mode"] == "DIFF" and j["status"] == "FINISHED" for j in purges)
        assert all(sum(j["uploads"]["objects"].values()) == 0 for j in purges)
        assert sum(j["counters"]["numEntitiesDeleted"] for j in purges) == len(entities)
        assert h.sims.j1_state.query_graph(None, None, None) == {"entities": [], "relationships": []}
        assert not settings.state_dir.exists()
        assert f"removed the local state in {settings.state_dir}" in res.out


async def test_uninstall_refuses_while_the_daemon_holds_the_mirror(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        settings = h.settings()
        mirror = await Mirror.open(settings.mirror_path)  # what a running daemon holds
        try:
            res = await run_cli("uninstall", "--purge-j1", "--yes", config=h.config_path())
        finally:
            await mirror.close()
        assert res.code == 1
        assert "stop the daemon first" in res.out
        assert "Traceback" not in res.out + res.err
        assert settings.state_dir.exists()


def _config_without_state_dir(h: SimHarness, path: Path) -> Path:
    """The harness config minus its [state] table: a terminal run would use ./state."""
    text = h.config_text()
    kept, skip = [], False
    for line in text.splitlines():
        if line.startswith("["):
            skip = line == "[state]"
        if not skip:
            kept.append(line)
    path.write_text("\n".join(kept) + "\n")
    return path


async def test_uninstall_refuses_without_a_named_state_directory(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        settings = h.settings()
        assert await resync_command(settings) == 0
        await _add_subscription(h, settings.mirror_path, "sub-0002")
        cwd = tmp_path / "somewhere"
        (cwd / "state").mkdir(parents=True)
        precious = cwd / "state" / "precious.txt"
        precious.write_text("not syncd's")
        cfg = _config_without_state_dir(h, tmp_path / "no-state.toml")

        res = await run_cli("uninstall", "--purge-j1", "--yes", cwd=cwd, config=cfg)
        assert res.code == 78, res.out + res.err
        assert "[state] dir" in res.err and "STATE_DIRECTORY" in res.err and "nothing was done" in res.err
        assert precious.read_text() == "not syncd's" and sorted(
            p.name for p in (cwd / "state").iterdir()
        ) == ["precious.txt"]
        assert h.sims.graph.subscriptions.get("sub-0002") is not None  # nothing was done
        assert h.j1_graph()[0] and settings.mirror_path.exists()


async def test_uninstall_with_no_mirror_in_the_directory_does_nothing(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        empty = tmp_path / "not-the-state-dir"
        empty.mkdir()
        (empty / "keep.me").write_text("x")
        res = await run_cli("uninstall", "--yes", env={"SYNCD_STATE_DIR": str(empty)}, config=h.config_path())
        assert res.code == 1, res.out + res.err
        assert f"no syncd mirror in {empty}" in res.out and "nothing was done" in res.out
        assert sorted(p.name for p in empty.iterdir()) == ["keep.me"]


async def test_uninstall_deletes_only_syncds_own_files(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        settings = h.settings()
        assert await resync_command(settings) == 0
        state = settings.state_dir
        (state / "operator-notes.txt").write_text("mine")
        assert any(p.name.startswith("mirror.sqlite") for p in state.iterdir())
        res = await run_cli("uninstall", "--yes", config=h.config_path())
        assert res.code == 0, res.out + res.err
        assert sorted(p.name for p in state.iterdir()) == ["operator-notes.txt"]
        assert f"removed syncd's files from {state}; kept the directory" in res.out
