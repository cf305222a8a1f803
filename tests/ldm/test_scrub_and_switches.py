"""The manager's scrub of leaving memory (migration.md §10.11) and its switch MAC tables
(§1.7, §10.9), on two managers standing for the two machines of a migration."""

from __future__ import annotations

import pytest

from agent.ldm import LdmError
from agent.ldm.core import SCRUB_RATE
from tests.ldm.fakes import Clock, make_manager

G = 1 << 30


def host(seed: int, clock: Clock):
    m = make_manager(seed=seed, clock=clock)
    m.set_vcpu("primary", 8)
    m.set_memory("primary", 16 * G)
    m.add_vsw("primary", "vsw0")
    return m


def free_bytes(m) -> int:
    return sum(dict(d.props)["size"] for d in m.devices("memory"))


def listed_bytes(m) -> int:
    """Free plus bound memory as list-devices -a shows it."""
    return sum(dict(d.props)["size"] for d in m.devices("memory", include_bound=True))


@pytest.fixture
def pair():
    clock = Clock()
    src, dst = host(1, clock), host(2, clock)
    src.add_domain("web1")
    src.set_vcpu("web1", 4)
    src.set_memory("web1", 6 * G)
    src.add_vnet("web1", "vnet0", "vsw0")
    src.add_vnet("web1", "vnet1", "vsw0")
    src.bind_domain("web1")
    src.start_domain("web1")
    return src, dst, clock


def test_m119_the_source_copy_is_scrubbed_before_its_memory_is_free(pair):
    """M119, M96, §10.11: after the source copy leaves, its 6G are neither free nor owned
    for 6G / scrub_rate seconds, then free again; a bind meanwhile cannot use them."""
    src, _, clock = pair
    before = free_bytes(src)
    src.evict_domain("web1")
    assert src.scrubbing() and sum(b.size for b in src.scrubbing()) == 6 * G
    assert free_bytes(src) == before  # not free yet
    assert listed_bytes(src) == 256 * G - 6 * G  # and not owned: not listed at all
    clock.now += 6 * G / SCRUB_RATE - 0.01
    assert free_bytes(src) == before
    clock.now += 0.02
    assert src.scrubbing() == []
    assert free_bytes(src) == before + 6 * G


def test_m96_memory_under_scrub_cannot_be_bound(pair):
    """M96: a bind during the scrub sees only the memory that is free (§10.11)."""
    src, _, clock = pair
    src.evict_domain("web1")
    free = free_bytes(src)
    src.add_domain("big")
    src.set_vcpu("big", 1)
    src.set_memory("big", free + 4 * G)
    with pytest.raises(LdmError, match="not enough free memory"):
        src.bind_domain("big")
    clock.now += 6 * G / SCRUB_RATE + 0.01
    src.bind_domain("big")  # the scrubbed memory is back in the pool


def test_m119_an_aborted_target_domain_is_scrubbed_too(pair):
    """M119, M13: the target domain's memory returns to the free pool only after its scrub."""
    src, dst, clock = pair
    before = free_bytes(dst)
    dst.import_domain(src.export_domain("web1"), bind=True)
    assert free_bytes(dst) == before - 6 * G
    dst.evict_domain("web1")  # the abort
    assert free_bytes(dst) == before - 6 * G
    clock.now += 6 * G / SCRUB_RATE + 0.01
    assert free_bytes(dst) == before


def test_scrubs_run_one_after_another(pair):
    """§10.11: two leaving domains are scrubbed at the one rate, the second after the first."""
    src, _, clock = pair
    src.add_domain("web2")
    src.set_vcpu("web2", 1)
    src.set_memory("web2", 3 * G)
    src.bind_domain("web2")
    free = free_bytes(src)
    src.evict_domain("web1")
    src.evict_domain("web2")
    clock.now += 6 * G / SCRUB_RATE + 0.01
    assert free_bytes(src) == free + 6 * G
    clock.now += 3 * G / SCRUB_RATE
    assert free_bytes(src) == free + 9 * G


def macs_of(m, switch: str = "vsw0") -> list[str]:
    return m.constraints("primary").vsws[switch].macs


def test_m117_a_switch_table_follows_bind_and_unbind():
    """M117, §1.7: a device's MAC is in its switch's table while its domain is bound."""
    m = host(3, Clock())
    m.add_domain("web1")
    m.set_vcpu("web1", 1)
    m.set_memory("web1", 1 * G)
    m.add_vnet("web1", "vnet0", "vsw0")
    assert macs_of(m) == []
    m.bind_domain("web1")
    mac = m.constraints("web1").vnets["vnet0"].mac
    assert macs_of(m) == [mac]
    m.unbind_domain("web1")
    assert macs_of(m) == []


def test_m117_after_a_migration_the_target_switch_holds_every_mac_and_the_source_none(pair):
    """M117, §10.9: the target's table gains the domain's MACs when its flag t clears at the
    commit (not while it waits as a target), and the source's loses them at removal."""
    src, dst, _ = pair
    macs = sorted(n.mac for n in src.constraints("web1").vnets.values())
    assert macs_of(src) == macs
    dst.import_domain(src.export_domain("web1"), bind=True)
    assert macs_of(dst) == []  # bound as a target, not announced yet
    dst.set_migration_flag("web1", "")  # the commit
    assert macs_of(dst) == macs
    src.evict_domain("web1")
    assert macs_of(src) == []


def test_the_mac_table_is_stored_with_the_switch(pair):
    """The table is part of the stored state: a manager reloaded from the store has it."""
    src, _, clock = pair
    reloaded = make_manager(store=src.store, clock=clock)
    assert macs_of(reloaded) == macs_of(src) != []


def test_m13_crypto_units_leave_the_guest_for_the_migration_and_come_back_at_an_abort():
    """§2.5 step 1, §8.2 step 2, M13, M72: before mig-prepare the source takes the domain's
    crypto units out of the guest (its binding shows none) but keeps them reserved (not
    free); an abort gives exactly those units back."""
    m = host(4, Clock())
    m.set_mau("primary", 2)
    m.add_domain("web1")
    m.set_vcpu("web1", 4)
    m.set_memory("web1", 1 * G)
    m.set_mau("web1", 2)
    m.bind_domain("web1")
    m.start_domain("web1")
    units = list(m.constraints("web1").binding.mau)
    free = {dict(d.props)["id"] for d in m.devices("mau")}
    m.hold_devices("web1")
    assert m.constraints("web1").binding.mau == []
    assert m.bindings("web1").mau_units == []
    assert {dict(d.props)["id"] for d in m.devices("mau")} == free  # still not free
    m.give_back_devices("web1")
    m.give_back_devices("web1")  # idempotent (a restart may repeat it)
    assert m.constraints("web1").binding.mau == units
