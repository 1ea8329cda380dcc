"""Which round units (origins) exist for the configured `[sync] sources`, and what types each produces."""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.model import schema as m
from syncd.sources.directory import DeltaSource, directory_sources
from syncd.sources.intune import INTUNE_ORIGIN_TYPES, INTUNE_SOURCE_ORIGINS, build_intune_sources

if TYPE_CHECKING:
    from syncd.config import Settings
    from syncd.engine import Engine
    from syncd.sources.account import AccountSource
    from syncd.sources.base import Source
    from syncd.sources.signins import SignInPoll

PERSON_MAPPING_TYPE = m.generate_relationship_type(m.USER_IS_PERSON_CLASS, m.USER.type, "person")

DIRECTORY_ORIGINS: dict[str, list[str]] = {
    "account": [m.ACCOUNT.type],
    "users": [m.USER.type, m.ACCOUNT_HAS_USER.type, PERSON_MAPPING_TYPE],
    "groups": [
        m.GROUP.type,
        m.GROUP_MEMBER.type,
        m.ACCOUNT_HAS_GROUP.type,
        m.GROUP_HAS_USER.type,
        m.GROUP_HAS_GROUP.type,
        m.GROUP_HAS_MEMBER.type,
    ],
    "devices": [],
}
"""origin → the `_type`s its rounds produce (for `partialDatasets`)."""

SOURCE_ORIGINS: dict[str, list[str]] = {
    m.SOURCE_USERS: ["users"],
    m.SOURCE_GROUPS: ["groups"],
    m.SOURCE_DEVICES: ["devices"],
    m.SOURCE_COMPLIANCE: [],
    m.SOURCE_CONFIGURATIONS: [],
    m.SOURCE_APPLICATIONS: [],
    m.SOURCE_SCRIPTS: [],
    m.SOURCE_ENDPOINT_SECURITY: [],
}
"""`[sync] sources` switch → origins it turns on."""


def origin_types() -> dict[str, list[str]]:
    """origin → the `_type`s its rounds produce, for every origin (directory and Intune)."""
    return {**DIRECTORY_ORIGINS, **INTUNE_ORIGIN_TYPES}


def enabled_origins(settings: Settings) -> list[str]:
    origins: list[str] = []
    for source in settings.sync.sources:
        origins.extend(source_origins(source))
    return origins


def source_origins(source: str) -> list[str]:
    """The origins one `[sync] sources` switch turns on."""
    return [*SOURCE_ORIGINS.get(source, []), *INTUNE_SOURCE_ORIGINS.get(source, [])]


def disabled_origins(settings: Settings) -> list[str]:
    enabled = set(enabled_origins(settings))
    every = {o for s in m.ALL_SOURCES for o in source_origins(s)}
    return sorted(every - enabled)


def build_sources(settings: Settings, account: AccountSource, sign_ins: SignInPoll) -> dict[str, Source]:
    """The enabled round units, keyed by origin (the account is added by the caller)."""
    sources: dict[str, Source] = {}
    directory: dict[str, DeltaSource] = directory_sources(sign_ins)
    enabled = enabled_origins(settings)
    for origin in enabled:
        if origin in directory:
            sources[origin] = directory[origin]
    sources.update(build_intune_sources(settings, account, set(enabled)))
    return sources


DISABLED_REASON = "source switched off in [sync] sources (J1 data kept until `syncd resync --prune-disabled`)"


async def mark_disabled(engine: Engine, settings: Settings) -> list[str]:
    """Sources switched off: their types are partial in every DIFF (J1 keeps their data) and
    `syncd status` lists them as partial, until `syncd resync --prune-disabled` removes the data.

    The daemon and `syncd resync` call this after opening the runtime. Returns the origins.
    """
    origins = disabled_origins(settings)
    for origin in origins:
        engine.partial[origin] = DISABLED_REASON
        await engine.mirror.set_origin_flag(origin, True, DISABLED_REASON, disabled=True)
    return origins
