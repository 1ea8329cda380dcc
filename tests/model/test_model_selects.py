"""The delta ``$select`` lists carry what the converters read, and nothing delta refuses."""

from __future__ import annotations

from syncd.model.selects import DEVICE_SELECT, GROUP_SELECT, USER_SELECT, USER_SIGN_IN_SELECT, select_param


def test_user_select() -> None:
    for name in (
        "id",
        "userType",
        "accountEnabled",
        "mail",
        "otherMails",
        "userPrincipalName",
        "givenName",
        "surname",
        "createdDateTime",
        "lastPasswordChangeDateTime",
        "onPremisesSyncEnabled",
        "employeeId",
    ):
        assert name in USER_SELECT
    assert "signInActivity" not in USER_SELECT  # not trackable by delta; read separately
    assert "signInActivity" in USER_SIGN_IN_SELECT
    assert len(set(USER_SELECT)) == len(USER_SELECT)


def test_group_and_device_select() -> None:
    assert "members" in GROUP_SELECT and "groupTypes" in GROUP_SELECT and "securityEnabled" in GROUP_SELECT
    for name in ("deviceId", "isCompliant", "isManaged", "trustType", "approximateLastSignInDateTime"):
        assert name in DEVICE_SELECT
    assert select_param(("id", "displayName")) == "id,displayName"
