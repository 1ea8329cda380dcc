"""``syncd document``: the seed's "Data Model" section, generated from ``syncd.model.schema``.

The output is byte-identical to the seed's generated block (what ``j1-integration document``
printed), so a diff against the seed proves the type table and the seed agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncd.model.schema import ENTITY_TYPES, RELATIONSHIP_TYPES, RelationshipType

# fmt: off
RELATIONSHIP_ROW_ORDER: tuple[int, ...] = (
    26, 25, 20, 19, 11, 12, 13, 7, 18, 22, 21, 8, 9, 23, 10, 24, 27, 29, 28, 2, 1, 15, 4, 5, 3, 14, 16, 17, 6,
)
# fmt: on
"""The seed lists relationships in the order its generator met them (not sorted): these are the
data-model numbers in that order."""


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """A markdown table with every column padded to its widest cell (prettier's layout)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return [line(header), "| " + " | ".join("-" * width for width in widths) + " |", *(line(r) for r in rows)]


def _relationships_in_seed_order() -> list[RelationshipType]:
    by_number = {rel.number: rel for rel in RELATIONSHIP_TYPES}
    return [by_number[number] for number in RELATIONSHIP_ROW_ORDER]


def render_document() -> str:
    """The "## Data Model" section (both tables), ending with a newline."""
    entity_rows = [(e.resource, f"`{e.type}`", ", ".join(f"`{c}`" for c in e.classes)) for e in ENTITY_TYPES]
    relationship_rows = [
        (f"`{r.from_type.type}`", f"**{r.cls}**", f"`{r.to_type.type}`")
        for r in _relationships_in_seed_order()
    ]
    lines = [
        "## Data Model",
        "",
        "### Entities",
        "",
        "The following entities are created:",
        "",
        *_table(("Resources", "Entity `_type`", "Entity `_class`"), entity_rows),
        "",
        "### Relationships",
        "",
        "The following relationships are created/mapped:",
        "",
        *_table(
            ("Source Entity `_type`", "Relationship `_class`", "Target Entity `_type`"), relationship_rows
        ),
    ]
    return "\n".join(lines) + "\n"
