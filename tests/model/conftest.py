"""Fixtures of the model tests."""

from __future__ import annotations

import pytest

from syncd.model.convert.common import ConvertContext
from tests.model.model_helpers import TENANT_ID


@pytest.fixture
def ctx() -> ConvertContext:
    return ConvertContext(tenant_id=TENANT_ID)
