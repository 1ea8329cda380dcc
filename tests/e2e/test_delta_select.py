"""A delta `$select` Graph refuses: a clear message, and the round runs without those properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bench.kit.tenants import small_tenant
from syncd.model import schema as m
from syncd.model.selects import USER_SELECT
from syncd.runtime import open_runtime
from syncd.sources.directory import DeltaSource
from tests.helpers.harness import HarnessFactory


@pytest.mark.parametrize("form", ["400", "400-bare", "501"])
async def test_refused_select_properties_are_dropped_with_a_warning(
    make_harness: HarnessFactory, form: str, tmp_path: Path
) -> None:
    tenant = small_tenant(seed=51)
    h = await make_harness(tenant)
    h.sims.graph.set_faults({"delta_select_error": form})
    async with open_runtime(h.settings({"sync": {"sources": ["users"]}})) as rt:
        users = rt.engine.sources["users"]
        assert isinstance(users, DeltaSource)
        users.select = [*USER_SELECT, "birthday", "signInActivity"]  # two that delta refuses
        with capture_logs() as logs:
            report = await rt.engine.run_round("users", force_full=True)
        assert report.objects == len(list(tenant.list("users")))
        assert await rt.mirror.count_entities(m.USER.type) == len(list(tenant.list("users")))
        warned = [e for e in logs if "refuses these properties" in str(e.get("event"))]
        assert len(warned) == 1 and sorted(warned[0]["properties"]) == ["birthday", "signInActivity"]
        assert users.select == list(USER_SELECT)
        cursor = await rt.mirror.get_cursor("delta:users")
        assert cursor is not None  # the round committed its deltaLink
        # the next round is a plain delta round, nothing refused any more
        report = await rt.engine.run_round("users")
        assert report.kind == "delta"
