"""Intune side of the Graph simulator: the data store and its deterministic generator.

Objects are kept as Graph JSON verbatim (the shapes of the recordings in
``shared/fixtures/graph-recorded``), each collection's sub-resources per object, so the HTTP
layer (``syncd.sim.intune_routes``) only has to slice, page and serialise them.
The collection table below is the contract of ``docs/architecture.md`` ("Intune collections").
"""

from __future__ import annotations

import base64
import bisect
import gc
import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from syncd.sim.admin_api import AdminError

JSON = dict[str, Any]
JSONList = list[JSON]

V1_AND_BETA: frozenset[str] = frozenset({"v1.0", "beta"})
BETA_ONLY: frozenset[str] = frozenset({"beta"})
NOT_SERVED: frozenset[str] = frozenset()
"""Stored with its parent but served by no Graph version (Graph answers 400 "Resource not found
for the segment"): ``mobileApps/{id}/deviceStatuses`` (removed in 2023; install statuses come
from the reports export) and ``managedAppPolicies/{id}/apps`` (``managedAppPolicy`` has no
relationships; ``apps`` lives on the typed collections)."""
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
NEVER = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class CollectionSpec:
    """Where a collection lives, which Graph versions serve it, and its sub-resources."""

    name: str
    root: str
    """``deviceManagement`` or ``deviceAppManagement``."""
    versions: frozenset[str]
    subs: dict[str, frozenset[str]] = field(default_factory=dict)
    """Sub-resource name -> Graph versions that serve ``/{root}/{name}/{id}/{sub}``."""
    store: str = ""
    """For a typed view (e.g. ``iosManagedAppProtections``): the stored collection it reads."""
    odata_types: frozenset[str] = frozenset()
    """For a typed view: the ``@odata.type`` values of the stored objects it shows."""

    @property
    def data(self) -> str:
        """The stored collection behind this path (itself, or the view's store)."""
        return self.store or self.name

    def shows(self, obj: JSON) -> bool:
        """Whether a stored object belongs to this (possibly typed) collection."""
        return not self.odata_types or obj.get("@odata.type") in self.odata_types


COLLECTIONS: dict[str, CollectionSpec] = {
    spec.name: spec
    for spec in (
        CollectionSpec("managedDevices", "deviceManagement", V1_AND_BETA, {"detectedApps": BETA_ONLY}),
        CollectionSpec("deviceCategories", "deviceManagement", V1_AND_BETA),
        CollectionSpec(
            "deviceCompliancePolicies",
            "deviceManagement",
            V1_AND_BETA,
            {
                "assignments": V1_AND_BETA,
                "deviceStatuses": V1_AND_BETA,
                "userStatuses": V1_AND_BETA,
                "scheduledActionsForRule": V1_AND_BETA,
            },
        ),
        CollectionSpec(
            "deviceConfigurations",
            "deviceManagement",
            V1_AND_BETA,
            {"assignments": V1_AND_BETA, "deviceStatuses": V1_AND_BETA},
        ),
        CollectionSpec(
            "deviceComplianceScripts", "deviceManagement", BETA_ONLY, {"deviceRunStates": BETA_ONLY}
        ),
        CollectionSpec(
            "deviceManagementScripts",
            "deviceManagement",
            BETA_ONLY,
            {"groupAssignments": BETA_ONLY, "assignments": BETA_ONLY, "deviceRunStates": BETA_ONLY},
        ),
        CollectionSpec(
            "intents",
            "deviceManagement",
            BETA_ONLY,
            {"assignments": BETA_ONLY, "deviceStates": BETA_ONLY, "settings": BETA_ONLY},
        ),
        CollectionSpec(
            "mobileApps",
            "deviceAppManagement",
            V1_AND_BETA,
            {"categories": V1_AND_BETA, "assignments": V1_AND_BETA, "deviceStatuses": NOT_SERVED},
        ),
        CollectionSpec("mobileAppCategories", "deviceAppManagement", V1_AND_BETA),
        CollectionSpec(
            "managedAppPolicies",
            "deviceAppManagement",
            V1_AND_BETA,
            {"apps": NOT_SERVED, "assignments": NOT_SERVED},
        ),
        CollectionSpec(
            "mobileAppConfigurations",
            "deviceAppManagement",
            V1_AND_BETA,
            {"deviceStatuses": V1_AND_BETA, "assignments": V1_AND_BETA},
        ),
    )
}

APP_PROTECTION_TYPES: dict[str, str] = {
    "iosManagedAppProtections": "#microsoft.graph.iosManagedAppProtection",
    "androidManagedAppProtections": "#microsoft.graph.androidManagedAppProtection",
    "targetedManagedAppConfigurations": "#microsoft.graph.targetedManagedAppConfiguration",
    "defaultManagedAppProtections": "#microsoft.graph.defaultManagedAppProtection",
    "windowsInformationProtectionPolicies": "#microsoft.graph.windowsInformationProtectionPolicy",
    "mdmWindowsInformationProtectionPolicies": "#microsoft.graph.mdmWindowsInformationProtectionPolicy",
}
"""Typed app-protection collections (v1.0 and beta) -> the ``@odata.type`` of their objects."""

_WIP = ("windowsInformationProtectionPolicies", "mdmWindowsInformationProtectionPolicies")

VIEWS: dict[str, CollectionSpec] = {
    name: CollectionSpec(
        name,
        "deviceAppManagement",
        V1_AND_BETA,
        {"assignments": V1_AND_BETA} if name in _WIP else {"apps": V1_AND_BETA, "assignments": V1_AND_BETA},
        store="managedAppPolicies",
        odata_types=frozenset({odata}),
    )
    for name, odata in APP_PROTECTION_TYPES.items()
}
"""Collections served over HTTP that read a stored one: the documented home of ``apps``
(``iosManagedAppProtections/{id}/apps`` ...). Windows Information Protection has no ``apps``."""

SERVED: dict[str, CollectionSpec] = {**COLLECTIONS, **VIEWS}
"""Every collection path the simulator answers (stored collections and typed views)."""

NESTED_SUBS: dict[tuple[str, str], str] = {
    ("deviceCompliancePolicies", "scheduledActionsForRule"): "scheduledActionConfigurations",
}
"""Sub-resources whose items carry their own embedded list (served via ``$expand``)."""

RUN_STATE_SUBS: frozenset[tuple[str, str]] = frozenset(
    {("deviceComplianceScripts", "deviceRunStates"), ("deviceManagementScripts", "deviceRunStates")}
)
"""Sub-resources whose items are stored with ``managedDevice: {"id"}`` (the ``$expand`` shape)."""

COMPLIANCE_TO_STATUS: dict[str, str] = {
    "compliant": "compliant",
    "noncompliant": "nonCompliant",
    "inGracePeriod": "nonCompliant",
    "error": "error",
    "conflict": "conflict",
    "unknown": "unknown",
    "configManager": "unknown",
}
"""managedDevice ``complianceState`` -> the policy ``deviceStatuses`` ``status`` it implies."""


class TenantLike(Protocol):
    """What the Intune side reads of ``syncd.sim.tenant.Tenant`` (which imports this module): its
    directory objects."""

    def list(self, resource: str) -> Iterable[JSON]: ...


class IntuneError(AdminError):
    """A bad admin request (unknown collection, id or sub-resource); ``status`` is the HTTP code."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


class IntuneData:
    """Every Intune collection of a simulated tenant, objects kept as Graph JSON.

    ``items[collection][id]`` is the object without sub-resources;
    ``subs[collection][id][sub]`` is the sub-resource list. The embedded shape the contract
    describes (object + sub-resources under their keys) is what ``embedded``/``to_json`` give.
    """

    def __init__(self, intune_account_id: str, mdm_authority: str = "intune") -> None:
        self.intune_account_id = intune_account_id
        self.mdm_authority = mdm_authority
        self.subscription_state = "active"
        self.items: dict[str, dict[str, JSON]] = {name: {} for name in COLLECTIONS}
        self.subs: dict[str, dict[str, dict[str, JSONList]]] = {name: {} for name in COLLECTIONS}

    # --- reading ---------------------------------------------------------------------------
    def list(self, collection: str) -> JSONList:
        """The objects of a collection, in insertion order (without sub-resources)."""
        return list(self._coll(collection).values())

    def get(self, collection: str, id: str) -> JSON | None:
        return self._coll(collection).get(id)

    def sub(self, collection: str, id: str, sub: str) -> JSONList:
        """A sub-resource list of one object (empty when the object has none)."""
        self._check_sub(collection, sub)
        return self.subs[collection].get(id, {}).get(sub, [])

    def embedded(self, collection: str, id: str) -> JSON:
        """The object with every sub-resource under its key: what converters receive."""
        obj = self.get(collection, id)
        if obj is None:
            raise IntuneError(404, f"{collection}/{id} not found")
        out = dict(obj)
        for name in COLLECTIONS[collection].subs:
            out[name] = list(self.sub(collection, id, name))
        return out

    def counts(self) -> dict[str, int]:
        """Object counts per collection, plus sub-resource totals (``collection/sub``)."""
        out: dict[str, int] = {}
        for name, spec in COLLECTIONS.items():
            out[name] = len(self.items[name])
            for sub in spec.subs:
                out[f"{name}/{sub}"] = sum(len(s.get(sub, [])) for s in self.subs[name].values())
        return out

    # --- mutation (admin API) ----------------------------------------------------------------
    def create(self, collection: str, obj: JSON, rng: random.Random | None = None) -> JSON:
        """Add an object given in the embedded shape; an id is made when missing."""
        spec = COLLECTIONS.get(collection)
        if spec is None:
            raise IntuneError(404, f"unknown Intune collection {collection!r}")
        props = {k: v for k, v in obj.items() if k not in spec.subs}
        oid = str(props.get("id") or _guid(rng or random.Random()))
        if oid in self.items[collection]:
            raise IntuneError(409, f"{collection}/{oid} already exists")
        props["id"] = oid
        self.items[collection][oid] = props
        subs = {name: list(obj.get(name) or []) for name in spec.subs}
        self.subs[collection][oid] = subs
        return self.embedded(collection, oid)

    def update(self, collection: str, id: str, props: JSON) -> JSON:
        """Merge properties into an object; sub-resource keys replace that sub-resource list."""
        obj = self.get(collection, id)
        if obj is None:
            raise IntuneError(404, f"{collection}/{id} not found")
        spec = COLLECTIONS[collection]
        for key, value in props.items():
            if key == "id":
                continue
            if key in spec.subs:
                self.subs[collection].setdefault(id, {})[key] = list(value or [])
            else:
                obj[key] = value
        if "lastModifiedDateTime" in obj and "lastModifiedDateTime" not in props:
            obj["lastModifiedDateTime"] = _now()
        return self.embedded(collection, id)

    def delete(self, collection: str, id: str) -> None:
        if self._coll(collection).pop(id, None) is None:
            raise IntuneError(404, f"{collection}/{id} not found")
        self.subs[collection].pop(id, None)
        if collection == "managedDevices":
            self._forget_device(id)

    def add_sub(
        self, collection: str, id: str, sub: str, item: JSON, rng: random.Random | None = None
    ) -> JSON:
        """Append one sub-resource item (id made when missing)."""
        self._check_sub(collection, sub)
        if self.get(collection, id) is None:
            raise IntuneError(404, f"{collection}/{id} not found")
        item = dict(item)
        item.setdefault("id", _guid(rng or random.Random()))
        lst = self.subs[collection].setdefault(id, {}).setdefault(sub, [])
        lst[:] = [x for x in lst if x.get("id") != item["id"]]
        lst.append(item)
        return item

    def delete_sub(self, collection: str, id: str, sub: str, item_id: str) -> None:
        self._check_sub(collection, sub)
        lst = self.subs[collection].get(id, {}).get(sub, [])
        kept = [x for x in lst if x.get("id") != item_id]
        if len(kept) == len(lst):
            raise IntuneError(404, f"{collection}/{id}/{sub}/{item_id} not found")
        self.subs[collection][id][sub] = kept

    def set_compliance(self, device_id: str, state: str, policy_ids: Sequence[str] | None = None) -> JSON:
        """Change a managed device's complianceState and the policy statuses that name it.

        Statuses other than ``notApplicable``/``notAssigned`` follow the new state; when the
        device becomes a problem and no policy reports it yet, the first policy gets a status so
        a finding exists. Returns the updated device (the caller mirrors ``isCompliant`` to Entra).
        """
        if state not in COMPLIANCE_TO_STATUS:
            raise IntuneError(400, f"complianceState must be one of {sorted(COMPLIANCE_TO_STATUS)}")
        device = self.get("managedDevices", device_id)
        if device is None:
            raise IntuneError(404, f"managedDevices/{device_id} not found")
        now = _now()
        status = COMPLIANCE_TO_STATUS[state]
        device["complianceState"] = state
        device["lastSyncDateTime"] = now[:19] + "Z"
        wanted = set(policy_ids) if policy_ids else None
        touched = False
        for pid in self.items["deviceCompliancePolicies"]:
            if wanted is not None and pid not in wanted:
                continue
            for st in self.sub("deviceCompliancePolicies", pid, "deviceStatuses"):
                if st["id"].rsplit("_", 1)[-1] != device_id or st.get("status") in (
                    "notApplicable",
                    "notAssigned",
                ):
                    continue
                st["status"] = status
                st["lastReportedDateTime"] = now
                touched = True
        if not touched and status != "compliant":
            pids = [p for p in self.items["deviceCompliancePolicies"] if wanted is None or p in wanted]
            if pids:
                self.add_sub(
                    "deviceCompliancePolicies",
                    pids[0],
                    "deviceStatuses",
                    _status_row(self.intune_account_id, pids[0], device, status, now, beta=True),
                )
        return device

    def entra_object_id(self, tenant: TenantLike, device_id: str) -> str | None:
        """The Entra device object id whose ``deviceId`` is this managed device's ``azureADDeviceId``."""
        device = self.get("managedDevices", device_id)
        if device is None:
            return None
        aad = device.get("azureADDeviceId")
        if not aad or aad == ZERO_GUID:
            return None
        for d in tenant.list("devices"):
            if d.get("deviceId") == aad:
                return str(d["id"])
        return None

    # --- tenant file ----------------------------------------------------------------------------
    def to_json(self) -> JSON:
        """The ``"intune"`` section of the tenant file: every object in the embedded shape."""
        return {
            "intuneAccountId": self.intune_account_id,
            "mobileDeviceManagementAuthority": self.mdm_authority,
            "subscriptionState": self.subscription_state,
            "collections": {
                name: [self.embedded(name, oid) for oid in self.items[name]] for name in COLLECTIONS
            },
        }

    @classmethod
    def from_json(cls, d: JSON) -> IntuneData:
        data = cls(str(d["intuneAccountId"]), str(d.get("mobileDeviceManagementAuthority", "intune")))
        data.subscription_state = str(d.get("subscriptionState", "active"))
        for name, objs in (d.get("collections") or {}).items():
            if name not in COLLECTIONS:
                raise ValueError(f"unknown Intune collection {name!r} in tenant file")
            for obj in objs:
                data.create(name, obj)
        return data

    # --- internals --------------------------------------------------------------------------------
    def _coll(self, collection: str) -> dict[str, JSON]:
        try:
            return self.items[collection]
        except KeyError:
            raise IntuneError(404, f"unknown Intune collection {collection!r}") from None

    def _check_sub(self, collection: str, sub: str) -> None:
        spec = COLLECTIONS.get(collection)
        if spec is None or sub not in spec.subs:
            raise IntuneError(404, f"{collection} has no sub-resource {sub!r}")

    def _forget_device(self, device_id: str) -> None:
        """Drop statuses that name a deleted managed device (Intune stops reporting it)."""
        suffix = "_" + device_id
        for coll, sub in (
            ("deviceCompliancePolicies", "deviceStatuses"),
            ("deviceConfigurations", "deviceStatuses"),
            ("mobileAppConfigurations", "deviceStatuses"),
        ):
            for subs in self.subs[coll].values():
                if sub in subs:
                    subs[sub] = [s for s in subs[sub] if not s["id"].endswith(suffix)]
        for coll, sub in RUN_STATE_SUBS:
            for subs in self.subs[coll].values():
                if sub in subs:
                    subs[sub] = [
                        s for s in subs[sub] if (s.get("managedDevice") or {}).get("id") != device_id
                    ]
        for coll, sub in (("intents", "deviceStates"), ("mobileApps", "deviceStatuses")):
            for subs in self.subs[coll].values():
                if sub in subs:
                    subs[sub] = [s for s in subs[sub] if s.get("deviceId") != device_id]


# ================================================================================================
# Recordings
# ================================================================================================


def intune_from_recordings(paths: Sequence[str | Path]) -> IntuneData:
    """Intune data served back verbatim from recorded exchange files (``shared/fixtures/graph-recorded``).

    Every 200 answer of ``/{ver}/{deviceManagement|deviceAppManagement}/{collection}`` adds its
    ``value`` objects; ``.../{collection}/{id}/{sub}`` answers become that object's sub-resource.
    Objects seen in several files are merged (later properties win). The Intune account id is the
    first segment of a recorded ``{account}_{policy}_{device}`` status id (zero GUID if none).
    """
    objects: dict[str, dict[str, JSON]] = {name: {} for name in COLLECTIONS}
    subs: dict[tuple[str, str, str], JSONList] = {}
    for path in paths:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        for ex in doc.get("exchanges") or []:
            body = ex.get("body")
            if (
                ex.get("status") != 200
                or not isinstance(body, dict)
                or not isinstance(body.get("value"), list)
            ):
                continue
            parts = [p for p in urlsplit(str(ex.get("url", ""))).path.split("/") if p]
            if len(parts) < 3 or parts[0] not in ("v1.0", "beta"):
                continue
            spec = COLLECTIONS.get(parts[2])
            if spec is None or spec.root != parts[1]:
                continue
            values = [dict(v) for v in body["value"] if isinstance(v, dict)]
            if len(parts) == 3:
                for v in values:
                    if v.get("id"):
                        objects[spec.name].setdefault(str(v["id"]), {}).update(v)
            elif len(parts) == 5 and parts[4] in spec.subs:
                subs[(spec.name, parts[3], parts[4])] = values
    account = ZERO_GUID
    for (coll, _oid, sub), values in subs.items():
        if sub == "deviceStatuses" and coll != "mobileApps":
            ids = [str(v.get("id") or "") for v in values if str(v.get("id") or "").count("_") == 2]
            if ids:
                account = ids[0].split("_", 1)[0]
                break
    data = IntuneData(account)
    for name, objs in objects.items():
        for oid, obj in objs.items():
            embedded = dict(obj)
            for sub in COLLECTIONS[name].subs:
                if (name, oid, sub) in subs:
                    embedded[sub] = subs[(name, oid, sub)]
            data.create(name, embedded)
    return data


# ================================================================================================
# Generator
# ================================================================================================


def _guid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def _iso(dt: datetime, fraction: bool = False) -> str:
    if fraction:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _status_row(
    account_id: str, policy_id: str, device: JSON, status: str, reported: str, beta: bool
) -> JSON:
    """A compliance/configuration/app-configuration device status: id ``{account}_{policy}_{device}``."""
    row: JSON = {
        "id": f"{account_id}_{policy_id}_{device['id']}",
        "deviceDisplayName": device["deviceName"],
        "userName": device["userDisplayName"] or None,
        "deviceModel": None,
    }
    if beta:
        row["platform"] = 0
    row["complianceGracePeriodExpirationDateTime"] = device["complianceGracePeriodExpirationDateTime"]
    row["status"] = status
    row["lastReportedDateTime"] = reported
    row["userPrincipalName"] = device["userPrincipalName"] or None
    return row


@dataclass(frozen=True)
class _Platform:
    key: str
    operating_system: str
    weight: int
    device_types: tuple[str, ...]
    chassis: tuple[str, ...]
    models: tuple[tuple[str, str], ...]
    os_versions: tuple[str, ...]
    compliance_type: str
    configuration_types: tuple[str, ...]
    entra_os: tuple[str, ...]


PLATFORMS: tuple[_Platform, ...] = (
    _Platform(
        "windows",
        "Windows",
        55,
        ("windowsRT",),
        ("laptop", "desktop"),
        (
            ("Latitude 7440", "Dell Inc."),
            ("ThinkPad T14 Gen 4", "LENOVO"),
            ("Surface Laptop 5", "Microsoft Corporation"),
            ("EliteBook 840 G10", "HP"),
            ("OptiPlex 7010", "Dell Inc."),
        ),
        ("10.0.19045.3693", "10.0.22621.2715", "10.0.22631.2861", "10.0.19044.3570"),
        "windows10CompliancePolicy",
        (
            "windows10GeneralConfiguration",
            "windows10EndpointProtectionConfiguration",
            "windows10CustomConfiguration",
        ),
        ("windows",),
    ),
    _Platform(
        "ios",
        "iOS",
        20,
        ("iPhone", "iPad"),
        ("phone", "tablet"),
        (
            ("iPhone 14", "Apple"),
            ("iPhone 15 Pro", "Apple"),
            ("iPhone 11 Pro", "Apple"),
            ("iPad Air (5th generation)", "Apple"),
        ),
        ("16.7.2", "17.1.2", "17.2", "14.4"),
        "iosCompliancePolicy",
        ("iosGeneralDeviceConfiguration", "iosCustomConfiguration"),
        ("ios", "ipados", "iphone", "ipad"),
    ),
    _Platform(
        "android",
        "Android",
        15,
        ("androidEnterprise", "androidForWork"),
        ("phone",),
        (
            ("Pixel 7", "Google"),
            ("Galaxy S23", "samsung"),
            ("Galaxy A54 5G", "samsung"),
            ("moto g84", "motorola"),
        ),
        ("12", "13", "14"),
        "androidCompliancePolicy",
        ("androidGeneralDeviceConfiguration", "androidWorkProfileGeneralDeviceConfiguration"),
        ("android",),
    ),
    _Platform(
        "macos",
        "macOS",
        10,
        ("macMDM",),
        ("laptop", "desktop"),
        (("MacBook Pro", "Apple"), ("MacBook Air", "Apple"), ("iMac", "Apple"), ("Mac mini", "Apple")),
        ("13.6.3 (22G436)", "14.1.1 (23B81)", "14.2.1 (23C71)", "11.2.1 (20D74)"),
        "macOSCompliancePolicy",
        ("macOSGeneralDeviceConfiguration", "macOSCustomConfiguration"),
        ("macos", "macmdm", "mac os x", "osx"),
    ),
)
_PLATFORM_BY_KEY = {p.key: p for p in PLATFORMS}

_COMPLIANCE_STATES: tuple[tuple[str, int], ...] = (
    ("compliant", 78),
    ("noncompliant", 11),
    ("inGracePeriod", 3),
    ("unknown", 4),
    ("error", 2),
    ("conflict", 2),
)

_PROBLEM_STATES = tuple((s, w) for s, w in _COMPLIANCE_STATES if s not in ("compliant", "unknown"))

_HARDWARE_TEMPLATE: JSON = {
    "serialNumber": "",
    "totalStorageSpace": 0,
    "freeStorageSpace": 0,
    "imei": "",
    "meid": None,
    "manufacturer": None,
    "model": None,
    "phoneNumber": None,
    "subscriberCarrier": None,
    "cellularTechnology": None,
    "wifiMac": None,
    "operatingSystemLanguage": None,
    "isSupervised": False,
    "isEncrypted": False,
    "batterySerialNumber": None,
    "batteryHealthPercentage": 0,
    "batteryChargeCycles": 0,
    "isSharedDevice": False,
    "tpmSpecificationVersion": None,
    "operatingSystemEdition": None,
    "deviceFullQualifiedDomainName": None,
    "deviceGuardVirtualizationBasedSecurityHardwareRequirementState": "meetHardwareRequirements",
    "deviceGuardVirtualizationBasedSecurityState": "running",
    "deviceGuardLocalSystemAuthorityCredentialGuardState": "running",
    "osBuildNumber": None,
    "operatingSystemProductType": 0,
    "ipAddressV4": None,
    "subnetAddress": None,
    "sharedDeviceCachedUsers": [],
}

# Every key of the recorded beta managedDevice, in the recorded order, with its common value.
_DEVICE_TEMPLATE: JSON = {
    "id": "",
    "userId": "",
    "deviceName": "",
    "ownerType": "company",
    "managedDeviceOwnerType": "company",
    "managementState": "managed",
    "enrolledDateTime": NEVER,
    "lastSyncDateTime": NEVER,
    "chassisType": "unknown",
    "operatingSystem": "",
    "deviceType": "",
    "complianceState": "unknown",
    "jailBroken": "Unknown",
    "managementAgent": "mdm",
    "osVersion": "",
    "easActivated": False,
    "easDeviceId": "",
    "easActivationDateTime": NEVER,
    "aadRegistered": None,
    "azureADRegistered": None,
    "deviceEnrollmentType": "userEnrollment",
    "lostModeState": "disabled",
    "activationLockBypassCode": None,
    "emailAddress": "",
    "azureActiveDirectoryDeviceId": ZERO_GUID,
    "azureADDeviceId": ZERO_GUID,
    "deviceRegistrationState": "registered",
    "deviceCategoryDisplayName": "Unknown",
    "isSupervised": False,
    "exchangeLastSuccessfulSyncDateTime": NEVER,
    "exchangeAccessState": "none",
    "exchangeAccessStateReason": "none",
    "remoteAssistanceSessionUrl": None,
    "remoteAssistanceSessionErrorDetails": None,
    "isEncrypted": True,
    "userPrincipalName": "",
    "model": "",
    "manufacturer": "",
    "imei": "",
    "complianceGracePeriodExpirationDateTime": NEVER,
    "serialNumber": "",
    "phoneNumber": "",
    "androidSecurityPatchLevel": "",
    "userDisplayName": "",
    "configurationManagerClientEnabledFeatures": None,
    "wiFiMacAddress": "",
    "deviceHealthAttestationState": None,
    "subscriberCarrier": "",
    "meid": "",
    "totalStorageSpaceInBytes": 0,
    "freeStorageSpaceInBytes": 0,
    "managedDeviceName": "",
    "partnerReportedThreatState": "unknown",
    "retireAfterDateTime": NEVER,
    "preferMdmOverGroupPolicyAppliedDateTime": NEVER,
    "autopilotEnrolled": False,
    "requireUserEnrollmentApproval": None,
    "managementCertificateExpirationDate": NEVER,
    "iccid": None,
    "udid": None,
    "roleScopeTagIds": [],
    "windowsActiveMalwareCount": 0,
    "windowsRemediatedMalwareCount": 0,
    "notes": None,
    "configurationManagerClientHealthState": None,
    "configurationManagerClientInformation": None,
    "ethernetMacAddress": None,
    "physicalMemoryInBytes": 0,
    "processorArchitecture": "unknown",
    "specificationVersion": None,
    "joinType": "unknown",
    "skuFamily": "",
    "skuNumber": 0,
    "managementFeatures": "none",
    "hardwareInformation": {},
    "deviceActionResults": [],
    "usersLoggedOn": [],
}

_APP_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "windows": (
        ("Microsoft Edge", "Microsoft Corporation"),
        ("Google Chrome", "Google LLC"),
        ("Mozilla Firefox", "Mozilla"),
        ("Microsoft 365 Apps for enterprise", "Microsoft Corporation"),
        ("Zoom Workplace", "Zoom Video Communications"),
        ("7-Zip", "Igor Pavlov"),
        ("Notepad++", "Notepad++ Team"),
        ("Adobe Acrobat Reader", "Adobe"),
        ("Slack", "Slack Technologies"),
        ("Visual Studio Code", "Microsoft Corporation"),
        ("Git", "The Git Development Community"),
        ("Python 3.12", "Python Software Foundation"),
        ("VLC media player", "VideoLAN"),
        ("Teams", "Microsoft Corporation"),
        ("Company Portal", "Microsoft Corporation"),
        ("PuTTY", "Simon Tatham"),
        ("WinSCP", "Martin Prikryl"),
        ("Java 8 Update 391", "Oracle Corporation"),
        ("CrowdStrike Windows Sensor", "CrowdStrike, Inc."),
    ),
    "ios": (
        ("Comp Portal", "Microsoft Corporation"),
        ("Outlook", "Microsoft Corporation"),
        ("Teams", "Microsoft Corporation"),
        ("Authenticator", "Microsoft Corporation"),
        ("Slack", "Slack Technologies"),
        ("Zoom", "Zoom Video Communications"),
        ("Edge", "Microsoft Corporation"),
        ("OneDrive", "Microsoft Corporation"),
        ("WhatsApp", "WhatsApp Inc."),
    ),
    "android": (
        ("Intune Company Portal", "Microsoft Corporation"),
        ("Microsoft Outlook", "Microsoft Corporation"),
        ("Microsoft Teams", "Microsoft Corporation"),
        ("Microsoft Authenticator", "Microsoft Corporation"),
        ("Chrome", "Google LLC"),
        ("Slack", "Slack Technologies"),
        ("Zoom", "Zoom Video Communications"),
    ),
    "macos": (
        ("Microsoft Edge", "Microsoft Corporation"),
        ("Google Chrome", "Google LLC"),
        ("Slack", "Slack Technologies"),
        ("Zoom.us", "Zoom Video Communications"),
        ("Microsoft Word", "Microsoft Corporation"),
        ("iTerm", "George Nachman"),
        ("Docker", "Docker Inc."),
        ("Company Portal", "Microsoft Corporation"),
        ("1Password 7", "AgileBits Inc."),
    ),
}

_MOBILE_APP_TYPES: tuple[tuple[str, str], ...] = (
    ("#microsoft.graph.win32LobApp", "windows"),
    ("#microsoft.graph.winGetApp", "windows"),
    ("#microsoft.graph.officeSuiteApp", "windows"),
    ("#microsoft.graph.iosStoreApp", "ios"),
    ("#microsoft.graph.iosVppApp", "ios"),
    ("#microsoft.graph.managedIOSStoreApp", "ios"),
    ("#microsoft.graph.androidManagedStoreApp", "android"),
    ("#microsoft.graph.managedAndroidStoreApp", "android"),
    ("#microsoft.graph.macOSLobApp", "macos"),
    ("#microsoft.graph.webApp", "web"),
)

_DEFAULT_APP_CATEGORIES = (
    "Other apps",
    "Books & Reference",
    "Data management",
    "Productivity",
    "Business",
    "Development & Design",
    "Photos & Media",
    "Collaboration & Social",
    "Computer management",
)

_DEVICE_CATEGORIES = (
    "Corporate Laptop",
    "Kiosk",
    "Developer Workstation",
    "BYOD Phone",
    "Field Tablet",
    "Shared Device",
)


_CUMULATIVE: dict[tuple[tuple[str, int], ...], tuple[list[str], list[int], int]] = {}


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    """A weighted pick; cumulative weights cached per table (called ~10^5 times per tenant)."""
    cached = _CUMULATIVE.get(table)
    if cached is None:
        cum: list[int] = []
        total = 0
        for _, w in table:
            total += w
            cum.append(total)
        cached = _CUMULATIVE[table] = ([t[0] for t in table], cum, total)
    values, cum, total = cached
    return values[bisect.bisect_right(cum, rng.random() * total)]


def _platform_of_entra(os_name: str | None) -> _Platform | None:
    os_l = (os_name or "").lower()
    for p in PLATFORMS:
        if any(os_l.startswith(e) for e in p.entra_os):
            return p
    return None


class _Gen:
    """Generation state; split in steps so each stays readable."""

    def __init__(self, rng: random.Random, tenant: TenantLike, managed_devices: int) -> None:
        self.rng = rng
        self.tenant = tenant
        self.n = max(0, managed_devices)
        self.users: list[JSON] = [u for u in tenant.list("users") if u.get("id")]
        self.groups: list[str] = [str(g["id"]) for g in tenant.list("groups") if g.get("id")]
        self.entra: list[JSON] = [d for d in tenant.list("devices") if d.get("deviceId")]
        self.base = datetime(2024, 1, 15, 9, 0, 0, tzinfo=UTC)
        self.data = IntuneData(_guid(rng))
        self.devices_by_platform: dict[str, list[JSON]] = {p.key: [] for p in PLATFORMS}
        self.apps_by_platform: dict[str, list[str]] = {}

    # helpers
    def when(self, max_days_ago: int, fraction: bool = False) -> str:
        return _iso(self.base - timedelta(seconds=self.rng.randrange(1, max_days_ago * 86400 + 2)), fraction)

    def scale(self, per_thousand: float, minimum: int, maximum: int) -> int:
        return max(minimum, min(maximum, round(self.n * per_thousand / 1000)))

    def targets(self, kind: str = "group") -> list[JSON]:
        """Assignment targets: mostly tenant groups, sometimes all devices/users or an exclusion."""
        out: list[JSON] = []
        k = self.rng.choice((1, 1, 2, 2, 3)) if self.groups else 0
        for gid in self.rng.sample(self.groups, min(k, len(self.groups))):
            out.append(
                {
                    "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                    "deviceAndAppManagementAssignmentFilterId": None,
                    "deviceAndAppManagementAssignmentFilterType": "none",
                    "groupId": gid,
                }
            )
        roll = self.rng.random()
        if roll < 0.15 or not out:
            out.append(
                {
                    "@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"
                    if kind == "device" or roll < 0.08
                    else "#microsoft.graph.allLicensedUsersAssignmentTarget",
                    "deviceAndAppManagementAssignmentFilterId": None,
                    "deviceAndAppManagementAssignmentFilterType": "none",
                }
            )
        elif roll > 0.9 and self.groups:
            out.append(
                {
                    "@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget",
                    "deviceAndAppManagementAssignmentFilterId": None,
                    "deviceAndAppManagementAssignmentFilterType": "none",
                    "groupId": self.rng.choice(self.groups),
                }
            )
        return out

    def assignments(self, odata_type: str, kind: str = "group", extra: JSON | None = None) -> list[JSON]:
        rows = []
        for target in self.targets(kind):
            row: JSON = {"@odata.type": odata_type, "id": _guid(self.rng)}
            if extra:
                row.update(extra)
            row["target"] = target
            rows.append(row)
        return rows

    def sample_devices(self, platform: str | None, share: float) -> Iterator[JSON]:
        pool = (
            self.devices_by_platform[platform]
            if platform
            else [d for p in PLATFORMS for d in self.devices_by_platform[p.key]]
        )
        rnd = self.rng.random
        for d in pool:
            if rnd() < share:
                yield d

    # steps
    def categories(self) -> list[str]:
        names = list(_DEVICE_CATEGORIES[: self.scale(0.5, 3, len(_DEVICE_CATEGORIES))])
        for name in names:
            self.data.create(
                "deviceCategories",
                {
                    "id": _guid(self.rng),
                    "displayName": name,
                    "description": f"{name} devices",
                    "roleScopeTagIds": ["0"],
                },
            )
        return names

    def managed_devices(self, categories: list[str]) -> None:
        rng = self.rng
        # Entra devices Intune manages (isManaged) first, so links agree with the directory.
        entra = [d for d in self.entra if d.get("isManaged")]
        rest = [d for d in self.entra if not d.get("isManaged")]
        rng.shuffle(entra)
        rng.shuffle(rest)
        entra += rest
        weights = [p.weight for p in PLATFORMS]
        user_count = len(self.users)
        for i in range(self.n):
            linked = entra[i] if i < len(entra) else None
            plat = _platform_of_entra(linked.get("operatingSystem")) if linked else None
            if plat is None:
                plat = rng.choices(PLATFORMS, weights=weights)[0]
            user = self.users[rng.randrange(user_count)] if user_count and rng.random() < 0.95 else None
            state = self.compliance_state(linked)
            model, maker = rng.choice(plat.models)
            did = _guid(rng)
            serial = f"{rng.getrandbits(48):012X}"
            enrolled = self.when(900)
            name = (linked.get("displayName") if linked else None) or f"{plat.key.upper()[:3]}-{serial[:8]}"
            dev = dict(_DEVICE_TEMPLATE)
            hw = dict(_HARDWARE_TEMPLATE)
            hw["serialNumber"] = serial
            aad = str(linked["deviceId"]) if linked else ZERO_GUID
            upn = str(user.get("userPrincipalName") or "") if user else ""
            owner = "personal" if plat.key in ("ios", "android") and rng.random() < 0.3 else "company"
            last_sync = self.when(14)
            grace = NEVER
            if state in ("noncompliant", "inGracePeriod"):
                grace = _iso(self.base + timedelta(hours=rng.randrange(-240, 72)))
            dev.update(
                {
                    "id": did,
                    "userId": str(user["id"]) if user else "",
                    "deviceName": name,
                    "ownerType": owner,
                    "managedDeviceOwnerType": owner,
                    "managementState": "managed" if rng.random() < 0.98 else "retireIssued",
                    "enrolledDateTime": enrolled,
                    "lastSyncDateTime": last_sync,
                    "chassisType": rng.choice(plat.chassis),
                    "operatingSystem": plat.operating_system,
                    "deviceType": rng.choice(plat.device_types),
                    "complianceState": state,
                    "jailBroken": "False" if plat.key in ("ios", "android") else "Unknown",
                    "osVersion": rng.choice(plat.os_versions),
                    "easActivated": False,
                    "easDeviceId": f"{rng.getrandbits(100):026X}",
                    "aadRegistered": True if linked else None,
                    "azureADRegistered": True if linked else None,
                    "deviceEnrollmentType": rng.choice(
                        ("windowsAzureADJoin", "windowsAutoEnrollment", "windowsCoManagement")
                        if plat.key == "windows"
                        else ("userEnrollment", "appleBulkWithUser", "deviceEnrollmentManager")
                    ),
                    "emailAddress": str(user.get("mail") or "") if user else "",
                    "azureActiveDirectoryDeviceId": aad,
                    "azureADDeviceId": aad,
                    "deviceCategoryDisplayName": rng.choice(categories)
                    if categories and rng.random() < 0.7
                    else "Unknown",
                    "isSupervised": plat.key in ("ios", "macos") and owner == "company",
                    "isEncrypted": rng.random() < 0.93,
                    "userPrincipalName": upn,
                    "model": model,
                    "manufacturer": maker,
                    "imei": f"35{rng.getrandbits(40):013d}"[:15] if plat.key in ("ios", "android") else "",
                    "complianceGracePeriodExpirationDateTime": grace,
                    "serialNumber": serial,
                    "userDisplayName": str(user.get("displayName") or "") if user else "",
                    "wiFiMacAddress": f"{rng.getrandbits(48):012x}",
                    "totalStorageSpaceInBytes": rng.choice(
                        (68719476736, 137438953472, 274877906944, 549755813888)
                    ),
                    "freeStorageSpaceInBytes": rng.randrange(1, 60) * 1073741824,
                    "managedDeviceName": f"{upn.split('@')[0] or 'device'}_{plat.operating_system}"
                    f"_{enrolled[:10]}",
                    "managementCertificateExpirationDate": _iso(
                        self.base + timedelta(days=rng.randrange(30, 365))
                    ),
                    "roleScopeTagIds": [],
                    "physicalMemoryInBytes": rng.choice((0, 8589934592, 17179869184, 34359738368)),
                    "processorArchitecture": "x64"
                    if plat.key == "windows"
                    else ("arm64" if plat.key == "macos" else "unknown"),
                    "joinType": rng.choice(("azureADJoined", "hybridAzureADJoined"))
                    if plat.key == "windows"
                    else "unknown",
                    "skuFamily": "Enterprise" if plat.key == "windows" else "",
                    "skuNumber": 4 if plat.key == "windows" else 0,
                    "hardwareInformation": hw,
                    "deviceActionResults": [],
                    "usersLoggedOn": [
                        {"userId": str(user["id"]), "lastLogOnDateTime": last_sync[:19] + ".000Z"}
                    ]
                    if user
                    else [],
                }
            )
            self.data.items["managedDevices"][did] = dev
            self.data.subs["managedDevices"][did] = {"detectedApps": []}
            self.devices_by_platform[plat.key].append(dev)

    def compliance_state(self, entra_device: JSON | None) -> str:
        """Follow the Entra device's ``isCompliant`` when it has one (Intune writes it there)."""
        flag = entra_device.get("isCompliant") if entra_device else None
        if flag is True:
            return "compliant"
        if flag is False:
            return _weighted(self.rng, _PROBLEM_STATES)
        return _weighted(self.rng, _COMPLIANCE_STATES)

    def detected_apps(self) -> None:
        """Shared per-platform catalogue of hash-id apps; each device lists a handful."""
        rng = self.rng
        for plat in PLATFORMS:
            catalogue: list[JSON] = []
            for name, publisher in _APP_NAMES[plat.key]:
                for _ in range(rng.randrange(1, 4)):
                    version = f"{rng.randrange(1, 130)}.{rng.randrange(0, 20)}.{rng.randrange(0, 9999)}"
                    catalogue.append(
                        {
                            "id": hashlib.sha256(f"{plat.key}|{name}|{version}".encode()).hexdigest(),
                            "displayName": name,
                            "version": version,
                            "sizeInByte": rng.randrange(0, 400) * 1048576 if plat.key == "windows" else 0,
                            "deviceCount": 0,
                            "publisher": publisher,
                            "platform": plat.key if plat.key != "macos" else "macOS",
                        }
                    )
            for dev in self.devices_by_platform[plat.key]:
                k = rng.randrange(3, min(14, len(catalogue)) + 1)
                self.data.subs["managedDevices"][dev["id"]]["detectedApps"] = rng.sample(catalogue, k)

    def compliance_policies(self) -> None:
        rng = self.rng
        count = self.scale(1.0, 4, 40)
        acct = self.data.intune_account_id
        for i in range(count):
            plat = PLATFORMS[i % len(PLATFORMS)]
            pid = _guid(rng)
            created = self.when(700, True)
            policy: JSON = {
                "@odata.type": f"#microsoft.graph.{plat.compliance_type}",
                "id": pid,
                "createdDateTime": created,
                "description": None
                if rng.random() < 0.4
                else f"Baseline compliance for {plat.operating_system}",
                "lastModifiedDateTime": max(created, self.when(300, True)),
                "displayName": f"{plat.operating_system} compliance {i // len(PLATFORMS) + 1}",
                "version": rng.randrange(1, 9),
            }
            policy.update(_compliance_settings(plat.key, rng))
            devices = list(
                self.sample_devices(plat.key, min(1.0, 2.0 / max(1, count / len(PLATFORMS)) + 0.2))
            )
            statuses, users = self.policy_statuses(acct, pid, devices)
            rules = [
                {
                    "id": _guid(rng),
                    "ruleName": None,
                    "scheduledActionConfigurations": [
                        {
                            "id": _guid(rng),
                            "gracePeriodHours": 0,
                            "actionType": "block",
                            "notificationTemplateId": "",
                            "notificationMessageCCList": [],
                        },
                        *(
                            [
                                {
                                    "id": _guid(rng),
                                    "gracePeriodHours": rng.choice((24, 72, 168)),
                                    "actionType": "notification",
                                    "notificationTemplateId": _guid(rng),
                                    "notificationMessageCCList": [],
                                }
                            ]
                            if rng.random() < 0.6
                            else []
                        ),
                        *(
                            [
                                {
                                    "id": _guid(rng),
                                    "gracePeriodHours": 720,
                                    "actionType": "retire",
                                    "notificationTemplateId": "",
                                    "notificationMessageCCList": [],
                                }
                            ]
                            if rng.random() < 0.2
                            else []
                        ),
                    ],
                }
            ]
            self.data.items["deviceCompliancePolicies"][pid] = policy
            self.data.subs["deviceCompliancePolicies"][pid] = {
                "assignments": self.assignments("#microsoft.graph.deviceCompliancePolicyAssignment"),
                "deviceStatuses": statuses,
                "userStatuses": users,
                "scheduledActionsForRule": rules,
            }

    def policy_statuses(self, acct: str, pid: str, devices: list[JSON]) -> tuple[list[JSON], list[JSON]]:
        """Statuses that agree with each device's complianceState; user statuses aggregate them."""
        rng = self.rng
        rows: list[JSON] = []
        per_user: dict[str, tuple[JSON, int, str, str]] = {}
        rank = {
            "compliant": 0,
            "unknown": 1,
            "notApplicable": 0,
            "nonCompliant": 3,
            "error": 4,
            "conflict": 4,
        }
        for dev in devices:
            st = COMPLIANCE_TO_STATUS.get(dev["complianceState"], "unknown")
            if st != "compliant" and rng.random() < 0.35:
                st = "compliant"  # another policy is the one that fails
            if rng.random() < 0.03:
                st = "notApplicable"
            reported = dev["lastSyncDateTime"][:19] + f".{rng.randrange(10**7):07d}Z"
            rows.append(_status_row(acct, pid, dev, st, reported, beta=True))
            uid = dev["userId"]
            if uid:
                prev = per_user.get(uid)
                if prev is None:
                    per_user[uid] = (dev, 1, st, reported)
                else:
                    worst = st if rank.get(st, 1) > rank.get(prev[2], 1) else prev[2]
                    per_user[uid] = (prev[0], prev[1] + 1, worst, max(reported, prev[3]))
        users = [
            {
                "id": f"{acct}_{pid}_{uid}",
                "userDisplayName": dev["userDisplayName"],
                "devicesCount": n,
                "status": st,
                "lastReportedDateTime": reported,
                "userPrincipalName": dev["userPrincipalName"],
            }
            for uid, (dev, n, st, reported) in per_user.items()
        ]
        return rows, users

    def configurations(self) -> None:
        rng = self.rng
        count = self.scale(1.2, 5, 50)
        acct = self.data.intune_account_id
        problem = (
            ("nonCompliant", 4),
            ("error", 3),
            ("conflict", 3),
            ("compliant", 82),
            ("notApplicable", 5),
            ("unknown", 3),
        )
        for i in range(count):
            plat = PLATFORMS[i % len(PLATFORMS)]
            ctype = plat.configuration_types[(i // len(PLATFORMS)) % len(plat.configuration_types)]
            cid = _guid(rng)
            created = self.when(700, True)
            conf: JSON = {
                "@odata.type": f"#microsoft.graph.{ctype}",
                "id": cid,
                "lastModifiedDateTime": max(created, self.when(300, True)),
                "createdDateTime": created,
                "description": None if rng.random() < 0.5 else "Managed by the endpoint team",
                "displayName": f"{plat.operating_system} "
                f"{ctype.removeprefix(plat.key).removeprefix('windows10')} {i + 1}",
                "version": rng.randrange(1, 6),
            }
            conf.update(_configuration_settings(ctype, rng))
            devices = self.sample_devices(plat.key, min(1.0, 2.5 / max(1, count / len(PLATFORMS)) + 0.15))
            rows = []
            for dev in devices:
                reported = dev["lastSyncDateTime"][:19] + f".{rng.randrange(10**7):07d}Z"
                rows.append(_status_row(acct, cid, dev, _weighted(rng, problem), reported, beta=False))
            self.data.items["deviceConfigurations"][cid] = conf
            self.data.subs["deviceConfigurations"][cid] = {
                "assignments": self.assignments("#microsoft.graph.deviceConfigurationAssignment"),
                "deviceStatuses": rows,
            }

    def scripts(self) -> None:
        rng = self.rng
        windows = self.devices_by_platform["windows"]
        for i in range(self.scale(0.25, 2, 15)):
            sid = _guid(rng)
            created = self.when(500, True)
            check = rng.choice(("BitLocker", "Defender", "LocalAdmins", "FirewallProfile", "TLS12"))
            body = (
                f"# Compliance check: {check}\n$result = @{{ {check} = (Get-Date).Ticks % 2 -eq 0 }}\n"
                "return $result | ConvertTo-Json -Compress\n"
            )
            self.data.items["deviceComplianceScripts"][sid] = {
                "id": sid,
                "publisher": "IT Security",
                "version": f"1.{rng.randrange(0, 9)}",
                "displayName": f"Check {check} {i + 1}",
                "description": f"Custom compliance detection for {check}",
                "detectionScriptContent": _b64(body),
                "createdDateTime": created,
                "lastModifiedDateTime": max(created, self.when(200, True)),
                "runAsAccount": "system",
                "enforceSignatureCheck": False,
                "runAs32Bit": False,
                "roleScopeTagIds": ["0"],
            }
            states = []
            for dev in self.sample_devices("windows", 0.5 if windows else 0):
                det = _weighted(
                    rng, (("success", 85), ("fail", 7), ("scriptError", 3), ("pending", 3), ("unknown", 2))
                )
                when = dev["lastSyncDateTime"][:19] + ".0000000Z"
                states.append(
                    {
                        "id": f"{sid}:{dev['id']}",
                        "detectionState": det,
                        "lastStateUpdateDateTime": when,
                        "expectedStateUpdateDateTime": None,
                        "lastSyncDateTime": when,
                        "scriptOutput": json.dumps({check: det == "success"}, separators=(",", ":")),
                        "scriptError": "Access is denied." if det == "scriptError" else None,
                        "managedDevice": {"id": dev["id"]},
                    }
                )
            self.data.subs["deviceComplianceScripts"][sid] = {"deviceRunStates": states}
        for i in range(self.scale(0.5, 3, 25)):
            sid = _guid(rng)
            created = self.when(500, True)
            task = rng.choice(
                ("Set-TimeZone", "Install-Fonts", "Remove-Bloatware", "Map-Drives", "Enable-WinRM")
            )
            body = f'# Intune platform script: {task}\nWrite-Output "running {task}"\nexit 0\n'
            self.data.items["deviceManagementScripts"][sid] = {
                "id": sid,
                "displayName": f"{task} {i + 1}",
                "description": f"Runs {task} once per device",
                "scriptContent": _b64(body),
                "createdDateTime": created,
                "lastModifiedDateTime": max(created, self.when(200, True)),
                "runAsAccount": "system",
                "enforceSignatureCheck": False,
                "fileName": f"{task}.ps1",
                "roleScopeTagIds": ["0"],
                "runAs32Bit": False,
            }
            assignments = self.assignments("#microsoft.graph.deviceManagementScriptAssignment", "device")
            group_assignments = [
                {
                    "@odata.type": "#microsoft.graph.deviceManagementScriptGroupAssignment",
                    "id": f"{sid}:{a['target']['groupId']}",
                    "targetGroupId": a["target"]["groupId"],
                }
                for a in assignments
                if a["target"]["@odata.type"] == "#microsoft.graph.groupAssignmentTarget"
            ]
            states = []
            for dev in self.sample_devices("windows", 0.4 if windows else 0):
                run = _weighted(rng, (("success", 90), ("fail", 5), ("scriptError", 2), ("pending", 3)))
                states.append(
                    {
                        "id": f"{sid}:{dev['id']}",
                        "runState": run,
                        "resultMessage": "" if run == "success" else "Exit code 1",
                        "lastStateUpdateDateTime": dev["lastSyncDateTime"][:19] + ".0000000Z",
                        "errorCode": 0 if run == "success" else -2016345060,
                        "errorDescription": None
                        if run == "success"
                        else "Script returned a non-zero exit code",
                        "managedDevice": {"id": dev["id"]},
                    }
                )
            self.data.subs["deviceManagementScripts"][sid] = {
                "groupAssignments": group_assignments,
                "assignments": assignments,
                "deviceRunStates": states,
            }

    def app_categories(self) -> list[JSON]:
        cats = []
        for name in _DEFAULT_APP_CATEGORIES:
            cat = {"id": _guid(self.rng), "displayName": name, "lastModifiedDateTime": self.when(900, True)}
            self.data.create("mobileAppCategories", cat)
            cats.append(cat)
        return cats

    def mobile_apps(self, categories: list[JSON]) -> None:
        rng = self.rng
        count = self.scale(10.0, 12, 600)
        for i in range(count):
            odata_type, plat = _MOBILE_APP_TYPES[i % len(_MOBILE_APP_TYPES)]
            names = _APP_NAMES.get(plat) or _APP_NAMES["windows"]
            base_name, publisher = names[(i // len(_MOBILE_APP_TYPES)) % len(names)]
            aid = _guid(rng)
            created = self.when(800, True)
            assigned = rng.random() < 0.7
            app: JSON = {
                "@odata.type": odata_type,
                "id": aid,
                "displayName": base_name if i < len(_MOBILE_APP_TYPES) * len(names) else f"{base_name} ({i})",
                "description": f"{base_name} for {plat}",
                "publisher": publisher,
                "largeIcon": None,
                "createdDateTime": created,
                "lastModifiedDateTime": max(created, self.when(200, True)),
                "isFeatured": rng.random() < 0.1,
                "privacyInformationUrl": None,
                "informationUrl": None,
                "owner": "",
                "developer": "",
                "notes": "",
                "uploadState": 1,
                "publishingState": "published",
                "isAssigned": assigned,
                "roleScopeTagIds": [],
                "dependentAppCount": 0,
            }
            app.update(_app_type_props(odata_type, base_name, rng))
            self.data.items["mobileApps"][aid] = app
            self.apps_by_platform.setdefault(plat, []).append(aid)
            installs: list[JSON] = []
            if assigned and plat != "web":
                share = min(0.9, 25.0 / max(1, count))
                for dev in self.sample_devices(plat, share) if plat in _PLATFORM_BY_KEY else iter(()):
                    st = _weighted(
                        rng, (("installed", 85), ("failed", 5), ("notInstalled", 6), ("pendingInstall", 4))
                    )
                    installs.append(
                        {
                            "id": f"{aid}{dev['id']}",
                            "deviceName": dev["deviceName"],
                            "deviceId": dev["id"],
                            "lastSyncDateTime": dev["lastSyncDateTime"],
                            "mobileAppInstallStatusValue": st,
                            "installState": st,
                            "installStateDetail": "noAdditionalDetails",
                            "errorCode": 0 if st != "failed" else -2016345112,
                            "osVersion": dev["osVersion"],
                            "osDescription": dev["operatingSystem"],
                            "userName": dev["userDisplayName"] or None,
                            "userPrincipalName": dev["userPrincipalName"] or None,
                            "displayVersion": None,
                        }
                    )
            self.data.subs["mobileApps"][aid] = {
                "categories": [dict(c) for c in rng.sample(categories, rng.randrange(0, 3))]
                if categories
                else [],
                "assignments": self.assignments(
                    "#microsoft.graph.mobileAppAssignment",
                    "group",
                    {"intent": rng.choice(("required", "available", "required")), "settings": None},
                )
                if assigned
                else [],
                "deviceStatuses": installs,
            }

    def app_policies(self) -> None:
        rng = self.rng
        for i in range(self.scale(0.3, 2, 20)):
            plat = ("ios", "android")[i % 2]
            odata_type = (
                "#microsoft.graph.iosManagedAppProtection"
                if plat == "ios"
                else ("#microsoft.graph.androidManagedAppProtection")
            )
            pid = f"T_{_guid(rng)}"
            created = self.when(600, True)
            app_ids = self.apps_by_platform.get(plat, [])
            chosen = rng.sample(app_ids, min(len(app_ids), rng.randrange(1, 6))) if app_ids else []
            apps = []
            for aid in chosen:
                app = self.data.items["mobileApps"][aid]
                ident = (
                    {
                        "@odata.type": "#microsoft.graph.iosMobileAppIdentifier",
                        "bundleId": app.get("bundleId"),
                    }
                    if plat == "ios"
                    else {
                        "@odata.type": "#microsoft.graph.androidMobileAppIdentifier",
                        "packageId": app.get("packageId") or app.get("appIdentifier"),
                    }
                )
                # managedMobileApp ids are not mobileApp ids: the identifier names the app.
                key = ident.get("bundleId") or ident.get("packageId")
                apps.append({"id": f"{key}.{plat}", "mobileAppIdentifier": ident, "version": None})
            self.data.items["managedAppPolicies"][pid] = {
                "@odata.type": odata_type,
                "displayName": f"{plat} app protection {i + 1}",
                "description": "Protect corporate data in managed apps",
                "createdDateTime": created,
                "lastModifiedDateTime": max(created, self.when(200, True)),
                "roleScopeTagIds": ["0"],
                "id": pid,
                "version": f'"{rng.getrandbits(64):016x}"',
                "periodOfflineBeforeAccessCheck": "PT12H",
                "periodOnlineBeforeAccessCheck": "PT30M",
                "allowedInboundDataTransferSources": "managedApps",
                "allowedOutboundDataTransferDestinations": "managedApps",
                "organizationalCredentialsRequired": False,
                "allowedOutboundClipboardSharingLevel": "managedAppsWithPasteIn",
                "dataBackupBlocked": True,
                "deviceComplianceRequired": True,
                "managedBrowserToOpenLinksRequired": False,
                "saveAsBlocked": True,
                "periodOfflineBeforeWipeIsEnforced": "P90D",
                "pinRequired": True,
                "maximumPinRetries": 5,
                "simplePinBlocked": False,
                "minimumPinLength": 4,
                "pinCharacterSet": "numeric",
                "isAssigned": bool(chosen),
                "deployedAppCount": len(chosen),
            }
            self.data.subs["managedAppPolicies"][pid] = {"apps": apps, "assignments": []}
        # Windows Information Protection: an app-protection policy without an `apps` relationship.
        wid = _guid(rng)
        self.data.items["managedAppPolicies"][wid] = {
            "@odata.type": "#microsoft.graph.mdmWindowsInformationProtectionPolicy",
            "displayName": "Windows information protection",
            "description": "Protect corporate data on Windows",
            "createdDateTime": self.when(600, True),
            "lastModifiedDateTime": self.when(200, True),
            "roleScopeTagIds": ["0"],
            "id": wid,
            "version": f'"{rng.getrandbits(64):016x}"',
            "enforcementLevel": "encryptAndAuditOnly",
            "enterpriseDomain": "example.com",
            "protectionUnderLockConfigRequired": False,
            "isAssigned": False,
        }
        self.data.subs["managedAppPolicies"][wid] = {"apps": [], "assignments": []}

    def app_configurations(self) -> None:
        rng = self.rng
        acct = self.data.intune_account_id
        for i in range(self.scale(0.3, 2, 20)):
            plat = ("ios", "android")[i % 2]
            cid = _guid(rng)
            created = self.when(600, True)
            app_ids = self.apps_by_platform.get(plat, [])
            targeted = rng.sample(app_ids, min(len(app_ids), rng.randrange(1, 3))) if app_ids else []
            conf: JSON = {
                "@odata.type": "#microsoft.graph.iosMobileAppConfiguration"
                if plat == "ios"
                else "#microsoft.graph.androidManagedStoreAppConfiguration",
                "id": cid,
                "targetedMobileApps": targeted,
                "roleScopeTagIds": ["0"],
                "createdDateTime": created,
                "description": f"Managed settings {i + 1}",
                "lastModifiedDateTime": max(created, self.when(200, True)),
                "displayName": f"{plat} app configuration {i + 1}",
                "version": rng.randrange(1, 5),
            }
            if plat == "ios":
                conf["encodedSettingXml"] = None
                conf["settings"] = [
                    {
                        "appConfigKey": "IntuneMAMUPN",
                        "appConfigKeyType": "stringType",
                        "appConfigKeyValue": "{{userprincipalname}}",
                    }
                ]
            else:
                conf.update(
                    {
                        "packageId": "app:com.microsoft.office.outlook",
                        "payloadJson": _b64("{}"),
                        "permissionActions": [],
                        "appSupportsOemConfig": False,
                        "profileApplicability": "default",
                    }
                )
            rows = []
            problem = (
                ("compliant", 85),
                ("nonCompliant", 5),
                ("error", 4),
                ("conflict", 2),
                ("notApplicable", 4),
            )
            for dev in self.sample_devices(plat, 0.3):
                reported = dev["lastSyncDateTime"][:19] + f".{rng.randrange(10**7):07d}Z"
                rows.append(_status_row(acct, cid, dev, _weighted(rng, problem), reported, beta=False))
            self.data.items["mobileAppConfigurations"][cid] = conf
            self.data.subs["mobileAppConfigurations"][cid] = {
                "deviceStatuses": rows,
                "assignments": self.assignments(
                    "#microsoft.graph.managedDeviceMobileAppConfigurationAssignment"
                ),
            }

    def intents(self) -> None:
        rng = self.rng
        templates = (
            ("Antivirus", "804339ad-1553-4478-a742-138fb5807418"),
            ("Disk encryption", "d1174162-1dd2-4976-affc-6667049ab0ae"),
            ("Firewall", "4356d05c-a4ab-4a07-9ece-739f7c792910"),
            ("Attack surface reduction", "0e237410-1367-4844-bd7f-15fb0f08943b"),
            ("Endpoint detection and response", "e44c2ca3-2f9a-400a-a113-6cc88efd773d"),
        )
        win_apps = self.apps_by_platform.get("windows", [])
        for i in range(self.scale(0.4, 3, 30)):
            label, template_id = templates[i % len(templates)]
            iid = _guid(rng)
            settings: list[JSON] = [
                {
                    "@odata.type": "#microsoft.graph.deviceManagementBooleanSettingInstance",
                    "id": _guid(rng),
                    "definitionId": f"deviceConfiguration--{label.replace(' ', '')}_enabled",
                    "valueJson": "true",
                    "value": True,
                },
                {
                    "@odata.type": "#microsoft.graph.deviceManagementIntegerSettingInstance",
                    "id": _guid(rng),
                    "definitionId": f"deviceConfiguration--{label.replace(' ', '')}_scanIntervalHours",
                    "valueJson": "4",
                    "value": 4,
                },
            ]
            if win_apps and rng.random() < 0.6:
                refs = rng.sample(win_apps, min(len(win_apps), rng.randrange(1, 3)))
                settings.append(
                    {
                        "@odata.type": "#microsoft.graph.deviceManagementCollectionSettingInstance",
                        "id": _guid(rng),
                        "definitionId": "deviceConfiguration--appLockerApplicationControl_allowedMobileApps",
                        "valueJson": json.dumps(refs),
                    }
                )
            states = []
            for dev in self.sample_devices("windows", 0.5):
                st = _weighted(
                    rng,
                    (
                        ("compliant", 85),
                        ("nonCompliant", 5),
                        ("error", 3),
                        ("conflict", 2),
                        ("notApplicable", 5),
                    ),
                )
                states.append(
                    {
                        "id": f"{iid}_{dev['id']}",
                        "userPrincipalName": dev["userPrincipalName"] or None,
                        "userName": dev["userDisplayName"] or None,
                        "deviceDisplayName": dev["deviceName"],
                        "lastReportedDateTime": dev["lastSyncDateTime"][:19] + ".0000000Z",
                        "state": st,
                        "deviceId": dev["id"],
                    }
                )
            self.data.items["intents"][iid] = {
                "id": iid,
                "displayName": f"{label} profile {i // len(templates) + 1}",
                "description": f"Endpoint security: {label}",
                "isAssigned": True,
                "lastModifiedDateTime": self.when(300, True),
                "templateId": template_id,
                "roleScopeTagIds": ["0"],
            }
            self.data.subs["intents"][iid] = {
                "assignments": [
                    {"id": a["id"], "target": a["target"]}
                    for a in self.assignments("#microsoft.graph.deviceManagementIntentAssignment", "device")
                ],
                "deviceStates": states,
                "settings": settings,
            }


def _compliance_settings(platform: str, rng: random.Random) -> JSON:
    if platform == "windows":
        return {
            "passwordRequired": True,
            "passwordBlockSimple": False,
            "passwordRequiredToUnlockFromIdle": False,
            "passwordMinutesOfInactivityBeforeLock": None,
            "passwordExpirationDays": None,
            "passwordMinimumLength": rng.choice((None, 8, 12)),
            "passwordMinimumCharacterSetCount": None,
            "passwordRequiredType": "deviceDefault",
            "passwordPreviousPasswordBlockCount": None,
            "requireHealthyDeviceReport": False,
            "osMinimumVersion": "10.0.19045",
            "osMaximumVersion": None,
            "mobileOsMinimumVersion": None,
            "mobileOsMaximumVersion": None,
            "earlyLaunchAntiMalwareDriverEnabled": False,
            "bitLockerEnabled": True,
            "secureBootEnabled": True,
            "codeIntegrityEnabled": rng.random() < 0.5,
            "storageRequireEncryption": True,
        }
    if platform == "ios":
        return {
            "passcodeBlockSimple": False,
            "passcodeExpirationDays": None,
            "passcodeMinimumLength": rng.choice((None, 6)),
            "passcodeMinutesOfInactivityBeforeLock": None,
            "passcodePreviousPasscodeBlockCount": None,
            "passcodeMinimumCharacterSetCount": None,
            "passcodeRequiredType": "deviceDefault",
            "passcodeRequired": True,
            "osMinimumVersion": "16.0",
            "osMaximumVersion": None,
            "securityBlockJailbrokenDevices": True,
            "deviceThreatProtectionEnabled": False,
            "deviceThreatProtectionRequiredSecurityLevel": "unavailable",
            "managedEmailProfileRequired": False,
        }
    if platform == "android":
        return {
            "passwordRequired": True,
            "passwordMinimumLength": 6,
            "passwordRequiredType": "numericComplex",
            "passwordMinutesOfInactivityBeforeLock": 5,
            "passwordExpirationDays": None,
            "passwordPreviousPasswordBlockCount": None,
            "securityPreventInstallAppsFromUnknownSources": True,
            "securityDisableUsbDebugging": True,
            "securityRequireVerifyApps": True,
            "deviceThreatProtectionEnabled": False,
            "deviceThreatProtectionRequiredSecurityLevel": "unavailable",
            "securityBlockJailbrokenDevices": True,
            "osMinimumVersion": "12",
            "osMaximumVersion": None,
            "minAndroidSecurityPatchLevel": None,
            "storageRequireEncryption": True,
        }
    return {
        "passwordRequired": True,
        "passwordBlockSimple": True,
        "passwordExpirationDays": None,
        "passwordMinimumLength": 10,
        "passwordMinutesOfInactivityBeforeLock": 15,
        "passwordPreviousPasswordBlockCount": None,
        "passwordMinimumCharacterSetCount": None,
        "passwordRequiredType": "deviceDefault",
        "osMinimumVersion": "13.0",
        "osMaximumVersion": None,
        "systemIntegrityProtectionEnabled": True,
        "deviceThreatProtectionEnabled": False,
        "deviceThreatProtectionRequiredSecurityLevel": "unavailable",
        "storageRequireEncryption": True,
        "firewallEnabled": rng.random() < 0.8,
        "firewallBlockAllIncoming": False,
        "firewallEnableStealthMode": False,
    }


def _configuration_settings(ctype: str, rng: random.Random) -> JSON:
    if ctype.endswith("CustomConfiguration"):
        if ctype.startswith("windows10"):
            return {
                "omaSettings": [
                    {
                        "@odata.type": "#microsoft.graph.omaSettingInteger",
                        "displayName": "Disable camera",
                        "description": None,
                        "omaUri": "./Vendor/MSFT/Policy/Config/Camera/AllowCamera",
                        "value": 0,
                    }
                ]
            }
        return {
            "payloadName": "Custom profile",
            "payloadFileName": "profile.mobileconfig",
            "payload": _b64(
                f"<plist><dict><key>n</key><integer>{rng.randrange(1000)}</integer></dict></plist>"
            ),
        }
    if ctype == "windows10EndpointProtectionConfiguration":
        return {
            "firewallBlockStatefulFTP": True,
            "firewallIdleTimeoutForSecurityAssociationInSeconds": None,
            "defenderAttackSurfaceReductionExcludedPaths": [],
            "bitLockerEncryptDevice": True,
            "bitLockerDisableWarningForOtherDiskEncryption": True,
            "smartScreenBlockOverrideForFiles": True,
            "applicationGuardEnabled": False,
            "firewallProfileDomain": None,
        }
    return {
        "passwordRequired": rng.random() < 0.7,
        "passwordMinimumLength": rng.choice((None, 6, 8)),
        "passwordRequiredType": "deviceDefault",
        "cameraBlocked": rng.random() < 0.1,
        "bluetoothBlocked": False,
        "screenCaptureBlocked": rng.random() < 0.2,
        "diagnosticsDataSubmissionMode": "userDefined",
        "storageRequireDeviceEncryption": True,
    }


def _app_type_props(odata_type: str, name: str, rng: random.Random) -> JSON:
    slug = "".join(ch for ch in name.lower() if ch.isalnum()) or "app"
    if "ios" in odata_type.lower():
        return {
            "bundleId": f"com.example.{slug}",
            "appStoreUrl": f"https://apps.apple.com/app/{slug}/id{rng.randrange(10**9)}",
            "applicableDeviceType": {"iPad": True, "iPhoneAndIPod": True},
            "minimumSupportedOperatingSystem": {"v15_0": True},
        }
    if "android" in odata_type.lower():
        return {
            "packageId": f"com.example.{slug}",
            "appIdentifier": f"com.example.{slug}",
            "appStoreUrl": f"https://play.google.com/store/apps/details?id=com.example.{slug}",
            "isSystemApp": False,
            "minimumSupportedOperatingSystem": {"v10_0": True},
        }
    if odata_type.endswith("webApp"):
        return {"appUrl": f"https://{slug}.example.com", "useManagedBrowser": False}
    if odata_type.endswith("macOSLobApp"):
        return {
            "bundleId": f"com.example.{slug}",
            "fileName": f"{slug}.pkg",
            "size": rng.randrange(10**6, 10**9),
            "buildNumber": str(rng.randrange(100, 999)),
            "versionNumber": f"{rng.randrange(1, 20)}.0",
        }
    if odata_type.endswith("officeSuiteApp"):
        return {
            "autoAcceptEula": True,
            "productIds": ["o365ProPlusRetail"],
            "updateChannel": "current",
            "officePlatformArchitecture": "x64",
            "localesToInstall": ["en-us"],
        }
    return {
        "fileName": f"{slug}.intunewin",
        "size": rng.randrange(10**6, 10**9),
        "installCommandLine": f"{slug}-setup.exe /S",
        "uninstallCommandLine": f"{slug}-setup.exe /uninstall /S",
        "applicableArchitectures": "x64",
        "setupFilePath": f"{slug}-setup.exe",
        "displayVersion": None,
    }


def generate_intune(rng: random.Random, tenant: TenantLike, managed_devices: int) -> IntuneData:
    """Deterministic Intune tenant in proportion to ``managed_devices``, linked to ``tenant``.

    Managed devices take their user from the tenant's users and their ``azureADDeviceId`` from
    its Entra devices (one Entra device each while there are enough; later ones are not
    Entra-registered and carry the zero GUID, as in the recordings). Assignments target tenant
    groups. The same seed and tenant give byte-identical output.
    """
    gen = _Gen(rng, tenant, managed_devices)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # ~10^6 fresh acyclic dicts: cyclic GC passes would only cost time
    try:
        categories = gen.categories()
        gen.managed_devices(categories)
        gen.detected_apps()
        gen.compliance_policies()
        gen.configurations()
        gen.scripts()
        app_categories = gen.app_categories()
        gen.mobile_apps(app_categories)
        gen.app_policies()
        gen.app_configurations()
        gen.intents()
    finally:
        if gc_was_enabled:
            gc.enable()
    return gen.data
