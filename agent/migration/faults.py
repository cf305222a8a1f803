"""Fault injection at named points of a migration (spec migration.md §1.8, §9.5). Off by default.

Set ``LDMX_MIGRATION_FAULTS`` in an agent's environment to a comma-separated list of
``point=action`` pairs. Each pair fires once. Actions:

* ``crash``: the agent process exits at once, as a ``kill -9`` would leave it (the journal and
  the guests survive);
* ``poweroff``: the whole machine crashes: every guest process of the agent is killed, then
  the agent exits as for ``crash`` (the domains' running state is lost with the machine);
* ``cut``: the control connection is dropped; at a data point (``*-data-*``) the data
  connection is cut instead (both directions shut down, as a broken link);
* ``drop``: the reply being written is lost and the connection dropped;
* ``hold``: the agent waits 3 s there: at ``source-round-hold`` only the data plane waits, a
  window in which a test cancels in phase 3 or signals the CLI; at a target point the whole
  target agent waits, so the source sits past the point of no return;
* ``fail``: the operation at the point fails (it raises :class:`InjectedFailure`);
* ``halt``: the guest stops by itself (its process exits, as at a halt in the guest);
* ``corrupt``: one byte of one page of the receiving guest's memory is flipped after the
  page was applied.

The points, and the §9.5 rows they serve:

==============================  ======================================================
``source-prepared``             F10 (source crash, phase 2), F08 (cut, phase 2)
``source-sent-<message>``       right after the source wrote ``<message>``: ``cut`` at
                                ``source-sent-mig-prepare`` is F40 (bound, phase 2), at
                                ``source-sent-mig-transfer-done`` F18 (cut, phase 4)
``source-round``                F14 (source crash, phase 3), F11 (cut, phase 3)
``source-round-hold``           F17 (cancel in phase 3), F24/F36/F38 (CLI signal, cancel on
                                the target, phase 3)
``source-data-round``           ``cut``: F12 (data channel cut, phase 3); ``halt``: F15
                                (the guest stops during phase 3); in the data thread
``source-suspend``              ``fail``: F22 (the suspend of phase 4 fails)
``source-before-commit-sent``   F21 (source crash before the PNR)
``source-after-commit-sent``    F30 (source crash after the PNR), F25 (cut after the PNR)
``target-prepared``             F09 (target crash, phase 2)
``target-data-round``           ``crash``: F13 (target crash while receiving, phase 3)
``target-before-ready``         ``corrupt``: F19 (a page corrupted on the target, phase 4)
``target-transfer-done``        F20 (target crash, phase 4)
``target-commit-received``      F27 (target crash before ``committing``); ``hold``: F35, F37
``target-committing``           F28 (target crash before the vCPUs start)
``target-resume``               ``fail``: F23 (the target's resume fails after the commit)
``target-committed``            F29, F34 (target crash before the reply); ``poweroff``: F31
``target-commit-reply``         ``drop``: F26, F41 (the committed reply is lost)
``target-release``              ``drop``: F39 (``mig-release`` is lost after success)
==============================  ======================================================
"""

from __future__ import annotations

import os
import signal
import socket
import time

ENV = "LDMX_MIGRATION_FAULTS"
CRASH, CUT, DROP, HOLD = "crash", "cut", "drop", "hold"
FAIL, HALT, CORRUPT, POWEROFF = "fail", "halt", "corrupt", "poweroff"
ACTIONS = (CRASH, CUT, DROP, HOLD, FAIL, HALT, CORRUPT, POWEROFF)
HOLD_S = 3.0
CRASH_STATUS = 70


class InjectedFailure(Exception):
    """The ``fail`` action: the operation at a fault point fails."""


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
        """The process's faults, read once: the agent and its data threads share them."""
        global _SHARED
        if _SHARED is None:
            _SHARED = cls(os.environ.get(ENV, ""))
        return _SHARED

    def hit(self, point: str, hypervisor=None) -> str | None:
        """Fire ``point`` if armed: crash here, or return the action for the caller to apply."""
        action = self.armed.pop(point, None)  # atomic: a data thread may hit at the same time
        if action == POWEROFF and hypervisor is not None:
            power_off(hypervisor)
        if action in (CRASH, POWEROFF):
            os._exit(CRASH_STATUS)
        return action


_SHARED: Faults | None = None


def power_off(hypervisor) -> None:
    """Kill every guest process of this machine at once (their memory files stay)."""
    for name in hypervisor.list():
        pid = hypervisor.pid(name)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def data_point(point: str, *, channel=None, ram: memoryview | None = None, hypervisor=None,
               guest: str = "", on_write=None) -> None:
    """A fault point of the data plane (called in a data thread with what it may break).

    ``on_write(offset)`` is told of a byte ``corrupt`` changes in ``ram``: the write goes
    through the hypervisor's path, which keeps the target's §10.7 digest current.
    """
    action = Faults.from_environment().hit(point, hypervisor)
    if action == CUT and channel is not None:
        channel.sock.shutdown(socket.SHUT_RDWR)  # the link breaks: both ends see it at once
    elif action == FAIL:
        raise InjectedFailure(f"injected failure at {point}")
    elif action == HALT and hypervisor is not None:
        pid = hypervisor.pid(guest)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
    elif action == CORRUPT and ram is not None:
        offset = ram.nbytes // 2
        ram[offset] ^= 0x5A  # one byte of one page, after that page was applied
        if on_write is not None:
            on_write(offset)
    elif action == HOLD:
        time.sleep(HOLD_S)
