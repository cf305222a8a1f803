"""NIU hybrid I/O of network devices (migration.md §1.7, §2.5 step 2, §2.8 step 3, §6.5):
the runtime state a migration moves to the switch path and back (M13, M71)."""

from __future__ import annotations

import copy

from agent.ldm.platform import default_platform, platform_from_doc
from tests.ldm.fakes import make_manager

G = 1 << 30


def host(seed: int, capacity: int = 1):
    """A machine whose switch vsw0 runs over nxge0, attached to niu_0 of ``capacity``."""
    doc = copy.deepcopy(default_platform().raw)
    doc["nius"] = [{"name": "niu_0", "hybrid_capacity": capacity, "net_devs": ["nxge0"]},
                   {"name": "niu_1", "hybrid_capacity": 8}]
    m = make_manager(platform_from_doc(doc), seed=seed)
    m.set_vcpu("primary", 8)
    m.set_memory("primary", 16 * G)
    m.add_vsw("primary", "vsw0", dev_path="nxge0")
    return m


def running_guest(m, name: str = "web1"):
    m.add_domain(name)
    m.set_vcpu(name, 2)
    m.set_memory(name, 1 * G)
    m.add_vnet(name, "vnet0", "vsw0", mode="hybrid")
    m.add_vnet(name, "vnet1", "vsw0", mode="hybrid")
    m.bind_domain(name)
    m.start_domain(name)


def hybrid(m, name: str = "web1") -> dict[str, bool]:
    return {n: v.hybrid for n, v in m.constraints(name).vnets.items()}


def test_a_running_domain_uses_the_niu_capacity_there_is():
    """§6.5: hybrid mode where the switch's NIU has capacity, the switch path otherwise."""
    m = host(1, capacity=1)
    running_guest(m)
    assert hybrid(m) == {"vnet0": True, "vnet1": False}
    assert m.hybrid_in_use() == {"niu_0": 1, "niu_1": 0}
    m.stop_domain("web1")
    assert hybrid(m) == {"vnet0": False, "vnet1": False}


def test_m13_a_migration_moves_hybrid_devices_to_the_switch_path_and_an_abort_back():
    """§2.5 step 2, M13: before mig-prepare the hybrid device goes to the switch path and its
    NIU capacity is free; the abort puts exactly that device back in hybrid mode."""
    m = host(1, capacity=1)
    running_guest(m)
    m.hold_devices("web1")
    assert hybrid(m) == {"vnet0": False, "vnet1": False}
    assert m.hybrid_in_use()["niu_0"] == 0
    m.give_back_devices("web1")
    assert hybrid(m) == {"vnet0": True, "vnet1": False}


def test_m71_the_migrated_domain_is_in_hybrid_mode_again_where_the_target_has_capacity():
    """M71, §2.8 step 3: the target gives NIU hybrid resources at the commit as available;
    the device does not arrive in hybrid mode before it runs there."""
    src, dst = host(1), host(2, capacity=2)
    running_guest(src)
    src.hold_devices("web1")
    dst.import_domain(src.export_domain("web1"), bind=True)
    assert hybrid(dst) == {"vnet0": False, "vnet1": False}
    dst.set_migration_flag("web1", "")
    dst.mark_running("web1")
    assert hybrid(dst) == {"vnet0": True, "vnet1": True}


def test_a_target_without_capacity_keeps_the_switch_path():
    """§6.5: without NIU capacity on the target the device runs over the switch (a warning
    of the checks, not a failure)."""
    src, dst = host(1), host(2, capacity=0)
    running_guest(src)
    dst.import_domain(src.export_domain("web1"), bind=True)
    dst.mark_running("web1")
    assert hybrid(dst) == {"vnet0": False, "vnet1": False}
