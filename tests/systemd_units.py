"""The unit files in systemd/, read the way systemd reads them (shared by the unit-file tests and
the e2e test that starts the daemon with a unit's own command line)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT_FILES = sorted(SYSTEMD_DIR.glob("*.service"))
SYNCD = Path(sys.executable).with_name("syncd")


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment; systemd allows repeated keys, configparser doesn't."""
    out: list[tuple[str, str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def values(unit: Path, key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in directives(unit.read_text()) if s == section and k == key]


def exec_start_argv(unit: Path, instance: str) -> list[str]:
    """The unit's (last) ExecStart= command line as systemd splits it for `instance` (%i), with
    /usr/bin/syncd swapped for this venv's `syncd`."""
    line = values(unit, "ExecStart")[-1].lstrip("-@:+!")
    argv = [arg.replace("%i", instance).replace("%%", "%") for arg in shlex.split(line)]
    assert argv[0] == "/usr/bin/syncd", argv
    return [str(SYNCD), *argv[1:]]
