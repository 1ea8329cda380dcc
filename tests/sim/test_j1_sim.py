"""Behaviour tests for the J1 sync API simulator (real HTTP against a 127.0.0.1 test server)."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from typing import Any

import pytest

from syncd.sim.j1 import ValidationRules, object_id
from tests.sim.j1_helpers import (
    ACCOUNT,
    JOBS,
    KEY,
    OTHER_ACCOUNT,
    OTHER_KEY,
    Sim,
    SimFactory,
    ent,
    error_code,
    rel,
)


# -- auth and routing ----------------------------------------------------------------------------
async def test_auth_required_and_never_echoes_key(sim: Sim) -> None:
    cases = [
        {},
        {"JupiterOne-Account": ACCOUNT},
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": "Bearer wrong-key", "JupiterOne-Account": ACCOUNT},
        {"Authorization": f"Basic {KEY}", "JupiterOne-Account": ACCOUNT},
        {"Authorization": f"Bearer {KEY}", "JupiterOne-Account": OTHER_ACCOUNT},
        {"Authorization": f"Bearer {KEY}", "JupiterOne-Account": "nobody"},
    ]
    for headers in cases:
        status, data, _ = await sim.call("POST", JOBS, {"source": "api", "scope": "s"}, headers=headers)
        assert status == 401
        assert error_code(data) == "UNAUTHORIZED"
        assert KEY not in json.dumps(data)
    assert sim.state.jobs == {}


async def test_legacy_and_any_case_account_headers(sim: Sim) -> None:
    for headers in (
        {"authorization": f"bearer {KEY}", "lifeomic-account": ACCOUNT},
        {"Authorization": f"Bearer {KEY}", "LIFEOMIC-ACCOUNT": ACCOUNT},
        {"Authorization": f"Bearer {KEY}", "jupiterone-account": ACCOUNT},
    ):
        status, data, _ = await sim.call("POST", JOBS, {"source": "api", "scope": "s"}, headers=headers)
        assert status == 200, data


async def test_unknown_job_and_other_accounts_job_are_404(sim: Sim) -> None:
    status, data, _ = await sim.call("GET", f"{JOBS}/{uuid.uuid4()}")
    assert status == 404 and error_code(data) == "JOB_NOT_FOUND"
    job = await sim.create()
    status, data, _ = await sim.call(
        "GET", f"{JOBS}/{job['id']}", headers=sim.headers(OTHER_ACCOUNT, OTHER_KEY)
    )
    assert status == 404 and error_code(data) == "JOB_NOT_FOUND"
    for suffix in ("upload", "entities", "finalize", "abort"):
        status, data, _ = await sim.call("POST", f"{JOBS}/{uuid.uuid4()}/{suffix}", {})
        assert status == 404, suffix


# -- create ------------------------------------------------------------------------------------
async def test_create_job_shape_and_defaults(sim: Sim) -> None:
    job = await sim.create("my-scope", mode=None)
    assert uuid.UUID(job["id"]).version == 4
    assert job["status"] == "AWAITING_UPLOADS"
    assert job["syncMode"] == "DIFF" and job["scope"] == "my-scope" and job["source"] == "api"
    assert job["accountId"] == ACCOUNT and isinstance(job["startTimestamp"], int)
    for name in (
        "numEntitiesUploaded",
        "numEntitiesCreated",
        "numEntitiesUpdated",
        "numEntitiesDeleted",
        "numRelationshipsUploaded",
        "numRelationshipsCreated",
        "numRelationshipsUpdated",
        "numRelationshipsDeleted",
        "numRelationshipCreateErrors",
        "numMappedRelationshipsCreated",
    ):
        assert job[name] == 0
    status, data, _ = await sim.call("GET", f"{JOBS}/{job['id']}")
    assert status == 200 and data["job"]["id"] == job["id"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"source": "nope", "scope": "s"}, "INVALID_JOB_CONFIGURATION"),
        ({"scope": "s"}, "INVALID_JOB_CONFIGURATION"),
        ({"source": "api"}, "INVALID_JOB_CONFIGURATION"),
        ({"source": "api", "scope": ""}, "INVALID_JOB_CONFIGURATION"),
        ({"source": "api", "scope": "s", "syncMode": "CREATE_OR_UPDATE"}, "INVALID_SYNC_MODE"),
        ({"source": "api", "scope": "s", "syncMode": "diff"}, "INVALID_SYNC_MODE"),
        ({"source": "api", "scope": "s", "bogus": 1}, "INVALID_JOB_CONFIGURATION"),
        ({"source": "api", "scope": "s", "integrationInstanceId": "x"}, "INVALID_JOB_CONFIGURATION"),
        ({"source": "integration-external"}, "INVALID_JOB_CONFIGURATION"),
        (
            {"source": "integration-external", "integrationInstanceId": "i", "scope": "s"},
            "INVALID_JOB_CONFIGURATION",
        ),
        (["not", "an", "object"], "INVALID_JOB_CONFIGURATION"),
    ],
)
async def test_create_job_validation(sim: Sim, body: Any, code: str) -> None:
    status, data, _ = await sim.call("POST", JOBS, body)
    assert status == 400 and error_code(data) == code


async def test_create_integration_jobs(sim: Sim) -> None:
    status, data, _ = await sim.call(
        "POST", JOBS, {"source": "integration-managed", "integrationInstanceId": "inst-1"}
    )
    assert status == 200
    job = data["job"]
    assert job["scope"] == "inst-1" and job["integrationJobId"] == job["id"]


async def test_content_type_and_json_are_checked(sim: Sim) -> None:
    hdrs = {**sim.headers(), "Content-Type": "text/plain"}
    status, data, _ = await sim.call("POST", JOBS, headers=hdrs, data=b'{"source":"api","scope":"s"}')
    assert status == 415 and error_code(data) == "UNSUPPORTED_MEDIA_TYPE"
    hdrs = {**sim.headers(), "Content-Type": "application/json"}
    status, data, _ = await sim.call("POST", JOBS, headers=hdrs, data=b"{not json")
    assert status == 400 and error_code(data) == "INVALID_JSON"
    status, data, _ = await sim.call("POST", JOBS, headers=hdrs, data=b'{"source":"api","scope":NaN}')
    assert status == 400 and error_code(data) == "INVALID_JSON"


# -- DIFF ----------------------------------------------------------------------------------------
async def test_diff_lifecycle_counters_and_stored_metadata(make_sim: SimFactory) -> None:
    sim = await make_sim(finalize_step_delay=(0.03, 0.03))
    job = await sim.create("scope-a")
    data = await sim.upload(
        job["id"],
        entities=[ent("user-000001"), ent("user-000002"), ent("thing-00001", "test_thing", "Device")],
        relationships=[rel("user-000001", "thing-00001")],
    )
    assert data["job"]["numEntitiesUploaded"] == 3 and data["job"]["numRelationshipsUploaded"] == 1
    fin = await sim.finalize(job["id"])
    assert fin["status"] == "FINALIZE_PENDING"
    seen = [fin["status"]]
    async with asyncio.timeout(5):
        while seen[-1] != "FINISHED":
            _, d, _ = await sim.call("GET", f"{JOBS}/{job['id']}")
            if d["job"]["status"] != seen[-1]:
                seen.append(d["job"]["status"])
            await asyncio.sleep(0.003)
    order = ["FINALIZE_PENDING", "FINALIZING_ENTITIES", "FINALIZING_RELATIONSHIPS", "FINISHED"]
    assert seen == order
    _, d, _ = await sim.call("GET", f"{JOBS}/{job['id']}")
    done = d["job"]
    assert done["numEntitiesCreated"] == 3 and done["numRelationshipsCreated"] == 1 and done["done"] is True
    g = await sim.graph(scope="scope-a")
    user = next(e for e in g["entities"] if e["_key"] == "user-000001")
    assert user["_id"] == object_id("scope-a", "user-000001")
    assert uuid.UUID(user["_id"]).version == 5
    assert user["_scope"] == "scope-a" and user["_source"] == "api" and user["_accountId"] == ACCOUNT
    assert user["_version"] == 1 and isinstance(user["_createdOn"], int)
    (r,) = g["relationships"]
    assert r["_fromEntityKey"] == "user-000001" and r["_toEntityKey"] == "thing-00001"
    assert r["_fromEntityId"] == user["_id"] and r["_toEntityId"] == object_id("scope-a", "thing-00001")
    assert r["_scope"] == "scope-a" and r["_version"] == 1


async def test_diff_replaces_scope_dataset(sim: Sim) -> None:
    await sim.run(
        "scope-a",
        entities=[ent("user-000001"), ent("user-000002"), ent("thing-00001", "test_thing", "Device")],
        relationships=[rel("user-000001", "thing-00001"), rel("user-000002", "thing-00001")],
    )
    await sim.run("scope-b", entities=[ent("user-000001")])  # same key, other scope: untouched
    job = await sim.run(
        "scope-a",
        entities=[ent("user-000001", title="new"), ent("thing-00001", "test_thing", "Device")],
        relationships=[rel("user-000001", "thing-00001")],
    )
    assert job["numEntitiesCreated"] == 0
    assert job["numEntitiesUpdated"] == 1  # only user-000001 changed
    assert job["numEntitiesDeleted"] == 1  # user-000002 omitted
    assert job["numRelationshipsDeleted"] == 1  # cascaded with user-000002
    g = await sim.graph(scope="scope-a")
    assert sorted(e["_key"] for e in g["entities"]) == ["thing-00001", "user-000001"]
    user = next(e for e in g["entities"] if e["_key"] == "user-000001")
    assert user["title"] == "new" and user["_version"] == 2
    assert len((await sim.graph(scope="scope-b"))["entities"]) == 1
    # A DIFF with nothing deletes the whole scope.
    job = await sim.run("scope-a")
    assert job["numEntitiesDeleted"] == 2 and job["numRelationshipsDeleted"] == 1
    assert (await sim.graph(scope="scope-a"))["entities"] == []


async def test_diff_partial_datasets_protect_types(sim: Sim) -> None:
    await sim.run(
        "scope-a",
        entities=[ent("user-000001"), ent("thing-00001", "test_thing", "Device")],
        relationships=[rel("user-000001", "thing-00001")],
    )
    job = await sim.run(
        "scope-a",
        finalize_body={"partialDatasets": {"types": ["test_thing", "test_user_has_thing"]}},
        entities=[ent("user-000001")],
    )
    assert job["numEntitiesDeleted"] == 0 and job["numRelationshipsDeleted"] == 0
    g = await sim.graph(scope="scope-a")
    assert len(g["entities"]) == 2 and len(g["relationships"]) == 1
    job = await sim.run("scope-a", finalize_body={"partialDatasets": {"types": ["test_thing"]}})
    assert job["numEntitiesDeleted"] == 1  # the user; the thing is protected
    status, data, _ = await sim.call(
        "POST", f"{JOBS}/{(await sim.create('scope-a'))['id']}/finalize", {"partialDatasets": {"types": "x"}}
    )
    assert status == 400 and error_code(data) == "INVALID_FINALIZE"


async def test_finalize_without_body(sim: Sim) -> None:
    job = await sim.create("scope-a")
    await sim.upload(job["id"], entities=[ent("user-000001")])
    status, data, _ = await sim.call("POST", f"{JOBS}/{job['id']}/finalize", headers=sim.headers())
    assert status == 200 and data["job"]["status"] == "FINALIZE_PENDING"
    assert (await sim.wait(job["id"]))["numEntitiesCreated"] == 1


async def test_relationship_with_missing_endpoint_counts_create_error(sim: Sim) -> None:
    job = await sim.run(
        "scope-a", entities=[ent("user-000001")], relationships=[rel("user-000001", "missing-0001")]
    )
    assert job["numRelationshipCreateErrors"] == 1 and job["numRelationshipsCreated"] == 0
    assert (await sim.graph(scope="scope-a"))["relationships"] == []


async def test_relationship_to_other_scope_needs_scope_label(sim: Sim) -> None:
    # The "key_scope" reading (source optional); the strict default is in test_j1_behaviour.py.
    await sim.behave(cross_scope_reference="key_scope")
    await sim.run("scope-b", entities=[ent("device-00001", "test_device", "Device")])
    job = await sim.run(
        "scope-a",
        entities=[ent("user-000001")],
        relationships=[
            rel("user-000001", "device-00001", "OWNS", "u_owns_d"),
            {**rel("user-000001", "device-00001", "USES", "u_uses_d"), "_toEntityScope": "scope-b"},
            {
                **rel("user-000001", "device-00001", "MANAGES", "u_manages_d"),
                "_toEntityScope": "scope-b",
                "_toEntitySource": "integration-managed",
            },
        ],
    )
    assert job["numRelationshipsCreated"] == 1 and job["numRelationshipCreateErrors"] == 2
    (r,) = (await sim.graph(scope="scope-a"))["relationships"]
    assert r["_class"] == "USES" and r["_toEntityId"] == object_id("scope-b", "device-00001")


# -- PATCH ---------------------------------------------------------------------------------------
async def test_patch_merges_and_never_deletes(sim: Sim) -> None:
    await sim.run("scope-a", entities=[ent("user-000001", title="a", dept="x"), ent("user-000002")])
    job = await sim.run(
        "scope-a",
        "PATCH",
        entities=[
            {"_key": "user-000001", "_type": "test_user", "_class": "User", "title": "b", "dept": None},
            ent("user-000003"),
        ],
    )
    assert (
        job["numEntitiesUpdated"] == 1 and job["numEntitiesCreated"] == 1 and job["numEntitiesDeleted"] == 0
    )
    g = await sim.graph(scope="scope-a")
    by_key = {e["_key"]: e for e in g["entities"]}
    assert set(by_key) == {"user-000001", "user-000002", "user-000003"}
    assert by_key["user-000001"]["title"] == "b"
    assert "dept" not in by_key["user-000001"]
    assert by_key["user-000001"]["displayName"] == "user-000001"  # untouched


async def test_patch_by_id(sim: Sim) -> None:
    await sim.run("scope-a", entities=[ent("user-000001", count=1)])
    eid = object_id("scope-a", "user-000001")
    job = await sim.run(
        "scope-a", "PATCH", entities=[{"_id": eid, "count": 4}, {"_id": str(uuid.uuid4()), "count": 1}]
    )
    assert job["numEntitiesUpdated"] == 1 and job["numEntityUpdateErrors"] == 1
    (e,) = (await sim.graph(scope="scope-a"))["entities"]
    assert e["count"] == 4 and e["_version"] == 2


async def test_patch_rejects_relationships_and_relationship_deletes(sim: Sim) -> None:
    job = await sim.create("scope-a", "PATCH")
    for fields in (
        {"relationships": [rel("user-000001", "thing-00001")]},
        {"deleteRelationships": [{"_key": "user-000001|has|thing-00001"}]},
    ):
        data = await sim.upload(job["id"], expect=400, **fields)
        assert error_code(data) == "INVALID_UPLOAD_FOR_SYNC_MODE"
    status, data, _ = await sim.call("POST", f"{JOBS}/{job['id']}/relationships", {"relationships": []})
    assert status == 200  # an empty list carries nothing to reject


async def test_explicit_entity_deletes_by_id_and_key_cascade(sim: Sim) -> None:
    # Permissive readings (explicit deletes applied, a same-scope CROSS_SCOPE relationship accepted,
    # another scope's entity named without its source); the strict defaults: test_j1_behaviour.py.
    await sim.behave(
        explicit_deletes="apply", cross_scope_same_scope="accept", cross_scope_reference="key_scope"
    )
    await sim.run(
        "scope-a",
        entities=[
            ent("user-000001"),
            ent("user-000002"),
            ent("user-000003"),
            ent("thing-00001", "t_thing", "Device"),
        ],
        relationships=[rel("user-000001", "thing-00001")],
    )
    await sim.run(
        "scope-x",
        "CROSS_SCOPE",
        relationships=[
            {**rel("user-000002", "thing-00001"), "_fromEntityScope": "scope-a", "_toEntityScope": "scope-a"}
        ],
    )
    job = await sim.run(
        "scope-a",
        "PATCH",
        deleteEntities=[
            {"_id": object_id("scope-a", "user-000001")},
            {"_key": "user-000002", "_type": "test_user"},
            {"_key": "nope-000000"},
        ],
    )
    assert job["numEntitiesDeleted"] == 2 and job["numEntityDeleteErrors"] == 1
    assert job["numRelationshipsDeleted"] == 2  # both relationships cascade, one in another scope
    assert sorted(e["_key"] for e in (await sim.graph(scope="scope-a"))["entities"]) == [
        "thing-00001",
        "user-000003",
    ]
    assert (await sim.graph())["relationships"] == []


# -- CROSS_SCOPE ---------------------------------------------------------------------------------
async def test_cross_scope_rules(sim: Sim) -> None:
    # Permissive readings (additive CROSS_SCOPE, explicit deletes applied, endpoints named without
    # their source); the strict defaults are covered in test_j1_behaviour.py.
    await sim.behave(
        cross_scope_ownership="additive", explicit_deletes="apply", cross_scope_reference="key_scope"
    )
    await sim.run("scope-a", entities=[ent("user-000001")])
    await sim.run("scope-b", entities=[ent("device-00001", "test_device", "Device")])
    job = await sim.create("links", "CROSS_SCOPE")
    data = await sim.upload(job["id"], expect=400, entities=[ent("user-000009")])
    assert error_code(data) == "INVALID_UPLOAD_FOR_SYNC_MODE"
    data = await sim.upload(job["id"], expect=400, deleteEntities=[{"_key": "user-000001"}])
    assert error_code(data) == "INVALID_UPLOAD_FOR_SYNC_MODE"
    data = await sim.upload(job["id"], expect=400, relationships=[rel("user-000001", "device-00001")])
    assert error_code(data) == "INVALID_RELATIONSHIP"
    good = {
        **rel("user-000001", "device-00001", "OWNS"),
        "_fromEntityScope": "scope-a",
        "_toEntityScope": "scope-b",
    }
    bad = {
        **rel("user-000001", "device-00002", "OWNS"),
        "_fromEntityScope": "scope-a",
        "_toEntityScope": "scope-b",
    }
    await sim.upload(job["id"], relationships=[good, bad])
    await sim.finalize(job["id"])
    done = await sim.wait(job["id"])
    assert done["numRelationshipsCreated"] == 1 and done["numRelationshipCreateErrors"] == 1
    (r,) = (await sim.graph(scope="links"))["relationships"]
    assert r["_scope"] == "links"
    assert r["_fromEntityId"] == object_id("scope-a", "user-000001")
    assert r["_toEntityId"] == object_id("scope-b", "device-00001")
    # CROSS_SCOPE never deletes by omission, only explicitly.
    done = await sim.run("links", "CROSS_SCOPE")
    assert done["numRelationshipsDeleted"] == 0
    done = await sim.run("links", "CROSS_SCOPE", deleteRelationships=[{"_id": r["_id"]}])
    assert done["numRelationshipsDeleted"] == 1
    assert (await sim.graph(scope="links"))["relationships"] == []
    assert len((await sim.graph())["entities"]) == 2  # entities untouched


# -- OVERRIDE ------------------------------------------------------------------------------------
async def test_override_limit_and_existing_only(make_sim: SimFactory) -> None:
    sim = await make_sim(override_max_entities=3)
    await sim.run("managed", entities=[ent("host-000001", "h", "Host", owner="a")])
    job = await sim.create("pins", "OVERRIDE")
    data = await sim.upload(
        job["id"], expect=400, entities=[ent(f"host-00000{i}", "h", "Host") for i in range(4)]
    )
    assert error_code(data) == "OVERRIDE_ENTITY_LIMIT_EXCEEDED"
    await sim.upload(
        job["id"], entities=[{"_key": "host-000001", "_type": "h", "_class": "Host", "owner": "pinned"}]
    )
    await sim.upload(job["id"], entities=[{"_id": str(uuid.uuid4()), "owner": "x"}])
    data = await sim.upload(
        job["id"], expect=400, entities=[ent("host-00000a", "h", "Host"), ent("host-00000b", "h", "Host")]
    )
    assert error_code(data) == "OVERRIDE_ENTITY_LIMIT_EXCEEDED"
    await sim.finalize(job["id"])
    done = await sim.wait(job["id"])
    assert (
        done["numEntitiesUpdated"] == 1
        and done["numEntityUpdateErrors"] == 1
        and done["numEntitiesCreated"] == 0
    )
    (e,) = (await sim.graph(scope="managed"))["entities"]
    assert e["owner"] == "pinned"
    assert (await sim.graph(scope="pins"))["entities"] == []


# -- job state rules -----------------------------------------------------------------------------
async def test_one_finalize_per_scope(make_sim: SimFactory) -> None:
    sim = await make_sim(finalize_step_delay=(0.1, 0.1))
    first, second, other = (
        await sim.create("scope-a"),
        await sim.create("scope-a"),
        await sim.create("scope-b"),
    )
    await sim.finalize(first["id"])
    status, data, _ = await sim.call("POST", f"{JOBS}/{second['id']}/finalize", {})
    assert status == 400 and error_code(data) == "SCOPE_FINALIZE_IN_PROGRESS"
    await sim.finalize(other["id"])  # another scope is fine
    await sim.wait(first["id"])
    await sim.finalize(second["id"])
    assert (await sim.wait(second["id"]))["status"] == "FINISHED"


async def test_upload_after_finalize_or_abort_is_job_not_awaiting_uploads(sim: Sim) -> None:
    job = await sim.create("scope-a")
    await sim.finalize(job["id"])
    for suffix, body in (
        ("upload", {"entities": [ent("user-000001")]}),
        ("entities", {"entities": [ent("user-000001")]}),
        ("relationships", {"relationships": []}),
        ("finalize", {}),
    ):
        status, data, _ = await sim.call("POST", f"{JOBS}/{job['id']}/{suffix}", body)
        assert status == 400 and error_code(data) == "JOB_NOT_AWAITING_UPLOADS", suffix
    job2 = await sim.create("scope-b")
    status, data, _ = await sim.call("POST", f"{JOBS}/{job2['id']}/abort", {"reason": "test"})
    assert status == 200 and data["job"]["status"] == "ABORTED"
    data = await sim.upload(job2["id"], expect=400, entities=[ent("user-000001")])
    assert error_code(data) == "JOB_NOT_AWAITING_UPLOADS"
    jobs = {j["id"]: j for j in (await sim.call("GET", "/_sim/jobs", headers={}))[1]["jobs"]}
    assert jobs[job2["id"]]["abortReason"] == "test"
    await sim.wait(job["id"])
    status, data, _ = await sim.call("POST", f"{JOBS}/{job['id']}/abort", {})
    assert status == 400 and error_code(data) == "JOB_NOT_ABORTABLE"


async def test_abort_with_terminal_status_and_pending_finalize(make_sim: SimFactory) -> None:
    sim = await make_sim(finalize_step_delay=(0.05, 0.05))
    job = await sim.create("scope-a")
    await sim.upload(job["id"], entities=[ent("user-000001")])
    await sim.finalize(job["id"])
    status, data, _ = await sim.call(
        "POST",
        f"{JOBS}/{job['id']}/abort",
        {"reason": "x", "terminalStatus": "ABORTED_DUE_TO_INVALID_CONFIGURATION"},
    )
    assert status == 200 and data["job"]["status"] == "ABORTED_DUE_TO_INVALID_CONFIGURATION"
    await asyncio.sleep(0.2)
    assert (await sim.graph())["entities"] == []  # the aborted finalize never applied


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"entities": {"_key": "x"}}, "ENTITY_IS_NOT_ARRAY"),
        ({"relationships": "x"}, "RELATIONSHIP_IS_NOT_ARRAY"),
        ({"deleteEntities": {}}, "DELETE_ENTITIES_IS_NOT_ARRAY"),
        ({"deleteRelationships": 1}, "DELETE_RELATIONSHIPS_IS_NOT_ARRAY"),
        ({"somethingElse": []}, "INVALID_UPLOAD"),
        ({}, "INVALID_UPLOAD"),
        ({"entities": [{"_type": "t_t", "_class": "User"}]}, "INVALID_ENTITY"),
        ({"entities": [{"_key": "user-000001", "_class": "User"}]}, "INVALID_ENTITY"),
        ({"entities": [{"_key": "user-000001", "_type": "t_t"}]}, "INVALID_ENTITY"),
        ({"entities": [{"_key": "user-000001", "_type": "t_t", "_class": []}]}, "INVALID_ENTITY"),
        ({"entities": [{"_key": 12345678901, "_type": "t_t", "_class": "User"}]}, "INVALID_ENTITY"),
        ({"entities": [ent("short")]}, "INVALID_ENTITY"),
        ({"entities": ["not-an-object"]}, "INVALID_ENTITY"),
        ({"entities": [ent("user-000001", nested={"a": 1})]}, "INVALID_PROPERTY"),
        ({"entities": [ent("user-000001", _custom="x")]}, "INVALID_PROPERTY"),
        ({"entities": [ent("user-000001", _scope="x")]}, "INVALID_PROPERTY"),
        ({"entities": [ent("user-000001", note="x" * 4097)]}, "INVALID_PROPERTY"),
        ({"entities": [ent("user-000001", tags=["a", 1])]}, "INVALID_PROPERTY"),
        ({"entities": [ent("user-000001", tags=[{"a": 1}])]}, "INVALID_PROPERTY"),
        ({"entities": [ent("user-000001", tags=[["a"]])]}, "INVALID_PROPERTY"),
        ({"entities": [ent("user-000001", tags=["a", None])]}, "INVALID_PROPERTY"),
        ({"entities": [ent("user-000001", tags=["x" * 4097])]}, "INVALID_PROPERTY"),
        ({"entities": [{**ent("user-000001"), "_id": "abc"}]}, "INVALID_ENTITY"),
        ({"entities": [ent("user-000001", _rawData={"a": 1})]}, "INVALID_RAW_DATA"),
        (
            {"relationships": [{"_key": "a-very-long-key", "_type": "t", "_class": "HAS"}]},
            "INVALID_RELATIONSHIP",
        ),
        (
            {"relationships": [{**rel("user-000001", "thing-00001"), "_toEntityKey": ""}]},
            "INVALID_RELATIONSHIP",
        ),
        (
            {"relationships": [{**rel("user-000001", "thing-00001"), "_class": ["HAS"]}]},
            "INVALID_RELATIONSHIP",
        ),
        ({"relationships": [rel("user-000001", "thing-00001", extra={"a": 1})]}, "INVALID_PROPERTY"),
        ({"relationships": [rel("user-000001", "thing-00001", extra=["a"])]}, "INVALID_PROPERTY"),
        ({"relationships": [rel("user-000001", "thing-00001", _weird=1)]}, "INVALID_PROPERTY"),
        ({"deleteEntities": [{"name": "x"}]}, "INVALID_DELETE"),
        ({"deleteEntities": [{}]}, "INVALID_DELETE"),
    ],
)
async def test_upload_validation(sim: Sim, fields: dict[str, Any], code: str) -> None:
    job = await sim.create("scope-a")
    data = await sim.upload(job["id"], expect=400, **fields)
    assert error_code(data) == code
    _, d, _ = await sim.call("GET", f"{JOBS}/{job['id']}")
    assert d["job"]["numEntitiesUploaded"] == 0  # a rejected request stages nothing


async def test_single_field_routes_require_their_array(sim: Sim) -> None:
    job = await sim.create("scope-a")
    status, data, _ = await sim.call("POST", f"{JOBS}/{job['id']}/entities", {"relationships": []})
    assert status == 400 and error_code(data) == "INVALID_UPLOAD"
    status, data, _ = await sim.call("POST", f"{JOBS}/{job['id']}/entities", {})
    assert status == 400 and error_code(data) == "ENTITY_IS_NOT_ARRAY"
    status, data, _ = await sim.call("POST", f"{JOBS}/{job['id']}/relationships", {})
    assert status == 400 and error_code(data) == "RELATIONSHIP_IS_NOT_ARRAY"
    status, data, _ = await sim.call(
        "POST", f"{JOBS}/{job['id']}/entities", {"entities": [ent("user-000001")]}
    )
    assert status == 200 and data["job"]["numEntitiesUploaded"] == 1


async def test_valid_property_shapes_accepted(sim: Sim) -> None:
    e = ent(
        "user-000001",
        cls=["User", "Person"],
        active=True,
        count=3,
        ratio=0.5,
        gone=None,
        tags=["a", "b"],
        nums=[1, 2.5],
        flags=[True, False],
        empty=[],
        note="x" * 4096,
        _rawData=[{"name": "default", "rawData": {"nested": {"ok": True}}}],
        **{"tag.Env": "prod"},
    )
    job = await sim.run("scope-a", entities=[e])
    assert job["numEntitiesCreated"] == 1
    (stored,) = (await sim.graph())["entities"]
    assert "gone" not in stored and "_rawData" not in stored and stored["tags"] == ["a", "b"]


async def test_key_min_length_is_configurable(make_sim: SimFactory) -> None:
    sim = await make_sim(rules=ValidationRules(enforce_key_min_length=False))
    job = await sim.run("scope-a", entities=[ent("1")])
    assert job["numEntitiesCreated"] == 1


async def test_duplicate_keys(sim: Sim) -> None:
    job = await sim.create("scope-a")
    data = await sim.upload(job["id"], expect=400, entities=[ent("user-000001"), ent("user-000001")])
    assert error_code(data) == "DUPLICATE_KEY_DETECTED"
    await sim.upload(job["id"], entities=[ent("user-000001", v=1)])
    data = await sim.upload(job["id"], expect=400, entities=[ent("user-000001", v=2)])
    assert error_code(data) == "DUPLICATE_KEY_DETECTED"
    status, data, _ = await sim.call(
        "POST",
        f"{JOBS}/{job['id']}/upload",
        {"entities": [ent("user-000001", v=3), ent("user-000001", v=4)]},
        params={"ignoreDuplicates": "true"},
    )
    assert status == 200
    status, data, _ = await sim.call(
        "POST",
        f"{JOBS}/{job['id']}/upload",
        {"relationships": [{**rel("a-00000001", "b-00000001"), "_key": "user-000001"}]},
        params={"ignoreDuplicates": "true"},
    )
    assert status == 400 and error_code(data) == "DUPLICATE_KEY_DETECTED"  # entity vs relationship
    await sim.finalize(job["id"])
    await sim.wait(job["id"])
    (e,) = (await sim.graph())["entities"]
    assert e["v"] == 4  # last wins


async def test_body_limit_and_gzip(make_sim: SimFactory) -> None:
    sim = await make_sim(max_body_bytes=2000)
    job = await sim.create("scope-a")
    big = {"entities": [ent(f"user-{i:06d}", note="x" * 100) for i in range(30)]}
    status, data, _ = await sim.call("POST", f"{JOBS}/{job['id']}/upload", big)
    assert status == 413 and error_code(data) == "RequestEntityTooLargeException"
    small = {"entities": [ent(f"user-{i:06d}") for i in range(5)]}
    hdrs = {**sim.headers(), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    status, data, _ = await sim.call(
        "POST", f"{JOBS}/{job['id']}/upload", headers=hdrs, data=gzip.compress(json.dumps(small).encode())
    )
    assert status == 200 and data["job"]["numEntitiesUploaded"] == 5
    # Compressed it is tiny, but the decompressed body is still over the limit.
    packed = gzip.compress(json.dumps(big).encode())
    assert len(packed) < 2000
    status, data, _ = await sim.call("POST", f"{JOBS}/{job['id']}/upload", headers=hdrs, data=packed)
    assert status == 413


# -- mapped relationships ------------------------------------------------------------------------
def mapped(source_key: str, target: dict[str, Any], **mapping: Any) -> dict[str, Any]:
    return {
        "_key": f"{source_key}|is|{target.get('email', target.get('_key'))}",
        "_type": "test_user_is_person",
        "_class": "IS",
        "displayName": "IS",
        "_mapping": {
            "relationshipDirection": "FORWARD",
            "sourceEntityKey": source_key,
            "targetFilterKeys": [["_class", "email"]],
            "targetEntity": target,
            **mapping,
        },
    }


async def test_mapped_relationships(sim: Sim) -> None:
    status, data, _ = await sim.call(
        "POST",
        "/_sim/entities",
        {
            "accountId": ACCOUNT,
            "scope": "hr",
            "source": "api",
            "entities": [ent("person-000001", "hr_person", "Person", email="alice@example.com")],
        },
        headers={},
    )
    assert status == 200 and data["entities"][0]["_scope"] == "hr"
    person_id = object_id("hr", "person-000001")
    job = await sim.run(
        "scope-a",
        entities=[ent("user-000001"), ent("user-000002"), ent("user-000003")],
        relationships=[
            mapped("user-000001", {"_class": "Person", "email": "alice@example.com"}),
            mapped("user-000002", {"_class": "Person", "_type": "employee", "email": "bob@example.com"}),
            mapped(
                "user-000003",
                {"_class": "Person", "_type": "employee", "email": "carol@example.com"},
                skipTargetCreation=True,
            ),
            mapped("user-999999", {"_class": "Person", "email": "alice@example.com"}),
            {
                **mapped("user-000003", {"_class": "Person", "email": "alice@example.com"}),
                "_key": "alice-reverse-key",
                "_mapping": {
                    **mapped("user-000003", {"_class": "Person", "email": "alice@example.com"})["_mapping"],
                    "relationshipDirection": "REVERSE",
                },
            },
        ],
    )
    assert job["numMappedRelationshipsCreated"] == 3
    assert job["numMappedRelationshipCreateErrors"] == 1  # source entity missing
    g = await sim.graph(scope="scope-a")
    rels = {r["_key"]: r for r in g["relationships"]}
    alice = rels["user-000001|is|alice@example.com"]
    assert alice["_toEntityId"] == person_id and alice["_fromEntityKey"] == "user-000001"
    rev = rels["alice-reverse-key"]
    assert rev["_fromEntityId"] == person_id and rev["_toEntityKey"] == "user-000003"
    bob = rels["user-000002|is|bob@example.com"]
    (created,) = (await sim.graph(type="employee"))["entities"]
    assert created["_source"] == "system-mapper" and created["email"] == "bob@example.com"
    assert bob["_toEntityId"] == created["_id"]
    assert "user-000003|is|carol@example.com" not in rels
    # A DIFF that leaves the mapped relationships out deletes them (not the mapper's targets).
    job = await sim.run("scope-a", entities=[ent("user-000001")])
    assert job["numMappedRelationshipsDeleted"] == 3
    assert len((await sim.graph(type="employee"))["entities"]) == 1


async def test_mapping_validation(sim: Sim) -> None:
    job = await sim.create("scope-a")
    base = mapped("user-000001", {"_class": "Person", "email": "a@b.c"})
    bad_mappings = [
        {**base["_mapping"], "relationshipDirection": "SIDEWAYS"},
        {**base["_mapping"], "targetFilterKeys": ["email"]},
        {**base["_mapping"], "targetFilterKeys": []},
        {**base["_mapping"], "targetEntity": {"nested": {"a": 1}}},
        {**base["_mapping"], "skipTargetCreation": "yes"},
        {**base["_mapping"], "extra": 1},
    ]
    for m in bad_mappings:
        data = await sim.upload(job["id"], expect=400, relationships=[{**base, "_mapping": m}])
        assert error_code(data) == "INVALID_MAPPING", m
    data = await sim.upload(job["id"], expect=400, relationships=[{**base, "_fromEntityKey": "user-000001"}])
    assert error_code(data) == "INVALID_RELATIONSHIP"


# -- faults and admin ----------------------------------------------------------------------------
async def test_faults(sim: Sim) -> None:
    async def put(faults: dict[str, Any]) -> dict[str, Any]:
        status, data, _ = await sim.call("PUT", "/_sim/faults", faults, headers={})
        assert status == 200, data
        return dict(data)

    await put({"outage": True})
    status, data, _ = await sim.call("POST", JOBS, {"source": "api", "scope": "s"})
    assert status == 503 and error_code(data) == "SERVICE_UNAVAILABLE"
    assert (await sim.call("GET", "/_sim/stats", headers={}))[0] == 200  # admin unaffected
    await put({"outage": False, "count_429": 2, "retry_after": 0.25})
    for _ in range(2):
        status, data, resp = await sim.call("POST", JOBS, {"source": "api", "scope": "s"})
        assert status == 429 and resp.headers["Retry-After"] == "0.25"
    await sim.create("s")
    await put({"count_429": 1, "retry_after_http_date": True, "retry_after": 2})
    status, _, resp = await sim.call("GET", f"{JOBS}/{uuid.uuid4()}")
    assert status == 429 and resp.headers["Retry-After"].endswith("GMT")
    await put({"count_5xx": 1, "status_5xx": 502})
    status, data, _ = await sim.call("GET", f"{JOBS}/{uuid.uuid4()}")
    assert status == 502
    await put({"rate_5xx": 1.0, "status_5xx": 500, "path_filter": "/upload"})
    job = await sim.create("s")
    data = await sim.upload(job["id"], expect=500, entities=[ent("user-000001")])
    await put({"rate_5xx": 0.0, "max_body_bytes": 100})
    data = await sim.upload(job["id"], expect=413, entities=[ent(f"user-{i:06d}") for i in range(5)])
    await put({"max_body_bytes": None, "latency_ms": 50, "path_filter": None})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await sim.create("s")
    assert loop.time() - t0 >= 0.045
    status, data, _ = await sim.call("PUT", "/_sim/faults", {"nope": 1}, headers={})
    assert status == 400 and error_code(data) == "UNKNOWN_FAULT"
    status, data, _ = await sim.call("PUT", "/_sim/faults", {"rate_429": "high"}, headers={})
    assert status == 400
    _, stats, _ = await sim.call("GET", "/_sim/stats", headers={})
    assert stats["faultsInjected"] == {"outage": 1, "429": 3, "502": 1, "500": 1}


async def test_admin_jobs_stats_graph_and_reset(sim: Sim) -> None:
    job = await sim.run(
        "scope-a",
        entities=[ent("user-000001"), ent("thing-00001", "test_thing", "Device")],
        relationships=[rel("user-000001", "thing-00001")],
    )
    await sim.call("GET", f"{JOBS}/{uuid.uuid4()}")
    _, data, _ = await sim.call("GET", "/_sim/jobs", headers={})
    (view,) = data["jobs"]
    assert view["id"] == job["id"] and view["mode"] == "DIFF" and view["scope"] == "scope-a"
    assert view["status"] == "FINISHED"
    assert view["uploads"]["requests"] == 1 and view["uploads"]["bytes"] > 100
    assert view["uploads"]["objects"] == {"entities": 2, "relationships": 1}
    assert view["counters"]["numEntitiesCreated"] == 2
    _, stats, _ = await sim.call("GET", "/_sim/stats", headers={})
    assert stats["requests"]["POST /persister/synchronization/jobs"] == 1
    assert stats["requests"]["POST /persister/synchronization/jobs/{jobId}/upload"] == 1
    assert stats["requests"]["GET /persister/synchronization/jobs/{jobId}"] >= 2
    assert stats["responses"]["404"] == 1
    assert len((await sim.graph(type="test_thing"))["entities"]) == 1
    assert len((await sim.graph(account=OTHER_ACCOUNT))["entities"]) == 0
    status, _, _ = await sim.call("POST", "/_sim/reset", headers={})
    assert status == 200
    assert (await sim.graph())["entities"] == []
    _, data, _ = await sim.call("GET", "/_sim/jobs", headers={})
    assert data["jobs"] == []


async def test_seed_validation(sim: Sim) -> None:
    status, data, _ = await sim.call(
        "POST",
        "/_sim/entities",
        {"accountId": ACCOUNT, "scope": "hr", "entities": [{"_key": "x"}]},
        headers={},
    )
    assert status == 400 and error_code(data) == "INVALID_ENTITY"
    status, data, _ = await sim.call(
        "POST", "/_sim/entities", {"scope": "hr", "accountId": "nope", "entities": []}, headers={}
    )
    assert status == 400 and error_code(data) == "UNKNOWN_ACCOUNT"
