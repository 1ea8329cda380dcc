"""The J1 simulator's switches for what J1's docs leave open, each in every reading, and the
rejected-object faults (`reject_keys`, `bad_data_keys`)."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.sim.j1 import J1Behaviour, object_id
from syncd.sim.j1.state import MAPPER_SCOPE, MAPPER_SOURCE
from tests.sim.j1_helpers import ACCOUNT, JOBS, Sim, SimFactory, ent, error_code, rel

STRICT = {
    "explicit_deletes": "ignore",
    "cross_scope_ownership": "replace",
    "cross_scope_same_scope": "reject",
    "cross_scope_reference": "key_scope_source",
    "cascade_deletes": True,
}


def xrel(frm: str, frm_scope: str, to: str, to_scope: str, cls: str = "OWNS", **props: Any) -> dict[str, Any]:
    """A relationship naming both endpoints the way the cross-scope guide asks: key, scope, source."""
    return {
        **rel(frm, to, cls, f"x_{cls.lower()}", **props),
        "_fromEntityScope": frm_scope,
        "_fromEntitySource": "api",
        "_toEntityScope": to_scope,
        "_toEntitySource": "api",
    }


async def keys(sim: Sim, kind: str, **query: str) -> set[str]:
    return {o["_key"] for o in (await sim.graph(**query))[kind]}


# -- the switches themselves -------------------------------------------------------------------
async def test_behaviour_admin_api(make_sim: SimFactory) -> None:
    sim = await make_sim()
    status, data, _ = await sim.call("GET", "/_sim/behaviour", headers={})
    assert status == 200 and data == STRICT
    assert await sim.behave(explicit_deletes="apply", cascade_deletes=False) == {
        **STRICT,
        "explicit_deletes": "apply",
        "cascade_deletes": False,
    }
    for body, code in (
        ({"explicit_delete": "apply"}, "UNKNOWN_BEHAVIOUR"),
        ({"cross_scope_ownership": "append"}, "INVALID_BEHAVIOUR"),
        ({"cascade_deletes": "no"}, "INVALID_BEHAVIOUR"),
        ({"cross_scope_reference": True}, "INVALID_BEHAVIOUR"),
        # A bad switch next to a good one changes nothing.
        ({"cross_scope_same_scope": "accept", "cascade_deletes": 0}, "INVALID_BEHAVIOUR"),
    ):
        status, data, _ = await sim.call("PUT", "/_sim/behaviour", body, headers={})
        assert status == 400 and error_code(data) == code, body
    status, data, _ = await sim.call("PUT", "/_sim/behaviour", ["x"], headers={})
    assert status == 400 and error_code(data) == "INVALID_BEHAVIOUR"
    assert sim.state.behaviour.cross_scope_same_scope == "reject"
    await sim.call("POST", "/_sim/reset", headers={})
    assert sim.state.behaviour.as_json() == STRICT
    # Set at construction, and what `reset` goes back to.
    other = await make_sim(behaviour=J1Behaviour.permissive())
    permissive = {
        "explicit_deletes": "apply",
        "cross_scope_ownership": "additive",
        "cross_scope_same_scope": "accept",
        "cross_scope_reference": "key",
        "cascade_deletes": False,
    }
    assert (await other.call("GET", "/_sim/behaviour", headers={}))[1] == permissive
    await other.behave(explicit_deletes="ignore")
    await other.call("POST", "/_sim/reset", headers={})
    assert other.state.behaviour.as_json() == permissive


# -- explicit deletes ----------------------------------------------------------------------------
async def seed_scope_a(sim: Sim) -> None:
    job = await sim.run(
        "scope-a",
        entities=[ent("user-000001"), ent("user-000002"), ent("thing-00001", "test_thing", "Device")],
        relationships=[rel("user-000001", "thing-00001"), rel("user-000002", "thing-00001")],
    )
    assert job["status"] == "FINISHED" and job["numRelationshipsCreated"] == 2


@pytest.mark.parametrize("reading", ["ignore", "apply"])
async def test_explicit_entity_deletes_in_patch(sim: Sim, reading: str) -> None:
    await sim.behave(explicit_deletes=reading)
    await seed_scope_a(sim)
    job = await sim.create("scope-a", "PATCH")
    await sim.upload(job["id"], deleteEntities=[{"_key": "user-000001"}, {"_key": "nope-000000"}])
    await sim.finalize(job["id"])
    done = await sim.wait(job["id"])
    assert done["status"] == "FINISHED"
    (view,) = [
        j for j in (await sim.call("GET", "/_sim/jobs", headers={}))[1]["jobs"] if j["id"] == job["id"]
    ]
    assert view["uploads"]["objects"] == {"deleteEntities": 2}  # accepted and counted either way
    users = await keys(sim, "entities", scope="scope-a")
    if reading == "ignore":
        assert done["numEntitiesDeleted"] == 0 and done["numEntityDeleteErrors"] == 0
        assert done["numRelationshipsDeleted"] == 0
        assert users == {"user-000001", "user-000002", "thing-00001"}
        assert len((await sim.graph(scope="scope-a"))["relationships"]) == 2
    else:
        assert done["numEntitiesDeleted"] == 1 and done["numEntityDeleteErrors"] == 1
        assert done["numRelationshipsDeleted"] == 1  # cascaded
        assert users == {"user-000002", "thing-00001"}


@pytest.mark.parametrize("reading", ["ignore", "apply"])
async def test_explicit_deletes_in_diff(sim: Sim, reading: str) -> None:
    await sim.behave(explicit_deletes=reading)
    await seed_scope_a(sim)
    done = await sim.run(
        "scope-a",
        entities=[ent("user-000001"), ent("user-000002"), ent("thing-00001", "test_thing", "Device")],
        relationships=[rel("user-000001", "thing-00001"), rel("user-000002", "thing-00001")],
        deleteEntities=[{"_key": "user-000002"}],
        deleteRelationships=[{"_key": "user-000001|has|thing-00001"}, {"_key": "nope-0000000"}],
    )
    assert done["status"] == "FINISHED"
    rels = await keys(sim, "relationships", scope="scope-a")
    if reading == "ignore":
        assert done["numEntitiesDeleted"] == done["numRelationshipsDeleted"] == 0
        assert done["numEntityDeleteErrors"] == done["numRelationshipDeleteErrors"] == 0
        assert len(rels) == 2
    else:
        assert done["numEntitiesDeleted"] == 1 and done["numRelationshipsDeleted"] == 2
        assert done["numRelationshipDeleteErrors"] == 1
        assert rels == set()


@pytest.mark.parametrize("reading", ["ignore", "apply"])
async def test_explicit_relationship_deletes_in_cross_scope(sim: Sim, reading: str) -> None:
    await sim.behave(explicit_deletes=reading, cross_scope_ownership="additive")
    await sim.run("scope-a", entities=[ent("user-000001")])
    await sim.run("scope-b", entities=[ent("device-00001", "test_device", "Device")])
    link = xrel("user-000001", "scope-a", "device-00001", "scope-b")
    assert (await sim.run("links", "CROSS_SCOPE", relationships=[link]))["numRelationshipsCreated"] == 1
    done = await sim.run("links", "CROSS_SCOPE", deleteRelationships=[{"_key": link["_key"]}])
    assert done["status"] == "FINISHED"
    left = await keys(sim, "relationships", scope="links")
    if reading == "ignore":
        assert done["numRelationshipsDeleted"] == 0 and left == {link["_key"]}
    else:
        assert done["numRelationshipsDeleted"] == 1 and left == set()


# -- CROSS_SCOPE ownership -----------------------------------------------------------------------
async def seed_two_scopes(sim: Sim) -> None:
    await sim.run("scope-a", entities=[ent("user-000001"), ent("user-000002")])
    await sim.run(
        "scope-b",
        entities=[ent("device-00001", "test_device", "Device"), ent("device-00002", "test_device", "Device")],
    )


@pytest.mark.parametrize("reading", ["replace", "additive"])
async def test_cross_scope_ownership(sim: Sim, reading: str) -> None:
    await sim.behave(cross_scope_ownership=reading)
    await seed_two_scopes(sim)
    u1d1 = xrel("user-000001", "scope-a", "device-00001", "scope-b")
    u2d2 = xrel("user-000002", "scope-a", "device-00002", "scope-b")
    u1d2 = xrel("user-000001", "scope-a", "device-00002", "scope-b")
    other = xrel("user-000002", "scope-a", "device-00001", "scope-b", "USES")
    first = await sim.run("links", "CROSS_SCOPE", relationships=[u1d1, u2d2])
    assert first["numRelationshipsCreated"] == 2 and first["numRelationshipsDeleted"] == 0
    await sim.run("links-other", "CROSS_SCOPE", relationships=[other])
    second = await sim.run("links", "CROSS_SCOPE", relationships=[{**u1d1, "since": 2024}, u1d2])
    assert second["status"] == "FINISHED"
    assert second["numRelationshipsCreated"] == 1 and second["numRelationshipsUpdated"] == 1
    links = await keys(sim, "relationships", scope="links")
    if reading == "replace":
        assert second["numRelationshipsDeleted"] == 1
        assert links == {u1d1["_key"], u1d2["_key"]}
    else:
        assert second["numRelationshipsDeleted"] == 0
        assert links == {u1d1["_key"], u1d2["_key"], u2d2["_key"]}
    # Another scope's relationships and every entity are never touched by this job.
    assert await keys(sim, "relationships", scope="links-other") == {other["_key"]}
    assert len((await sim.graph())["entities"]) == 4
    # An empty job: under "replace" the scope then owns nothing; partial types are protected.
    protected = await sim.run(
        "links", "CROSS_SCOPE", finalize_body={"partialDatasets": {"types": ["x_owns"]}}
    )
    assert protected["numRelationshipsDeleted"] == 0
    emptied = await sim.run("links", "CROSS_SCOPE")
    assert emptied["numRelationshipsDeleted"] == (2 if reading == "replace" else 0)


# -- CROSS_SCOPE with both endpoints in one scope ----------------------------------------------------
@pytest.mark.parametrize("reading", ["reject", "accept"])
async def test_cross_scope_same_scope(sim: Sim, reading: str) -> None:
    await sim.behave(cross_scope_same_scope=reading)
    await seed_two_scopes(sim)
    job = await sim.create("links", "CROSS_SCOPE")
    same = xrel("user-000001", "scope-a", "user-000002", "scope-a", "KNOWS")
    good = xrel("user-000001", "scope-a", "device-00001", "scope-b")
    if reading == "reject":
        data = await sim.upload(job["id"], expect=400, relationships=[good, same])
        assert error_code(data) == "CROSS_SCOPE_SAME_SCOPE"
        assert "use DIFF or PATCH" in data["error"]["message"]
        _, current, _ = await sim.call("GET", f"{JOBS}/{job['id']}")
        assert current["job"]["status"] == "AWAITING_UPLOADS"
        assert current["job"]["numRelationshipsUploaded"] == 0  # nothing of the request staged
        # Both labels naming the job's own scope are one scope too.
        own = xrel("user-000001", "links", "user-000002", "links", "KNOWS")
        assert (
            error_code(await sim.upload(job["id"], expect=400, relationships=[own]))
            == "CROSS_SCOPE_SAME_SCOPE"
        )
        await sim.upload(job["id"], relationships=[good])
        await sim.finalize(job["id"])
        assert (await sim.wait(job["id"]))["numRelationshipsCreated"] == 1
    else:
        await sim.upload(job["id"], relationships=[good, same])
        await sim.finalize(job["id"])
        done = await sim.wait(job["id"])
        assert done["numRelationshipsCreated"] == 2 and done["numRelationshipCreateErrors"] == 0
        assert same["_key"] in await keys(sim, "relationships", scope="links")


# -- references to another scope's entity --------------------------------------------------------
REFERENCE_CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    # name: (how the `to` endpoint is named, readings under which it resolves)
    "key+scope+source": (
        {"_toEntityKey": "device-00001", "_toEntityScope": "scope-b", "_toEntitySource": "api"},
        {"key_scope_source", "key_scope", "key"},
    ),
    "key+scope": ({"_toEntityKey": "device-00001", "_toEntityScope": "scope-b"}, {"key_scope", "key"}),
    "bare key, unique elsewhere": ({"_toEntityKey": "device-00001"}, {"key"}),
    "key+scope+wrong source": (
        {
            "_toEntityKey": "device-00001",
            "_toEntityScope": "scope-b",
            "_toEntitySource": "integration-managed",
        },
        set(),
    ),
    "bare key in two other scopes": ({"_toEntityKey": "shared-key-01"}, set()),
    "bare key of a mapper entity": ({"_toEntityKey": "mapper-key-01"}, set()),
    "bare key in the job scope": ({"_toEntityKey": "thing-00001"}, {"key_scope_source", "key_scope", "key"}),
    "bare key in job scope and elsewhere": (
        {"_toEntityKey": "shared-key-02"},
        {"key_scope_source", "key_scope", "key"},
    ),
    "job scope labelled, no source": (
        {"_toEntityKey": "thing-00001", "_toEntityScope": "scope-a"},
        {"key_scope_source", "key_scope", "key"},
    ),
    "by _id": (
        {"_toEntityId": object_id("scope-b", "device-00001")},
        {"key_scope_source", "key_scope", "key"},
    ),
}


@pytest.mark.parametrize("reading", ["key_scope_source", "key_scope", "key"])
async def test_cross_scope_reference(sim: Sim, reading: str) -> None:
    await sim.behave(cross_scope_reference=reading)
    await sim.run(
        "scope-b",
        entities=[ent("device-00001", "test_device", "Device"), ent("shared-key-01", "t_x", "Device")],
    )
    await sim.run(
        "scope-c", entities=[ent("shared-key-01", "t_x", "Device"), ent("shared-key-02", "t_x", "Device")]
    )
    sim.state.seed_entity(ACCOUNT, MAPPER_SCOPE, MAPPER_SOURCE, ent("mapper-key-01", "t_p", "Person"))
    relationships = []
    for i, (target, _) in enumerate(REFERENCE_CASES.values()):
        r = rel("user-000001", "x", "HAS", "t_has")
        del r["_toEntityKey"]
        relationships.append({**r, "_key": f"reference-case-{i:02d}", **target})
    done = await sim.run(
        "scope-a",
        entities=[
            ent("user-000001"),
            ent("thing-00001", "t_thing", "Device"),
            ent("shared-key-02", "t_x", "Device"),
        ],
        relationships=relationships,
    )
    expected = {
        f"reference-case-{i:02d}"
        for i, (_, readings) in enumerate(REFERENCE_CASES.values())
        if reading in readings
    }
    assert await keys(sim, "relationships", scope="scope-a") == expected
    assert done["numRelationshipsCreated"] == len(expected)
    assert done["numRelationshipCreateErrors"] == len(REFERENCE_CASES) - len(expected)  # silently not created
    stored = {r["_key"]: r for r in (await sim.graph(scope="scope-a"))["relationships"]}
    names = list(REFERENCE_CASES)
    job_scope_case = f"reference-case-{names.index('bare key in job scope and elsewhere'):02d}"
    assert stored[job_scope_case]["_toEntityId"] == object_id("scope-a", "shared-key-02")  # job scope first
    if reading == "key":
        bare = f"reference-case-{names.index('bare key, unique elsewhere'):02d}"
        assert stored[bare]["_toEntityId"] == object_id("scope-b", "device-00001")


# -- cascade -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cascade", [True, False])
@pytest.mark.parametrize("how", ["diff", "explicit"])
async def test_cascade_deletes(sim: Sim, cascade: bool, how: str) -> None:
    await sim.behave(cascade_deletes=cascade, explicit_deletes="apply")
    await sim.run(
        "scope-a",
        entities=[ent("user-000001"), ent("user-000002"), ent("thing-00001", "test_thing", "Device")],
        relationships=[rel("user-000001", "thing-00001")],
    )
    await sim.run("scope-b", entities=[ent("device-00001", "test_device", "Device")])
    link = xrel("user-000001", "scope-a", "device-00001", "scope-b")
    await sim.run("links", "CROSS_SCOPE", relationships=[link])
    if how == "diff":
        done = await sim.run(
            "scope-a", entities=[ent("user-000002"), ent("thing-00001", "test_thing", "Device")]
        )
    else:
        done = await sim.run("scope-a", "PATCH", deleteEntities=[{"_key": "user-000001"}])
    assert done["numEntitiesDeleted"] == 1
    assert await keys(sim, "relationships", scope="scope-a") == set()  # same scope: always removed
    links = (await sim.graph(scope="links"))["relationships"]
    if cascade:
        assert done["numRelationshipsDeleted"] == 2 and links == []
    else:
        assert done["numRelationshipsDeleted"] == 1
        (dangling,) = links
        assert dangling["_fromEntityId"] not in {e["_id"] for e in (await sim.graph())["entities"]}
        # It stays until its own scope removes it.
        assert (await sim.run("links", "CROSS_SCOPE"))["numRelationshipsDeleted"] == 1
        assert (await sim.graph(scope="links"))["relationships"] == []


# -- faults: rejected objects ----------------------------------------------------------------------
async def test_reject_keys_fault(sim: Sim) -> None:
    await sim.run("scope-b", entities=[ent("device-00001", "test_device", "Device")])
    assert (await sim.faults(reject_keys=["-bad-", "evil"]))["reject_keys"] == ["-bad-", "evil"]
    job = await sim.create("scope-a")
    cases = [
        ({"entities": [ent("user-000001"), ent("user-bad-0002")]}, "INVALID_ENTITY"),
        (
            {"relationships": [{**rel("user-000001", "thing-00001"), "_key": "evil-relationship"}]},
            "INVALID_RELATIONSHIP",
        ),
        ({"deleteEntities": [{"_key": "user-bad-0003"}]}, "INVALID_DELETE"),
        ({"deleteRelationships": [{"_key": "an-evil-one"}]}, "INVALID_DELETE"),
    ]
    for fields, code in cases:
        data = await sim.upload(job["id"], expect=400, **fields)
        assert error_code(data) == code, fields
    _, current, _ = await sim.call("GET", f"{JOBS}/{job['id']}")
    assert current["job"]["status"] == "AWAITING_UPLOADS"
    assert current["job"]["numEntitiesUploaded"] == current["job"]["numRelationshipsUploaded"] == 0
    # The rest goes through; the good entity of the refused request was not staged (no duplicate).
    await sim.upload(job["id"], entities=[ent("user-000001")])
    await sim.finalize(job["id"])
    assert (await sim.wait(job["id"]))["numEntitiesCreated"] == 1
    _, stats, _ = await sim.call("GET", "/_sim/stats", headers={})
    assert stats["faultsInjected"]["reject_keys"] == 4
    for bad in ({"reject_keys": "-bad-"}, {"reject_keys": [1]}, {"bad_data_keys": [""]}):
        status, data, _ = await sim.call("PUT", "/_sim/faults", bad, headers={})
        assert status == 400 and error_code(data) == "INVALID_FAULT"
    await sim.call("POST", "/_sim/reset", headers={})
    _, faults, _ = await sim.call("GET", "/_sim/faults", headers={})
    assert faults["reject_keys"] == [] and faults["bad_data_keys"] == []


@pytest.mark.parametrize("poisoned", ["entity", "relationship"])
async def test_bad_data_keys_fault(sim: Sim, poisoned: str) -> None:
    await sim.run("scope-a", entities=[ent("user-000001"), ent("thing-00001", "t_thing", "Device")])
    await sim.faults(bad_data_keys=["poison"])
    entities = [ent("user-000002"), ent("thing-00001", "t_thing", "Device", v=2)]
    relationships = [rel("user-000002", "thing-00001")]
    if poisoned == "entity":
        entities.append(ent("user-poison-1"))
    else:
        relationships.append({**rel("user-000002", "thing-00001", "USES"), "_key": "poison-relationship"})
    job = await sim.create("scope-a")
    await sim.upload(job["id"], entities=entities, relationships=relationships)  # accepted at upload
    await sim.finalize(job["id"])
    done = await sim.wait(job["id"])
    assert done["status"] == "ERROR_BAD_DATA" and done["done"] is True
    assert all(
        done[f"numEntities{v}"] == 0 and done[f"numRelationships{v}"] == 0
        for v in ("Created", "Updated", "Deleted")
    )
    g = await sim.graph(scope="scope-a")
    assert {e["_key"] for e in g["entities"]} == {"user-000001", "thing-00001"}  # nothing applied
    assert "v" not in next(e for e in g["entities"] if e["_key"] == "thing-00001")
    assert g["relationships"] == []
    # The scope is free again, and a clean job finishes.
    assert (await sim.run("scope-a", entities=[ent("user-000003")]))["status"] == "FINISHED"


async def test_abort_of_pending_finalize_frees_the_scope(make_sim: SimFactory) -> None:
    sim = await make_sim(finalize_step_delay=(0.05, 0.05))
    first = await sim.create("scope-a")
    await sim.finalize(first["id"])
    status, _, _ = await sim.call("POST", f"{JOBS}/{first['id']}/abort", {"reason": "x"})
    assert status == 200
    second = await sim.create("scope-a")
    await sim.upload(second["id"], entities=[ent("user-000001")])
    await sim.finalize(second["id"])
    assert (await sim.wait(second["id"]))["numEntitiesCreated"] == 1


async def test_graph_scope_prefix(sim: Sim) -> None:
    for scope in ("part-00", "part-01", "partial", "other"):
        await sim.run(
            scope, entities=[ent(f"user-{scope}")], relationships=[rel(f"user-{scope}", f"user-{scope}")]
        )
    g = await sim.graph(scope_prefix="part-")
    assert {e["_scope"] for e in g["entities"]} == {"part-00", "part-01"}
    assert {r["_scope"] for r in g["relationships"]} == {"part-00", "part-01"}
    assert len((await sim.graph(scope_prefix="part"))["entities"]) == 3
    assert (await sim.graph(scope_prefix="nothing"))["entities"] == []
    assert (await sim.graph(scope_prefix="part-", scope="other"))["entities"] == []
    assert len((await sim.graph(scope_prefix="part-", type="test_user"))["entities"]) == 2
    assert len((await sim.graph(scope_prefix="part-", type="nope"))["entities"]) == 0
