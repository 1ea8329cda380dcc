"""Switches for the points J1's documentation leaves open (issue 11).

Each switch offers every reading of one undocumented behaviour. The default is always the
strictest reading, so a client that is correct against the defaults does not depend on luck;
`J1Behaviour.permissive()` flips every switch to the reading that accepts or applies the most.
docs/simulators.md quotes the doc sentence behind each switch.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from syncd.sim.j1.validation import ApiError, JsonObj
from syncd.sim.switches import modes

ExplicitDeletes = Literal["ignore", "apply"]
CrossScopeOwnership = Literal["replace", "additive"]
CrossScopeSameScope = Literal["reject", "accept"]
CrossScopeReference = Literal["key_scope_source", "key_scope", "key"]

BOOLEAN_SWITCHES = ("cascade_deletes",)


@dataclass
class J1Behaviour:
    """How the simulator reads each open point of the J1 docs (defaults: strictest)."""

    explicit_deletes: ExplicitDeletes = "ignore"
    """`deleteEntities`/`deleteRelationships`: accepted but not applied, or applied at finalize."""
    cross_scope_ownership: CrossScopeOwnership = "replace"
    """A FINISHED CROSS_SCOPE job's relationships replace those its scope owned, or only add."""
    cross_scope_same_scope: CrossScopeSameScope = "reject"
    """A CROSS_SCOPE relationship with both endpoints in one scope: 400, or accepted."""
    cross_scope_reference: CrossScopeReference = "key_scope_source"
    """What an endpoint outside the job's scope needs: `_key`+scope+source, `_key`+scope, or `_key`."""
    cascade_deletes: bool = True
    """Deleting an entity removes its relationships in every scope, or only in its own scope."""

    @classmethod
    def permissive(cls) -> J1Behaviour:
        """Every switch at its most permissive reading."""
        behaviour = cls(cascade_deletes=False)
        for name, values in CHOICES.items():
            setattr(behaviour, name, values[-1])
        return behaviour

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> J1Behaviour:
        """Defaults overridden by `data` (validated like the admin API)."""
        behaviour = cls()
        if data:
            behaviour.update(data)
        return behaviour

    def update(self, data: Mapping[str, Any]) -> None:
        """Apply a partial JSON update; unknown names and bad values are a 400, nothing changes."""
        staged: dict[str, Any] = {}
        for name, value in data.items():
            if name in CHOICES:
                if not isinstance(value, str) or value not in CHOICES[name]:
                    raise ApiError(400, "INVALID_BEHAVIOUR", f"{name!r} must be one of {list(CHOICES[name])}")
            elif name in BOOLEAN_SWITCHES:
                if not isinstance(value, bool):
                    raise ApiError(400, "INVALID_BEHAVIOUR", f"{name!r} must be a boolean")
            else:
                raise ApiError(400, "UNKNOWN_BEHAVIOUR", f"unknown behaviour switch {name!r}")
            staged[name] = value
        for name, value in staged.items():
            setattr(self, name, value)

    def as_json(self) -> JsonObj:
        """Current switches as JSON."""
        return asdict(self)

    def copy(self) -> J1Behaviour:
        """An independent copy (the admin API mutates the live one)."""
        return J1Behaviour(**self.as_json())


CHOICES: dict[str, tuple[str, ...]] = modes(J1Behaviour)
"""Enumerated switches (the `Literal` fields): the first value is the default (strictest), the last
the most permissive."""


# -- command line ------------------------------------------------------------------------------
def add_behaviour_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--j1-*` switches shared by `syncd sim` and `python -m syncd.sim.j1`."""
    group = parser.add_argument_group(
        "J1 behaviour where the docs are open (defaults: strictest reading; see docs/simulators.md)"
    )
    group.add_argument(
        "--j1-permissive",
        action="store_true",
        help="every switch at its most permissive reading (single flags below still override)",
    )
    for name, values in CHOICES.items():
        group.add_argument(
            "--j1-" + name.replace("_", "-"),
            dest=f"j1_{name}",
            choices=values,
            default=None,
            help=f"default {values[0]}",
        )
    group.add_argument(
        "--j1-no-cascade-deletes",
        dest="j1_cascade_deletes",
        action="store_const",
        const=False,
        default=None,
        help="deleting an entity leaves other scopes' relationships to it dangling (default: removed)",
    )
    group.add_argument(
        "--j1-cascade-deletes",
        dest="j1_cascade_deletes",
        action="store_const",
        const=True,
        help="the default; restores cascading after --j1-permissive",
    )


def behaviour_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The switches the command line asked for, as a partial update over the defaults."""
    chosen: dict[str, Any] = J1Behaviour.permissive().as_json() if args.j1_permissive else {}
    for name in (*CHOICES, *BOOLEAN_SWITCHES):
        value = getattr(args, f"j1_{name}")
        if value is not None:
            chosen[name] = value
    return chosen
