"""Checking a FINISHED J1 job's counters against what was sent, before anything is acknowledged.

J1 answers FINISHED for a job that did less (or more) than asked: explicit deletes that are not
applied, a CROSS_SCOPE job that replaced its scope's relationships, relationships whose endpoint
did not resolve. The counters (``numEntitiesCreated`` …, ``num…Errors``) are how a client learns
what a job did, so every job is checked; a mismatch is never acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ERROR_COUNTERS = tuple(
    f"num{kind}{verb}Errors"
    for kind in ("Entity", "Relationship", "MappedRelationship")
    for verb in ("Create", "Update", "Delete")
)

Range = tuple[int, int]


@dataclass
class Expectation:
    """What a job must have done. Ranges are inclusive; None leaves a counter unchecked (J1's
    state before the job was not known for sure, e.g. after a crash or on a first DIFF)."""

    entities_sent: int | None = 0
    entities_created_min: int = 0
    entities_deleted: Range | None = (0, 0)
    relationships_sent: int | None = 0
    """None: unchecked (an entity partition's DIFF, where J1 may count mapped relationships here)."""
    relationships_created_min: int = 0
    relationships_deleted: Range | None = (0, 0)


def counter(job: Mapping[str, Any], name: str) -> int | None:
    """A job counter, or None when J1 did not report it as a number."""
    value = job.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def verify_job(job: Mapping[str, Any], expected: Expectation) -> list[str]:
    """The ways ``job`` differs from ``expected`` (empty when it did what was asked).

    A counter J1 did not report is not held against it; an error counter above zero always is."""
    problems: list[str] = []
    for name in ERROR_COUNTERS:
        value = counter(job, name)
        if value:
            problems.append(f"{name}={value}")
    for noun, sent, created_min, deleted in (
        ("Entities", expected.entities_sent, expected.entities_created_min, expected.entities_deleted),
        (
            "Relationships",
            expected.relationships_sent,
            expected.relationships_created_min,
            expected.relationships_deleted,
        ),
    ):
        created = counter(job, f"num{noun}Created")
        updated = counter(job, f"num{noun}Updated")
        removed = counter(job, f"num{noun}Deleted")
        if sent is not None and created is not None and updated is not None and created + updated > sent:
            problems.append(f"num{noun}Created+Updated={created + updated} > {sent} sent")
        if created is not None and created < created_min:
            problems.append(f"num{noun}Created={created} < {created_min} new")
        if deleted is not None and removed is not None and not deleted[0] <= removed <= deleted[1]:
            want = str(deleted[0]) if deleted[0] == deleted[1] else f"{deleted[0]}..{deleted[1]}"
            problems.append(f"num{noun}Deleted={removed}, expected {want}")
    return problems
