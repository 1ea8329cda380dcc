"""`syncd alerts test|j1-rules`."""

from __future__ import annotations

import argparse
import sys


def alerts_command(args: argparse.Namespace) -> int:
    from syncd.alerts import cli as alerts_cli

    if args.alerts_command == "j1-rules":
        sys.stdout.write(alerts_cli.j1_rules())
        return 0
    try:
        sys.stdout.write(alerts_cli.alerts_test(args.rules, args.change))
    except Exception as exc:
        print(f"syncd alerts test: {exc}", file=sys.stderr)
        return 2
    return 0
