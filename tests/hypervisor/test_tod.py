"""The simulated guest's time of day (migration.md §10.8): its offset from the host clock
travels in the vCPU state, so a move keeps it."""

from __future__ import annotations

import time

from agent.hypervisor.base import GuestSpec
from agent.hypervisor.sim.vcpu import VcpuState
from tests.hypervisor.conformance import MiB

MS_NS = 1_000_000


def test_m116_a_moved_guest_keeps_its_time_of_day_offset_within_1ms(hv):
    """M116: guest time minus host time after the resume on the target equals its value
    before the suspend, within 1 ms, although the target guest booted on its own would have
    set a different clock."""
    hv.create(GuestSpec("a", 16 * MiB, workload="web"))
    hv.create(GuestSpec("b", 16 * MiB, workload="web"))
    hv.create(GuestSpec("c", 16 * MiB))
    hv.start("a")
    hv.start("c")  # a guest that set its own clock
    time.sleep(0.05)
    before = hv.status("a").tod_offset_ns
    hv.start("b", paused=True)
    hv.pause("a")
    hv.map_ram("b", writable=True)[:] = hv.map_ram("a")
    hv.set_vcpu_state("b", hv.get_vcpu_state("a"))
    time.sleep(0.1)  # the downtime: the guest clock must not lose it
    hv.resume("b")
    after = hv.status("b").tod_offset_ns
    assert abs(after - before) <= MS_NS
    assert abs(hv.status("c").tod_offset_ns - before) > MS_NS  # the carry is what keeps it


def test_a_vcpu_blob_without_the_offset_still_decodes():
    """An older agent's blob has no tod_offset_ns: it decodes with offset 0."""
    state = VcpuState(1, "idle", 8192, 16, 0, 0, 0)
    blob = state.to_bytes().replace(b', "tod_offset_ns": 0', b"")
    assert b"tod_offset_ns" not in blob
    assert VcpuState.from_bytes(blob).tod_offset_ns == 0
