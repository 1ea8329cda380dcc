"""Intune converters: one per collection of the contract table in ``docs/architecture.md``.

Each takes one top-level Graph object with its sub-resources embedded (the ``$expand`` shape)
and returns every entity and relationship that object yields (#6-#29 of the data model).

Rules this module implements (the places where Graph leaves a choice):

- **Device ids in statuses**: ``deviceId`` when the status has it (intent states, app install
  statuses), else ``managedDevice.id`` (script run states), else the last ``_`` segment of the
  status ``id`` (``{guid}_{policyId}_{managedDeviceId}``). App install status ids without
  ``deviceId`` are ``{appId}{deviceId}``: the part after the app id is taken.
- **Findings** (``device_statuses``, key = status id) only for problem states: ``nonCompliant``,
  ``error``, ``conflict``; compliance script ``detectionState`` ``fail``/``scriptError``/``error``.
  Each finding gets #9 from its device and the IDENTIFIED edge from its producer when the seed has
  one (configurations have none). Findings of a compliance policy get #20 from every action item
  of that policy.
- **ASSIGNED/USES from statuses** (#10, #11, #12, #13): every status naming a device, whatever
  its state; the state rides on the relationship.
- **#14 user ASSIGNED policy**: from ``userStatuses``; the user key is the status's ``userId``
  when present, else ``user_ids_by_upn[userPrincipalName]`` (looked up as given, then
  lower-cased). Statuses whose user cannot be resolved make no edge (no dangling keys).
- **#15/#16/#17**: assignments whose target is ``#microsoft.graph.groupAssignmentTarget`` (the
  exclusion target has its own type and is skipped) and ``groupAssignments[].targetGroupId``.
- **#29 app HAS endpoint setting**: an intent setting whose ``valueJson`` (or string ``value``)
  contains a known mobileApp id (case-insensitive substring; Graph app ids are GUIDs, so a
  substring hit is the id itself).
- ``jailBroken`` keeps Graph's string (``"True"``/``"False"``/``"Unknown"``): a boolean would
  lose "Unknown".
- Script bodies are replaced by ``sha256`` (``remediationSha256`` for remediation scripts);
  opaque configuration payloads (``payload``, ``payloadJson``, ``encodedSettingXml``) likewise get
  a ``...Sha256`` and never their content: they routinely carry Wi-Fi keys and certificates.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.model.convert.common import (
    SCRIPT_CONTENT_FIELDS,
    ConvertContext,
    Derived,
    Entity,
    content_sha256,
    embedded,
    graph_properties,
    make_entity,
    make_relationship,
    odata_type_name,
    str_or_none,
    to_epoch_ms,
)
from syncd.model.schema import (
    ACTION_ITEM_MITIGATES_FINDING,
    APP_CATEGORY_HAS_APPLICATION,
    APP_CONFIGURATION_IDENTIFIED_FINDING,
    APPLICATION_ASSIGNED_POLICY,
    APPLICATION_CATEGORY,
    APPLICATION_CONFIGURATION,
    APPLICATION_HAS_ENDPOINT_SETTING,
    APPLICATION_POLICY,
    APPLICATION_USES_CONFIGURATION,
    CATEGORY_HAS_DEVICE,
    COMPLIANCE_ACTION_ITEM,
    COMPLIANCE_POLICY,
    COMPLIANCE_SCRIPT,
    COMPLIANCE_SCRIPT_IDENTIFIED_FINDING,
    COMPLIANCE_SCRIPT_MONITORS_DEVICE,
    DETECTED_APPLICATION,
    DEVICE_ASSIGNED_APPLICATION,
    DEVICE_ASSIGNED_COMPLIANCE_POLICY,
    DEVICE_ASSIGNED_ENDPOINT_SETTING,
    DEVICE_CATEGORY,
    DEVICE_CONFIGURATION,
    DEVICE_HAS_DETECTED_APP,
    DEVICE_HAS_FINDING,
    DEVICE_USES_CONFIGURATION,
    ENDPOINT_SECURITY_SETTING,
    ENDPOINT_SETTING_IDENTIFIED_FINDING,
    GROUP_ASSIGNED_COMPLIANCE_POLICY,
    GROUP_ASSIGNED_CONFIGURATION,
    GROUP_ASSIGNED_MANAGEMENT_SCRIPT,
    MANAGED_APPLICATION,
    MANAGED_DEVICE,
    MANAGEMENT_SCRIPT,
    MANAGEMENT_SCRIPT_MANAGES_DEVICE,
    NONCOMPLIANCE_FINDING,
    POLICY_HAS_ACTION_ITEM,
    POLICY_IDENTIFIED_FINDING,
    USER_ASSIGNED_COMPLIANCE_POLICY,
    USER_OWNS_DEVICE,
    EntityType,
    RelationshipType,
)

# --- collection names (the contract table's "origin name") -----------------------------------
MANAGED_DEVICES = "managedDevices"
DEVICE_CATEGORIES = "deviceCategories"
DEVICE_COMPLIANCE_POLICIES = "deviceCompliancePolicies"
DEVICE_CONFIGURATIONS = "deviceConfigurations"
DEVICE_COMPLIANCE_SCRIPTS = "deviceComplianceScripts"
DEVICE_MANAGEMENT_SCRIPTS = "deviceManagementScripts"
INTENTS = "intents"
MOBILE_APPS = "mobileApps"
MOBILE_APP_CATEGORIES = "mobileAppCategories"
MANAGED_APP_POLICIES = "managedAppPolicies"
MOBILE_APP_CONFIGURATIONS = "mobileAppConfigurations"

PROBLEM_STATES: frozenset[str] = frozenset({"nonCompliant", "error", "conflict"})
SCRIPT_PROBLEM_STATES: frozenset[str] = frozenset({"fail", "scriptError", "error"})
GROUP_ASSIGNMENT_TARGET = "#microsoft.graph.groupAssignmentTarget"
FINDING_CATEGORY = "Endpoint Compliance"

_NULL_GUID = "00000000-0000-0000-0000-000000000000"
_HASHED_FIELDS: dict[str, str] = {
    "payload": "payloadSha256",
    "payloadJson": "payloadJsonSha256",
    "encodedSettingXml": "encodedSettingXmlSha256",
}
_SECRET_FIELDS: frozenset[str] = frozenset(
    {
        "preSharedKey",
        "password",
        "passphrase",
        "sharedSecret",
        "certificatePassword",
        "activationLockBypassCode",
    }
)
_HARDWARE_FIELDS: tuple[str, ...] = (
    "serialNumber",
    "manufacturer",
    "model",
    "imei",
    "meid",
    "wifiMac",
    "ipAddressV4",
    "subnetAddress",
    "operatingSystemEdition",
    "operatingSystemLanguage",
    "osBuildNumber",
    "tpmSpecificationVersion",
    "isEncrypted",
    "isSupervised",
    "isSharedDevice",
    "totalStorageSpace",
    "freeStorageSpace",
    "batteryHealthPercentage",
    "deviceFullQualifiedDomainName",
    "deviceGuardVirtualizationBasedSecurityState",
    "deviceGuardLocalSystemAuthorityCredentialGuardState",
)
_EMPTY: Mapping[str, str] = {}
_NO_IDENTIFIERS: Mapping[str, Sequence[str]] = {}
APP_IDENTIFIER_FIELDS: tuple[str, ...] = ("bundleId", "packageId", "appIdentifier")
"""mobileApp properties that name the app the way a managed app policy's `mobileAppIdentifier`
does (iOS bundle id, Android package id)."""
_APP_IDENTIFIER_KEYS: tuple[str, ...] = ("bundleId", "packageId", "windowsAppId")
DETECTED_APP_FIELDS: tuple[str, ...] = ("displayName", "version", "publisher", "platform")
"""The detected-app properties both sources give (per-device `detectedApps` and the
`AppInvRawData` export): the entity is the same whichever one was read."""


@dataclass(frozen=True)
class IntuneLookups:
    """Cross-collection facts some converters need (built by the Intune source from the mirror)."""

    category_ids_by_name: Mapping[str, str] = field(default_factory=dict)
    user_ids_by_upn: Mapping[str, str] = field(default_factory=dict)
    known_app_ids: Collection[str] = ()
    app_ids_by_identifier: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Lower-cased bundle id / package id -> the mobileApp ids that carry it (#27)."""
    detected_apps: dict[tuple[Any, ...], Entity] = field(default_factory=dict, compare=False)
    """Detected-app entities already made in this round: 20k devices share a few hundred apps."""


# --- helpers ----------------------------------------------------------------------------------
def _config_properties(raw: Mapping[str, Any], exclude: Collection[str]) -> dict[str, Any]:
    """Object properties with opaque payloads hashed and known secret fields dropped."""
    props = graph_properties(
        raw, exclude=(*exclude, *_HASHED_FIELDS, *_SECRET_FIELDS, *SCRIPT_CONTENT_FIELDS)
    )
    for graph_name, hash_name in _HASHED_FIELDS.items():
        value = raw.get(graph_name)
        if isinstance(value, str) and value:
            props[hash_name] = content_sha256(value)
    odata = odata_type_name(raw.get("@odata.type"))
    if odata:
        props["odataType"] = odata
    props["id"] = str(raw["id"])
    return props


def status_device_id(status: Mapping[str, Any], *, id_prefix: str | None = None) -> str | None:
    """The managed device a status record names (see the module docstring for the rule)."""
    device_id = str_or_none(status.get("deviceId"))
    if device_id:
        return device_id
    managed = status.get("managedDevice")
    if isinstance(managed, Mapping) and str_or_none(managed.get("id")):
        return str(managed["id"])
    status_id = str_or_none(status.get("id"))
    if status_id is None:
        return None
    if id_prefix and status_id.startswith(id_prefix) and len(status_id) > len(id_prefix):
        return status_id[len(id_prefix) :]
    if "_" in status_id:
        return status_id.rsplit("_", 1)[1] or None
    return None


def _group_targets(raw: Mapping[str, Any]) -> Iterator[str]:
    """Group ids of include-assignments and ``groupAssignments`` of an object."""
    for assignment in embedded(raw, "assignments"):
        target = assignment.get("target")
        if isinstance(target, Mapping) and target.get("@odata.type") == GROUP_ASSIGNMENT_TARGET:
            group_id = str_or_none(target.get("groupId"))
            if group_id:
                yield group_id
    for assignment in embedded(raw, "groupAssignments"):
        group_id = str_or_none(assignment.get("targetGroupId"))
        if group_id:
            yield group_id


def _add_group_assignments(out: Derived, raw: Mapping[str, Any], edge: RelationshipType) -> None:
    """#15/#16/#17: the object's group assignments (see `_group_targets`)."""
    for group_id in _group_targets(raw):
        out.add_relationship(make_relationship(edge, group_id, str(raw["id"])))


def _finding(
    status: Mapping[str, Any],
    ctx: ConvertContext,
    *,
    state: str,
    producer: Entity,
    producer_type: EntityType,
    device_id: str | None,
) -> Entity:
    """A ``device_statuses`` entity from one problem status record."""
    status_id = str(status["id"])
    props = graph_properties(status, exclude=("managedDevice",))
    device_name = str_or_none(status.get("deviceDisplayName")) or device_id or "unknown device"
    props.update(
        {
            "id": status_id,
            "state": state,
            "open": True,
            "category": FINDING_CATEGORY,
            "deviceId": device_id,
            "sourceType": producer_type.type,
            "sourceId": producer["_key"],
            "sourceName": producer.get("displayName"),
            "displayName": f"{producer.get('displayName')}: {state} on {device_name}",
        }
    )
    return make_entity(NONCOMPLIANCE_FINDING, status_id, props, ctx)


@dataclass(frozen=True)
class DeviceStates:
    """How an object's per-device state records become relationships and findings (the module
    docstring's rules): an edge between the device and the object from every record naming a
    device, with the state on it; for a problem state a finding, #9 from the device, and the
    object's IDENTIFIED edge when the seed has one."""

    producer: EntityType
    records: str
    """The embedded sub-resource (``deviceStatuses``, ``deviceRunStates``, ``deviceStates``)."""
    state: str
    """The record's state property; the edge carries it under the same name."""
    edge: RelationshipType | None
    """Device ↔ object (either direction, as the seed has it); None: no such edge."""
    problems: frozenset[str] = PROBLEM_STATES
    identified: RelationshipType | None = None


def _add_device_states(
    out: Derived,
    raw: Mapping[str, Any],
    ctx: ConvertContext,
    producer: Entity,
    rule: DeviceStates,
    *,
    mitigated_by: Sequence[str] = (),
) -> None:
    """Apply ``rule`` to the records of ``raw``; each finding also gets #20 from every action
    item key in ``mitigated_by`` (a compliance policy's)."""
    producer_id = str(raw["id"])
    for record in embedded(raw, rule.records):
        device_id = status_device_id(record)
        state = str_or_none(record.get(rule.state)) or "unknown"
        if device_id and rule.edge is not None:
            from_device = rule.edge.from_type == MANAGED_DEVICE
            ends = (device_id, producer_id) if from_device else (producer_id, device_id)
            out.add_relationship(make_relationship(rule.edge, *ends, {rule.state: state}))
        if state not in rule.problems or not str_or_none(record.get("id")):
            continue
        finding = _finding(
            record, ctx, state=state, producer=producer, producer_type=rule.producer, device_id=device_id
        )
        out.add_entity(finding)
        if device_id:
            out.add_relationship(make_relationship(DEVICE_HAS_FINDING, device_id, finding["_key"]))
        if rule.identified is not None:
            out.add_relationship(make_relationship(rule.identified, producer_id, finding["_key"]))
        for action_key in mitigated_by:
            mitigates = make_relationship(ACTION_ITEM_MITIGATES_FINDING, action_key, finding["_key"])
            out.add_relationship(mitigates)


# Which per-device records make which edges and findings, per collection.
COMPLIANCE_POLICY_STATES = DeviceStates(
    COMPLIANCE_POLICY,
    "deviceStatuses",
    "status",
    DEVICE_ASSIGNED_COMPLIANCE_POLICY,
    identified=POLICY_IDENTIFIED_FINDING,
)
CONFIGURATION_STATES = DeviceStates(
    DEVICE_CONFIGURATION, "deviceStatuses", "status", DEVICE_USES_CONFIGURATION
)
COMPLIANCE_SCRIPT_STATES = DeviceStates(
    COMPLIANCE_SCRIPT,
    "deviceRunStates",
    "detectionState",
    COMPLIANCE_SCRIPT_MONITORS_DEVICE,
    problems=SCRIPT_PROBLEM_STATES,
    identified=COMPLIANCE_SCRIPT_IDENTIFIED_FINDING,
)
MANAGEMENT_SCRIPT_STATES = DeviceStates(
    MANAGEMENT_SCRIPT, "deviceRunStates", "runState", MANAGEMENT_SCRIPT_MANAGES_DEVICE, problems=frozenset()
)
INTENT_STATES = DeviceStates(
    ENDPOINT_SECURITY_SETTING,
    "deviceStates",
    "state",
    DEVICE_ASSIGNED_ENDPOINT_SETTING,
    identified=ENDPOINT_SETTING_IDENTIFIED_FINDING,
)
APP_CONFIGURATION_STATES = DeviceStates(
    APPLICATION_CONFIGURATION,
    "deviceStatuses",
    "status",
    None,
    identified=APP_CONFIGURATION_IDENTIFIED_FINDING,
)


def _simple(
    etype: EntityType, raw: Mapping[str, Any], ctx: ConvertContext, exclude: Collection[str] = ()
) -> Entity:
    return make_entity(etype, str(raw["id"]), _config_properties(raw, exclude), ctx)


def _lookup_user(status: Mapping[str, Any], user_ids_by_upn: Mapping[str, str]) -> str | None:
    user_id = str_or_none(status.get("userId"))
    if user_id:
        return user_id
    upn = str_or_none(status.get("userPrincipalName"))
    if upn is None:
        return None
    return user_ids_by_upn.get(upn) or user_ids_by_upn.get(upn.lower())


# --- managed devices --------------------------------------------------------------------------
def convert_managed_device(
    raw: Mapping[str, Any],
    ctx: ConvertContext,
    category_ids_by_name: Mapping[str, str] = _EMPTY,
    detected_apps: dict[tuple[Any, ...], Entity] | None = None,
) -> Derived:
    """A managed device (beta shape) with #6 owner, #7 category and #8 detected apps."""
    device_id = str(raw["id"])
    props = _config_properties(
        raw,
        exclude=(
            "detectedApps",
            "hardwareInformation",
            "deviceActionResults",
            "usersLoggedOn",
            "deviceCategory",
        ),
    )
    hardware = raw.get("hardwareInformation")
    if isinstance(hardware, Mapping):
        for name in _HARDWARE_FIELDS:
            if name in hardware:
                props[f"hardwareInformation.{name}"] = hardware[name]
    logged_on = [str(u["userId"]) for u in embedded(raw, "usersLoggedOn") if str_or_none(u.get("userId"))]
    compliance = str_or_none(raw.get("complianceState"))
    name = str_or_none(raw.get("deviceName")) or device_id
    props.update(
        {
            "displayName": name,
            "name": name,
            "hostname": str_or_none(raw.get("deviceName")),
            "category": "endpoint",
            "make": str_or_none(raw.get("manufacturer")),
            "serial": str_or_none(raw.get("serialNumber")),
            "osName": str_or_none(raw.get("operatingSystem")),
            "encrypted": raw.get("isEncrypted"),
            "compliant": None
            if compliance in (None, "unknown", "configManager")
            else compliance == "compliant",
            "usersLoggedOnIds": logged_on,
            "managementCertificateExpirationOn": to_epoch_ms(raw.get("managementCertificateExpirationDate")),
        }
    )
    out = Derived()
    out.add_entity(make_entity(MANAGED_DEVICE, device_id, props, ctx))
    user_id = str_or_none(raw.get("userId"))
    if user_id and user_id != _NULL_GUID:
        out.add_relationship(make_relationship(USER_OWNS_DEVICE, user_id, device_id))
    category_id: str | None = None
    category = raw.get("deviceCategory")
    if isinstance(category, Mapping):
        category_id = str_or_none(category.get("id"))
    if category_id is None:
        category_name = str_or_none(raw.get("deviceCategoryDisplayName"))
        category_id = category_ids_by_name.get(category_name) if category_name else None
    if category_id:
        out.add_relationship(make_relationship(CATEGORY_HAS_DEVICE, category_id, device_id))
    for app in embedded(raw, "detectedApps"):
        app_id = str_or_none(app.get("id"))
        if app_id is None:
            continue
        out.add_entity(_detected_app(app, ctx, detected_apps))
        out.add_relationship(make_relationship(DEVICE_HAS_DETECTED_APP, device_id, app_id))
    return out


def _detected_app(
    app: Mapping[str, Any], ctx: ConvertContext, cache: dict[tuple[Any, ...], Entity] | None
) -> Entity:
    if cache is None:
        return convert_detected_app(app, ctx)
    key = (app.get("id"), *(app.get(name) for name in DETECTED_APP_FIELDS))
    entity = cache.get(key)
    if entity is None:
        entity = cache[key] = convert_detected_app(app, ctx)
    return dict(entity)


def convert_detected_app(app: Mapping[str, Any], ctx: ConvertContext) -> Entity:
    """A ``detected_applications`` entity from the properties both sources share.

    ``platform`` is lower-cased: the per-device listing gives the enum (``windows``, ``macOS``),
    the inventory export its label (``Windows``, ``macOS``). ``sizeInByte`` and ``deviceCount``
    are left out: the export has neither, and a per-device listing's ``deviceCount`` is 0.
    """
    props: dict[str, Any] = {"id": str(app["id"])}
    for name in DETECTED_APP_FIELDS:
        value = str_or_none(app.get(name))
        props[name] = value.lower() if value is not None and name == "platform" else value
    return make_entity(DETECTED_APPLICATION, str(app["id"]), props, ctx)


def convert_device_category(raw: Mapping[str, Any], ctx: ConvertContext) -> Derived:
    """A ``device_category`` entity (its #7 edges come from the devices)."""
    return Derived(entities=[_simple(DEVICE_CATEGORY, raw, ctx)])


# --- compliance policies ----------------------------------------------------------------------
def convert_compliance_policy(
    raw: Mapping[str, Any], ctx: ConvertContext, user_ids_by_upn: Mapping[str, str] = _EMPTY
) -> Derived:
    """A compliance policy with action items (#18), assignments (#15), device statuses (#11, and
    for problems a finding with #9/#19/#20) and user statuses (#14)."""
    policy_id = str(raw["id"])
    policy = _simple(
        COMPLIANCE_POLICY,
        raw,
        ctx,
        exclude=(
            "assignments",
            "deviceStatuses",
            "userStatuses",
            "scheduledActionsForRule",
            "deviceStatusOverview",
            "userStatusOverview",
            "deviceSettingStateSummaries",
        ),
    )
    out = Derived(entities=[policy])
    action_keys: list[str] = []
    for rule in embedded(raw, "scheduledActionsForRule"):
        for config in embedded(rule, "scheduledActionConfigurations"):
            config_id = str_or_none(config.get("id"))
            if config_id is None:
                continue
            props = _config_properties(config, exclude=())
            action = str_or_none(config.get("actionType")) or "action"
            props.update(
                {
                    "ruleId": str_or_none(rule.get("id")),
                    "ruleName": str_or_none(rule.get("ruleName")),
                    "policyId": policy_id,
                    "displayName": f"{policy['displayName']}: {action}",
                }
            )
            out.add_entity(make_entity(COMPLIANCE_ACTION_ITEM, config_id, props, ctx))
            out.add_relationship(make_relationship(POLICY_HAS_ACTION_ITEM, policy_id, config_id))
            action_keys.append(config_id)
    _add_group_assignments(out, raw, GROUP_ASSIGNED_COMPLIANCE_POLICY)
    _add_device_states(out, raw, ctx, policy, COMPLIANCE_POLICY_STATES, mitigated_by=action_keys)
    for status in embedded(raw, "userStatuses"):
        user_id = _lookup_user(status, user_ids_by_upn)
        if user_id:
            state = str_or_none(status.get("status")) or "unknown"
            out.add_relationship(
                make_relationship(USER_ASSIGNED_COMPLIANCE_POLICY, user_id, policy_id, {"status": state})
            )
    return out


# --- device configurations --------------------------------------------------------------------
def convert_device_configuration(raw: Mapping[str, Any], ctx: ConvertContext) -> Derived:
    """A device configuration with #16 from group assignments and #10 from device statuses;
    problem statuses become findings linked from the device (#9); the seed has no
    configuration IDENTIFIED finding edge."""
    config = _simple(
        DEVICE_CONFIGURATION,
        raw,
        ctx,
        exclude=(
            "assignments",
            "groupAssignments",
            "deviceStatuses",
            "userStatuses",
            "deviceStatusOverview",
            "userStatusOverview",
            "deviceSettingStateSummaries",
        ),
    )
    out = Derived(entities=[config])
    _add_group_assignments(out, raw, GROUP_ASSIGNED_CONFIGURATION)
    _add_device_states(out, raw, ctx, config, CONFIGURATION_STATES)
    return out


# --- scripts ----------------------------------------------------------------------------------
def _script_entity(etype: EntityType, raw: Mapping[str, Any], ctx: ConvertContext, main_field: str) -> Entity:
    props = _config_properties(
        raw, exclude=("assignments", "groupAssignments", "deviceRunStates", "userRunStates", "runSummary")
    )
    main = raw.get(main_field)
    props["sha256"] = content_sha256(main) if isinstance(main, str) and main else None
    remediation = raw.get("remediationScriptContent")
    if isinstance(remediation, str) and remediation:
        props["remediationSha256"] = content_sha256(remediation)
    return make_entity(etype, str(raw["id"]), props, ctx)


def convert_compliance_script(raw: Mapping[str, Any], ctx: ConvertContext) -> Derived:
    """A compliance script (content hashed) with #21 per run state and, for failed detections,
    a finding with #22 and #9."""
    script = _script_entity(COMPLIANCE_SCRIPT, raw, ctx, "detectionScriptContent")
    out = Derived(entities=[script])
    _add_device_states(out, raw, ctx, script, COMPLIANCE_SCRIPT_STATES)
    return out


def convert_management_script(raw: Mapping[str, Any], ctx: ConvertContext) -> Derived:
    """A management script (content hashed) with #17 from group assignments and #23 per run state."""
    script = _script_entity(MANAGEMENT_SCRIPT, raw, ctx, "scriptContent")
    out = Derived(entities=[script])
    _add_group_assignments(out, raw, GROUP_ASSIGNED_MANAGEMENT_SCRIPT)
    _add_device_states(out, raw, ctx, script, MANAGEMENT_SCRIPT_STATES)
    return out


# --- endpoint security (intents) --------------------------------------------------------------
def referenced_app_ids(settings: list[Mapping[str, Any]], known_app_ids: Collection[str]) -> list[str]:
    """Known mobileApp ids mentioned by intent settings (the #29 rule), in ``known_app_ids`` order."""
    texts = []
    for setting in settings:
        for name in ("valueJson", "value"):
            value = setting.get(name)
            if isinstance(value, str) and value:
                texts.append(value.lower())
    if not texts:
        return []
    blob = "\n".join(texts)
    return [app_id for app_id in known_app_ids if app_id and app_id.lower() in blob]


def convert_intent(
    raw: Mapping[str, Any], ctx: ConvertContext, known_app_ids: Collection[str] = ()
) -> Derived:
    """An endpoint security intent with #12 per device state, findings (#24, #9) for problem
    states and #29 from settings referencing apps. Setting values are not copied (they may hold
    secrets); only their count is."""
    intent_id = str(raw["id"])
    props = _config_properties(
        raw,
        exclude=(
            "assignments",
            "deviceStates",
            "settings",
            "userStates",
            "categories",
            "deviceSettingStateSummaries",
            "deviceStateSummary",
            "userStateSummary",
        ),
    )
    settings = embedded(raw, "settings")
    props["settingsCount"] = len(settings)
    intent = make_entity(ENDPOINT_SECURITY_SETTING, intent_id, props, ctx)
    out = Derived(entities=[intent])
    _add_device_states(out, raw, ctx, intent, INTENT_STATES)
    for app_id in referenced_app_ids(settings, known_app_ids):
        out.add_relationship(make_relationship(APPLICATION_HAS_ENDPOINT_SETTING, app_id, intent_id))
    return out


# --- applications -----------------------------------------------------------------------------
def convert_mobile_app(raw: Mapping[str, Any], ctx: ConvertContext) -> Derived:
    """A managed application with #26 from its categories and #13 from install statuses."""
    app_id = str(raw["id"])
    app = _simple(
        MANAGED_APPLICATION,
        raw,
        ctx,
        exclude=(
            "categories",
            "assignments",
            "deviceStatuses",
            "userStatuses",
            "installSummary",
            "largeIcon",
            "contentVersions",
            "relationships",
            "assignmentsCount",
        ),
    )
    out = Derived(entities=[app])
    for category in embedded(raw, "categories"):
        category_id = str_or_none(category.get("id"))
        if category_id:
            out.add_relationship(make_relationship(APP_CATEGORY_HAS_APPLICATION, category_id, app_id))
    for status in embedded(raw, "deviceStatuses"):
        device_id = status_device_id(status, id_prefix=app_id)
        if device_id:
            out.add_relationship(
                make_relationship(
                    DEVICE_ASSIGNED_APPLICATION,
                    device_id,
                    app_id,
                    {
                        "installState": str_or_none(status.get("installState")),
                        "installStateDetail": str_or_none(status.get("installStateDetail")),
                        "errorCode": status.get("errorCode"),
                    },
                )
            )
    return out


def convert_mobile_app_category(raw: Mapping[str, Any], ctx: ConvertContext) -> Derived:
    """An ``application_category`` entity (its #26 edges come from the apps)."""
    return Derived(entities=[_simple(APPLICATION_CATEGORY, raw, ctx)])


def targeted_app_ids(
    app: Mapping[str, Any],
    app_ids_by_identifier: Mapping[str, Sequence[str]],
    known_app_ids: Collection[str] = (),
) -> list[str]:
    """The mobileApp ids a policy's ``managedMobileApp`` names.

    Its ``mobileAppIdentifier`` (iOS ``bundleId``, Android ``packageId``, Windows
    ``windowsAppId``) is matched (case-insensitively) against the mobileApps' own identifiers;
    every app with that identifier is targeted. A ``managedMobileApp`` id that is itself a known
    mobileApp id is accepted too (lenient; Graph's ids are of another form).
    """
    ident = app.get("mobileAppIdentifier")
    found: list[str] = []
    if isinstance(ident, Mapping):
        for key in _APP_IDENTIFIER_KEYS:
            value = str_or_none(ident.get(key))
            if value:
                found.extend(a for a in app_ids_by_identifier.get(value.lower(), ()) if a not in found)
    app_id = str_or_none(app.get("id"))
    if not found and app_id and app_id in known_app_ids:
        found.append(app_id)
    return found


def convert_managed_app_policy(
    raw: Mapping[str, Any],
    ctx: ConvertContext,
    app_ids_by_identifier: Mapping[str, Sequence[str]] = _NO_IDENTIFIERS,
    known_app_ids: Collection[str] = (),
) -> Derived:
    """An application policy with #27 from every app it targets (its typed collection's ``apps``,
    matched to mobileApps by identifier: see ``targeted_app_ids``)."""
    policy_id = str(raw["id"])
    policy = _simple(APPLICATION_POLICY, raw, ctx, exclude=("apps", "assignments", "deploymentSummary"))
    out = Derived(entities=[policy])
    for app in embedded(raw, "apps"):
        for app_id in targeted_app_ids(app, app_ids_by_identifier, known_app_ids):
            out.add_relationship(make_relationship(APPLICATION_ASSIGNED_POLICY, app_id, policy_id))
    return out


def convert_app_configuration(raw: Mapping[str, Any], ctx: ConvertContext) -> Derived:
    """An application configuration with #28 from ``targetedMobileApps`` and findings (#25, #9)
    from problem device statuses."""
    config_id = str(raw["id"])
    config = _simple(
        APPLICATION_CONFIGURATION,
        raw,
        ctx,
        exclude=(
            "deviceStatuses",
            "userStatuses",
            "assignments",
            "settings",
            "deviceStatusSummary",
            "userStatusSummary",
        ),
    )
    out = Derived(entities=[config])
    for app_id in raw.get("targetedMobileApps") or []:
        if isinstance(app_id, str) and app_id:
            out.add_relationship(make_relationship(APPLICATION_USES_CONFIGURATION, app_id, config_id))
    _add_device_states(out, raw, ctx, config, APP_CONFIGURATION_STATES)
    return out


# --- dispatch ---------------------------------------------------------------------------------
_Converter = Callable[[Mapping[str, Any], ConvertContext, IntuneLookups], Derived]

CONVERTERS: dict[str, _Converter] = {
    MANAGED_DEVICES: lambda raw, ctx, lk: convert_managed_device(
        raw, ctx, lk.category_ids_by_name, lk.detected_apps
    ),
    DEVICE_CATEGORIES: lambda raw, ctx, lk: convert_device_category(raw, ctx),
    DEVICE_COMPLIANCE_POLICIES: lambda raw, ctx, lk: convert_compliance_policy(raw, ctx, lk.user_ids_by_upn),
    DEVICE_CONFIGURATIONS: lambda raw, ctx, lk: convert_device_configuration(raw, ctx),
    DEVICE_COMPLIANCE_SCRIPTS: lambda raw, ctx, lk: convert_compliance_script(raw, ctx),
    DEVICE_MANAGEMENT_SCRIPTS: lambda raw, ctx, lk: convert_management_script(raw, ctx),
    INTENTS: lambda raw, ctx, lk: convert_intent(raw, ctx, lk.known_app_ids),
    MOBILE_APPS: lambda raw, ctx, lk: convert_mobile_app(raw, ctx),
    MOBILE_APP_CATEGORIES: lambda raw, ctx, lk: convert_mobile_app_category(raw, ctx),
    MANAGED_APP_POLICIES: lambda raw, ctx, lk: convert_managed_app_policy(
        raw, ctx, lk.app_ids_by_identifier, lk.known_app_ids
    ),
    MOBILE_APP_CONFIGURATIONS: lambda raw, ctx, lk: convert_app_configuration(raw, ctx),
}
"""Collection origin name -> converter with a uniform signature (for the Intune source)."""


def convert_intune(
    collection: str, raw: Mapping[str, Any], ctx: ConvertContext, lookups: IntuneLookups | None = None
) -> Derived:
    """Convert one object of an Intune collection; ``KeyError`` for an unknown collection."""
    return CONVERTERS[collection](raw, ctx, lookups or IntuneLookups())
