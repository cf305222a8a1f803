"""When the simulated hypervisor calls a guest dead (``poll_dead``, the agent's guest watch).

A guest is dead when its process is gone without a ``stopped`` marker, and only then: a live
guest whose control connection fails once under load (a dropped or refused request) is not
dead. Reporting it would make the agent turn its domain bound while the guest still runs
(ldm-xml §4.6 halt by itself; migration.md §10.11 for what a later migration leaves behind).
"""

from __future__ import annotations

import os
import signal

from agent.hypervisor.base import GuestSpec
from agent.hypervisor.sim import control
from tests.hypervisor.conformance import MiB, wait_for


def test_a_live_guest_whose_control_call_fails_is_not_reported_dead(hv, monkeypatch):
    hv.create(GuestSpec("busy1", 8 * MiB))
    hv.start("busy1")

    def dropped(*_args, **_kwargs):
        raise control.GuestGone("the guest dropped the request")

    monkeypatch.setattr(control, "call", dropped)
    assert hv.poll_dead() == []
    monkeypatch.undo()
    assert hv.pid("busy1") is not None


def test_a_killed_guest_is_still_reported_dead_once(hv):
    hv.create(GuestSpec("doomed1", 8 * MiB))
    hv.start("doomed1")
    os.kill(hv.pid("doomed1"), signal.SIGKILL)
    assert wait_for(lambda: hv.pid("doomed1") is None)
    assert hv.poll_dead() == ["doomed1"]
    assert hv.poll_dead() == []


def test_a_guest_stopped_on_request_is_not_reported_dead(hv):
    hv.create(GuestSpec("calm1", 8 * MiB))
    hv.start("calm1")
    hv.stop("calm1")
    assert hv.poll_dead() == []
