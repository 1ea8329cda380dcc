"""The suite is self-contained: nothing reads outside the repository (tests/repo_guard.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import GUARD
from tests.paths import FIXTURES, SEED
from tests.repo_guard import ROOT, OutsideRepositoryRead, scan_file, scan_sources


def test_no_code_builds_a_path_out_of_the_repository() -> None:
    assert scan_sources() == []


def test_the_scan_finds_the_ways_out(tmp_path: Path) -> None:
    module = tmp_path / "tests" / "model" / "helpers.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        '"""Reads ../sibling/seed.md? No: a docstring is not code."""\n'
        "from pathlib import Path\n"
        'OUT = Path(__file__).resolve().parents[3] / "sibling" / "fixtures"\n'
        "IN = Path(__file__).resolve().parents[2]\n"
        "UP = Path(__file__).parent.parent.parent.parent\n"
        'REL = "../sibling/seed/microsoft-365-integration.md"\n'
        'ABS = "/work/shared/docs/design.md"\n'
    )
    found = scan_file(module, tmp_path)
    assert [f.split(":")[1] for f in found] == ["3", "5", "6", "7"], found


def test_reading_outside_the_repository_fails_where_it_happens(tmp_path: Path) -> None:
    inside = tmp_path / "ok.txt"
    inside.write_text("fine")
    assert inside.read_text() == "fine" and SEED.read_text() and list(FIXTURES.glob("*.json"))
    outside = Path("/syncd-guard-check-nonexistent") / "recording.json"  # nothing is really read
    before = len(GUARD.violations)
    with pytest.raises(OutsideRepositoryRead, match="inside the repository"):
        outside.read_text()
    with pytest.raises(OutsideRepositoryRead):
        list(outside.parent.iterdir())
    assert len(GUARD.violations) == before + 2
    del GUARD.violations[before:]  # expected here: do not fail this test at teardown


def test_the_fixtures_live_in_the_repository() -> None:
    assert FIXTURES.is_relative_to(ROOT) and SEED.is_relative_to(ROOT)
    assert len(list(FIXTURES.glob("*.json"))) >= 9
