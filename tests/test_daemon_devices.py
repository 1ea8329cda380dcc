"""The devices delta follow-up: re-fetch only the changed managed devices, wake the alert
dispatcher at once, and fall back to one managed-devices poll when many changed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from syncd.config import Settings, SyncSettings
from syncd.daemon import MANAGED_DEVICES, MAX_DEVICE_REFETCH, Daemon
from syncd.sources.base import RoundReport


class Refetcher:
    def __init__(self, alerts: int) -> None:
        self.calls: list[list[str]] = []
        self.alerts = alerts

    async def refetch_for_entra_devices(self, engine: Any, ids: list[str]) -> RoundReport:
        self.calls.append(list(ids))
        return RoundReport(origin=MANAGED_DEVICES, kind="refetch", alerts=self.alerts)


class Hints:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def request(self, key: str) -> None:
        self.keys.append(key)


def daemon(source: Refetcher) -> tuple[Daemon, Hints]:
    d = Daemon(cast(Settings, SimpleNamespace(sync=SyncSettings())), install_signals=False)
    hints = Hints()
    d.rt = cast(Any, SimpleNamespace(engine=SimpleNamespace(sources={MANAGED_DEVICES: source})))
    d.wakeups = cast(Any, hints)
    return d, hints


async def test_a_few_changed_devices_are_refetched_and_their_alerts_wake_the_dispatcher() -> None:
    source = Refetcher(alerts=1)
    d, hints = daemon(source)
    await d._follow_devices(["entra-1", "entra-2"], "delta")
    assert source.calls == [["entra-1", "entra-2"]] and hints.keys == []
    assert d.alert_wake.is_set()


async def test_many_changes_or_a_full_round_poll_managed_devices_instead() -> None:
    source = Refetcher(alerts=0)
    d, hints = daemon(source)
    await d._follow_devices([f"e{i}" for i in range(MAX_DEVICE_REFETCH + 1)], "delta")
    await d._follow_devices(["e1"], "full")  # a token reset lists every device: not a change
    assert source.calls == [] and hints.keys == [MANAGED_DEVICES, MANAGED_DEVICES]
    assert not d.alert_wake.is_set()


def test_devices_are_polled_every_two_seconds_by_default() -> None:
    assert SyncSettings().devices_delta_interval == 2.0
