"""The layering rules of docs/architecture.md, read from the source: what each low layer may import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import ROOT

ALLOWED: dict[str, tuple[str, ...]] = {
    "syncd/retry.py": (),
    "syncd/graph": ("syncd.graph", "syncd.retry"),
    "syncd/mirror": ("syncd.mirror", "syncd.pausepoints"),
    "syncd/model": ("syncd.model",),
    "syncd/sim/graph": ("syncd.sim",),
    "syncd/sim/j1": ("syncd.sim",),
}
"""Module or package → the syncd modules it may import (anything outside syncd is not checked)."""


def imports(path: Path) -> set[str]:
    """Absolute module names ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def syncd_imports(path: Path) -> set[str]:
    return {name for name in imports(path) if name == "syncd" or name.startswith("syncd.")}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_low_layer_imports_only_what_it_may(layer: str) -> None:
    target = ROOT / layer
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    assert files
    allowed = ALLOWED[layer]
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in syncd_imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    }
    assert not wrong, sorted(wrong)


def test_the_benches_do_not_import_the_tests() -> None:
    """What benches and tests share lives in bench/kit; a bench never reaches into tests/."""
    files = sorted((ROOT / "bench").rglob("*.py"))
    assert files
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files
        for name in imports(path)
        if name == "tests" or name.startswith("tests.")
    }
    assert not wrong, sorted(wrong)
