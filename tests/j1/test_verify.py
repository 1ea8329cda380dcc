"""Job verification: a FINISHED job that did less or more than was sent is caught."""

from __future__ import annotations

from typing import Any

from syncd.j1.verify import Expectation, verify_job


def job(**counters: Any) -> dict[str, Any]:
    base = {
        f"num{k}{v}": 0
        for k in ("Entities", "Relationships", "MappedRelationships")
        for v in ("Created", "Updated", "Deleted")
    }
    return {"id": "j", "status": "FINISHED", **base, **counters}


def test_a_job_that_did_what_was_sent_passes() -> None:
    exp = Expectation(entities_sent=3, entities_created_min=1, entities_deleted=(1, 1))
    assert verify_job(job(numEntitiesCreated=1, numEntitiesUpdated=1, numEntitiesDeleted=1), exp) == []


def test_explicit_deletes_that_were_not_applied_are_a_mismatch() -> None:
    exp = Expectation(entities_sent=0, entities_deleted=(2, 2))
    assert verify_job(job(numEntitiesDeleted=0), exp) == ["numEntitiesDeleted=0, expected 2"]


def test_cross_scope_that_replaced_its_scope_is_a_mismatch() -> None:
    exp = Expectation(relationships_sent=1, relationships_created_min=1, relationships_deleted=(0, 0))
    problems = verify_job(job(numRelationshipsCreated=1, numRelationshipsDeleted=5780), exp)
    assert problems == ["numRelationshipsDeleted=5780, expected 0"]


def test_any_error_counter_is_a_mismatch() -> None:
    exp = Expectation(relationships_sent=2, relationships_deleted=None)
    assert verify_job(job(numRelationshipsCreated=1, numRelationshipCreateErrors=1), exp) == [
        "numRelationshipCreateErrors=1"
    ]


def test_a_new_object_that_was_not_created_is_a_mismatch() -> None:
    exp = Expectation(relationships_sent=1, relationships_created_min=1)
    assert verify_job(job(), exp) == ["numRelationshipsCreated=0 < 1 new"]


def test_more_writes_than_sent_is_a_mismatch_and_ranges_allow_doubt() -> None:
    assert verify_job(job(numEntitiesCreated=2, numEntitiesUpdated=2), Expectation(entities_sent=3)) == [
        "numEntitiesCreated+Updated=4 > 3 sent"
    ]
    doubtful = Expectation(entities_sent=5, entities_deleted=(1, 3))
    assert verify_job(job(numEntitiesDeleted=3), doubtful) == []
    assert verify_job(job(numEntitiesDeleted=4), doubtful) == ["numEntitiesDeleted=4, expected 1..3"]
    unchecked = Expectation(entities_sent=None, entities_deleted=None, relationships_sent=None,
                            relationships_deleted=None)
    assert verify_job(job(numEntitiesDeleted=40, numRelationshipsCreated=9), unchecked) == []


def test_counters_j1_does_not_report_are_not_held_against_it() -> None:
    expected = Expectation(entities_sent=1, entities_deleted=(1, 1))
    assert verify_job({"id": "j", "status": "FINISHED"}, expected) == []
