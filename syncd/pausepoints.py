"""Named pause points: the moments where crash tests stop syncd to kill it (a test-only hook).

With ``SYNCD_PAUSE_AT=<point>`` in its environment, the first time syncd reaches ``<point>`` it
writes ``<point> <pid>`` to the file named by ``SYNCD_PAUSE_MARKER`` and then waits forever, so
a test can wait for the marker and ``kill -9`` the process exactly there. Without the variable
(always, in production) a point costs one environment lookup and does nothing.

The points, in the order one change travels:

=================== ======================================================================
``source.page``     a delta page was fetched from Graph, before it is staged (fetch)
``mirror.commit``   inside the round's SQLite transaction, everything applied, before COMMIT
``engine.committed`` the round is committed (outbox rows, cursor), before any push
``j1.upload``       a J1 job exists, nothing uploaded yet
``j1.finalize``     the upload is done, the job not yet finalized
``j1.ack``          J1 reports the job FINISHED, the outbox rows are not yet acknowledged
=================== ======================================================================
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

ENV_POINT = "SYNCD_PAUSE_AT"
ENV_MARKER = "SYNCD_PAUSE_MARKER"
POINTS = (
    "source.page",
    "mirror.commit",
    "engine.committed",
    "j1.upload",
    "j1.finalize",
    "j1.ack",
)


def _reached(name: str) -> bool:
    """True (after writing the marker) when this process was told to pause at ``name``."""
    if name not in POINTS:
        raise ValueError(f"unknown pause point {name!r}")
    if os.environ.get(ENV_POINT) != name:
        return False
    marker = os.environ.get(ENV_MARKER)
    if marker:
        path = Path(marker)
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(f"{name} {os.getpid()}\n")
        scratch.replace(path)  # the marker appears complete or not at all
    return True


async def pause_point(name: str) -> None:
    """On the event loop: pause this task forever at ``name`` when the test asked for it."""
    if _reached(name):
        await asyncio.Event().wait()


def pause_point_blocking(name: str) -> None:
    """In a worker thread (the mirror writer): block this thread forever at ``name``."""
    if _reached(name):
        threading.Event().wait()
