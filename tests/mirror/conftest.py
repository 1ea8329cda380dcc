from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncd.mirror import Mirror


@pytest.fixture
async def mirror(tmp_path: Path) -> AsyncIterator[Mirror]:
    m = await Mirror.open(tmp_path / "state" / "mirror.db")
    yield m
    await m.close()
