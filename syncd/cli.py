"""The `syncd` command: argument parsing and dispatch; each command lives in `syncd.commands`."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from syncd import __version__
from syncd.config import ConfigError, Settings, load_settings

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 78
"""78 is EX_CONFIG: the systemd unit does not restart on it (RestartPreventExitStatus=78)."""


def _config_option(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=default,
        help="TOML configuration file (default: $SYNCD_CONFIG)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="syncd", description=__doc__)
    _config_option(p, os.environ.get("SYNCD_CONFIG"))
    p.add_argument("--version", action="version", version=f"syncd {__version__}")
    # `-c` is accepted after the command too (`syncd run -c FILE`, what the units and most
    # daemons use); SUPPRESS keeps a value given before the command when none follows it.
    after = argparse.ArgumentParser(add_help=False)
    _config_option(after, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command = functools.partial(sub.add_parser, parents=[after])
    command("run", help="the daemon")
    r = command("resync", help="full sync of every source and one DIFF push, then exit")
    r.add_argument(
        "--prune-disabled",
        action="store_true",
        help="also delete from J1 the data of sources switched off in [sync] sources",
    )
    st = command("status", help="cursor age, last success per resource, outbox depth, last error")
    st.add_argument("--json", action="store_true")
    check = command(
        "check", help="config, token, one probe per permission, J1 auth, J1 behaviours (capability probe)"
    )
    check.add_argument(
        "--no-j1-probe",
        action="store_true",
        help="skip the J1 capability probe (it runs a few jobs on throw-away scopes)",
    )
    command("setup", help="permissions to grant, the admin-consent URL and the config to write")
    command("document", help="print the data model tables")
    sim = sub.add_parser("sim", help="run the Graph and J1 simulators", add_help=False)
    sim.add_argument("sim_args", nargs=argparse.REMAINDER)
    demo = command("demo", help="the daemon against the built-in simulators, with scripted changes")
    demo.add_argument("--users", type=int, default=200)
    demo.add_argument("--keep-running", action="store_true")
    subs = command("subscriptions", help="Graph change-notification subscriptions")
    subs.add_argument("action", choices=["list", "delete"])
    alerts = command("alerts", help="alert rules")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    at = alerts_sub.add_parser("test", help="evaluate rules against a sample change, offline")
    at.add_argument("rules", type=Path)
    at.add_argument("--change", type=Path, required=True)
    alerts_sub.add_parser("j1-rules", help="print J1QL alert rules for the default conditions")
    un = command("uninstall", help="delete subscriptions, optionally the J1 data and local state")
    un.add_argument("--purge-j1", action="store_true", help="remove everything syncd created in J1")
    un.add_argument("--yes", action="store_true", help="do not ask before removing the local state")
    return p


def _settings(args: argparse.Namespace, *, require_credentials: bool = True) -> Settings:
    return load_settings(args.config, require_credentials=require_credentials)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sim"]:
        from syncd.sim.runner import main as sim_main

        return sim_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        from syncd.mirror.types import MirrorError  # lazy: sqlite-utils is slow to import

        if not isinstance(exc, MirrorError):
            raise
        # Corrupt, locked, unwritable or full: say so and stop. The file is left exactly as it is
        # (never reset silently); systemd restarts us, which is right for a lock or a full disk.
        print(f"syncd: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from syncd import log as syncd_log

    cmd = args.command
    if cmd == "document":
        from syncd.model.document import render_document

        sys.stdout.write(render_document())
        return EXIT_OK
    if cmd == "alerts":
        from syncd.commands.alerts import alerts_command

        return alerts_command(args)
    # Everything below may create the state directory and the mirror: owner-only, also when run
    # from a shell with umask 022 (the unit sets UMask=0077 itself).
    os.umask(0o077)
    if cmd == "demo":
        from syncd.commands.demo import run_demo

        syncd_log.configure_logging("INFO", "auto")
        return asyncio.run(run_demo(users=args.users, keep_running=args.keep_running))
    if cmd == "setup":
        from syncd.commands.setup import setup_command

        return setup_command(_settings(args, require_credentials=False))
    settings = _settings(args)
    syncd_log.configure_logging(settings.log.level, settings.log.format)
    syncd_log.register_secrets(settings.secrets())
    if cmd == "run":
        from syncd.daemon import Daemon

        return asyncio.run(Daemon(settings, config_path=args.config).run())
    if cmd == "resync":
        from syncd.commands.resync import resync_command

        return asyncio.run(resync_command(settings, prune_disabled=args.prune_disabled))
    if cmd == "status":
        from syncd.commands.status import status_command

        return asyncio.run(status_command(settings, as_json=args.json))
    if cmd == "check":
        from syncd.commands.check import check_command

        return asyncio.run(check_command(settings, j1_probe=not args.no_j1_probe))
    if cmd == "subscriptions":
        from syncd.commands.subscriptions import subscriptions_command

        return asyncio.run(subscriptions_command(settings, args.action))
    if cmd == "uninstall":
        from syncd.commands.uninstall import uninstall_command

        return asyncio.run(uninstall_command(settings, purge_j1=args.purge_j1, assume_yes=args.yes))
    raise AssertionError(cmd)
