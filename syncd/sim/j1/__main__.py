"""Run the J1 simulator standalone: `python -m syncd.sim.j1 --port 8099 --account-id acct`.

The API key comes from `$J1_SIM_API_KEY` (not argv, so it stays out of `ps`); it defaults to a
fixed demo key. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os

from aiohttp import web

from syncd.sim.j1.app import create_j1_app
from syncd.sim.j1.behaviour import J1Behaviour, add_behaviour_arguments, behaviour_from_args
from syncd.sim.j1.state import J1SimConfig, J1SimState
from syncd.sim.j1.validation import ValidationRules


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m syncd.sim.j1", description=__doc__)
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--account-id", default="sim-account")
    parser.add_argument("--max-body-bytes", type=int, default=6_000_000)
    parser.add_argument("--no-key-min-length", action="store_true", help="do not enforce _key length >= 10")
    add_behaviour_arguments(parser)
    args = parser.parse_args(argv)
    key = os.environ.get("J1_SIM_API_KEY", "sim-api-key-0000")
    config = J1SimConfig(
        max_body_bytes=args.max_body_bytes,
        rules=ValidationRules(enforce_key_min_length=not args.no_key_min_length),
        behaviour=J1Behaviour.from_mapping(behaviour_from_args(args)),
    )
    state = J1SimState({args.account_id: key}, config)
    web.run_app(create_j1_app(state), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
