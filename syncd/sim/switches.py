"""Partial JSON updates of a simulator's switches (a dataclass of settings), as the admin APIs take them.

JSON flags and numbers arrive loosely typed (`1` for `true`, `2` for `2.0`): each value is made the
type of the setting it replaces. A setting typed as a `Literal` (a mode) only takes one of its
values, so a typo fails loudly instead of silently acting like the default.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def coerce_like(current: object, value: Any) -> Any:
    """`value` as the type of `current` (bool, float, int); anything else unchanged."""
    if isinstance(current, bool):
        return bool(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, int):
        return int(value)
    return value


@functools.cache
def modes(settings: type[DataclassInstance]) -> dict[str, tuple[Any, ...]]:
    """The `Literal`-typed fields of a settings dataclass and the values each takes."""
    hints = get_type_hints(settings)
    return {
        f.name: get_args(hints[f.name])
        for f in dataclasses.fields(settings)
        if get_origin(hints[f.name]) is Literal
    }


def apply_changes(
    settings: DataclassInstance,
    changes: Mapping[str, Any],
    coerce: Callable[[object, Any], Any] = coerce_like,
) -> list[str]:
    """Set the named fields of the dataclass `settings`, each through `coerce(current, value)`.

    Returns the unknown names (and then changes nothing); a value outside a mode's `Literal` is a
    `ValueError`."""
    known = {f.name for f in dataclasses.fields(settings)}
    unknown = [name for name in changes if name not in known]
    if unknown:
        return unknown
    choices = modes(type(settings))
    for name, value in changes.items():
        if name in choices and value not in choices[name]:
            raise ValueError(f"{name} must be one of {list(choices[name])}")
        setattr(settings, name, coerce(getattr(settings, name), value))
    return []
