"""The data model of the Microsoft 365 integration, declared once.

Every entity ``_type``/``_class`` and every relationship of the seed
(its copy: ``tests/fixtures/seed/microsoft-365-integration.md``) is a row here. Code refers to the
rows (``USER``, ``GROUP_HAS_USER`` ...) and never spells a type name itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EntityType:
    """One entity row of the seed's table."""

    resource: str
    """The seed's "Resources" column."""
    type: str
    classes: tuple[str, ...]
    source: str
    """The ``[sync] sources`` switch that produces this type (``[sync] sources``)."""

    @property
    def cls(self) -> str | list[str]:
        """``_class`` as J1 wants it: a string, or a list when there are several."""
        return self.classes[0] if len(self.classes) == 1 else list(self.classes)


@dataclass(frozen=True)
class RelationshipType:
    """One relationship row of the seed's table."""

    number: int
    """The data model's relationship number (1..29; a new relationship takes the next one)."""
    from_type: EntityType
    cls: str
    to_type: EntityType

    @property
    def type(self) -> str:
        return generate_relationship_type(self.cls, self.from_type.type, self.to_type.type)


def generate_relationship_type(cls: str, from_type: str, to_type: str) -> str:
    """J1 SDK rule: ``<from>_<class>_<to minus the leading parts it shares with from>``."""
    from_parts = from_type.split("_")
    to_parts = to_type.split("_")
    shared = 0
    while shared < len(from_parts) and shared < len(to_parts) - 1 and from_parts[shared] == to_parts[shared]:
        shared += 1
    return f"{from_type}_{cls.lower()}_{'_'.join(to_parts[shared:])}"


# --- sources (the seed's "Scopes"), switched on/off by [sync] sources -------------------------
SOURCE_ACCOUNT = "account"
SOURCE_USERS = "users"
SOURCE_GROUPS = "groups"
SOURCE_DEVICES = "devices"
SOURCE_COMPLIANCE = "compliance"
SOURCE_CONFIGURATIONS = "configurations"
SOURCE_APPLICATIONS = "applications"
SOURCE_SCRIPTS = "scripts"
SOURCE_ENDPOINT_SECURITY = "endpoint_security"

ALL_SOURCES: tuple[str, ...] = (
    SOURCE_USERS,
    SOURCE_GROUPS,
    SOURCE_DEVICES,
    SOURCE_COMPLIANCE,
    SOURCE_CONFIGURATIONS,
    SOURCE_APPLICATIONS,
    SOURCE_SCRIPTS,
    SOURCE_ENDPOINT_SECURITY,
)
"""Switchable sources. The account is always collected."""

# --- entities: the seed's table, in its order -------------------------------------------------
APPLICATION_CATEGORY = EntityType(
    "Application Category", "application_category", ("Group",), SOURCE_APPLICATIONS
)
APPLICATION_CONFIGURATION = EntityType(
    "Application Configuration", "application_configuration", ("Configuration",), SOURCE_APPLICATIONS
)
APPLICATION_POLICY = EntityType(
    "Application Policy", "application_policy", ("Configuration",), SOURCE_APPLICATIONS
)
COMPLIANCE_POLICY = EntityType(
    "Device Compliance Policy", "device_compliance_policy", ("Configuration",), SOURCE_COMPLIANCE
)
COMPLIANCE_ACTION_ITEM = EntityType(
    "Device Compliance Policy Action", "device_compliance_policy_action_item", ("Rule",), SOURCE_COMPLIANCE
)
COMPLIANCE_SCRIPT = EntityType(
    "Device Compliance Script", "device_compliance_script", ("Assessment",), SOURCE_SCRIPTS
)
DEVICE_CONFIGURATION = EntityType(
    "Device Configuration", "device_configuration", ("Configuration",), SOURCE_CONFIGURATIONS
)
DETECTED_APPLICATION = EntityType(
    "Device Detected Application", "detected_applications", ("Application",), SOURCE_APPLICATIONS
)
MANAGEMENT_SCRIPT = EntityType(
    "Device Management Script", "device_management_script", ("Service",), SOURCE_SCRIPTS
)
ENDPOINT_SECURITY_SETTING = EntityType(
    "Endpoint Security Setting", "endpoint_security_setting", ("Configuration",), SOURCE_ENDPOINT_SECURITY
)
MANAGED_APPLICATION = EntityType(
    "Managed Application", "managed_application", ("Application",), SOURCE_APPLICATIONS
)
MANAGED_DEVICE = EntityType("Managed Device", "managed_device", ("Host", "Device"), SOURCE_DEVICES)
DEVICE_CATEGORY = EntityType("Managed Device Categories", "device_category", ("Group",), SOURCE_DEVICES)
NONCOMPLIANCE_FINDING = EntityType(
    "Noncompliance Finding", "device_statuses", ("Finding",), SOURCE_COMPLIANCE
)
ACCOUNT = EntityType("[AD] Account", "microsoft_365_account", ("Account",), SOURCE_ACCOUNT)
GROUP = EntityType("[AD] Group", "microsoft_365_user_group", ("UserGroup",), SOURCE_GROUPS)
GROUP_MEMBER = EntityType("[AD] Group Member", "microsoft_365_group_member", ("User",), SOURCE_GROUPS)
USER = EntityType("[AD] User", "microsoft_365_user", ("User",), SOURCE_USERS)

ENTITY_TYPES: tuple[EntityType, ...] = (
    APPLICATION_CATEGORY,
    APPLICATION_CONFIGURATION,
    APPLICATION_POLICY,
    COMPLIANCE_POLICY,
    COMPLIANCE_ACTION_ITEM,
    COMPLIANCE_SCRIPT,
    DEVICE_CONFIGURATION,
    DETECTED_APPLICATION,
    MANAGEMENT_SCRIPT,
    ENDPOINT_SECURITY_SETTING,
    MANAGED_APPLICATION,
    MANAGED_DEVICE,
    DEVICE_CATEGORY,
    NONCOMPLIANCE_FINDING,
    ACCOUNT,
    GROUP,
    GROUP_MEMBER,
    USER,
)

# --- relationships: numbered as in the integration's data model --------------------------------
HAS, OWNS, ASSIGNED, USES, IDENTIFIED, MITIGATES, MONITORS, MANAGES = (
    "HAS",
    "OWNS",
    "ASSIGNED",
    "USES",
    "IDENTIFIED",
    "MITIGATES",
    "MONITORS",
    "MANAGES",
)

ACCOUNT_HAS_USER = RelationshipType(1, ACCOUNT, HAS, USER)
ACCOUNT_HAS_GROUP = RelationshipType(2, ACCOUNT, HAS, GROUP)
GROUP_HAS_USER = RelationshipType(3, GROUP, HAS, USER)
GROUP_HAS_GROUP = RelationshipType(4, GROUP, HAS, GROUP)
GROUP_HAS_MEMBER = RelationshipType(5, GROUP, HAS, GROUP_MEMBER)
USER_OWNS_DEVICE = RelationshipType(6, USER, OWNS, MANAGED_DEVICE)
CATEGORY_HAS_DEVICE = RelationshipType(7, DEVICE_CATEGORY, HAS, MANAGED_DEVICE)
DEVICE_HAS_DETECTED_APP = RelationshipType(8, MANAGED_DEVICE, HAS, DETECTED_APPLICATION)
DEVICE_HAS_FINDING = RelationshipType(9, MANAGED_DEVICE, HAS, NONCOMPLIANCE_FINDING)
DEVICE_USES_CONFIGURATION = RelationshipType(10, MANAGED_DEVICE, USES, DEVICE_CONFIGURATION)
DEVICE_ASSIGNED_COMPLIANCE_POLICY = RelationshipType(11, MANAGED_DEVICE, ASSIGNED, COMPLIANCE_POLICY)
DEVICE_ASSIGNED_ENDPOINT_SETTING = RelationshipType(12, MANAGED_DEVICE, ASSIGNED, ENDPOINT_SECURITY_SETTING)
DEVICE_ASSIGNED_APPLICATION = RelationshipType(13, MANAGED_DEVICE, ASSIGNED, MANAGED_APPLICATION)
USER_ASSIGNED_COMPLIANCE_POLICY = RelationshipType(14, USER, ASSIGNED, COMPLIANCE_POLICY)
GROUP_ASSIGNED_COMPLIANCE_POLICY = RelationshipType(15, GROUP, ASSIGNED, COMPLIANCE_POLICY)
GROUP_ASSIGNED_CONFIGURATION = RelationshipType(16, GROUP, ASSIGNED, DEVICE_CONFIGURATION)
GROUP_ASSIGNED_MANAGEMENT_SCRIPT = RelationshipType(17, GROUP, ASSIGNED, MANAGEMENT_SCRIPT)
POLICY_HAS_ACTION_ITEM = RelationshipType(18, COMPLIANCE_POLICY, HAS, COMPLIANCE_ACTION_ITEM)
POLICY_IDENTIFIED_FINDING = RelationshipType(19, COMPLIANCE_POLICY, IDENTIFIED, NONCOMPLIANCE_FINDING)
ACTION_ITEM_MITIGATES_FINDING = RelationshipType(20, COMPLIANCE_ACTION_ITEM, MITIGATES, NONCOMPLIANCE_FINDING)
COMPLIANCE_SCRIPT_MONITORS_DEVICE = RelationshipType(21, COMPLIANCE_SCRIPT, MONITORS, MANAGED_DEVICE)
COMPLIANCE_SCRIPT_IDENTIFIED_FINDING = RelationshipType(
    22, COMPLIANCE_SCRIPT, IDENTIFIED, NONCOMPLIANCE_FINDING
)
MANAGEMENT_SCRIPT_MANAGES_DEVICE = RelationshipType(23, MANAGEMENT_SCRIPT, MANAGES, MANAGED_DEVICE)
ENDPOINT_SETTING_IDENTIFIED_FINDING = RelationshipType(
    24, ENDPOINT_SECURITY_SETTING, IDENTIFIED, NONCOMPLIANCE_FINDING
)
APP_CONFIGURATION_IDENTIFIED_FINDING = RelationshipType(
    25, APPLICATION_CONFIGURATION, IDENTIFIED, NONCOMPLIANCE_FINDING
)
APP_CATEGORY_HAS_APPLICATION = RelationshipType(26, APPLICATION_CATEGORY, HAS, MANAGED_APPLICATION)
APPLICATION_ASSIGNED_POLICY = RelationshipType(27, MANAGED_APPLICATION, ASSIGNED, APPLICATION_POLICY)
APPLICATION_USES_CONFIGURATION = RelationshipType(28, MANAGED_APPLICATION, USES, APPLICATION_CONFIGURATION)
APPLICATION_HAS_ENDPOINT_SETTING = RelationshipType(29, MANAGED_APPLICATION, HAS, ENDPOINT_SECURITY_SETTING)

RELATIONSHIP_TYPES: tuple[RelationshipType, ...] = (
    ACCOUNT_HAS_USER,
    ACCOUNT_HAS_GROUP,
    GROUP_HAS_USER,
    GROUP_HAS_GROUP,
    GROUP_HAS_MEMBER,
    USER_OWNS_DEVICE,
    CATEGORY_HAS_DEVICE,
    DEVICE_HAS_DETECTED_APP,
    DEVICE_HAS_FINDING,
    DEVICE_USES_CONFIGURATION,
    DEVICE_ASSIGNED_COMPLIANCE_POLICY,
    DEVICE_ASSIGNED_ENDPOINT_SETTING,
    DEVICE_ASSIGNED_APPLICATION,
    USER_ASSIGNED_COMPLIANCE_POLICY,
    GROUP_ASSIGNED_COMPLIANCE_POLICY,
    GROUP_ASSIGNED_CONFIGURATION,
    GROUP_ASSIGNED_MANAGEMENT_SCRIPT,
    POLICY_HAS_ACTION_ITEM,
    POLICY_IDENTIFIED_FINDING,
    ACTION_ITEM_MITIGATES_FINDING,
    COMPLIANCE_SCRIPT_MONITORS_DEVICE,
    COMPLIANCE_SCRIPT_IDENTIFIED_FINDING,
    MANAGEMENT_SCRIPT_MANAGES_DEVICE,
    ENDPOINT_SETTING_IDENTIFIED_FINDING,
    APP_CONFIGURATION_IDENTIFIED_FINDING,
    APP_CATEGORY_HAS_APPLICATION,
    APPLICATION_ASSIGNED_POLICY,
    APPLICATION_USES_CONFIGURATION,
    APPLICATION_HAS_ENDPOINT_SETTING,
)

ENTITY_TYPE_BY_NAME: dict[str, EntityType] = {e.type: e for e in ENTITY_TYPES}
RELATIONSHIP_TYPE_BY_NAME: dict[str, RelationshipType] = {r.type: r for r in RELATIONSHIP_TYPES}
# The Person mapping of issue 8 (users -> employees) is a mapped relationship; declared here too.
PERSON_CLASS = "Person"
USER_IS_PERSON_CLASS = "IS"


def relationship_types_touching(entity_types: set[str] | frozenset[str]) -> list[str]:
    """Relationship ``_type``s with an endpoint among ``entity_types``.

    When a source's entities are missing (its round failed on a fresh mirror, or it is off),
    relationships to them cannot be rebuilt by the sources that own them: a DIFF must treat
    those relationship types as partial too, or J1 would drop them.
    """
    return [
        r.type
        for r in RELATIONSHIP_TYPES
        if r.from_type.type in entity_types or r.to_type.type in entity_types
    ]
