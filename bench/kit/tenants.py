"""Simulated tenants of the shapes the tests and benches use, all from one generator call."""

from __future__ import annotations

from syncd.sim.generator import generate_tenant
from syncd.sim.harness import add_privileged_group
from syncd.sim.intune import IntuneData
from syncd.sim.tenant import Tenant


def small_tenant(
    seed: int = 11,
    *,
    users: int = 40,
    groups: int = 6,
    devices: int = 10,
    managed_devices: int | None = 10,
    with_intune: bool = True,
    privileged_group: bool = False,
) -> Tenant:
    """A quick tenant (a full sync well under a second); optionally with a privileged group.
    `managed_devices=None` lets the generator size Intune from the Entra devices."""
    tenant = generate_tenant(
        seed=seed,
        users=users,
        groups=groups,
        devices=devices,
        managed_devices=managed_devices,
        with_intune=with_intune,
    )
    if privileged_group:
        add_privileged_group(tenant)
    return tenant


def directory_tenant(seed: int = 5, *, users: int = 40, groups: int = 6) -> Tenant:
    """Users, groups and a few Entra devices, no Intune devices: the production tests and the crash
    loop sync the directory sources only."""
    return small_tenant(seed, users=users, groups=groups, devices=3, managed_devices=0)


def feature_tenant(*, users: int = 25, groups: int = 5, with_intune: bool = True) -> Tenant:
    """The tenant of the feature tests (tests/e2e/test_seed_*.py): the seed integration's data."""
    return small_tenant(
        11, users=users, groups=groups, devices=4, managed_devices=None, with_intune=with_intune
    )


def graph_tenant(*, devices: int = 6) -> Tenant:
    """The Graph simulator's own tests (tests/sim): a directory, no Intune."""
    return small_tenant(7, users=30, groups=5, devices=devices, managed_devices=None, with_intune=False)


def intune_tenant(seed: int = 5, *, managed_devices: int = 120) -> Tenant:
    """Big enough that every one of the 29 Intune relationship types occurs (checked by the tests)."""
    return small_tenant(seed, users=60, groups=8, devices=40, managed_devices=managed_devices)


def intune_of(tenant: Tenant) -> IntuneData:
    """The tenant's Intune data (the tenant must have been generated with it)."""
    assert isinstance(tenant.intune, IntuneData), "a tenant without Intune data"
    return tenant.intune
