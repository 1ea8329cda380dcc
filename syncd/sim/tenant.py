"""In-memory tenant model shared by the Graph simulator, the generator and the admin API.

Objects are stored as Graph JSON dicts verbatim so recorded responses can be loaded as-is.
Every mutation appends a `ChangeRecord` to a per-resource log with a tenant-wide monotonically
increasing sequence number; delta rounds are computed from that log and listeners (change
notifications) are called after each mutation.
"""

from __future__ import annotations

import bisect
import builtins
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from syncd.sim.intune import IntuneData

RESOURCES: tuple[str, ...] = ("users", "groups", "devices")
"""Delta-capable directory resources."""

MEMBER_RESOURCES: tuple[str, ...] = ("users", "groups", "devices", "contacts", "servicePrincipals")
"""Stores whose objects can be group members."""

ODATA_TYPES: dict[str, str] = {
    "users": "#microsoft.graph.user",
    "groups": "#microsoft.graph.group",
    "devices": "#microsoft.graph.device",
    "contacts": "#microsoft.graph.orgContact",
    "servicePrincipals": "#microsoft.graph.servicePrincipal",
}
_TYPE_TO_STORE = {v: k for k, v in ODATA_TYPES.items()}

ChangeKind = Literal[
    "created", "updated", "soft_deleted", "hard_deleted", "restored", "member_added", "member_removed"
]
"""What a change-log record says happened (delta rounds are computed from these)."""
NoticeKind = Literal["created", "updated", "soft_deleted", "hard_deleted", "restored", "members_changed"]
"""What a listener is told happened (change notifications are sent from these)."""
Listener = Callable[[str, NoticeKind, str], None]
"""cb(resource, kind, obj_id), called after each mutation."""


UNTRACKED_PROPS: dict[str, frozenset[str]] = {"users": frozenset({"signInActivity"})}
"""Properties Graph does not track: changing only these records no change (no delta, no
notification), like ``signInActivity`` (read by ``GET /users?$select=id,signInActivity``)."""


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One logged mutation; `props` lists the properties that changed (updates only)."""

    seq: int
    obj_id: str
    kind: ChangeKind
    props: frozenset[str] = frozenset()
    member_id: str | None = None
    at: float = 0.0
    """When the change was made (the tenant's clock): replication delays are counted from here."""


def utc_now_iso() -> str:
    """Graph-style UTC timestamp (second precision, Z suffix)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Tenant:
    """A Microsoft 365 tenant: directory stores, memberships, registered apps and a change log."""

    def __init__(self, tenant_id: str | None = None, organization: dict[str, Any] | None = None) -> None:
        self.tenant_id: str = tenant_id or str(uuid.uuid4())
        self.organization: dict[str, Any] = organization or {
            "id": self.tenant_id,
            "displayName": "Simulated Tenant",
            "deletedDateTime": None,
            "businessPhones": [],
            "countryLetterCode": "US",
            "createdDateTime": "2020-01-01T00:00:00Z",
            "tenantType": "AAD",
            "verifiedDomains": [
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": True,
                    "isInitial": True,
                    "name": "simtenant.onmicrosoft.com",
                    "type": "Managed",
                }
            ],
        }
        self.organization.setdefault("id", self.tenant_id)
        self.apps: dict[str, str] = {}
        self.app_certificates: dict[str, builtins.list[str]] = {}
        """client id -> PEM certificates registered for certificate (client assertion) auth."""
        self.stores: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in MEMBER_RESOURCES}
        self.deleted: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in MEMBER_RESOURCES}
        self.members: dict[str, dict[str, None]] = {}
        self.intune: IntuneData | None = None
        self.seq: int = 0
        self.log: dict[str, list[ChangeRecord]] = {r: [] for r in RESOURCES}
        self._log_seqs: dict[str, list[int]] = {r: [] for r in RESOURCES}
        self._where: dict[str, str] = {}
        self._gone: dict[str, str] = {}  # hard-deleted id -> store (members@delta still needs the type)
        self._member_of: dict[str, set[str]] | None = None
        self._listeners: list[Listener] = []
        self.version: int = 0  # bumped on any mutation (cache invalidation for listings)
        self.clock: Callable[[], float] = time.time
        """Stamps change records; the Graph simulator replaces it with its own clock."""

    # ------------------------------------------------------------------ reading
    @property
    def domain(self) -> str:
        """The tenant's default verified domain (used for UPNs)."""
        for d in self.organization.get("verifiedDomains") or []:
            if d.get("isDefault"):
                return str(d.get("name"))
        return "simtenant.onmicrosoft.com"

    def get(self, resource: str, obj_id: str) -> dict[str, Any] | None:
        """A live (not soft-deleted) object, or None."""
        return self.stores[resource].get(obj_id)

    def list(self, resource: str) -> Iterable[dict[str, Any]]:
        """Live objects of a store in insertion order."""
        return self.stores[resource].values()

    def get_deleted(self, resource: str, obj_id: str) -> dict[str, Any] | None:
        """A soft-deleted object, or None."""
        return self.deleted[resource].get(obj_id)

    def store_of(self, obj_id: str) -> str | None:
        """Which store holds this id (live or soft-deleted)."""
        return self._where.get(obj_id)

    def odata_type_of(self, obj_id: str) -> str:
        """`@odata.type` of a directory object by id."""
        store = self._where.get(obj_id) or self._gone.get(obj_id)
        return ODATA_TYPES.get(store or "", "#microsoft.graph.directoryObject")

    def is_live(self, obj_id: str) -> bool:
        """True if the object exists and is not soft-deleted."""
        store = self._where.get(obj_id)
        return store is not None and obj_id in self.stores[store]

    def member_ids(self, group_id: str) -> builtins.list[str]:
        """Visible members of a group (soft-deleted members are hidden until restored)."""
        return [m for m in self.members.get(group_id, {}) if self.is_live(m)]

    def groups_of(self, member_id: str) -> set[str]:
        """Groups that list this object (including while it is soft-deleted)."""
        return set(self._reverse().get(member_id, ()))

    def changes_since(self, resource: str, after_seq: int, upto_seq: int) -> builtins.list[ChangeRecord]:
        """Log records with after_seq < seq <= upto_seq."""
        seqs = self._log_seqs[resource]
        lo = bisect.bisect_right(seqs, after_seq)
        hi = bisect.bisect_right(seqs, upto_seq)
        return self.log[resource][lo:hi]

    def counts(self) -> dict[str, int]:
        """Sizes of each store, for stats."""
        out = {r: len(s) for r, s in self.stores.items()}
        out["memberships"] = sum(len(m) for m in self.members.values())
        out["seq"] = self.seq
        return out

    # ------------------------------------------------------------------ listeners
    def add_listener(self, cb: Listener) -> None:
        """Register a change callback (called synchronously after each mutation)."""
        self._listeners.append(cb)

    def remove_listener(self, cb: Listener) -> None:
        """Unregister a change callback."""
        if cb in self._listeners:
            self._listeners.remove(cb)

    def _emit(self, resource: str, kind: NoticeKind, obj_id: str) -> None:
        for cb in list(self._listeners):
            cb(resource, kind, obj_id)

    def _record(
        self,
        resource: str,
        obj_id: str,
        kind: ChangeKind,
        props: frozenset[str] = frozenset(),
        member_id: str | None = None,
    ) -> None:
        self.version += 1
        if resource not in self.log:
            return
        self.seq += 1
        self.log[resource].append(ChangeRecord(self.seq, obj_id, kind, props, member_id, self.clock()))
        self._log_seqs[resource].append(self.seq)

    # ------------------------------------------------------------------ bulk loading (no log)
    def load_object(self, resource: str, obj: dict[str, Any]) -> None:
        """Insert without logging or notifying: initial state (generator, tenant files)."""
        obj_id = obj.setdefault("id", str(uuid.uuid4()))
        self.stores[resource][obj_id] = obj
        self._where[obj_id] = resource
        self.version += 1

    def load_member(self, group_id: str, member_id: str) -> None:
        """Add a membership without logging (initial state)."""
        self.members.setdefault(group_id, {})[member_id] = None
        if self._member_of is not None:
            self._member_of.setdefault(member_id, set()).add(group_id)

    # ------------------------------------------------------------------ mutations
    def upsert(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object (id generated if absent) or replace the properties of an existing one."""
        obj = dict(obj)
        obj_id = obj.setdefault("id", str(uuid.uuid4()))
        existing = self.stores[resource].get(obj_id)
        if existing is not None:
            props = {k: v for k, v in obj.items() if k != "id"}
            self.update(resource, obj_id, props)
            return existing
        if self._where.get(obj_id) not in (None, resource):
            raise ValueError(f"id {obj_id} already used by another resource")
        if obj_id in self.deleted[resource]:
            raise ValueError(f"{resource}/{obj_id} is soft-deleted; restore it instead")
        self.stores[resource][obj_id] = obj
        self._where[obj_id] = resource
        self._record(resource, obj_id, "created")
        self._emit(resource, "created", obj_id)
        return obj

    def update(self, resource: str, obj_id: str, props: dict[str, Any]) -> set[str]:
        """Set properties; returns the names that actually changed (no record when none did)."""
        obj = self.stores[resource].get(obj_id)
        if obj is None:
            raise KeyError(f"{resource}/{obj_id}")
        changed = {k for k, v in props.items() if k != "id" and (k not in obj or obj[k] != v)}
        if not changed:
            return changed
        for k in changed:
            obj[k] = props[k]
        tracked = changed - UNTRACKED_PROPS.get(resource, frozenset())
        if not tracked:  # e.g. a new sign-in: neither delta nor change notifications see it
            self.version += 1
            return changed
        self._record(resource, obj_id, "updated", frozenset(tracked))
        self._emit(resource, "updated", obj_id)
        return changed

    def soft_delete(self, resource: str, obj_id: str) -> None:
        """Move to deleted items (restorable); memberships are hidden, not removed."""
        obj = self.stores[resource].pop(obj_id, None)
        if obj is None:
            raise KeyError(f"{resource}/{obj_id}")
        obj["deletedDateTime"] = utc_now_iso()
        self.deleted[resource][obj_id] = obj
        self._record(resource, obj_id, "soft_deleted")
        for gid in sorted(self.groups_of(obj_id)):
            self._membership_changed(gid, obj_id, "member_removed")
        self._emit(resource, "soft_deleted", obj_id)

    def restore(self, resource: str, obj_id: str) -> dict[str, Any]:
        """Bring a soft-deleted object back together with its memberships."""
        obj = self.deleted[resource].pop(obj_id, None)
        if obj is None:
            raise KeyError(f"{resource}/{obj_id}")
        obj["deletedDateTime"] = None
        self.stores[resource][obj_id] = obj
        self._record(resource, obj_id, "restored")
        for gid in sorted(self.groups_of(obj_id)):
            self._membership_changed(gid, obj_id, "member_added")
        self._emit(resource, "restored", obj_id)
        return obj

    def hard_delete(self, resource: str, obj_id: str) -> None:
        """Delete permanently (live or soft-deleted); memberships in both directions go away."""
        obj = self.stores[resource].pop(obj_id, None)
        if obj is None:
            obj = self.deleted[resource].pop(obj_id, None)
        if obj is None:
            raise KeyError(f"{resource}/{obj_id}")
        self._where.pop(obj_id, None)
        self._gone[obj_id] = resource
        reverse = self._reverse()
        for gid in sorted(reverse.pop(obj_id, set())):
            self.members.get(gid, {}).pop(obj_id, None)
            self._membership_changed(gid, obj_id, "member_removed")
        for mid in self.members.pop(obj_id, {}):
            reverse.get(mid, set()).discard(obj_id)
        self._record(resource, obj_id, "hard_deleted")
        self._emit(resource, "hard_deleted", obj_id)

    def add_member(self, group_id: str, member_id: str) -> bool:
        """Add a member; False if it already was one."""
        if group_id not in self.stores["groups"]:
            raise KeyError(f"groups/{group_id}")
        if not self.is_live(member_id):
            raise KeyError(f"directoryObjects/{member_id}")
        if group_id == member_id:
            raise ValueError("a group cannot be a member of itself")
        current = self.members.setdefault(group_id, {})
        if member_id in current:
            return False
        current[member_id] = None
        self._reverse().setdefault(member_id, set()).add(group_id)
        self._membership_changed(group_id, member_id, "member_added")
        return True

    def remove_member(self, group_id: str, member_id: str) -> bool:
        """Remove a member; False if it was not one."""
        if group_id not in self.stores["groups"]:
            raise KeyError(f"groups/{group_id}")
        current = self.members.get(group_id, {})
        if member_id not in current:
            return False
        del current[member_id]
        self._reverse().get(member_id, set()).discard(group_id)
        self._membership_changed(group_id, member_id, "member_removed")
        return True

    def _membership_changed(
        self, group_id: str, member_id: str, kind: Literal["member_added", "member_removed"]
    ) -> None:
        """Log and announce that `member_id` joined or left (`kind`) a group, if that group is live."""
        if group_id in self.stores["groups"]:
            self._record("groups", group_id, kind, member_id=member_id)
            self._emit("groups", "members_changed", group_id)

    def _reverse(self) -> dict[str, set[str]]:
        """member -> groups index, built lazily (bulk generation does not need it)."""
        if self._member_of is None:
            rev: dict[str, set[str]] = {}
            for gid, mids in self.members.items():
                for mid in mids:
                    rev.setdefault(mid, set()).add(gid)
            self._member_of = rev
        return self._member_of

    # ------------------------------------------------------------------ serialisation
    def to_json(self) -> dict[str, Any]:
        """The tenant file document (see docs/simulators.md)."""
        return {
            "tenantId": self.tenant_id,
            "organization": self.organization,
            "apps": [
                {"clientId": c, "clientSecret": s}
                | ({"certificates": self.app_certificates[c]} if self.app_certificates.get(c) else {})
                for c, s in self.apps.items()
            ],
            "users": list(self.stores["users"].values()),
            "groups": list(self.stores["groups"].values()),
            "members": {g: list(m) for g, m in self.members.items() if m},
            "devices": list(self.stores["devices"].values()),
            "contacts": list(self.stores["contacts"].values()),
            "servicePrincipals": list(self.stores["servicePrincipals"].values()),
            "deletedItems": {r: list(d.values()) for r, d in self.deleted.items() if d},
            "intune": self.intune.to_json() if self.intune is not None else None,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Tenant:
        """Build a tenant from a tenant file document."""
        t = cls(doc.get("tenantId"), doc.get("organization"))
        for app in doc.get("apps") or []:
            t.apps[str(app["clientId"])] = str(app.get("clientSecret") or "")
            if app.get("certificates"):
                t.app_certificates[str(app["clientId"])] = [str(c) for c in app["certificates"]]
        for store in MEMBER_RESOURCES:
            for obj in doc.get(store) or []:
                t.load_object(store, dict(obj))
        for store, objs in (doc.get("deletedItems") or {}).items():
            for obj in objs:
                t.deleted[store][obj["id"]] = dict(obj)
                t._where[obj["id"]] = store
        for gid, mids in (doc.get("members") or {}).items():
            for mid in mids:
                t.load_member(gid, mid)
        intune = doc.get("intune")
        if intune is not None:
            t.intune = IntuneData.from_json(intune)
        return t


def ensure_app(
    tenant: Tenant, client_id: str | None = None, client_secret: str | None = None
) -> tuple[str, str]:
    """Return a registered (client_id, secret), registering one when the tenant has none."""
    if client_id is None and tenant.apps:
        cid = next(iter(tenant.apps))
        return cid, tenant.apps[cid]
    cid = client_id or str(uuid.uuid4())
    secret = client_secret or f"sim~{uuid.uuid4().hex}"
    tenant.apps[cid] = secret
    return cid, secret


def load_tenant(path: Path | str) -> Tenant:
    """Read a tenant file (JSON)."""
    with open(path, encoding="utf-8") as fh:
        return Tenant.from_json(json.load(fh))


def save_tenant(tenant: Tenant, path: Path | str) -> None:
    """Write a tenant file (JSON)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(tenant.to_json(), fh)


def _iter_exchanges(doc: dict[str, Any]) -> Iterator[tuple[str, list[str], dict[str, Any]]]:
    for ex in doc.get("exchanges") or []:
        body = ex.get("body")
        if ex.get("status") != 200 or not isinstance(body, dict):
            continue
        parts = [p for p in urlsplit(str(ex.get("url", ""))).path.split("/") if p]
        yield str(ex.get("method", "GET")).upper(), parts, body


def tenant_from_recording(path: Path | str, *, tenant_id: str | None = None) -> Tenant:
    """Build a tenant from a recorded exchange file: every 200 `value` array of a known collection.

    Objects are kept verbatim so the simulator serves the recorded objects back unchanged.
    """
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    found_tid = tenant_id
    org: dict[str, Any] | None = None
    collected: dict[str, list[dict[str, Any]]] = {r: [] for r in MEMBER_RESOURCES}
    memberships: list[tuple[str, str]] = []
    for ex in doc.get("exchanges") or []:
        parts = [p for p in urlsplit(str(ex.get("url", ""))).path.split("/") if p]
        if found_tid is None and len(parts) >= 3 and parts[1:3] == ["oauth2", "v2.0"]:
            found_tid = parts[0]
    for _method, parts, body in _iter_exchanges(doc):
        if len(parts) < 2 or parts[0] not in ("v1.0", "beta"):
            continue
        rest = parts[1:]
        values = body.get("value") if isinstance(body.get("value"), list) else None
        if rest == ["organization"] and values:
            org = dict(values[0])
        elif len(rest) == 1 and rest[0] in MEMBER_RESOURCES and values:
            collected[rest[0]].extend(dict(v) for v in values)
        elif len(rest) == 3 and rest[0] == "groups" and rest[2] == "members" and values is not None:
            for v in values:
                store = _TYPE_TO_STORE.get(str(v.get("@odata.type", "")), "users")
                obj = {k: val for k, val in v.items() if k != "@odata.type"}
                collected[store].append(obj)
                memberships.append((rest[1], str(v["id"])))
    t = Tenant(found_tid or (org or {}).get("id"), org)
    for store, objs in collected.items():
        for obj in objs:
            if obj.get("id") not in t.stores[store]:
                t.load_object(store, obj)
    for gid, mid in memberships:
        if gid not in t.stores["groups"]:
            t.load_object("groups", {"id": gid, "displayName": None})
        t.load_member(gid, mid)
    ensure_app(t)
    return t
