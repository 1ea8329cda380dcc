"""``syncd document`` reproduces the seed's generated tables byte for byte."""

from __future__ import annotations

from syncd.model.document import RELATIONSHIP_ROW_ORDER, render_document
from syncd.model.schema import RELATIONSHIP_TYPES
from tests.paths import SEED


def _seed_table(text: str, heading: str) -> str:
    """The table lines that follow ``heading`` (up to the first non-table line after it)."""
    after = text[text.index(heading) + len(heading) :]
    lines = after.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "".join(lines[start:end])


def test_tables_match_the_seed_byte_for_byte() -> None:
    seed = SEED.read_text()
    out = render_document()
    for heading in ("### Entities", "### Relationships"):
        assert _seed_table(out, heading) == _seed_table(seed, heading)
    assert _seed_table(out, "### Entities").count("\n") == 2 + 18
    assert _seed_table(out, "### Relationships").count("\n") == 2 + 29


def test_whole_section_matches_the_seed() -> None:
    seed = SEED.read_text()
    start = seed.index("## Data Model")
    section = seed[start : seed.index("<!--", start)].rstrip("\n") + "\n"
    assert render_document() == section


def test_row_order_names_every_relationship_once() -> None:
    assert (
        sorted(RELATIONSHIP_ROW_ORDER) == sorted(r.number for r in RELATIONSHIP_TYPES) == list(range(1, 30))
    )
