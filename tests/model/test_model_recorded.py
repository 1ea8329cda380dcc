"""Every recorded Graph payload converts, stays J1-legal and keeps the real recorded values."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from syncd.model.convert.common import ConvertContext, Derived, account_key, to_epoch_ms
from syncd.model.convert.directory import convert_account, convert_membership, convert_user
from syncd.model.convert.intune import (
    convert_compliance_policy,
    convert_device_configuration,
    convert_managed_device,
)
from syncd.model.schema import (
    ACCOUNT,
    DEVICE_ASSIGNED_COMPLIANCE_POLICY,
    DEVICE_HAS_FINDING,
    DEVICE_USES_CONFIGURATION,
    GROUP_HAS_USER,
    MANAGED_DEVICE,
    NONCOMPLIANCE_FINDING,
    POLICY_IDENTIFIED_FINDING,
    USER,
    USER_OWNS_DEVICE,
)
from tests.model.model_helpers import TENANT_ID, assert_j1_objects, body_values, load_exchanges
from tests.paths import FIXTURES

_GRAPH = re.compile(r"^https://graph\.microsoft\.com/(?:v1\.0|beta)(?P<path>/[^?]*)")
_SUB = re.compile(
    r"^/deviceManagement/(?P<coll>deviceCompliancePolicies|deviceConfigurations)/(?P<id>[^/]+)/(?P<sub>\w+)$"
)
_MEMBERS = re.compile(r"^/groups/(?P<id>[^/]+)/members$")
IPHONE = "683dbff1-c8ff-4996-91ae-85484de46cfc"
MAC = "1f75329e-51fc-451c-bd40-c457337641a4"
IOS_POLICY = "1aa3f0f3-d780-4349-885b-c86d273aa14e"
IOS_CONFIG = "6aa605f0-744e-4ae1-8031-c6564624c89b"


def _graph_path(url: str) -> str:
    """The path of a Graph URL, version and query left out."""
    match = _GRAPH.match(url)
    assert match is not None, url
    return match["path"]


def convert_fixture(name: str, ctx: ConvertContext) -> tuple[Derived, int]:
    """Convert every successful Graph exchange of a fixture; returns the result and how many
    exchanges were used (asserted equal to the number of successful Graph exchanges)."""
    exchanges = [e for e in load_exchanges(name) if e["status"] == 200 and _GRAPH.match(e["url"])]
    subs: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    used = 0
    for exchange in exchanges:
        sub = _SUB.match(_graph_path(exchange["url"]))
        if sub:
            subs.setdefault((sub["coll"], sub["id"]), {})[sub["sub"]] = exchange["body"]["value"]
            used += 1
    out = Derived()
    for exchange in exchanges:
        path = _graph_path(exchange["url"])
        values = body_values(exchange["body"])
        members = _MEMBERS.match(path)
        if path == "/organization":
            for org in values:
                out.add_entity(convert_account(org, ctx))
        elif path == "/users":
            for user in values:
                out.extend(convert_user(user, ctx))
        elif members:
            for member in values:
                out.extend(convert_membership(members["id"], member, ctx))
        elif path == "/deviceManagement/managedDevices":
            for device in values:
                out.extend(convert_managed_device(device, ctx, {}))
        elif path == "/deviceManagement/deviceCompliancePolicies":
            for policy in values:
                out.extend(
                    convert_compliance_policy(
                        {**policy, **subs.get(("deviceCompliancePolicies", policy["id"]), {})}, ctx
                    )
                )
        elif path == "/deviceManagement/deviceConfigurations":
            for config in values:
                out.extend(
                    convert_device_configuration(
                        {**config, **subs.get(("deviceConfigurations", config["id"]), {})}, ctx
                    )
                )
        elif _SUB.match(path):
            continue
        else:
            raise AssertionError(f"{name}: no converter for {path}")
        used += 1
    return out, used


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_every_recorded_payload_converts(name: str, ctx: ConvertContext) -> None:
    out, used = convert_fixture(name, ctx)
    graph_ok = [e for e in load_exchanges(name) if e["status"] == 200 and _GRAPH.match(e["url"])]
    assert used == len(graph_ok)
    assert_j1_objects(out.entities, out.relationships)


def _by_type(out: Derived, type_name: str) -> list[dict[str, Any]]:
    return [o for o in [*out.entities, *out.relationships] if o["_type"] == type_name]


def test_organization_account(ctx: ConvertContext) -> None:
    out, _ = convert_fixture("organization.json", ctx)
    [account] = _by_type(out, ACCOUNT.type)
    assert account["_key"] == account_key(ctx) == f"microsoft_365_account:{TENANT_ID}"
    assert account["displayName"] == "Default Directory"
    assert account["verifiedDomains"] == ["adamjupiteronehotmailcom.onmicrosoft.com"]
    assert account["defaultDomain"] == "adamjupiteronehotmailcom.onmicrosoft.com"
    assert account["createdOn"] == to_epoch_ms("2019-09-04T16:59:36Z")
    assert account["directorySizeQuota.used"] == 220
    assert account["intuneAccountId"] is None


def test_account_name_wins_and_tags(ctx: ConvertContext) -> None:
    org = body_values(load_exchanges("tenant-without-intune.json")[1]["body"])[0]
    tagged = ConvertContext(tenant_id=org["id"], account_name="Outside", tag_with_account_name=True)
    account = convert_account(org, tagged, intune_account_id=None, mdm_authority=None)
    assert account["displayName"] == "Outside"
    assert account["organizationName"] == "Org Outside J1"
    assert account["tag.AccountName"] == "Outside"
    with_intune = convert_account(org, tagged, intune_account_id="intune-1", mdm_authority="intune")
    assert with_intune["intuneAccountId"] == "intune-1"
    assert with_intune["mobileDeviceManagementAuthority"] == "intune"


def test_users_keep_values_and_map_to_persons(ctx: ConvertContext) -> None:
    out, _ = convert_fixture("users-list.json", ctx)
    users = {u["_key"]: u for u in _by_type(out, USER.type)}
    assert len(users) == 4
    erkang = users["894a1974-e9fa-4bcc-a560-91b58d1a224f"]
    assert erkang["email"] == "erkang@gmail.com"
    assert erkang["firstName"] == "Erkang" and erkang["lastName"] == "Zheng"
    assert erkang["username"] == "erkang_gmail.com#EXT#@adamjupiteronehotmailcom.onmicrosoft.com"
    admin = users["d0e84358-ed79-4ae0-9157-83d3a0ef9b78"]
    assert admin["email"] is None  # mail is null: the UPN is not promoted to email
    mapped = [r for r in out.relationships if "_mapping" in r]
    assert {r["_mapping"]["sourceEntityKey"] for r in mapped} == {
        "1bc373cb-36d4-4fd9-8996-b77d3544a380",
        "894a1974-e9fa-4bcc-a560-91b58d1a224f",
    }
    account_edges = [r for r in out.relationships if r.get("_fromEntityKey") == account_key(ctx)]
    assert len(account_edges) == 4


def test_group_member_user_entry(ctx: ConvertContext) -> None:
    out, _ = convert_fixture("group-members.json", ctx)
    [rel] = _by_type(out, GROUP_HAS_USER.type)
    assert rel["_key"] == "58e48aba-cd45-440f-a851-2bf9715fadc1|has|1bc373cb-36d4-4fd9-8996-b77d3544a380"


def test_managed_devices_keep_real_values(ctx: ConvertContext) -> None:
    out, _ = convert_fixture("managed-devices-with-users.json", ctx)
    devices = {d["_key"]: d for d in _by_type(out, MANAGED_DEVICE.type)}
    iphone, mac = devices[IPHONE], devices[MAC]
    assert iphone["_class"] == ["Host", "Device"]
    assert iphone["complianceState"] == "noncompliant"
    assert iphone["osVersion"] == "14.4"
    assert iphone["jailBroken"] == "False"
    assert mac["jailBroken"] == "Unknown"
    assert iphone["isEncrypted"] is True
    assert iphone["azureADDeviceId"] == IPHONE
    assert iphone["model"] == "iPhone 11 Pro" and iphone["make"] == "Apple"
    assert iphone["lastSyncOn"] == to_epoch_ms("2021-03-10T00:24:15Z")
    assert iphone["enrolledOn"] == to_epoch_ms("2021-02-17T16:24:45Z")
    assert iphone["easActivationOn"] is None  # 0001-01-01 = never
    assert iphone["hardwareInformation.serialNumber"] == "C39ZQB9SN6XQ"
    assert iphone["usersLoggedOnIds"] == ["001d35fc-dd2b-4d17-9ffc-3bafa265e7d9"]
    assert mac["osVersion"] == "11.2.1 (20D74)" and mac["managementState"] == "retireIssued"
    assert "activationLockBypassCode" not in iphone
    owns = _by_type(out, USER_OWNS_DEVICE.type)
    assert [(r["_fromEntityKey"], r["_toEntityKey"]) for r in owns] == [
        ("001d35fc-dd2b-4d17-9ffc-3bafa265e7d9", IPHONE)
    ]


def test_compliance_statuses_become_findings_only_for_problems(ctx: ConvertContext) -> None:
    out, _ = convert_fixture("compliance-policies-and-statuses.json", ctx)
    findings = _by_type(out, NONCOMPLIANCE_FINDING.type)
    status_id = f"7b521133-f056-40a9-b639-b76afd67e4bb_{IOS_POLICY}_{IPHONE}"
    assert [f["_key"] for f in findings] == [status_id]
    finding = findings[0]
    assert finding["status"] == "nonCompliant"
    assert finding["deviceId"] == IPHONE
    assert finding["lastReportedOn"] == to_epoch_ms("2021-03-08T16:23:55.3635457Z")
    [has] = _by_type(out, DEVICE_HAS_FINDING.type)
    assert (has["_fromEntityKey"], has["_toEntityKey"]) == (IPHONE, status_id)
    [identified] = _by_type(out, POLICY_IDENTIFIED_FINDING.type)
    assert identified["_fromEntityKey"] == IOS_POLICY
    assigned = _by_type(out, DEVICE_ASSIGNED_COMPLIANCE_POLICY.type)
    assert {(r["_toEntityKey"], r["status"]) for r in assigned} == {
        (IOS_POLICY, "nonCompliant"),
        ("caccf747-61cc-422f-b860-c3f384998f23", "notApplicable"),
    }


def test_configuration_statuses(ctx: ConvertContext) -> None:
    out, _ = convert_fixture("device-configurations-and-statuses.json", ctx)
    [finding] = _by_type(out, NONCOMPLIANCE_FINDING.type)
    assert finding["_key"] == f"7b521133-f056-40a9-b639-b76afd67e4bb_{IOS_CONFIG}_{IPHONE}"
    assert finding["status"] == "error"
    [has] = _by_type(out, DEVICE_HAS_FINDING.type)
    assert has["_fromEntityKey"] == IPHONE
    uses = {(r["_fromEntityKey"], r["status"]) for r in _by_type(out, DEVICE_USES_CONFIGURATION.type)}
    assert uses == {(IPHONE, "error"), (MAC, "notApplicable")}
    config = next(e for e in out.entities if e["_key"] == IOS_CONFIG)
    assert config["payloadName"] == "Test fake profile"
    assert "payload" not in config and len(config["payloadSha256"]) == 64
    assert '"MTk3"' not in json.dumps(out.entities)
    windows = next(e for e in out.entities if e["_key"] == "c271a86c-a62a-4655-ac1e-a28f67fd3e18")
    assert windows["diagnosticsDataSubmissionMode"] == "userDefined"
    assert windows["odataType"] == "windows10GeneralConfiguration"
