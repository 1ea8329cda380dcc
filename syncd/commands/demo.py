"""`syncd demo`: the daemon against the built-in simulators, with scripted changes flowing through."""

from __future__ import annotations


async def run_demo(*, users: int = 200, keep_running: bool = False) -> int:
    raise NotImplementedError
