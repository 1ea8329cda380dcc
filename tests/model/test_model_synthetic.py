"""A synthetic tenant that exercises every converter: all 29 relationship types are produced,
the derivation rules hold, and script bodies never leak."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from syncd.model.convert.common import ConvertContext, Derived
from syncd.model.convert.directory import (
    convert_account,
    convert_entra_device,
    convert_group,
    convert_membership,
    convert_user,
)
from syncd.model.convert.intune import (
    CONVERTERS,
    IntuneLookups,
    convert_app_configuration,
    convert_compliance_policy,
    convert_compliance_script,
    convert_device_category,
    convert_device_configuration,
    convert_intent,
    convert_intune,
    convert_managed_app_policy,
    convert_managed_device,
    convert_management_script,
    convert_mobile_app,
    convert_mobile_app_category,
    status_device_id,
    targeted_app_ids,
)
from syncd.model.schema import (
    ACTION_ITEM_MITIGATES_FINDING,
    COMPLIANCE_SCRIPT,
    COMPLIANCE_SCRIPT_IDENTIFIED_FINDING,
    DEVICE_ASSIGNED_APPLICATION,
    ENTITY_TYPES,
    GROUP,
    GROUP_ASSIGNED_COMPLIANCE_POLICY,
    GROUP_HAS_MEMBER,
    GROUP_MEMBER,
    MANAGEMENT_SCRIPT,
    NONCOMPLIANCE_FINDING,
    RELATIONSHIP_TYPES,
    USER_ASSIGNED_COMPLIANCE_POLICY,
)
from tests.model.model_helpers import assert_j1_objects

TENANT = "tenant-0000-0000-0001"
USER_ID = "u0000000-0000-0000-0000-000000000001"
GROUP_ID = "g0000000-0000-0000-0000-000000000001"
CHILD_GROUP = "g0000000-0000-0000-0000-000000000002"
DEVICE = "d0000000-0000-0000-0000-000000000001"
DEVICE2 = "d0000000-0000-0000-0000-000000000002"
ENTRA_DEVICE = "e0000000-0000-0000-0000-000000000001"
CATEGORY = "c0000000-0000-0000-0000-000000000001"
POLICY = "p0000000-0000-0000-0000-000000000001"
CONFIG = "f0000000-0000-0000-0000-000000000001"
CSCRIPT = "s0000000-0000-0000-0000-000000000001"
MSCRIPT = "s0000000-0000-0000-0000-000000000002"
INTENT = "i0000000-0000-0000-0000-000000000001"
APP = "a0000000-0000-0000-0000-000000000001"
APP_CATEGORY = "ac000000-0000-0000-0000-000000000001"
APP_POLICY = "ap000000-0000-0000-0000-000000000001"
APP_CONFIG = "acf00000-0000-0000-0000-000000000001"
DETECTED = "76bde6e244886dc05e6eb3fc78c4b3b90237fc499e8d66d80c3c096b738eeddc"
ACTION_1 = "ac100000-0000-0000-0000-000000000001"
ACTION_2 = "ac100000-0000-0000-0000-000000000002"
SCRIPT_BODY = "$password = 'hunter2-super-secret'; Write-Output $password"
SCRIPT_B64 = base64.b64encode(SCRIPT_BODY.encode()).decode()


def _group_assignment(group_id: str, exclusion: bool = False) -> dict[str, Any]:
    kind = "exclusionGroupAssignmentTarget" if exclusion else "groupAssignmentTarget"
    return {
        "id": f"asg-{group_id}",
        "target": {"@odata.type": f"#microsoft.graph.{kind}", "groupId": group_id},
    }


ORG = {
    "id": TENANT,
    "displayName": "Contoso",
    "verifiedDomains": [{"name": "contoso.com", "isDefault": True}],
}
USER = {
    "id": USER_ID,
    "displayName": "Ada Lovelace",
    "givenName": "Ada",
    "surname": "Lovelace",
    "userPrincipalName": "ada@contoso.com",
    "mail": "Ada@Contoso.com",
    "userType": "Member",
    "accountEnabled": False,
    "createdDateTime": "2020-01-01T00:00:00Z",
    "otherMails": ["ada@example.org"],
    "signInActivity": {
        "lastSignInDateTime": "2024-05-01T10:00:00Z",
        "lastNonInteractiveSignInDateTime": None,
    },
}
GROUP_RAW = {
    "id": GROUP_ID,
    "displayName": "Engineering",
    "mail": "eng@contoso.com",
    "mailEnabled": True,
    "securityEnabled": True,
    "groupTypes": ["Unified"],
    "members@delta": [{"@odata.type": "#microsoft.graph.user", "id": USER_ID}],
}
MANAGED_DEVICE = {
    "id": DEVICE,
    "userId": USER_ID,
    "deviceName": "ADA-LAPTOP",
    "complianceState": "noncompliant",
    "jailBroken": "False",
    "deviceCategoryDisplayName": "Laptops",
    "activationLockBypassCode": "SECRET-BYPASS",
    "detectedApps": [{"id": DETECTED, "displayName": "Comp Portal", "version": "4.13.0", "sizeInByte": 0}],
}
COMPLIANCE_POLICY = {
    "@odata.type": "#microsoft.graph.windows10CompliancePolicy",
    "id": POLICY,
    "displayName": "Win10 baseline",
    "assignments": [_group_assignment(GROUP_ID), _group_assignment(CHILD_GROUP, exclusion=True)],
    "deviceStatuses": [
        {"id": f"x_{POLICY}_{DEVICE}", "status": "nonCompliant", "deviceDisplayName": "ADA-LAPTOP"},
        {"id": f"y_{POLICY}_{DEVICE2}", "status": "compliant"},
    ],
    "userStatuses": [
        {"id": "us-1", "userPrincipalName": "ADA@contoso.com", "status": "nonCompliant"},
        {"id": "us-2", "userPrincipalName": "ghost@contoso.com", "status": "compliant"},
    ],
    "scheduledActionsForRule": [
        {
            "id": "rule-1",
            "ruleName": "PasswordRequired",
            "scheduledActionConfigurations": [
                {
                    "id": ACTION_1,
                    "actionType": "block",
                    "gracePeriodHours": 0,
                    "notificationMessageCCList": [],
                },
                {"id": ACTION_2, "actionType": "notification", "gracePeriodHours": 24},
            ],
        }
    ],
}
DEVICE_CONFIGURATION = {
    "id": CONFIG,
    "displayName": "Wi-Fi",
    "payload": base64.b64encode(b"<wifi psk='abc'/>").decode(),
    "preSharedKey": "abc-psk",
    "assignments": [_group_assignment(GROUP_ID)],
    "deviceStatuses": [{"id": f"x_{CONFIG}_{DEVICE}", "status": "conflict"}],
}
COMPLIANCE_SCRIPT_RAW = {
    "id": CSCRIPT,
    "displayName": "Check BitLocker",
    "detectionScriptContent": SCRIPT_B64,
    "remediationScriptContent": SCRIPT_B64,
    "deviceRunStates": [
        {
            "id": "run-fail-000001",
            "detectionState": "fail",
            "managedDevice": {"id": DEVICE},
            "scriptOutput": "bad",
        },
        {"id": "run-ok-00000001", "detectionState": "success", "managedDevice": {"id": DEVICE2}},
    ],
}
MANAGEMENT_SCRIPT_RAW = {
    "id": MSCRIPT,
    "displayName": "Install agent",
    "scriptContent": SCRIPT_B64,
    "groupAssignments": [{"id": "ga-1", "targetGroupId": GROUP_ID}],
    "deviceRunStates": [{"id": "mrun-1", "runState": "success", "managedDevice": {"id": DEVICE}}],
}
INTENT_RAW = {
    "id": INTENT,
    "displayName": "Defender AV",
    "settings": [
        {"id": "st-1", "definitionId": "deviceConfiguration--apps", "valueJson": json.dumps([APP.upper()])},
        {"id": "st-2", "definitionId": "other", "valueJson": "true"},
    ],
    "deviceStates": [
        {"id": "ds-1-00000000", "deviceId": DEVICE, "state": "error", "deviceDisplayName": "ADA-LAPTOP"},
        {"id": "ds-2-00000000", "deviceId": DEVICE2, "state": "compliant"},
    ],
}
MOBILE_APP = {
    "@odata.type": "#microsoft.graph.iosStoreApp",
    "id": APP,
    "displayName": "Outlook",
    "bundleId": "com.microsoft.Office.Outlook",
    "largeIcon": {"type": "image/png", "value": "iVBORw0KGgo" * 1000},
    "categories": [{"id": APP_CATEGORY, "displayName": "Productivity"}],
    "deviceStatuses": [
        {"id": f"{APP}{DEVICE}", "deviceId": DEVICE, "installState": "installed", "errorCode": 0},
        {"id": f"{APP}{DEVICE2}", "installState": "failed", "errorCode": -2016330696},
    ],
}
APP_POLICY_RAW = {
    "@odata.type": "#microsoft.graph.iosManagedAppProtection",
    "id": APP_POLICY,
    "displayName": "iOS protection",
    # A managedMobileApp: its id is not the mobileApp's; its identifier names the app.
    "apps": [
        {
            "id": "com.microsoft.office.outlook.ios",
            "mobileAppIdentifier": {
                "@odata.type": "#microsoft.graph.iosMobileAppIdentifier",
                "bundleId": "com.microsoft.office.outlook",
            },
        }
    ],
}
APPS_BY_IDENTIFIER = {"com.microsoft.office.outlook": [APP]}
APP_CONFIG_RAW = {
    "id": APP_CONFIG,
    "displayName": "Outlook config",
    "targetedMobileApps": [APP],
    "encodedSettingXml": base64.b64encode(b"<dict><key>pw</key></dict>").decode(),
    "deviceStatuses": [
        {"id": f"z_{APP_CONFIG}_{DEVICE}", "status": "error"},
        {"id": f"w_{APP_CONFIG}_{DEVICE2}", "status": "compliant"},
    ],
}


def synthetic_tenant(ctx: ConvertContext) -> tuple[Derived, dict[str, Any]]:
    """Everything the synthetic tenant converts to, plus the account entity."""
    out = Derived()
    account = convert_account(ORG, ctx)
    out.add_entity(account)
    out.extend(convert_user(USER, ctx))
    out.extend(convert_group(GROUP_RAW, ctx))
    out.extend(convert_group({"id": CHILD_GROUP, "displayName": "Platform"}, ctx))
    out.extend(convert_membership(GROUP_ID, {"@odata.type": "#microsoft.graph.user", "id": USER_ID}, ctx))
    out.extend(
        convert_membership(GROUP_ID, {"@odata.type": "#microsoft.graph.group", "id": CHILD_GROUP}, ctx)
    )
    entra = convert_entra_device({"id": ENTRA_DEVICE, "displayName": "ADA-LAPTOP", "deviceId": "aad-1"})
    out.extend(
        convert_membership(
            GROUP_ID,
            {"@odata.type": "#microsoft.graph.device", "id": ENTRA_DEVICE},
            ctx,
            member_details=entra,
        )
    )
    out.extend(convert_device_category({"id": CATEGORY, "displayName": "Laptops"}, ctx))
    out.extend(convert_managed_device(MANAGED_DEVICE, ctx, {"Laptops": CATEGORY}))
    out.extend(convert_compliance_policy(COMPLIANCE_POLICY, ctx, {"ada@contoso.com": USER_ID}))
    out.extend(convert_device_configuration(DEVICE_CONFIGURATION, ctx))
    out.extend(convert_compliance_script(COMPLIANCE_SCRIPT_RAW, ctx))
    out.extend(convert_management_script(MANAGEMENT_SCRIPT_RAW, ctx))
    out.extend(convert_intent(INTENT_RAW, ctx, known_app_ids=[APP, "a9999999-0000-0000-0000-000000000009"]))
    out.extend(convert_mobile_app(MOBILE_APP, ctx))
    out.extend(convert_mobile_app_category({"id": APP_CATEGORY, "displayName": "Productivity"}, ctx))
    out.extend(convert_managed_app_policy(APP_POLICY_RAW, ctx, APPS_BY_IDENTIFIER))
    out.extend(convert_app_configuration(APP_CONFIG_RAW, ctx))
    return out, account


@pytest.fixture
def tenant() -> Derived:
    ctx = ConvertContext(tenant_id=TENANT, account_name="Contoso J1", tag_with_account_name=True)
    out, _ = synthetic_tenant(ctx)
    return out


def _of(out: Derived, type_name: str) -> list[dict[str, Any]]:
    return [o for o in [*out.entities, *out.relationships] if o["_type"] == type_name]


def test_every_relationship_type_is_produced(tenant: Derived) -> None:
    produced = {r["_type"] for r in tenant.relationships if "_mapping" not in r}
    expected = {r.type for r in RELATIONSHIP_TYPES}
    assert len(expected) == 29
    assert expected - produced == set()
    assert produced - expected == set()


def test_every_entity_type_is_produced_and_legal(tenant: Derived) -> None:
    assert {e["_type"] for e in tenant.entities} == {e.type for e in ENTITY_TYPES}
    assert_j1_objects(tenant.entities, tenant.relationships)
    assert all(e["tag.AccountName"] == "Contoso J1" for e in tenant.entities)


def test_relationship_endpoints_exist(tenant: Derived) -> None:
    keys = {e["_key"] for e in tenant.entities}
    dangling = [
        r["_key"]
        for r in tenant.relationships
        if "_mapping" not in r and not (r["_fromEntityKey"] in keys and r["_toEntityKey"] in keys)
    ]
    # DEVICE2 is only named by statuses: its entity lives in another poll unit.
    assert all(DEVICE2 in key for key in dangling), dangling


def test_script_content_never_present(tenant: Derived) -> None:
    text = json.dumps([tenant.entities, tenant.relationships])
    for forbidden in (
        "scriptContent",
        "detectionScriptContent",
        "remediationScriptContent",
        SCRIPT_B64,
        "hunter2",
        "SECRET-BYPASS",
        "abc-psk",
        "iVBORw0KGgo",
    ):
        assert forbidden not in text
    digest = hashlib.sha256(SCRIPT_BODY.encode()).hexdigest()
    [cscript] = _of(tenant, COMPLIANCE_SCRIPT.type)
    [mscript] = _of(tenant, MANAGEMENT_SCRIPT.type)
    assert cscript["sha256"] == digest and cscript["remediationSha256"] == digest
    assert mscript["sha256"] == digest


def test_mapped_person_relationship_shape(tenant: Derived) -> None:
    [mapped] = [r for r in tenant.relationships if "_mapping" in r]
    assert mapped == {
        "_key": f"{USER_ID}|is|person:ada@contoso.com",
        "_type": "microsoft_365_user_is_person",
        "_class": "IS",
        "displayName": "IS",
        "_mapping": {
            "relationshipDirection": "FORWARD",
            "sourceEntityKey": USER_ID,
            "targetFilterKeys": [["_class", "email"]],
            # no label: J1 never creates this target, and a rename must not change the mapping
            "targetEntity": {"_class": "Person", "email": "ada@contoso.com"},
            "skipTargetCreation": True,
        },
    }


def test_person_mapping_switches() -> None:
    off = ConvertContext(tenant_id=TENANT, map_users_to_persons=False)
    assert not [r for r in convert_user(USER, off).relationships if "_mapping" in r]
    custom = ConvertContext(
        tenant_id=TENANT, person_match_keys=("email", "username"), person_skip_target_creation=False
    )
    [mapped] = [r for r in convert_user(USER, custom).relationships if "_mapping" in r]
    assert mapped["_mapping"]["targetFilterKeys"] == [["_class", "email", "username"]]
    assert mapped["_mapping"]["targetEntity"]["username"] == "ada@contoso.com"
    assert mapped["_mapping"]["targetEntity"]["displayName"] == "Ada Lovelace"  # J1 may create it
    assert mapped["_mapping"]["skipTargetCreation"] is False
    no_mail = {**USER, "mail": None}
    assert not [
        r for r in convert_user(no_mail, ConvertContext(tenant_id=TENANT)).relationships if "_mapping" in r
    ]


def test_user_entity_values() -> None:
    [user] = convert_user(USER, ConvertContext(tenant_id=TENANT)).entities
    assert user["active"] is False and user["accountEnabled"] is False
    assert user["email"] == "Ada@Contoso.com" and user["username"] == "ada@contoso.com"
    assert user["firstName"] == "Ada" and user["lastName"] == "Lovelace"
    assert user["createdOn"] == 1577836800000
    assert user["lastSignInOn"] == 1714557600000 and user["lastNonInteractiveSignInOn"] is None
    assert user["otherMails"] == ["ada@example.org"]
    assert not any(name.startswith("signInActivity") for name in user)


def test_group_and_member_entities(tenant: Derived) -> None:
    [group, _child] = _of(tenant, GROUP.type)
    assert group["groupTypes"] == ["Unified"] and group["email"] == "eng@contoso.com"
    assert not any("@" in name for name in group)
    [member] = _of(tenant, GROUP_MEMBER.type)
    assert member["_key"] == ENTRA_DEVICE
    assert member["memberType"] == "device" and member["displayName"] == "ADA-LAPTOP"
    assert "removed" not in member
    [edge] = _of(tenant, GROUP_HAS_MEMBER.type)
    assert edge["_key"] == f"{GROUP_ID}|has|{ENTRA_DEVICE}"
    bare = convert_membership(
        GROUP_ID,
        {"@odata.type": "#microsoft.graph.orgContact", "id": "oc-0000000001"},
        ConvertContext(tenant_id=TENANT),
    )
    assert bare.entities[0]["displayName"] == "oc-0000000001"
    assert bare.entities[0]["memberType"] == "orgContact"


def test_compliance_policy_rules(tenant: Derived) -> None:
    groups = {r["_fromEntityKey"] for r in _of(tenant, GROUP_ASSIGNED_COMPLIANCE_POLICY.type)}
    assert groups == {GROUP_ID}  # exclusion target skipped
    users = _of(tenant, USER_ASSIGNED_COMPLIANCE_POLICY.type)
    assert [(r["_fromEntityKey"], r["status"]) for r in users] == [(USER_ID, "nonCompliant")]  # ghost skipped
    finding_key = f"x_{POLICY}_{DEVICE}"
    mitigates = {r["_fromEntityKey"] for r in _of(tenant, ACTION_ITEM_MITIGATES_FINDING.type)}
    assert mitigates == {ACTION_1, ACTION_2}
    assert all(r["_toEntityKey"] == finding_key for r in _of(tenant, ACTION_ITEM_MITIGATES_FINDING.type))


def test_findings_only_for_problem_states(tenant: Derived) -> None:
    keys = {f["_key"] for f in _of(tenant, NONCOMPLIANCE_FINDING.type)}
    assert keys == {
        f"x_{POLICY}_{DEVICE}",
        f"x_{CONFIG}_{DEVICE}",
        "run-fail-000001",
        "ds-1-00000000",
        f"z_{APP_CONFIG}_{DEVICE}",
    }
    [identified] = _of(tenant, COMPLIANCE_SCRIPT_IDENTIFIED_FINDING.type)
    assert identified["_toEntityKey"] == "run-fail-000001"


def test_install_status_device_from_id_when_missing(tenant: Derived) -> None:
    edges = {(r["_fromEntityKey"], r["installState"]) for r in _of(tenant, DEVICE_ASSIGNED_APPLICATION.type)}
    assert edges == {(DEVICE, "installed"), (DEVICE2, "failed")}


def test_status_device_id_rule() -> None:
    assert status_device_id({"id": "a_b_c"}) == "c"
    assert status_device_id({"id": "x", "deviceId": "dev"}) == "dev"
    assert status_device_id({"id": "x", "managedDevice": {"id": "md"}}) == "md"
    assert status_device_id({"id": "appdev"}, id_prefix="app") == "dev"
    assert status_device_id({"id": "plain"}) is None


def test_dispatch_covers_every_collection() -> None:
    ctx = ConvertContext(tenant_id=TENANT)
    samples: dict[str, dict[str, Any]] = {
        "managedDevices": MANAGED_DEVICE,
        "deviceCategories": {"id": CATEGORY, "displayName": "Laptops"},
        "deviceCompliancePolicies": COMPLIANCE_POLICY,
        "deviceConfigurations": DEVICE_CONFIGURATION,
        "deviceComplianceScripts": COMPLIANCE_SCRIPT_RAW,
        "deviceManagementScripts": MANAGEMENT_SCRIPT_RAW,
        "intents": INTENT_RAW,
        "mobileApps": MOBILE_APP,
        "mobileAppCategories": {"id": APP_CATEGORY, "displayName": "Productivity"},
        "managedAppPolicies": APP_POLICY_RAW,
        "mobileAppConfigurations": APP_CONFIG_RAW,
    }
    assert set(samples) == set(CONVERTERS)
    lookups = IntuneLookups(
        category_ids_by_name={"Laptops": CATEGORY},
        known_app_ids=[APP],
        app_ids_by_identifier=APPS_BY_IDENTIFIER,
    )
    for collection, raw in samples.items():
        out = convert_intune(collection, raw, ctx, lookups)
        assert out.entities[0]["_key"] == raw["id"]
        assert_j1_objects(out.entities, out.relationships)
    with pytest.raises(KeyError):
        convert_intune("nope", {"id": "x"}, ctx)


def test_conversion_is_deterministic() -> None:
    ctx = ConvertContext(tenant_id=TENANT)
    first, _ = synthetic_tenant(ctx)
    second, _ = synthetic_tenant(ctx)
    assert json.dumps([first.entities, first.relationships]) == json.dumps(
        [second.entities, second.relationships]
    )


def test_app_protection_targets_are_matched_by_identifier() -> None:
    ident = {"@odata.type": "#microsoft.graph.androidMobileAppIdentifier", "packageId": "Com.Example.App"}
    by_identifier = {"com.example.app": ["a1", "a2"]}
    assert targeted_app_ids({"id": "x.android", "mobileAppIdentifier": ident}, by_identifier) == ["a1", "a2"]
    assert targeted_app_ids({"id": "a3", "mobileAppIdentifier": {}}, by_identifier, {"a3"}) == ["a3"]
    assert targeted_app_ids({"id": "x.ios", "mobileAppIdentifier": {"bundleId": "none"}}, by_identifier) == []
