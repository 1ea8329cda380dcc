"""Keeps the test suite self-contained: nothing it runs may read files outside the repository.

Users clone syncd anywhere, so a test that reads a sibling directory of the repository passes
on one machine and fails on the next. Two checks enforce it:

* at run time, an audit hook (`sys.addaudithook`) sees every `open`, `os.listdir` and
  `os.scandir` of the test process; a path outside the allowed places raises
  :class:`OutsideRepositoryRead` in the offending call and is recorded, so the test fails even
  when the code under test swallows the error;
* statically, :func:`scan_sources` looks at the code of `tests/`, `bench/` and `syncd/` for paths
  built to leave the repository (`Path(__file__).parents[N]` past the root, `..`, absolute
  `/work/...` literals), which also covers the benches and the daemon's child processes.

Allowed at run time: the repository, the temporary directory, the Python installation (prefix,
site-packages) and the operating system's own directories (certificates, time zones, `/proc`).
"""

from __future__ import annotations

import ast
import os
import re
import site
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_DIRS = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/dev", "/proc", "/sys", "/run")
HOME_FILES = (".netrc", "_netrc")
"""`requests` (used by msal) looks for these in the home directory."""
AUDITED = frozenset({"open", "os.listdir", "os.scandir"})
SCANNED = ("tests", "bench", "syncd")
_PARENT_DIR = re.compile(r"(^|[/\\\"'])\.\.([/\\\"']|$)", re.MULTILINE)
"""A `..` path component anywhere in a file's text (pre-filter before parsing it)."""


class OutsideRepositoryRead(RuntimeError):
    """A test touched a file outside the repository (see tests/repo_guard.py)."""


def _allowed_roots() -> tuple[str, ...]:
    roots = {str(ROOT), os.path.realpath(tempfile.gettempdir()), *SYSTEM_DIRS}
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        roots.add(os.path.realpath(prefix))
    for path in [*site.getsitepackages(), site.getusersitepackages(), *sysconfig.get_paths().values()]:
        if path:
            roots.add(os.path.realpath(path))
    return tuple(sorted(roots))


@dataclass
class ReadGuard:
    """The audit hook's state: where reading is fine, and what was refused."""

    roots: tuple[str, ...]
    home_files: frozenset[str]
    violations: list[str]
    active: bool = True

    def allowed(self, path: str) -> bool:
        full = os.path.realpath(path)
        if full in self.home_files:
            return True
        return any(full == root or full.startswith(root.rstrip("/") + "/") for root in self.roots)

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in AUDITED or not self.active or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str | os.PathLike):
            return  # a file descriptor, or None for the current directory
        text = os.fspath(path)
        if not isinstance(text, str) or self.allowed(text):
            return
        self.violations.append(f"{event} {os.path.realpath(text)}")
        raise OutsideRepositoryRead(
            f"{event} of {text!r}: tests must only read files inside the repository ({ROOT}); "
            "copy what a test needs under tests/fixtures/"
        )


_GUARD: ReadGuard | None = None


def install() -> ReadGuard:
    """Install the audit hook once per process (hooks cannot be removed)."""
    global _GUARD
    if _GUARD is None:
        home = Path.home()
        _GUARD = ReadGuard(
            roots=_allowed_roots(),
            home_files=frozenset(os.path.realpath(home / name) for name in HOME_FILES),
            violations=[],
        )
        sys.addaudithook(_GUARD.hook)
    return _GUARD


# --- the static half --------------------------------------------------------------------------
def _docstrings(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _from_file(node: ast.AST) -> bool:
    """Whether an expression is built on `__file__` (Path(__file__), .resolve(), .parent ...)."""
    while True:
        if isinstance(node, ast.Name):
            return node.id == "__file__"
        if isinstance(node, ast.Call):
            if any(isinstance(a, ast.Name) and a.id == "__file__" for a in node.args):
                return True
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return False


def _levels_up(node: ast.AST) -> int | None:
    """How many directories above the file an expression like `Path(__file__).parents[2]` or
    `Path(__file__).parent.parent` points (0 = the file's own directory); None if not one."""
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parents"
        and _from_file(node.value.value)
    ):
        index = node.slice
        if isinstance(index, ast.Constant) and isinstance(index.value, int):
            return index.value
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = node.value
        if isinstance(inner, ast.Attribute) and inner.attr == "parent":
            up = _levels_up(inner)
            return None if up is None else up + 1
        if _from_file(inner):
            return 0
    return None


def scan_file(path: Path, root: Path = ROOT) -> list[str]:
    """Paths in this file's code that lead out of the repository."""
    text = path.read_text(encoding="utf-8")
    if "__file__" not in text and "/work/" not in text and not _PARENT_DIR.search(text):
        return []  # nothing that could name such a path: skip the parse
    tree = ast.parse(text, filename=str(path))
    skip = _docstrings(tree)
    depth = len(path.resolve().relative_to(root).parts) - 1  # directories between root and file
    found: list[str] = []
    for node in ast.walk(tree):
        up = _levels_up(node)
        if up is not None and up > depth:
            where = f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}"
            found.append(f"{where}: Path(__file__) goes {up - depth} level(s) above the root")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            value = node.value
            parts = value.replace("\\", "/").split("/")
            if ".." in parts or value.startswith("/work/"):
                found.append(f"{path.relative_to(root)}:{node.lineno}: path literal {value!r}")
    return sorted(found, key=lambda line: int(line.split(":")[1]))


def scan_sources(root: Path = ROOT) -> list[str]:
    """Every way out of the repository found in the code of tests/, bench/ and syncd/."""
    found: list[str] = []
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            if path.resolve() != Path(__file__).resolve():  # the scanner names what it looks for
                found.extend(scan_file(path, root))
    return found
