"""Intune collections: no delta and no notifications, so they are polled and diffed locally.

A poll lists a collection (one request per page; small sub-resources such as assignments come
with it through `$expand`), then reads the other sub-resources only for objects that may have
changed since the last poll:

- the listed object itself changed (a hash of what the list shows: covers `lastModifiedDateTime`,
  `lastSyncDateTime`, expanded assignments and anything else);
- or, for collections whose sub-resources name managed devices (statuses, run states, install
  states), a managed device they named changed (its `lastSyncDateTime`/`complianceState`, as
  seen by the last managed-devices round or early re-fetch): Graph does not bump a policy's
  `lastModifiedDateTime` when one of its device statuses changes.

Navigation properties are read through `$batch` (20 per call, `intune_concurrency` calls in
flight); detected apps of many devices and app install statuses come from Intune report
exports (`syncd.sources.intune_bulk`), never one request per device in a full pass. Every
request is paid from the Intune budget of the shared Graph client (`syncd.graph.budget`).

Every `intune_full_pass_every`-th poll (and the first one of a process, and `force_full`)
re-reads everything to catch what those signals miss. A poll is a *full* round: objects gone
from the list are swept, skipped objects are kept. A failed list, a permission or "no Intune"
answer, or a URL Graph does not know fails the round before anything is staged, so a failure
never turns into deletions (the engine marks the origin partial); one object whose sub-resources
keep failing with transient errors keeps its last state instead. A tenant without Intune (400
"Request not applicable to target tenant.") makes the rounds *skipped*, logged once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import structlog

from syncd import metrics
from syncd.aio import gather_or_cancel
from syncd.graph.client import GraphClient
from syncd.graph.errors import GraphError, NotApplicableTenant, NotFound, batch_item_error
from syncd.mirror import RoundWriter
from syncd.model import schema as m
from syncd.model.convert import intune as conv
from syncd.model.convert.common import SCRIPT_CONTENT_FIELDS
from syncd.sources.alerting import change_hook_for
from syncd.sources.base import RoundReport, Source, SourceContext
from syncd.sources.intune_bulk import INSTALL_REPORT, BulkReports

if TYPE_CHECKING:
    from syncd.config import Settings
    from syncd.engine import Engine
    from syncd.sources.account import AccountSource

log = structlog.get_logger(__name__)

ORIGIN_PREFIX = "intune:"
NO_INTUNE_REASON = "tenant has no Intune (Request not applicable to target tenant)"


INVENTORY = "inventory"
"""A sub-resource read per device or, in bulk, from the ``AppInvRawData`` export."""
INSTALLS = "installs"
"""Install statuses: ``DeviceInstallStatusByApp`` exports (no per-app navigation exists)."""
NAVIGATION = "navigation"


@dataclass(frozen=True)
class SubResource:
    """A navigation property fetched per object and embedded under `key`."""

    key: str
    path: str
    """Relative to the object, e.g. `deviceStatuses`."""
    version: str = "v1.0"
    params: str = ""
    needs_source: str | None = None
    """Only fetched when this `[sync] sources` switch is on (detected apps need `applications`)."""
    typed: Mapping[str, str] = field(default_factory=dict)
    """`@odata.type` -> the typed collection that has this navigation (`apps` of app-protection
    policies lives on `iosManagedAppProtections/{id}/apps` ...). When set, objects of other types
    have no such navigation: nothing is requested and nothing embedded."""
    kind: str = NAVIGATION
    expand: bool = False
    """Small lists read with the collection itself (`?$expand=<key>`, one request for all
    objects). A list request that refuses the `$expand` is repeated without it and these are
    then read per object (logged once)."""
    owned_types: tuple[str, ...] = ()
    """Relationship types made from this sub-resource only: staged under their own owner
    (`<id>#<key>`), so when it cannot be read its last state is kept while the object updates."""


@dataclass(frozen=True)
class Collection:
    """One Intune poll unit (see docs/architecture.md, "Intune collections")."""

    name: str
    source: str
    version: str
    path: str
    subs: tuple[SubResource, ...] = ()
    stamp: str | None = "lastModifiedDateTime"
    types: tuple[str, ...] = ()
    cadence: Literal["devices", "policies"] = "policies"
    """Which `[sync] intune_*_interval` schedules its polls."""
    depends_on: tuple[str, ...] = ()
    """Collections whose committed rounds this one reads (lookups, device stamps): a concurrent
    resync runs it after them."""

    @property
    def origin(self) -> str:
        return ORIGIN_PREFIX + self.name


def _types(*items: m.EntityType | m.RelationshipType) -> tuple[str, ...]:
    return tuple(i.type for i in items)


DM = "/deviceManagement"
DAM = "/deviceAppManagement"
MANAGED_DEVICES_ORIGIN = ORIGIN_PREFIX + conv.MANAGED_DEVICES
MOBILE_APPS_ORIGIN = ORIGIN_PREFIX + conv.MOBILE_APPS
APP_PROTECTION_COLLECTIONS: Mapping[str, str] = {
    "#microsoft.graph.iosManagedAppProtection": f"{DAM}/iosManagedAppProtections",
    "#microsoft.graph.androidManagedAppProtection": f"{DAM}/androidManagedAppProtections",
    "#microsoft.graph.targetedManagedAppConfiguration": f"{DAM}/targetedManagedAppConfigurations",
    "#microsoft.graph.defaultManagedAppProtection": f"{DAM}/defaultManagedAppProtections",
}
"""App-protection types with a documented `apps` navigation, and the collection that has it
(`managedAppPolicy` itself has no relationships; Windows Information Protection has no `apps`)."""
RUN_STATE_EXPAND = "$expand=managedDevice($select=id)"
BATCH_SIZE = 20
"""Graph's `$batch` limit."""
NULL_GUID = "00000000-0000-0000-0000-000000000000"
"""`azureADDeviceId` of a device that is not Entra-registered."""

COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        conv.DEVICE_CATEGORIES,
        m.SOURCE_DEVICES,
        "v1.0",
        f"{DM}/deviceCategories",
        stamp=None,
        types=_types(m.DEVICE_CATEGORY),
        cadence="devices",
        depends_on=("account",),
    ),
    Collection(
        conv.MANAGED_DEVICES,
        m.SOURCE_DEVICES,
        "beta",
        f"{DM}/managedDevices",
        subs=(
            SubResource(
                "detectedApps", "detectedApps", "beta", needs_source=m.SOURCE_APPLICATIONS, kind=INVENTORY
            ),
        ),
        stamp="lastSyncDateTime",
        types=_types(
            m.MANAGED_DEVICE,
            m.DETECTED_APPLICATION,
            m.USER_OWNS_DEVICE,
            m.CATEGORY_HAS_DEVICE,
            m.DEVICE_HAS_DETECTED_APP,
        ),
        cadence="devices",
        depends_on=(ORIGIN_PREFIX + conv.DEVICE_CATEGORIES,),
    ),
    Collection(
        conv.MOBILE_APP_CATEGORIES,
        m.SOURCE_APPLICATIONS,
        "v1.0",
        f"{DAM}/mobileAppCategories",
        types=_types(m.APPLICATION_CATEGORY),
        depends_on=("account",),
    ),
    Collection(
        conv.MOBILE_APPS,
        m.SOURCE_APPLICATIONS,
        "v1.0",
        f"{DAM}/mobileApps",
        subs=(
            SubResource("categories", "categories", expand=True),
            SubResource("assignments", "assignments", expand=True),
            SubResource(
                "deviceStatuses",
                "",
                "beta",
                kind=INSTALLS,
                owned_types=_types(m.DEVICE_ASSIGNED_APPLICATION),
            ),
        ),
        types=_types(m.MANAGED_APPLICATION, m.APP_CATEGORY_HAS_APPLICATION, m.DEVICE_ASSIGNED_APPLICATION),
        depends_on=(MANAGED_DEVICES_ORIGIN,),
    ),
    Collection(
        conv.DEVICE_COMPLIANCE_POLICIES,
        m.SOURCE_COMPLIANCE,
        "v1.0",
        f"{DM}/deviceCompliancePolicies",
        subs=(
            SubResource("assignments", "assignments", expand=True),
            SubResource("deviceStatuses", "deviceStatuses"),
            SubResource("userStatuses", "userStatuses"),
            SubResource(
                "scheduledActionsForRule",
                "scheduledActionsForRule",
                params="$expand=scheduledActionConfigurations",
            ),
        ),
        types=_types(
            m.COMPLIANCE_POLICY,
            m.COMPLIANCE_ACTION_ITEM,
            m.NONCOMPLIANCE_FINDING,
            m.DEVICE_ASSIGNED_COMPLIANCE_POLICY,
            m.USER_ASSIGNED_COMPLIANCE_POLICY,
            m.GROUP_ASSIGNED_COMPLIANCE_POLICY,
            m.POLICY_HAS_ACTION_ITEM,
            m.POLICY_IDENTIFIED_FINDING,
            m.ACTION_ITEM_MITIGATES_FINDING,
            m.DEVICE_HAS_FINDING,
        ),
        depends_on=("users", MANAGED_DEVICES_ORIGIN),
    ),
    Collection(
        conv.DEVICE_CONFIGURATIONS,
        m.SOURCE_CONFIGURATIONS,
        "v1.0",
        f"{DM}/deviceConfigurations",
        subs=(
            SubResource("assignments", "assignments", expand=True),
            SubResource("deviceStatuses", "deviceStatuses"),
        ),
        types=_types(
            m.DEVICE_CONFIGURATION,
            m.NONCOMPLIANCE_FINDING,
            m.DEVICE_USES_CONFIGURATION,
            m.GROUP_ASSIGNED_CONFIGURATION,
            m.DEVICE_HAS_FINDING,
        ),
        depends_on=(MANAGED_DEVICES_ORIGIN,),
    ),
    Collection(
        conv.DEVICE_COMPLIANCE_SCRIPTS,
        m.SOURCE_SCRIPTS,
        "beta",
        f"{DM}/deviceComplianceScripts",
        subs=(SubResource("deviceRunStates", "deviceRunStates", "beta", RUN_STATE_EXPAND),),
        types=_types(
            m.COMPLIANCE_SCRIPT,
            m.NONCOMPLIANCE_FINDING,
            m.COMPLIANCE_SCRIPT_MONITORS_DEVICE,
            m.COMPLIANCE_SCRIPT_IDENTIFIED_FINDING,
            m.DEVICE_HAS_FINDING,
        ),
        depends_on=(MANAGED_DEVICES_ORIGIN,),
    ),
    Collection(
        conv.DEVICE_MANAGEMENT_SCRIPTS,
        m.SOURCE_SCRIPTS,
        "beta",
        f"{DM}/deviceManagementScripts",
        subs=(
            SubResource("groupAssignments", "groupAssignments", "beta"),
            SubResource("deviceRunStates", "deviceRunStates", "beta", RUN_STATE_EXPAND),
        ),
        types=_types(
            m.MANAGEMENT_SCRIPT, m.GROUP_ASSIGNED_MANAGEMENT_SCRIPT, m.MANAGEMENT_SCRIPT_MANAGES_DEVICE
        ),
        depends_on=(MANAGED_DEVICES_ORIGIN,),
    ),
    Collection(
        conv.INTENTS,
        m.SOURCE_ENDPOINT_SECURITY,
        "beta",
        f"{DM}/intents",
        subs=(
            SubResource("assignments", "assignments", "beta"),
            SubResource("deviceStates", "deviceStates", "beta"),
            SubResource("settings", "settings", "beta"),
        ),
        types=_types(
            m.ENDPOINT_SECURITY_SETTING,
            m.NONCOMPLIANCE_FINDING,
            m.DEVICE_ASSIGNED_ENDPOINT_SETTING,
            m.ENDPOINT_SETTING_IDENTIFIED_FINDING,
            m.APPLICATION_HAS_ENDPOINT_SETTING,
            m.DEVICE_HAS_FINDING,
        ),
        depends_on=(MANAGED_DEVICES_ORIGIN, MOBILE_APPS_ORIGIN),
    ),
    Collection(
        conv.MANAGED_APP_POLICIES,
        m.SOURCE_APPLICATIONS,
        "v1.0",
        f"{DAM}/managedAppPolicies",
        subs=(SubResource("apps", "apps", typed=APP_PROTECTION_COLLECTIONS),),
        types=_types(m.APPLICATION_POLICY, m.APPLICATION_ASSIGNED_POLICY),
        depends_on=(MOBILE_APPS_ORIGIN,),
    ),
    Collection(
        conv.MOBILE_APP_CONFIGURATIONS,
        m.SOURCE_APPLICATIONS,
        "v1.0",
        f"{DAM}/mobileAppConfigurations",
        subs=(SubResource("deviceStatuses", "deviceStatuses"),),
        types=_types(
            m.APPLICATION_CONFIGURATION,
            m.NONCOMPLIANCE_FINDING,
            m.APPLICATION_USES_CONFIGURATION,
            m.APP_CONFIGURATION_IDENTIFIED_FINDING,
            m.DEVICE_HAS_FINDING,
        ),
        depends_on=(MANAGED_DEVICES_ORIGIN,),
    ),
)
"""Polled in this order on a first sync, so lookups (categories, apps) exist before their users,
and managed devices (whose stamps drive the status re-fetches) before every status collection."""

DEVICE_LINKED_SUBS: tuple[str, ...] = ("deviceStatuses", "deviceRunStates", "deviceStates")
"""Embedded sub-resources whose items name a managed device."""

COLLECTION_BY_ORIGIN = {c.origin: c for c in COLLECTIONS}
INTUNE_ORIGIN_TYPES: dict[str, list[str]] = {c.origin: list(c.types) for c in COLLECTIONS}
INTUNE_SOURCE_ORIGINS: dict[str, list[str]] = {}
for _c in COLLECTIONS:
    INTUNE_SOURCE_ORIGINS.setdefault(_c.source, []).append(_c.origin)


BULK_MIN_OBJECTS = 25
"""Below this, per-device requests (one each) are cheaper and faster than an export job."""


@dataclass
class IntuneShared:
    """State shared by every Intune collection source of one daemon.

    The request budget and Retry-After gate are not here: they live in the Graph client
    (``syncd.graph.budget``), shared with every other source.
    """

    concurrency: asyncio.Semaphore
    enabled_sources: set[str]
    full_pass_every: int
    account: AccountSource | None = None
    unavailable: str | None = None
    polls: dict[str, int] = field(default_factory=dict)
    device_stamps: dict[str, str] = field(default_factory=dict)
    """Managed device id -> `lastSyncDateTime|complianceState`, as of the last committed devices
    round or early re-fetch; status collections compare it with what they saw last time."""
    bulk: BulkReports = field(default_factory=BulkReports)
    bulk_min_objects: int = BULK_MIN_OBJECTS
    """Fetching detected apps for at least this many devices uses the inventory export."""


TRANSIENT_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


def _device_stamp(device: Mapping[str, Any]) -> str:
    return f"{device.get('lastSyncDateTime')}|{device.get('complianceState')}"


def _top_hash(obj: Mapping[str, Any]) -> str:
    """Hash of a listed object's own properties (what the list shows; sub-resources excluded)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Embedded:
    """What fetching sub-resources gave: objects that failed, and sub-resources left unread."""

    failed: dict[str, GraphError] = field(default_factory=dict)
    """object id -> the error that outlasted the retries (the object keeps its last state)."""
    unread: set[tuple[str, str]] = field(default_factory=set)
    """(object id, sub key) of `owned_types` sub-resources that could not be read (kept)."""


def owner_of(obj_id: str, sub_key: str) -> str:
    """The owner key of the rows made from one sub-resource (its `SubResource.key`) of one object."""
    return f"{obj_id}#{sub_key}"


class IntuneCollectionSource:
    """Polls one Intune collection."""

    def __init__(self, collection: Collection, shared: IntuneShared) -> None:
        self.collection = collection
        self.shared = shared
        self.origin = collection.origin
        self.depends_on = collection.depends_on
        self.device_linked = any(s.key in DEVICE_LINKED_SUBS for s in collection.subs)
        # What the last committed rounds saw (in memory: a new process starts with a full pass).
        self._hashes: dict[str, str] = {}
        self._object_devices: dict[str, set[str]] = {}
        self._device_objects: dict[str, set[str]] = {}
        self._devices_seen: dict[str, str] | None = None
        self.last_fetched = 0
        """Objects whose sub-resources the last round fetched (for tests and benches)."""
        self.last_bulk = False
        """Whether the last round read detected apps from the inventory export."""
        self.expand_refused = False

    def _subs(self) -> list[SubResource]:
        return [
            s
            for s in self.collection.subs
            if s.needs_source is None or s.needs_source in self.shared.enabled_sources
        ]

    def _intune_unavailable(self) -> bool:
        """Whether Graph said definitively that the tenant has no Intune (the account round or one
        of these sources saw "not applicable to target tenant"; the account round clears it)."""
        account = self.shared.account
        if account is not None and account.intune_available is True:
            self.shared.unavailable = None  # the account round saw Intune (again)
        return (account is not None and account.intune_available is False) or bool(self.shared.unavailable)

    def _skipped(self, report: RoundReport) -> RoundReport:
        """The report of a round skipped because the tenant has no Intune."""
        report.kind = "skipped"
        report.absent = True
        report.skip_reason = self.shared.unavailable or NO_INTUNE_REASON
        return report

    async def run(self, ctx: SourceContext, *, force_full: bool = False) -> RoundReport:
        started = time.monotonic()
        report = RoundReport(origin=self.origin, kind="poll")
        if self._intune_unavailable():
            return self._skipped(report)
        polls = self.shared.polls.get(self.origin, 0)
        full_pass = (
            force_full
            or polls % max(1, self.shared.full_pass_every) == 0
            or (self.device_linked and self._devices_seen is None)
        )
        devices_now = dict(self.shared.device_stamps) if self.device_linked else {}
        try:
            objects = await self._list(ctx.graph)
        except NotApplicableTenant:
            return self._skipped(report)
        report.pages = 1
        hashes = {str(o["id"]): self._hash(o) for o in objects}
        if full_pass:
            fetch = objects
        else:
            linked = self._objects_of_changed_devices(devices_now)
            fetch = [
                o
                for o in objects
                if self._hashes.get(str(o["id"])) != hashes[str(o["id"])] or str(o["id"]) in linked
            ]
        embedded = await self._embed(ctx.graph, fetch)
        fetched = [o for o in fetch if str(o["id"]) not in embedded.failed]
        fetched_ids = {str(o["id"]) for o in fetched}
        keep = [oid for oid in hashes if oid not in fetched_ids]
        keep += [owner_of(oid, key) for oid, key in embedded.unread]
        keep += [owner_of(oid, s.key) for oid in keep if oid in hashes for s in self._owned_subs()]
        lookups = await self._lookups(ctx)
        baseline = await ctx.mirror.get_cursor(f"poll:{self.origin}") is None
        round_ = await ctx.mirror.begin_round(self.origin, full=True)
        try:
            for obj in fetched:
                await self._stage(round_, obj, ctx, lookups, embedded)
            if keep:
                await round_.keep(keep)
            await round_.stage_raw(self.origin, [_strip_subs(o, self.collection) for o in fetched])
        except BaseException:
            await round_.discard()
            raise
        result = await round_.commit(
            cursors={f"poll:{self.origin}": str(time.time())},
            change_hook=None if baseline else change_hook_for(ctx),
            collect_changes=False,
        )
        # Committed: remember what this round saw (failed objects are fetched again next time).
        self.shared.polls[self.origin] = polls + 1
        for gone in set(self._hashes) - set(hashes):
            self._forget(gone)
        for obj in fetched:
            self._remember(obj, hashes[str(obj["id"])])
        for oid in embedded.failed:
            self._hashes.pop(oid, None)
        if self.shared.bulk.available(INSTALL_REPORT):
            for oid, _key in embedded.unread:  # an export that failed: read again next poll
                self._hashes.pop(oid, None)
        if self.device_linked:
            self._devices_seen = devices_now
        if self.collection.name == conv.MANAGED_DEVICES:
            self.shared.device_stamps = {str(o["id"]): _device_stamp(o) for o in objects}
        self.last_fetched = len(fetched)
        report.objects = len(objects)
        report.count_changes(result.counts)
        report.outbox_added = result.outbox_added
        report.baseline = baseline
        report.duration = time.monotonic() - started
        log.debug(
            "intune poll",
            origin=self.origin,
            full_pass=full_pass,
            listed=len(objects),
            fetched=len(fetched),
            failed=len(embedded.failed),
        )
        return report

    def _hash(self, obj: Mapping[str, Any]) -> str:
        """What the list shows of an object: its own properties and the expanded sub-resources
        (a changed assignment is seen without reading anything else)."""
        expanded = {s.key for s in self._expanded()}
        drop = {s.key for s in self.collection.subs if s.key not in expanded} | set(SCRIPT_CONTENT_FIELDS)
        return _top_hash({k: v for k, v in obj.items() if k not in drop})

    def _owned_subs(self) -> list[SubResource]:
        return [s for s in self._subs() if s.owned_types]

    async def _stage(
        self,
        round_: RoundWriter,
        obj: dict[str, Any],
        ctx: SourceContext,
        lookups: conv.IntuneLookups,
        embedded: Embedded,
    ) -> None:
        """Stage one object; rows of `owned_types` go under their sub-resource's own owner."""
        oid = str(obj["id"])
        derived = conv.convert_intune(self.collection.name, obj, ctx.convert, lookups)
        rels = list(derived.relationships)
        for sub in self._owned_subs():
            owned = [r for r in rels if r["_type"] in sub.owned_types]
            rels = [r for r in rels if r["_type"] not in sub.owned_types]
            if (oid, sub.key) not in embedded.unread:
                await round_.stage(owner_of(oid, sub.key), (), owned, replace=True)
        await round_.stage(oid, derived.entities, rels, replace=True)

    def _objects_of_changed_devices(self, devices_now: Mapping[str, str]) -> set[str]:
        """Objects whose sub-resources named a device that changed (or went) since the last round."""
        if not self.device_linked or self._devices_seen is None:
            return set()
        seen = self._devices_seen
        changed = {d for d, stamp in devices_now.items() if seen.get(d) != stamp}
        changed.update(d for d in seen if d not in devices_now)
        out: set[str] = set()
        for device in changed:
            out.update(self._device_objects.get(device, ()))
        return out

    def _remember(self, obj: Mapping[str, Any], top_hash: str) -> None:
        oid = str(obj["id"])
        self._hashes[oid] = top_hash
        if not self.device_linked:
            return
        devices = set(_named_devices(obj, self.collection.name))
        for device in self._object_devices.get(oid, set()) - devices:
            objs = self._device_objects.get(device)
            if objs is not None:
                objs.discard(oid)
                if not objs:
                    del self._device_objects[device]
        for device in devices:
            self._device_objects.setdefault(device, set()).add(oid)
        self._object_devices[oid] = devices

    def _forget(self, oid: str) -> None:
        self._hashes.pop(oid, None)
        for device in self._object_devices.pop(oid, set()):
            objs = self._device_objects.get(device)
            if objs is not None:
                objs.discard(oid)
                if not objs:
                    del self._device_objects[device]

    async def refetch(self, ctx: SourceContext, ids: Sequence[str]) -> RoundReport:
        """Early re-fetch of a few objects (an Entra device changed): a partial, non-sweeping round.

        Only the named objects are read (one GET each, plus their own sub-resources): never a
        bulk export, never the whole collection. Run as a round of this origin
        (`refetch_for_entra_devices`).
        """
        started = time.monotonic()
        report = RoundReport(origin=self.origin, kind="poll")
        if self._intune_unavailable():
            return self._skipped(report)
        objects: list[dict[str, Any]] = []
        for obj_id in ids:
            try:
                obj = await ctx.graph.get(f"{self.collection.path}/{obj_id}", version=self.collection.version)
            except NotFound:
                continue
            except NotApplicableTenant:
                self._no_intune()
                return self._skipped(report)
            if isinstance(obj, dict) and obj.get("id"):
                obj = {k: v for k, v in obj.items() if not k.startswith("@odata.context")}
                objects.append(obj)
        embedded = await self._embed(ctx.graph, objects, bulk=False)
        objects = [o for o in objects if str(o["id"]) not in embedded.failed]
        lookups = await self._lookups(ctx)
        round_ = await ctx.mirror.begin_round(self.origin, full=False)
        try:
            for obj in objects:
                await self._stage(round_, obj, ctx, lookups, embedded)
            await round_.stage_raw(self.origin, [_strip_subs(o, self.collection) for o in objects])
        except BaseException:
            await round_.discard()
            raise
        result = await round_.commit(change_hook=change_hook_for(ctx), collect_changes=False)
        for obj in objects:
            self._remember(obj, self._hash(obj))
            if self.collection.name == conv.MANAGED_DEVICES:
                self.shared.device_stamps[str(obj["id"])] = _device_stamp(obj)
        self.last_fetched = len(objects)
        report.kind = "refetch"
        report.objects = len(objects)
        report.count_changes(result.counts)
        report.outbox_added = result.outbox_added
        report.alerts = result.counts.get("alerts_added", 0)
        report.duration = time.monotonic() - started
        return report

    def _expanded(self) -> list[SubResource]:
        """Sub-resources this collection's list request expands (none once Graph refused it)."""
        if self.expand_refused:
            return []
        return [s for s in self._subs() if s.expand]

    async def _list(self, graph: GraphClient) -> list[dict[str, Any]]:
        expanded = self._expanded()
        params = {"$expand": ",".join(s.path for s in expanded)} if expanded else None
        objects: list[dict[str, Any]] = []
        try:
            async for page in graph.iter_pages(
                self.collection.path, params=params, version=self.collection.version
            ):
                objects.extend(o for o in page.get("value") or [] if isinstance(o, dict) and o.get("id"))
        except NotApplicableTenant:
            self._no_intune()
            raise
        except GraphError as exc:
            if not expanded or exc.status != 400:
                raise
            self.expand_refused = True
            log.warning(
                "Graph refused $expand on an Intune list: its sub-resources are read per object",
                origin=self.origin,
                expand=params,
                error=str(exc)[:200],
            )
            return await self._list(graph)
        for obj in objects:
            for sub in expanded:
                if not isinstance(obj.get(sub.key), list):
                    obj.pop(sub.key, None)  # not expanded after all: read per object
        return objects

    def _no_intune(self) -> None:
        if self.shared.account is not None:
            self.shared.account.intune_available = False
        if self.shared.unavailable is None:
            self.shared.unavailable = NO_INTUNE_REASON
            log.warning(
                "Intune types disabled: the tenant has no Intune (Request not applicable to target tenant)"
            )

    async def _embed(
        self, graph: GraphClient, objects: list[dict[str, Any]], *, bulk: bool = True
    ) -> Embedded:
        """Fetch every sub-resource of `objects`: navigations through `$batch` (≤ 20 per call,
        following paging, `intune_concurrency` batches in flight), detected apps from the
        inventory export when there are many devices, install statuses from their exports."""
        out = Embedded()
        subs = self._subs()
        self.last_bulk = False
        if not subs or not objects:
            return out
        navigation: list[SubResource] = []
        for sub in subs:
            if sub.expand and all(isinstance(o.get(sub.key), list) for o in objects):
                continue  # came with the list (`$expand`)
            if sub.kind == INVENTORY:
                many = bulk and len(objects) >= self.shared.bulk_min_objects
                if many and await self._inventory(graph, objects, sub):
                    self.last_bulk = True
                    continue
                navigation.append(sub)
            elif sub.kind == INSTALLS:
                await self._installs(graph, objects, sub, out)
            else:
                navigation.append(sub)
        await self._navigations(graph, objects, navigation, out)
        if out.failed:
            metrics.INTUNE_OBJECTS_KEPT.labels(origin=self.origin).inc(len(out.failed))
            log.warning(
                "Intune objects kept at their last state: their sub-resources failed after retries",
                origin=self.origin,
                objects=len(out.failed),
                error=str(next(iter(out.failed.values())))[:300],
            )
            if len(objects) > 1 and len(out.failed) * 2 > len(objects):
                # Not one flaky item: the collection is failing. Fail the round (partial).
                raise next(iter(out.failed.values()))
        return out

    async def _inventory(self, graph: GraphClient, objects: list[dict[str, Any]], sub: SubResource) -> bool:
        """Detected apps of every device from one export; False when the caller must fall back."""
        inventory = await self.shared.bulk.inventory(graph)
        if inventory is None:
            return False
        ids = [str(o["id"]) for o in objects]
        if not await self.shared.bulk.check_inventory(
            graph, inventory, ids, path=self.collection.path, version=sub.version
        ):
            return False
        for obj in objects:
            obj[sub.key] = inventory.detected_apps(str(obj["id"]))
        return True

    async def _installs(
        self, graph: GraphClient, objects: list[dict[str, Any]], sub: SubResource, out: Embedded
    ) -> None:
        """Install statuses per app from `DeviceInstallStatusByApp` exports. Apps Intune reports
        as not assigned have none (no request); apps whose export is unavailable keep theirs."""
        wanted = [str(o["id"]) for o in objects if o.get("isAssigned") is not False]
        found = await self.shared.bulk.installs(graph, wanted)
        for obj in objects:
            oid = str(obj["id"])
            if obj.get("isAssigned") is False:
                obj[sub.key] = []
            elif found is not None and oid in found:
                obj[sub.key] = found[oid]
            else:
                obj[sub.key] = []
                out.unread.add((oid, sub.key))

    async def _navigations(
        self, graph: GraphClient, objects: list[dict[str, Any]], subs: list[SubResource], out: Embedded
    ) -> None:
        requests_by_version: dict[str, list[tuple[dict[str, Any], SubResource, str]]] = {}
        for obj in objects:
            for sub in subs:
                url = self._sub_url(obj, sub)
                if url is None:
                    obj[sub.key] = []  # this object's type has no such navigation (documented)
                    continue
                requests_by_version.setdefault(sub.version, []).append((obj, sub, url))
        chunks = [
            (version, requests[i : i + BATCH_SIZE])
            for version, requests in requests_by_version.items()
            for i in range(0, len(requests), BATCH_SIZE)
        ]

        async def one(version: str, chunk: list[tuple[dict[str, Any], SubResource, str]]) -> None:
            async with self.shared.concurrency:
                responses = await graph.batch(
                    [{"id": str(i), "method": "GET", "url": url} for i, (_o, _s, url) in enumerate(chunk)],
                    version=version,
                )
                for (obj, sub, url), resp in zip(chunk, responses, strict=True):
                    await self._absorb(graph, obj, sub, url, resp, version, out)

        await gather_or_cancel(one(version, chunk) for version, chunk in chunks)

    def _sub_url(self, obj: Mapping[str, Any], sub: SubResource) -> str | None:
        base = self.collection.path
        if sub.typed:
            typed = sub.typed.get(str(obj.get("@odata.type") or ""))
            if typed is None:
                return None
            base = typed
        url = f"{base}/{obj['id']}/{sub.path}"
        return url + (f"?{sub.params}" if sub.params else "")

    async def _absorb(
        self,
        graph: GraphClient,
        obj: dict[str, Any],
        sub: SubResource,
        url: str,
        resp: Mapping[str, Any],
        version: str,
        out: Embedded,
    ) -> None:
        """One `$batch` answer into the object. Systematic failures (no permission, no Intune, a
        URL Graph does not know) fail the round; a transient one that outlasted the client's
        retries only keeps this object at its last state."""
        status = int(resp.get("status") or 0)
        if not 200 <= status < 300:
            err = batch_item_error(resp, url)
            if isinstance(err, NotApplicableTenant):
                self._no_intune()
                raise err
            if status == 404:
                obj[sub.key] = []  # the object went away between the list and this read
                return
            if status in TRANSIENT_STATUSES:
                out.failed[str(obj["id"])] = err
                return
            raise err
        body = resp.get("body") if isinstance(resp.get("body"), dict) else {}
        assert isinstance(body, dict)
        items = [i for i in body.get("value") or [] if isinstance(i, dict)]
        next_link = body.get("@odata.nextLink")
        try:
            while isinstance(next_link, str) and next_link:
                page = await graph.get(next_link, version=version)
                items.extend(i for i in page.get("value") or [] if isinstance(i, dict))
                next_link = page.get("@odata.nextLink")
        except GraphError as exc:
            if exc.status in TRANSIENT_STATUSES:
                out.failed[str(obj["id"])] = exc
                return
            raise
        obj[sub.key] = items

    async def _lookups(self, ctx: SourceContext) -> conv.IntuneLookups:
        name = self.collection.name
        if name == conv.MANAGED_DEVICES:
            categories = await ctx.mirror.raw_field_values(
                ORIGIN_PREFIX + conv.DEVICE_CATEGORIES, "displayName"
            )
            return conv.IntuneLookups(category_ids_by_name={str(v): k for k, v in categories.items() if v})
        if name == conv.DEVICE_COMPLIANCE_POLICIES:
            upns = await ctx.mirror.raw_field_values("users", "userPrincipalName")
            return conv.IntuneLookups(user_ids_by_upn={str(v).lower(): k for k, v in upns.items() if v})
        if name == conv.INTENTS:
            apps = await ctx.mirror.entity_keys_of_type(m.MANAGED_APPLICATION.type)
            return conv.IntuneLookups(known_app_ids=set(apps))
        if name == conv.MANAGED_APP_POLICIES:
            by_identifier: dict[str, list[str]] = {}
            for fld in conv.APP_IDENTIFIER_FIELDS:
                values = await ctx.mirror.raw_field_values(MOBILE_APPS_ORIGIN, fld)
                for app_id, value in values.items():
                    if isinstance(value, str) and value:
                        ids = by_identifier.setdefault(value.lower(), [])
                        if app_id not in ids:
                            ids.append(app_id)
            apps = await ctx.mirror.entity_keys_of_type(m.MANAGED_APPLICATION.type)
            return conv.IntuneLookups(app_ids_by_identifier=by_identifier, known_app_ids=set(apps))
        return conv.IntuneLookups()

    async def refetch_for_entra_devices(
        self, engine: Engine, entra_device_ids: Sequence[str]
    ) -> RoundReport | None:
        """An Entra device changed (seen by /devices/delta): re-fetch its managed device now.

        `entra_device_ids` are Entra `deviceId`s (= `managedDevice.azureADDeviceId`). Only the
        matching managed devices are read (one GET and their own detected apps each). Returns the
        refetch round (its alerts wake the dispatcher), None when nothing was read. Failures are
        logged, not raised: the next scheduled poll covers the device anyway.
        """
        wanted = {d.lower() for d in entra_device_ids if d and d != NULL_GUID}
        if not wanted:
            return None
        by_entra = await engine.mirror.raw_field_values(self.origin, "azureADDeviceId")
        ids = sorted(
            managed_id
            for managed_id, entra in by_entra.items()
            if isinstance(entra, str) and entra.lower() in wanted
        )
        if not ids:
            return None
        try:
            return await engine.run_as_round(self.origin, lambda ctx: self.refetch(ctx, ids))
        except Exception as exc:
            log.warning("early managed device re-fetch failed", error=str(exc)[:300], devices=len(ids))
            return None


def _named_devices(obj: Mapping[str, Any], collection: str) -> set[str]:
    """Managed device ids named by an object's embedded statuses / run states / install states."""
    out: set[str] = set()
    prefix = str(obj["id"]) if collection == conv.MOBILE_APPS else None
    for key in DEVICE_LINKED_SUBS:
        items = obj.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, Mapping):
                device = conv.status_device_id(item, id_prefix=prefix)
                if device:
                    out.add(device)
    return out


def _strip_subs(obj: Mapping[str, Any], collection: Collection) -> dict[str, Any]:
    """The raw object without embedded sub-resources (those can be large) nor script bodies."""
    drop = {s.key for s in collection.subs} | set(SCRIPT_CONTENT_FIELDS)
    return {k: v for k, v in obj.items() if k not in drop}


def build_intune_sources(
    settings: Settings, account: AccountSource, enabled_origins: set[str]
) -> dict[str, Source]:
    shared = IntuneShared(
        concurrency=asyncio.Semaphore(max(1, settings.sync.intune_concurrency)),
        enabled_sources=set(settings.sync.sources),
        full_pass_every=settings.sync.intune_full_pass_every,
        account=account,
    )
    return {c.origin: IntuneCollectionSource(c, shared) for c in COLLECTIONS if c.origin in enabled_origins}
