"""Where the tests find their data: inside the repository, wherever it is cloned."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root."""
FIXTURES = ROOT / "tests" / "fixtures" / "graph-recorded"
"""Recorded Graph exchanges (anonymised real traffic)."""
SEED = ROOT / "tests" / "fixtures" / "seed" / "microsoft-365-integration.md"
"""The integration's data-model document that `syncd document` reproduces."""
