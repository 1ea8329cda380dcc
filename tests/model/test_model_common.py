"""Timestamps, the property sanitizer, and the entity/relationship constructors."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.model.convert.common import (
    ConvertContext,
    Derived,
    account_key,
    content_sha256,
    graph_properties,
    make_entity,
    make_relationship,
    sanitize_properties,
    to_epoch_ms,
)
from syncd.model.schema import ACCOUNT_HAS_USER, GROUP_HAS_USER, MANAGED_DEVICE, USER
from tests.model.model_helpers import assert_j1_entity, assert_j1_relationship


def _ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


# --- to_epoch_ms ------------------------------------------------------------------------------
def test_epoch_ms_plain_z() -> None:
    assert to_epoch_ms("2019-09-04T16:59:36Z") == _ms(2019, 9, 4, 16, 59, 36)


def test_epoch_ms_seven_fraction_digits_are_cut_to_milliseconds() -> None:
    assert to_epoch_ms("2021-02-17T18:30:00.3790438Z") == _ms(2021, 2, 17, 18, 30, 0) + 379
    assert to_epoch_ms("2021-03-08T16:23:55.358Z") == _ms(2021, 3, 8, 16, 23, 55) + 358


def test_epoch_ms_offset_naive_and_date_only() -> None:
    assert to_epoch_ms("2021-01-01T02:00:00+02:00") == _ms(2021, 1, 1)
    assert to_epoch_ms("2021-01-01T00:00:00") == _ms(2021, 1, 1)
    assert to_epoch_ms("2021-01-01") == _ms(2021, 1, 1)


def test_epoch_ms_never_and_garbage_are_none() -> None:
    assert to_epoch_ms("0001-01-01T00:00:00Z") is None
    for value in (None, "", "  ", "not a date", 12345, "2021-13-45T00:00:00Z"):
        assert to_epoch_ms(value) is None


# --- sanitizer --------------------------------------------------------------------------------
def test_sanitizer_flattens_one_level_and_drops_deeper() -> None:
    out = sanitize_properties({"quota": {"used": 1, "total": 2, "deeper": {"x": 1}}, "a": 1})
    assert out == {"quota.used": 1, "quota.total": 2, "a": 1}
    assert not any(isinstance(v, dict) for v in out.values())
    assert sanitize_properties({"quota": {"used": 1}}, flatten=False) == {}


def test_sanitizer_drops_underscore_and_odata_names_and_keeps_null() -> None:
    raw = {
        "_secret": 1,
        "@odata.type": "#x",
        "members@delta": [],
        "nested": {"@odata.type": "t", "_k": 1},
        "n": None,
    }
    assert sanitize_properties(raw) == {"n": None}


def test_sanitizer_truncates_long_strings_everywhere() -> None:
    long = "x" * 5000
    out = sanitize_properties({"s": long, "list": [long], "obj": {"s": long}})
    assert len(out["s"]) == 4096 and out["s"].endswith("...")
    assert len(out["list"][0]) == 4096
    assert len(out["obj.s"]) == 4096
    assert sanitize_properties({"s": "y" * 4096})["s"] == "y" * 4096


def test_sanitizer_arrays_homogeneous() -> None:
    out = sanitize_properties(
        {
            "mixed": [1, "a", True],
            "nums": [1, 2.5],
            "withNull": ["a", None, "b"],
            "objsWithIds": [{"id": "g1", "x": 1}, {"id": "g2"}],
            "objsNoIds": [{"userId": "u1"}],
            "nested": [[1], [2]],
            "empty": [],
        }
    )
    assert out["mixed"] == ["1", "a", "true"]
    assert out["nums"] == [1, 2.5]
    assert out["withNull"] == ["a", "b"]
    assert out["objsWithIds"] == ["g1", "g2"]
    assert "objsNoIds" not in out and "nested" not in out
    assert out["empty"] == []


def test_sanitizer_never_keeps_script_bodies() -> None:
    raw = {
        "scriptContent": "c2VjcmV0",
        "inner": {"detectionScriptContent": "x", "ok": 1},
        "remediationScriptContent": "y",
    }
    assert sanitize_properties(raw) == {"inner.ok": 1}


def test_graph_properties_turns_datetimes_into_on_fields() -> None:
    out = graph_properties(
        {
            "createdDateTime": "2019-09-04T16:59:36Z",
            "x": {"lastSyncDateTime": None},
            "dateTime": "keep",
            "drop": 1,
        },
        exclude=("drop",),
    )
    assert out == {"createdOn": _ms(2019, 9, 4, 16, 59, 36), "x.lastSyncOn": None, "dateTime": "keep"}


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.just("z" * 4100),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=12) | st.sampled_from(["_k", "@odata.type", "a@delta", "ok"]), _json, max_size=8
    )
)
def test_sanitized_entities_are_always_j1_legal(raw: dict[str, Any]) -> None:
    entity = make_entity(USER, "0123456789-key", raw, ConvertContext(tenant_id="t"))
    assert_j1_entity(entity)


# --- constructors -----------------------------------------------------------------------------
def test_account_key() -> None:
    assert account_key(ConvertContext(tenant_id="abc-123")) == "microsoft_365_account:abc-123"


def test_make_entity_required_fields_and_tag() -> None:
    ctx = ConvertContext(tenant_id="t", account_name="Acme", tag_with_account_name=True)
    entity = make_entity(
        MANAGED_DEVICE, "device-00001", {"displayName": "laptop", "_type": "evil", "n": 1}, ctx
    )
    assert entity["_key"] == "device-00001"
    assert entity["_type"] == MANAGED_DEVICE.type
    assert entity["_class"] == ["Host", "Device"]
    assert entity["displayName"] == entity["name"] == "laptop"
    assert entity["tag.AccountName"] == "Acme"
    assert entity["n"] == 1
    assert_j1_entity(entity)


def test_make_entity_no_tag_by_default_and_display_name_fallback() -> None:
    entity = make_entity(USER, "user-000001", {}, ConvertContext(tenant_id="t", account_name="Acme"))
    assert "tag.AccountName" not in entity
    assert entity["displayName"] == "user-000001"
    assert entity["_class"] == "User"


def test_make_relationship_shape() -> None:
    rel = make_relationship(GROUP_HAS_USER, "group-1", "user-1", {"state": "x", "list": [1], "obj": {"a": 1}})
    assert rel == {
        "_key": "group-1|has|user-1",
        "_type": GROUP_HAS_USER.type,
        "_class": "HAS",
        "_fromEntityKey": "group-1",
        "_toEntityKey": "user-1",
        "displayName": "HAS",
        "state": "x",
    }
    assert GROUP_HAS_USER.type == "microsoft_365_user_group_has_user"
    assert_j1_relationship(rel)


def test_derived_deduplicates_by_key() -> None:
    rel = make_relationship(ACCOUNT_HAS_USER, "acct-000001", "user-000001")
    out = Derived(relationships=[rel])
    out.add_relationship(dict(rel))
    other = Derived(relationships=[rel])
    out.extend(other)
    assert len(out.relationships) == 1


def test_content_sha256_hashes_the_decoded_script() -> None:
    script = b"Write-Output 'hello'"
    assert content_sha256(base64.b64encode(script).decode()) == hashlib.sha256(script).hexdigest()
    assert content_sha256("not base64!") == hashlib.sha256(b"not base64!").hexdigest()
