"""Account name and tagging: `tag.AccountName` on every entity, the account's displayName, and a
settings change reaching every entity on the next full sync."""

from __future__ import annotations

from pathlib import Path

from bench.kit.sim_admin import syncd_jobs
from bench.kit.tenants import feature_tenant
from syncd.model import schema as m
from syncd.runtime import open_runtime
from tests.helpers.harness import running_harness


async def test_account_name_tags_every_entity_and_follows_changes(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        on = h.settings({"j1": {"account_name": "Acme M365", "tag_with_account_name": True}})
        async with open_runtime(on) as rt:
            first = await rt.engine.resync()
        assert not first.failed
        entities, _ = h.j1_graph()
        assert len(entities) > 30
        assert {e.get("tag.AccountName") for e in entities.values()} == {"Acme M365"}
        account = [e for e in entities.values() if e["_type"] == m.ACCOUNT.type]
        assert len(account) == 1 and account[0]["displayName"] == "Acme M365"
        assert account[0]["organizationName"]  # the tenant's own name is kept

        renamed = h.settings({"j1": {"account_name": "Acme Corp", "tag_with_account_name": True}})
        jobs_before = len(h.sims.j1_state.jobs_view())
        async with open_runtime(renamed) as rt:
            second = await rt.engine.resync()
        assert not second.failed
        # the mirror's hash diff sees every entity changed (and nothing else: relationships are untouched)
        assert sum(r.changes for r in second.rounds) == len(entities)
        jobs = syncd_jobs(h, jobs_before)
        assert {(j["mode"], j["status"]) for j in jobs} == {("DIFF", "FINISHED")}
        assert sum(j["counters"]["numEntitiesUpdated"] for j in jobs) == len(entities)
        assert sum(j["counters"]["numRelationshipsUpdated"] for j in jobs) == 0
        entities, _ = h.j1_graph()
        assert {e.get("tag.AccountName") for e in entities.values()} == {"Acme Corp"}
        account = [e for e in entities.values() if e["_type"] == m.ACCOUNT.type]
        assert account[0]["displayName"] == "Acme Corp"

        off = h.settings({"j1": {"account_name": "Acme Corp", "tag_with_account_name": False}})
        async with open_runtime(off) as rt:
            await rt.engine.resync()
        entities, _ = h.j1_graph()
        assert not [e for e in entities.values() if "tag.AccountName" in e]
        account = [e for e in entities.values() if e["_type"] == m.ACCOUNT.type]
        assert account[0]["displayName"] == "Acme Corp"  # the name still names the account
