"""syncd's files are its own: run from a shell with umask 022, the state directory and the mirror
are still readable by their owner only (the unit sets UMask=0077; a terminal does not)."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

from bench.kit.tenants import feature_tenant
from tests.helpers.harness import running_harness
from tests.paths import ROOT


async def test_state_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    async with running_harness(feature_tenant(with_intune=False), tmp_path, notifications=False) as h:
        settings = h.settings()
        assert not settings.state_dir.exists()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncd",
            "-c",
            str(h.config_path()),
            "resync",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            preexec_fn=lambda: os.umask(0o022),  # what a login shell usually has
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, (out + err).decode()[-2000:]
        made = [settings.state_dir, *settings.state_dir.iterdir()]
        assert any(p.name == "mirror.sqlite" for p in made)
        for path in made:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path.name}: {oct(mode)}"
