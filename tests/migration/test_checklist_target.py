"""Checklist M5 (migration.md §2.5): the receiving guest's memory is zero before phase 3."""

from __future__ import annotations

import time

from agent.hypervisor.sim.hypervisor import SimHypervisor
from agent.migration.dataplane import prepare_target_memory
from agent.migration.targetrun import guest_spec


def test_m5_target_memory_is_zero_before_phase_3(tmp_path):
    """M5: the target creates the receiving guest as ``mig-prepare`` does (create, start
    paused, back its memory in phase 2); every byte of its memory is then zero."""
    hv = SimHypervisor(tmp_path / "guests")
    hv.create(guest_spec("ldg1", {"memory": 8 << 20, "vcpus": 1, "workload": "web"}))
    try:
        hv.start("ldg1", paused=True)
        time.sleep(0.3)  # a paused guest must not have written anything meanwhile
        ram = hv.map_ram("ldg1", writable=True)
        prepare_target_memory(ram)
        size = len(ram)
        assert size == 8 << 20
        assert bytes(ram) == bytes(size)
        ram.release()
    finally:
        hv.destroy("ldg1")
