"""Fault injection for tests and the fault harness: crash the agent at a named point.

Off unless the environment variable ``LDMX_CRASH_AT`` names points, comma-separated, each
``POINT`` or ``POINT:DETAIL`` (for example ``after-apply:add-domain``). When the running code
reaches a named point the process exits at once with status 99, as a crash would: no cleanup,
no answer, nothing flushed that was not already durable.
"""

from __future__ import annotations

import os

CRASH_STATUS = 99
_ENV = "LDMX_CRASH_AT"


def _armed() -> frozenset[str]:
    return frozenset(p.strip() for p in os.environ.get(_ENV, "").split(",") if p.strip())


# Read once: the environment of a running agent does not change.
ARMED = _armed()


def crash_point(point: str, detail: str = "") -> None:
    """Exit immediately if ``point`` (or ``point:detail``) is armed."""
    if not ARMED:
        return
    if point in ARMED or (detail and f"{point}:{detail}" in ARMED):
        os._exit(CRASH_STATUS)
