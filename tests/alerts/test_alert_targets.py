"""The target registry: each kind is one class, found by its config `kind`; a new kind is one class."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp
import pytest

from syncd.alerts import (
    TARGET_KINDS,
    Alert,
    AlertDispatcher,
    AlertTarget,
    CommandTarget,
    DeliveryOutcome,
    SlackTarget,
    TargetError,
    TeamsTarget,
    WebhookTarget,
    alerts_to_rows,
)
from syncd.config import ConfigError, load_settings

if TYPE_CHECKING:
    from tests.alerts.conftest import Clock, MemoryStore


def test_the_kinds_and_their_classes() -> None:
    assert dict(TARGET_KINDS) == {
        "webhook": WebhookTarget,
        "slack": SlackTarget,
        "teams": TeamsTarget,
        "command": CommandTarget,
    }
    for name, spec, cls in (
        ("w", {"url": "https://x.example/"}, WebhookTarget),  # webhook is the default kind
        ("s", {"kind": "slack", "url": "https://x.example/"}, SlackTarget),
        ("t", {"kind": "teams", "url": "https://x.example/", "teams_format": "messagecard"}, TeamsTarget),
        ("c", {"kind": "command", "argv": ["true"]}, CommandTarget),
    ):
        target = AlertTarget.from_mapping(name, spec)
        assert type(target) is cls and target.kind == cls.kind and target.name == name
    with pytest.raises(TargetError, match=r"kind must be one of webhook\|slack\|teams\|command"):
        AlertTarget.from_mapping("x", {"kind": ["webhook"]})
    with pytest.raises(TypeError):
        AlertTarget("abstract")  # type: ignore[abstract]


@pytest.fixture
def memo_kind() -> Iterator[type[AlertTarget]]:
    """A toy kind that keeps what it would send, defined (hence registered) for one test only."""

    @dataclass(frozen=True, kw_only=True)
    class MemoTarget(AlertTarget):
        kind: ClassVar[str] = "memo"
        label: str
        sent: list[dict[str, Any]] = field(default_factory=list, compare=False, repr=False)

        @classmethod
        def options(cls, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
            label = data.get("label")
            if not isinstance(label, str) or not label:
                raise TargetError(f"alert target {name!r}: label must be a non-empty string")
            return {"label": label}

        def render(self, payload: Mapping[str, Any]) -> dict[str, Any]:
            return {"memo": self.label, "alert": payload.get("alert_id")}

        async def deliver(
            self, payload: Mapping[str, Any], session: aiohttp.ClientSession
        ) -> DeliveryOutcome:
            self.sent.append(self.render(payload))
            return DeliveryOutcome(True)

    try:
        assert TARGET_KINDS["memo"] is MemoTarget  # defining the class registered it
        yield MemoTarget
    finally:
        del TARGET_KINDS["memo"]


async def test_a_new_kind_is_one_class(
    memo_kind: type[AlertTarget], store: MemoryStore, clock: Clock, tmp_path: Path
) -> None:
    # config validation goes through the class
    config = tmp_path / "syncd.toml"
    config.write_text('[alerts.targets.notes]\nkind = "memo"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config, require_credentials=False)
    assert any("'notes': label must be a non-empty string" in p for p in info.value.problems)
    config.write_text('[alerts.targets.notes]\nkind = "memo"\nlabel = "ops"\nmin_severity = "high"\n')
    settings = load_settings(config, require_credentials=False)

    # construction, rows, rendering and sending too
    (target,) = [AlertTarget.from_mapping(n, spec) for n, spec in settings.alerts.targets.items()]
    assert type(target) is memo_kind and target.min_severity == "high"
    alert = Alert("a" * 64, "r", "high", "m", {"kind": "entity"}, 1.0)
    low = Alert("b" * 64, "r", "low", "m", {"kind": "entity"}, 1.0)
    await store.enqueue_alerts(alerts_to_rows([alert, low], [target]))
    async with aiohttp.ClientSession() as session:
        assert await AlertDispatcher(store, [target], session, clock=clock).run_once() == 1
    assert target.sent == [{"memo": "ops", "alert": "a" * 64}]  # type: ignore[attr-defined]
