"""Random directory changes through the simulator's tenant, for runs where the tenant must keep
changing (the crash loop, fault tests)."""

from __future__ import annotations

import random

from syncd.sim.tenant import Tenant


class Churn:
    """Random directory changes: renames, creations, soft/hard deletes, membership changes."""

    def __init__(self, tenant: Tenant, seed: int) -> None:
        self.tenant = tenant
        self.rng = random.Random(seed)
        self.n = 0

    def step(self) -> str:
        """Make one change; returns its kind."""
        t, rng = self.tenant, self.rng
        users = [u["id"] for u in t.list("users")]
        groups = [g["id"] for g in t.list("groups")]
        self.n += 1
        roll = rng.random()
        if roll < 0.35 and users:
            uid = rng.choice(users)
            t.update("users", uid, {"displayName": f"Churned {self.n}", "jobTitle": f"title {self.n}"})
            return "update"
        if roll < 0.55:  # creations outweigh deletions: the tenant does not shrink away
            t.upsert(
                "users",
                {
                    "displayName": f"New {self.n}",
                    "userPrincipalName": f"new{self.n}.{rng.randrange(10**9)}@{t.domain}",
                    "accountEnabled": True,
                    "userType": "Member",
                },
            )
            return "create"
        if roll < 0.62 and len(users) > 10:
            t.soft_delete("users", rng.choice(users))
            return "soft_delete"
        if roll < 0.67 and len(users) > 10:
            t.hard_delete("users", rng.choice(users))
            return "hard_delete"
        if roll < 0.85 and users and groups:
            t.add_member(rng.choice(groups), rng.choice(users))
            return "add_member"
        if groups:
            gid = rng.choice(groups)
            members = t.member_ids(gid)
            if members:
                t.remove_member(gid, rng.choice(members))
                return "remove_member"
        return "noop"
