"""A failed round on a fresh mirror: relationships pointing at its entities are partial too.

The groups round cannot upload a group → user membership whose user the failed users round never
staged (a relationship is only pushed when both endpoints exist), so the DIFF must protect the
membership type, not only the user types, or J1 loses every membership."""

from __future__ import annotations

from pathlib import Path

from bench.kit.sim_admin import syncd_jobs
from bench.kit.tenants import feature_tenant
from syncd.commands.resync import resync_command
from syncd.model import schema as m
from tests.helpers.harness import permission_faults, running_harness


def _of_type(rels: dict[str, dict[str, object]], type_: str) -> set[str]:
    return {k for k, r in rels.items() if r["_type"] == type_}


async def test_a_failed_users_round_on_a_fresh_mirror_keeps_memberships_in_j1(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(), tmp_path, notifications=False) as h:
        assert await resync_command(h.settings()) == 0
        _, rels = h.j1_graph()
        memberships = _of_type(rels, m.GROUP_HAS_USER.type)
        owned = _of_type(rels, m.USER_OWNS_DEVICE.type)
        assert memberships and owned

        # the state directory is lost; the users round fails (consent withdrawn), groups work
        permission_faults(h).denied = {"User.Read.All"}
        fresh = h.settings({"state": {"dir": str(tmp_path / "fresh-state")}})
        jobs_before = len(h.sims.j1_state.jobs_view())
        assert await resync_command(fresh) == 1  # a failed round is reported

        jobs = syncd_jobs(h, jobs_before)
        assert jobs and {j["mode"] for j in jobs} == {"DIFF"}  # one per partition
        for job in jobs:
            for protected in (m.USER, m.GROUP_HAS_USER, m.ACCOUNT_HAS_USER, m.USER_OWNS_DEVICE):
                assert protected.type in job["partialTypes"], protected.type
            assert m.GROUP.type not in job["partialTypes"]
        _, rels = h.j1_graph()
        assert _of_type(rels, m.GROUP_HAS_USER.type) == memberships
        assert _of_type(rels, m.USER_OWNS_DEVICE.type) == owned
