"""The capability probe: test each undocumented J1 behaviour on throw-away scopes of the account.

Each test runs real sync jobs on three fresh scopes (``<base>-probe-<tag>-a|b|c``), then reads the
outcome back twice: from the job's counters and from the graph through J1QL (``queryV1``). J1QL
results may lag a job, so every read waits for a *marker* the same job wrote (an object that must
appear) before judging what else changed. The scopes are emptied at the end, whatever happened.

Only a behaviour seen working is "proven" (``ok`` True); a failure to test leaves it unknown
(``ok`` None), which the writer treats like "not available".
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from syncd.j1.capabilities import DOCUMENTED_BASELINE, Behaviour, Capabilities, Finding
from syncd.j1.client import SyncApiClient
from syncd.j1.errors import J1Error
from syncd.j1.partitions import SOURCE
from syncd.j1.query import J1QueryClient, column
from syncd.j1.verify import counter

log = structlog.get_logger(__name__)

PROBE_TYPE = "syncd_probe_entity"
PROBE_RELATIONSHIP_TYPE = "syncd_probe_entity_has_entity"
PROBE_CLASS = "Record"


@dataclass
class _Scopes:
    tag: str
    base: str

    @property
    def prefix(self) -> str:
        return f"{self.base}-probe-{self.tag}"

    def scope(self, name: str) -> str:
        return f"{self.prefix}-{name}"


class AccountProbe:
    """Runs the probe on one account; ``run()`` returns the findings (never raises for J1's answers)."""

    def __init__(
        self,
        client: SyncApiClient,
        query: J1QueryClient,
        base: str,
        *,
        wait: float = 30.0,
        job_timeout: float = 120.0,
    ) -> None:
        self.client = client
        self.query = query
        self.scopes = _Scopes(secrets.token_hex(4), base)
        self.wait = wait
        self.job_timeout = job_timeout
        self.findings: dict[str, Finding] = {}

    # --- objects ----------------------------------------------------------------------------------

    def key(self, name: str) -> str:
        return f"syncd-probe:{self.scopes.tag}:{name}"

    def entity(self, name: str, **props: Any) -> dict[str, Any]:
        return {
            "_key": self.key(name),
            "_type": PROBE_TYPE,
            "_class": PROBE_CLASS,
            "displayName": f"syncd probe {name}",
            "name": f"syncd probe {name}",
            **props,
        }

    def relationship(self, frm: tuple[str, str], to: tuple[str, str], cls: str = "HAS") -> dict[str, Any]:
        """A relationship between two probe entities, each named (entity, scope) by key+scope+source."""
        from_key, to_key = self.key(frm[0]), self.key(to[0])
        return {
            "_key": f"{from_key}|{cls.lower()}|{to_key}",
            "_type": PROBE_RELATIONSHIP_TYPE,
            "_class": cls,
            "displayName": cls,
            "_fromEntityKey": from_key,
            "_fromEntityScope": self.scopes.scope(frm[1]),
            "_fromEntitySource": SOURCE,
            "_toEntityKey": to_key,
            "_toEntityScope": self.scopes.scope(to[1]),
            "_toEntitySource": SOURCE,
        }

    # --- reading back ---------------------------------------------------------------------------

    async def entity_values(self, scope: str) -> dict[str, Any]:
        """key → probeStep of the probe entities J1QL sees in ``scope``."""
        rows = await self.query.query(
            f"FIND {PROBE_TYPE} WITH _scope = '{self.scopes.scope(scope)}' AS e"
            " RETURN e._key AS key, e.probeStep AS step"
        )
        return {str(column(r, "key")): column(r, "step") for r in rows if column(r, "key")}

    async def relationship_keys(self, scope: str) -> set[str]:
        """Keys of the relationships of ``scope`` J1QL finds between probe entities."""
        rows = await self.query.query(
            f"FIND {PROBE_TYPE} WITH _scope ^= '{self.scopes.prefix}-' AS a THAT RELATES TO AS r"
            f" {PROBE_TYPE} AS b RETURN r._key AS key, r._scope AS scope"
        )
        wanted = self.scopes.scope(scope)
        return {str(column(r, "key")) for r in rows if column(r, "scope") == wanted and column(r, "key")}

    async def until(self, read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
        """Poll ``read`` until ``done`` holds for its result (J1QL lags jobs), or time is up."""
        deadline = time.monotonic() + self.wait
        delay = 0.1
        while True:
            value = await read()
            if done(value) or time.monotonic() >= deadline:
                return value
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def job(self, scope: str, mode: str, **uploads: Any) -> dict[str, Any]:
        return await self.client.run_job(self.scopes.scope(scope), mode, timeout=self.job_timeout, **uploads)

    # --- the tests ------------------------------------------------------------------------------

    def found(self, name: str, ok: bool | None, detail: str) -> None:
        self.findings[name] = Finding(ok, detail)
        log.debug("j1 probe", behaviour=name, ok=ok, detail=detail)

    async def run(self) -> Capabilities:
        try:
            await self._run()
        except J1Error as exc:
            detail = f"probe could not run: {exc}"[:300]
            for name in (DOCUMENTED_BASELINE, *Behaviour):
                self.findings.setdefault(name, Finding(None, detail))
        finally:
            await self._clean_up()
        return Capabilities(findings=dict(self.findings))

    async def _run(self) -> None:
        r1, r2 = self.relationship(("a1", "a"), ("b1", "b")), self.relationship(("a2", "a"), ("b1", "b"))
        await self.job("a", "DIFF", entities=[self.entity("a1"), self.entity("a2"), self.entity("a3")])
        await self.job("b", "DIFF", entities=[self.entity("b1")])
        job = await self.job("c", "DIFF", relationships=[r1, r2])
        seen = await self.until(
            lambda: self.relationship_keys("c"), lambda keys: {r1["_key"], r2["_key"]} <= keys
        )
        baseline = {r1["_key"], r2["_key"]} <= seen and not counter(job, "numRelationshipCreateErrors")
        self.found(
            DOCUMENTED_BASELINE,
            baseline,
            "resolved" if baseline else f"J1QL saw {len(seen)} of 2 relationships, counters {_counters(job)}",
        )
        if not baseline:
            for behaviour in Behaviour:
                self.found(behaviour, None, "not tested: cross-scope references do not resolve")
            return
        additive = await self._cross_scope_additive(r1, r2)
        await self._cross_scope_deletes(additive)
        await self._cross_scope_same_scope(additive)
        await self._explicit_entity_deletes()
        await self._cascade_deletes(r1, r2)

    async def _cross_scope_additive(self, r1: dict[str, Any], r2: dict[str, Any]) -> bool:
        r3 = self.relationship(("a3", "a"), ("b1", "b"))
        try:
            job = await self.job("c", "CROSS_SCOPE", relationships=[r3])
        except J1Error as exc:
            self.found(Behaviour.CROSS_SCOPE_ADDITIVE, False, f"CROSS_SCOPE job refused: {exc.message}"[:300])
            return False
        seen = await self.until(lambda: self.relationship_keys("c"), lambda keys: r3["_key"] in keys)
        if r3["_key"] not in seen:
            self.found(
                Behaviour.CROSS_SCOPE_ADDITIVE,
                False,
                f"the uploaded relationship never appeared ({_counters(job)})",
            )
            return False
        additive = {r1["_key"], r2["_key"]} <= seen and not counter(job, "numRelationshipsDeleted")
        self.found(
            Behaviour.CROSS_SCOPE_ADDITIVE,
            additive,
            "kept the scope's other relationships"
            if additive
            else f"replaced the scope's relationships ({_counters(job, 'numRelationshipsDeleted')})",
        )
        if not additive:  # put C back as the next tests expect it
            await self.job("c", "DIFF", relationships=[r1, r2, r3])
        return additive

    async def _cross_scope_deletes(self, additive: bool) -> None:
        if not additive:
            self.found(Behaviour.CROSS_SCOPE_DELETES, None, "not tested: needs an additive CROSS_SCOPE")
            return
        r3 = self.relationship(("a3", "a"), ("b1", "b"))
        marker = self.relationship(("b1", "b"), ("a1", "a"), "USES")
        try:
            job = await self.job(
                "c", "CROSS_SCOPE", relationships=[marker], delete_relationships=[{"_key": r3["_key"]}]
            )
        except J1Error as exc:
            self.found(Behaviour.CROSS_SCOPE_DELETES, False, f"refused: {exc.message}"[:300])
            return
        seen = await self.until(lambda: self.relationship_keys("c"), lambda keys: marker["_key"] in keys)
        ok = (
            marker["_key"] in seen
            and r3["_key"] not in seen
            and counter(job, "numRelationshipsDeleted") == 1
        )
        self.found(
            Behaviour.CROSS_SCOPE_DELETES,
            ok,
            "deleted"
            if ok
            else f"deleteRelationships not applied ({_counters(job, 'numRelationshipsDeleted')})",
        )

    async def _cross_scope_same_scope(self, additive: bool) -> None:
        if not additive:
            self.found(Behaviour.CROSS_SCOPE_SAME_SCOPE, None, "not tested: needs an additive CROSS_SCOPE")
            return
        r4 = self.relationship(("a1", "a"), ("a2", "a"))
        try:
            job = await self.job("c", "CROSS_SCOPE", relationships=[r4])
        except J1Error as exc:
            self.found(Behaviour.CROSS_SCOPE_SAME_SCOPE, False, f"refused: {exc.message}"[:300])
            return
        seen = await self.until(lambda: self.relationship_keys("c"), lambda keys: r4["_key"] in keys)
        ok = r4["_key"] in seen and not counter(job, "numRelationshipCreateErrors")
        self.found(
            Behaviour.CROSS_SCOPE_SAME_SCOPE, ok, "accepted" if ok else f"not created ({_counters(job)})"
        )

    async def _explicit_entity_deletes(self) -> None:
        try:
            job = await self.job(
                "a",
                "PATCH",
                entities=[self.entity("a1", probeStep=6)],
                delete_entities=[{"_key": self.key("a3")}],
            )
        except J1Error as exc:
            self.found(Behaviour.EXPLICIT_ENTITY_DELETES, False, f"refused: {exc.message}"[:300])
            return
        values = await self.until(lambda: self.entity_values("a"), lambda v: v.get(self.key("a1")) == 6)
        ok = (
            values.get(self.key("a1")) == 6
            and self.key("a3") not in values
            and counter(job, "numEntitiesDeleted") == 1
        )
        self.found(
            Behaviour.EXPLICIT_ENTITY_DELETES,
            ok,
            "deleted" if ok else f"deleteEntities not applied ({_counters(job, 'numEntitiesDeleted')})",
        )

    async def _cascade_deletes(self, r1: dict[str, Any], r2: dict[str, Any]) -> None:
        """Delete b1 (DIFF of its scope), then bring it back: relationships that other scopes
        own and that J1 kept dangling reappear with it; cascaded ones do not."""
        await self.job("b", "DIFF", entities=[self.entity("b2")])
        await self.job("b", "DIFF", entities=[self.entity("b1", probeStep=7), self.entity("b2")])
        await self.until(lambda: self.entity_values("b"), lambda v: v.get(self.key("b1")) == 7)
        seen = await self.relationship_keys("c")
        kept = {r1["_key"], r2["_key"]} & seen
        self.found(
            Behaviour.CASCADE_DELETES,
            not kept,
            "relationships to a deleted entity went with it"
            if not kept
            else f"{len(kept)} relationship(s) to a deleted entity survived it",
        )

    async def _clean_up(self) -> None:
        for name in ("c", "a", "b"):
            try:
                await self.client.run_job(self.scopes.scope(name), "DIFF", timeout=self.job_timeout)
            except J1Error as exc:
                log.warning("probe scope not emptied", scope=self.scopes.scope(name), error=str(exc)[:200])


def _counters(job: dict[str, Any], *names: str) -> str:
    """The job's counters that tell what happened (the usual relationship ones when none is named)."""
    shown = names or ("numRelationshipsCreated", "numRelationshipsDeleted", "numRelationshipCreateErrors")
    return ", ".join(f"{n}={job.get(n)}" for n in shown if n in job)
