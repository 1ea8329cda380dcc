"""Suite-wide fixtures: every test runs under the repository read guard (tests/repo_guard.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.repo_guard import install

GUARD = install()  # at import: collection-time reads are guarded too


@pytest.fixture(autouse=True)
def _reads_stay_in_the_repository() -> Iterator[None]:
    """Fail the test that touched a file outside the repository, even if its code caught the error."""
    before = len(GUARD.violations)
    yield
    outside = GUARD.violations[before:]
    if outside:
        pytest.fail("read outside the repository (see tests/repo_guard.py): " + "; ".join(outside[:5]))
