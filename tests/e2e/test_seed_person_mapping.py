"""Map users to employees: each user with an email gets a mapped `IS Person` relationship that J1
resolves to the Person entities already in the account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.kit.tenants import feature_tenant
from syncd.commands.resync import resync_command
from syncd.model import schema as m
from syncd.sources.catalog import PERSON_MAPPING_TYPE
from tests.helpers.harness import running_harness


def _seed_persons(h: Any, users: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
    """One Person (another integration's employee record) per user; email → Person `_key`."""
    keys: dict[str, str] = {}
    for i, user in enumerate(users):
        email = str(user["mail"]).lower()
        props = {
            "_key": f"employee-{i:04d}",
            "_type": "bamboohr_employee",
            "_class": "Person",
            "email": email,
            "displayName": user.get("displayName") or email,
            **{k: v(user) for k, v in extra.items()},
        }
        h.sims.j1_state.seed_entity(h.sims.j1_account_id, "hr-persons", "api", props)
        keys[email] = props["_key"]
    return keys


def _mapped(h: Any) -> list[dict[str, Any]]:
    found = h.sims.j1_state.query_graph(None, PERSON_MAPPING_TYPE, None)
    return list(found["relationships"])


async def test_users_map_to_existing_persons(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        users = [u for u in h.tenant.list("users") if u.get("mail")]
        persons = _seed_persons(h, users[:10])
        assert await resync_command(h.settings()) == 0
        rels = _mapped(h)
        by_user = {r["_fromEntityKey"]: r for r in rels}
        for user in users[:10]:
            rel = by_user[user["id"]]
            assert rel["_toEntityKey"] == persons[str(user["mail"]).lower()]
            assert rel["_class"] == m.USER_IS_PERSON_CLASS
            assert rel["_mapping"]["targetFilterKeys"] == [["_class", "email"]]
            assert rel["_mapping"]["skipTargetCreation"] is True
        # users without a Person: no Person is invented (skipTargetCreation), nothing dangling
        assert len(rels) == 10
        person_entities = h.sims.j1_state.query_graph(None, None, None)["entities"]
        assert len([e for e in person_entities if e["_class"] == "Person"]) == 10


async def test_mapping_can_be_switched_off_and_match_keys_configured(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        users = [u for u in h.tenant.list("users") if u.get("mail") and u.get("employeeId")]
        _seed_persons(h, users[:5], employeeId=lambda u: u["employeeId"])
        # a Person with the right email but another employeeId must not match on both keys
        h.sims.j1_state.seed_entity(
            h.sims.j1_account_id,
            "hr-persons",
            "api",
            {
                "_key": "employee-x",
                "_type": "bamboohr_employee",
                "_class": "Person",
                "email": str(users[5]["mail"]).lower(),
                "employeeId": "NOPE",
            },
        )
        both = h.settings({"j1": {"person_match_keys": ["email", "employeeId"]}})
        assert await resync_command(both) == 0
        rels = _mapped(h)
        assert {r["_fromEntityKey"] for r in rels} == {u["id"] for u in users[:5]}
        assert all(r["_mapping"]["targetFilterKeys"] == [["_class", "email", "employeeId"]] for r in rels)

        off = h.settings({"j1": {"map_users_to_persons": False}})
        assert await resync_command(off) == 0
        assert _mapped(h) == []
