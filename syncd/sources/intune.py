"""Intune collections: no delta and no notifications, so they are polled and diffed locally.

A poll lists a collection (cheap: one request per page), then fetches sub-resources (statuses,
assignments, detected apps ...) through `$batch` (20 per call, `intune_concurrency` calls in
flight, every request paid from a token bucket below the Intune limits) only for objects that
may have changed since the last poll:

- the listed object itself changed (a hash of its top-level JSON: covers `lastModifiedDateTime`
  and `lastSyncDateTime` and anything else the list shows);
- or, for collections whose sub-resources name managed devices (statuses, run states, install
  states), a managed device they named changed (its `lastSyncDateTime`/`complianceState`, as
  seen by the last managed-devices round or early re-fetch): Graph does not bump a policy's
  `lastModifiedDateTime` when one of its device statuses changes.

Every `intune_full_pass_every`-th poll (and the first one of a process, and `force_full`)
re-fetches everything to catch what those signals miss (a device newly reported by a policy,
lookups that changed). A poll is a *full* round: objects gone from the list are swept, skipped
objects are kept. Any failed request fails the whole round before anything is staged, so a
failure never turns into deletions (the engine marks the origin partial). A tenant without
Intune (400 "Request not applicable to target tenant.") makes the rounds *skipped*, logged once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from syncd.graph.client import GraphClient
from syncd.graph.errors import GraphError, NotApplicableTenant, NotFound, make_error
from syncd.model import schema as m
from syncd.model.convert import intune as conv
from syncd.model.convert.common import SCRIPT_CONTENT_FIELDS
from syncd.sources.base import RoundReport, SourceContext

if TYPE_CHECKING:
    from syncd.config import Settings
    from syncd.engine import Engine, Source
    from syncd.sources.account import AccountSource

log = structlog.get_logger(__name__)

ORIGIN_PREFIX = "intune:"
NO_INTUNE_REASON = "tenant has no Intune (Request not applicable to target tenant)"


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
    cadence: str = "policies"

    @property
    def origin(self) -> str:
        return ORIGIN_PREFIX + self.name


def _types(*items: m.EntityType | m.RelationshipType) -> tuple[str, ...]:
    return tuple(i.type for i in items)


DM = "/deviceManagement"
DAM = "/deviceAppManagement"
RUN_STATE_EXPAND = "$expand=managedDevice($select=id)"
BATCH_SIZE = 20
NULL_GUID = "00000000-0000-0000-0000-000000000000"
"""`azureADDeviceId` of a device that is not Entra-registered."""
"""Graph's `$batch` limit."""

COLLECTIONS: tuple[Collection, ...] = (
    Collection(
        conv.DEVICE_CATEGORIES,
        m.SOURCE_DEVICES,
        "v1.0",
        f"{DM}/deviceCategories",
        stamp=None,
        types=_types(m.DEVICE_CATEGORY),
        cadence="devices",
    ),
    Collection(
        conv.MANAGED_DEVICES,
        m.SOURCE_DEVICES,
        "beta",
        f"{DM}/managedDevices",
        subs=(SubResource("detectedApps", "detectedApps", "beta", needs_source=m.SOURCE_APPLICATIONS),),
        stamp="lastSyncDateTime",
        types=_types(
            m.MANAGED_DEVICE,
            m.DETECTED_APPLICATION,
            m.USER_OWNS_DEVICE,
            m.CATEGORY_HAS_DEVICE,
            m.DEVICE_HAS_DETECTED_APP,
        ),
        cadence="devices",
    ),
    Collection(
        conv.MOBILE_APP_CATEGORIES,
        m.SOURCE_APPLICATIONS,
        "v1.0",
        f"{DAM}/mobileAppCategories",
        types=_types(m.APPLICATION_CATEGORY),
    ),
    Collection(
        conv.MOBILE_APPS,
        m.SOURCE_APPLICATIONS,
        "v1.0",
        f"{DAM}/mobileApps",
        subs=(
            SubResource("categories", "categories"),
            SubResource("assignments", "assignments"),
            SubResource("deviceStatuses", "deviceStatuses", "beta"),
        ),
        types=_types(m.MANAGED_APPLICATION, m.APP_CATEGORY_HAS_APPLICATION, m.DEVICE_ASSIGNED_APPLICATION),
    ),
    Collection(
        conv.DEVICE_COMPLIANCE_POLICIES,
        m.SOURCE_COMPLIANCE,
        "v1.0",
        f"{DM}/deviceCompliancePolicies",
        subs=(
            SubResource("assignments", "assignments"),
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
    ),
    Collection(
        conv.DEVICE_CONFIGURATIONS,
        m.SOURCE_CONFIGURATIONS,
        "v1.0",
        f"{DM}/deviceConfigurations",
        subs=(SubResource("assignments", "assignments"), SubResource("deviceStatuses", "deviceStatuses")),
        types=_types(
            m.DEVICE_CONFIGURATION,
            m.NONCOMPLIANCE_FINDING,
            m.DEVICE_USES_CONFIGURATION,
            m.GROUP_ASSIGNED_CONFIGURATION,
            m.DEVICE_HAS_FINDING,
        ),
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
    ),
    Collection(
        conv.MANAGED_APP_POLICIES,
        m.SOURCE_APPLICATIONS,
        "v1.0",
        f"{DAM}/managedAppPolicies",
        subs=(SubResource("apps", "apps"),),
        types=_types(m.APPLICATION_POLICY, m.APPLICATION_ASSIGNED_POLICY),
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


class RequestBudget:
    """A token bucket: at most `per_window` Graph requests per `window` seconds (Intune limits)."""

    def __init__(self, per_window: int, window: float = 20.0) -> None:
        self.capacity = max(1, per_window)
        self.window = window
        self.tokens = float(self.capacity)
        self.updated = time.monotonic()
        self.used = 0
        self._lock = asyncio.Lock()

    async def take(self, count: int = 1) -> None:
        count = min(count, self.capacity)
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(
                    self.capacity, self.tokens + (now - self.updated) * self.capacity / self.window
                )
                self.updated = now
                if self.tokens >= count:
                    self.tokens -= count
                    self.used += count
                    return
                await asyncio.sleep((count - self.tokens) * self.window / self.capacity)


@dataclass
class IntuneShared:
    """State shared by every Intune collection source of one daemon."""

    budget: RequestBudget
    concurrency: asyncio.Semaphore
    enabled_sources: set[str]
    full_pass_every: int
    account: AccountSource | None = None
    unavailable: str | None = None
    polls: dict[str, int] = field(default_factory=dict)
    device_stamps: dict[str, str] = field(default_factory=dict)
    """Managed device id -> `lastSyncDateTime|complianceState`, as of the last committed devices
    round or early re-fetch; status collections compare it with what they saw last time."""


def _inner_error(resp: Mapping[str, Any], url: str) -> GraphError:
    status = int(resp.get("status") or 0)
    body = resp.get("body")
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body or {})
    headers = {str(k).lower(): str(v) for k, v in (resp.get("headers") or {}).items()}
    return make_error(status, raw, headers, path=url)


def _segment_missing(err: GraphError) -> bool:
    """A navigation property this object type does not have (not a failure: nothing to embed)."""
    return err.status == 404 or (err.status == 400 and "segment" in err.message.lower())


def _device_stamp(device: Mapping[str, Any]) -> str:
    return f"{device.get('lastSyncDateTime')}|{device.get('complianceState')}"


def _top_hash(obj: Mapping[str, Any]) -> str:
    """Hash of a listed object's own properties (what the list shows; sub-resources excluded)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class IntuneCollectionSource:
    """Polls one Intune collection."""

    def __init__(self, collection: Collection, shared: IntuneShared) -> None:
        self.collection = collection
        self.shared = shared
        self.origin = collection.origin
        self.device_linked = any(s.key in DEVICE_LINKED_SUBS for s in collection.subs)
        # What the last committed rounds saw (in memory: a new process starts with a full pass).
        self._hashes: dict[str, str] = {}
        self._object_devices: dict[str, set[str]] = {}
        self._device_objects: dict[str, set[str]] = {}
        self._devices_seen: dict[str, str] | None = None
        self.last_fetched = 0
        """Objects whose sub-resources the last round fetched (for tests and benches)."""

    def _subs(self) -> list[SubResource]:
        return [
            s
            for s in self.collection.subs
            if s.needs_source is None or s.needs_source in self.shared.enabled_sources
        ]

    async def run(self, ctx: SourceContext, *, force_full: bool = False, **options: Any) -> RoundReport:
        only_ids: Sequence[str] | None = options.get("only_ids")
        started = time.monotonic()
        report = RoundReport(origin=self.origin, kind="poll")
        account = self.shared.account
        if account is not None and account.intune_available is True:
            self.shared.unavailable = None  # the account round saw Intune (again)
        if (account is not None and account.intune_available is False) or self.shared.unavailable:
            # both are only ever set by Graph's definitive "not applicable to target tenant"
            report.kind = "skipped"
            report.absent = True
            report.skip_reason = self.shared.unavailable or NO_INTUNE_REASON
            return report
        if only_ids is not None:
            return await self._refetch(ctx, list(only_ids), report, started)
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
            report.kind = "skipped"
            report.absent = True
            report.skip_reason = self.shared.unavailable or NO_INTUNE_REASON
            return report
        report.pages = 1
        hashes = {str(o["id"]): _top_hash(_strip_subs(o, self.collection)) for o in objects}
        if full_pass:
            fetch = objects
        else:
            linked = self._objects_of_changed_devices(devices_now)
            fetch = [
                o
                for o in objects
                if self._hashes.get(str(o["id"])) != hashes[str(o["id"])] or str(o["id"]) in linked
            ]
        fetched_ids = {str(o["id"]) for o in fetch}
        keep = [oid for oid in hashes if oid not in fetched_ids]
        await self._embed(ctx.graph, fetch)
        lookups = await self._lookups(ctx)
        baseline = await ctx.mirror.get_cursor(f"poll:{self.origin}") is None
        round_ = await ctx.mirror.begin_round(self.origin, full=True)
        try:
            for obj in fetch:
                derived = conv.convert_intune(self.collection.name, obj, ctx.convert, lookups)
                await round_.stage(str(obj["id"]), derived.entities, derived.relationships, replace=True)
            if keep:
                await round_.keep(keep)
            await round_.stage_raw(self.origin, [_strip_subs(o, self.collection) for o in fetch])
        except BaseException:
            await round_.discard()
            raise
        from syncd.sources.alerting import change_hook_for

        result = await round_.commit(
            cursors={f"poll:{self.origin}": str(time.time())},
            change_hook=None if baseline else change_hook_for(ctx),
            collect_changes=False,
        )
        # Committed: remember what this round saw.
        self.shared.polls[self.origin] = polls + 1
        for gone in set(self._hashes) - set(hashes):
            self._forget(gone)
        for obj in fetch:
            self._remember(obj, hashes[str(obj["id"])])
        if self.device_linked:
            self._devices_seen = devices_now
        if self.collection.name == conv.MANAGED_DEVICES:
            self.shared.device_stamps = {str(o["id"]): _device_stamp(o) for o in objects}
        self.last_fetched = len(fetch)
        report.objects = len(objects)
        report.count_changes(result.counts)
        report.outbox_added = result.outbox_added
        report.baseline = baseline
        report.duration = time.monotonic() - started
        log.debug(
            "intune poll", origin=self.origin, full_pass=full_pass, listed=len(objects), fetched=len(fetch)
        )
        return report

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

    async def _refetch(
        self, ctx: SourceContext, ids: list[str], report: RoundReport, started: float
    ) -> RoundReport:
        """Early re-fetch of a few objects (an Entra device changed): a partial, non-sweeping round."""
        objects: list[dict[str, Any]] = []
        for obj_id in ids:
            await self.shared.budget.take()
            try:
                obj = await ctx.graph.get(f"{self.collection.path}/{obj_id}", version=self.collection.version)
            except NotFound:
                continue
            except NotApplicableTenant:
                self._no_intune()
                report.kind = "skipped"
                report.absent = True
                report.skip_reason = self.shared.unavailable or NO_INTUNE_REASON
                return report
            if isinstance(obj, dict) and obj.get("id"):
                obj = {k: v for k, v in obj.items() if not k.startswith("@odata.context")}
                objects.append(obj)
        await self._embed(ctx.graph, objects)
        lookups = await self._lookups(ctx)
        round_ = await ctx.mirror.begin_round(self.origin, full=False)
        try:
            for obj in objects:
                derived = conv.convert_intune(self.collection.name, obj, ctx.convert, lookups)
                await round_.stage(str(obj["id"]), derived.entities, derived.relationships, replace=True)
            await round_.stage_raw(self.origin, [_strip_subs(o, self.collection) for o in objects])
        except BaseException:
            await round_.discard()
            raise
        from syncd.sources.alerting import change_hook_for

        result = await round_.commit(change_hook=change_hook_for(ctx), collect_changes=False)
        for obj in objects:
            self._remember(obj, _top_hash(_strip_subs(obj, self.collection)))
            if self.collection.name == conv.MANAGED_DEVICES:
                self.shared.device_stamps[str(obj["id"])] = _device_stamp(obj)
        self.last_fetched = len(objects)
        report.kind = "refetch"
        report.objects = len(objects)
        report.count_changes(result.counts)
        report.outbox_added = result.outbox_added
        report.duration = time.monotonic() - started
        return report

    async def _list(self, graph: GraphClient) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        try:
            await self.shared.budget.take()
            async for page in graph.iter_pages(self.collection.path, version=self.collection.version):
                objects.extend(o for o in page.get("value") or [] if isinstance(o, dict) and o.get("id"))
                if page.get("@odata.nextLink"):
                    await self.shared.budget.take()
        except NotApplicableTenant:
            self._no_intune()
            raise
        return objects

    def _no_intune(self) -> None:
        if self.shared.account is not None:
            self.shared.account.intune_available = False
        if self.shared.unavailable is None:
            self.shared.unavailable = NO_INTUNE_REASON
            log.warning(
                "Intune types disabled: the tenant has no Intune (Request not applicable to target tenant)"
            )

    async def _embed(self, graph: GraphClient, objects: list[dict[str, Any]]) -> None:
        """Fetch every sub-resource of `objects` through `$batch` (≤ 20 per call, following paging);
        `intune_concurrency` batches are in flight at once, each paid from the request budget."""
        subs = self._subs()
        if not subs or not objects:
            return
        chunks: list[tuple[str, list[tuple[dict[str, Any], SubResource, str]]]] = []
        for version in ("v1.0", "beta"):
            requests: list[tuple[dict[str, Any], SubResource, str]] = []
            for obj in objects:
                for sub in subs:
                    if sub.version != version:
                        continue
                    url = f"{self.collection.path}/{obj['id']}/{sub.path}" + (
                        f"?{sub.params}" if sub.params else ""
                    )
                    requests.append((obj, sub, url))
            chunks.extend(
                (version, requests[i : i + BATCH_SIZE]) for i in range(0, len(requests), BATCH_SIZE)
            )

        async def one(version: str, chunk: list[tuple[dict[str, Any], SubResource, str]]) -> None:
            async with self.shared.concurrency:
                await self.shared.budget.take(len(chunk))
                responses = await graph.batch(
                    [{"id": str(i), "method": "GET", "url": url} for i, (_o, _s, url) in enumerate(chunk)],
                    version=version,
                )
                for (obj, sub, url), resp in zip(chunk, responses, strict=True):
                    await self._absorb(graph, obj, sub, url, resp, version)

        tasks = [asyncio.ensure_future(one(version, chunk)) for version, chunk in chunks]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _absorb(
        self,
        graph: GraphClient,
        obj: dict[str, Any],
        sub: SubResource,
        url: str,
        resp: Mapping[str, Any],
        version: str,
    ) -> None:
        status = int(resp.get("status") or 0)
        if not 200 <= status < 300:
            err = _inner_error(resp, url)
            if _segment_missing(err):
                obj[sub.key] = []
                return
            if isinstance(err, NotApplicableTenant):
                self._no_intune()
            raise err
        body = resp.get("body") if isinstance(resp.get("body"), dict) else {}
        assert isinstance(body, dict)
        items = [i for i in body.get("value") or [] if isinstance(i, dict)]
        next_link = body.get("@odata.nextLink")
        while isinstance(next_link, str) and next_link:
            await self.shared.budget.take()
            page = await graph.get(next_link, version=version)
            items.extend(i for i in page.get("value") or [] if isinstance(i, dict))
            next_link = page.get("@odata.nextLink")
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
        return conv.IntuneLookups()

    async def refetch_for_entra_devices(self, engine: Engine, entra_device_ids: Sequence[str]) -> None:
        """An Entra device changed (seen by /devices/delta): re-fetch its managed device now.

        `entra_device_ids` are Entra `deviceId`s (= `managedDevice.azureADDeviceId`). Failures are
        logged, not raised: the next scheduled poll covers the device anyway.
        """
        wanted = {d.lower() for d in entra_device_ids if d and d != NULL_GUID}
        if not wanted:
            return
        by_entra = await engine.mirror.raw_field_values(self.origin, "azureADDeviceId")
        ids = sorted(
            managed_id
            for managed_id, entra in by_entra.items()
            if isinstance(entra, str) and entra.lower() in wanted
        )
        if not ids:
            return
        try:
            await engine.run_round(self.origin, only_ids=ids)
        except Exception as exc:
            log.warning("early managed device re-fetch failed", error=str(exc)[:300], devices=len(ids))


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
        budget=RequestBudget(settings.sync.intune_requests_per_20s),
        concurrency=asyncio.Semaphore(max(1, settings.sync.intune_concurrency)),
        enabled_sources=set(settings.sync.sources),
        full_pass_every=settings.sync.intune_full_pass_every,
        account=account,
    )
    return {c.origin: IntuneCollectionSource(c, shared) for c in COLLECTIONS if c.origin in enabled_origins}
