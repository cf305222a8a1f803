"""Fault injection at named points of a migration (spec migration.md §1.8, §9.5). Off by default.

Set ``LDMX_MIGRATION_FAULTS`` in an agent's environment to a comma-separated list of
``point=action`` pairs. Actions: ``crash`` (the agent process exits at once, as a
``kill -9`` would leave it: the journal and the guests survive), ``cut`` (the control
connection is dropped), ``drop`` (the reply being written is lost and the connection
dropped), ``hold`` (the agent waits 3 s there: at ``source-round-hold`` only the data
plane waits, a window in which a test cancels in phase 3; at a target point the whole target
agent waits, so the source sits past the point of no return). Each pair fires once. The points, and the §9.5 rows they serve:

==============================  ======================================================
``source-prepared``             F10 (source crash, phase 2), F08/F40 (cut, phase 2)
``source-round``                F14 (source crash, phase 3), F11 (cut, phase 3)
``source-round-hold``           F17 (cancel in phase 3), F24 (requester lost, phase 3)
``source-before-commit-sent``   F21 (source crash before the PNR), F18 (cut, phase 4)
``source-after-commit-sent``    F30 (source crash after the PNR), F25 (cut after the PNR)
``target-prepared``             F09 (target crash, phase 2)
``target-transfer-done``        F20 (target crash, phase 4)
``target-commit-received``      F27 (target crash before ``committing``); ``hold``: F35
``target-committing``           F28 (target crash before the vCPUs start)
``target-committed``            F29 (target crash before the reply)
``target-commit-reply``         ``drop``: F26, F41 (the committed reply is lost)
==============================  ======================================================
"""

from __future__ import annotations

import os

ENV = "LDMX_MIGRATION_FAULTS"
CRASH, CUT, DROP, HOLD = "crash", "cut", "drop", "hold"
ACTIONS = (CRASH, CUT, DROP, HOLD)
HOLD_S = 3.0
CRASH_STATUS = 70


class Faults:
    """The armed fault points of one agent."""

    def __init__(self, spec: str = "") -> None:
        self.armed: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in spec.split(","))):
            point, _, action = pair.partition("=")
            if action not in ACTIONS:
                raise ValueError(f"{ENV}: unknown fault action {action!r} for {point!r}")
            self.armed[point] = action

    @classmethod
    def from_environment(cls) -> "Faults":
        return cls(os.environ.get(ENV, ""))

    def hit(self, point: str) -> str | None:
        """Fire ``point`` if armed: crash here, or return the action for the caller to apply."""
        action = self.armed.pop(point, None)
        if action == CRASH:
            os._exit(CRASH_STATUS)
        return action
