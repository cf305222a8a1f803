"""vCPUs, whole cores, crypto units and memory (C142, C143)."""

import pytest

from agent.ldm import LdmError
from tests.ldm.fakes import make_manager, tiny

G = 1 << 30
M = 1 << 20


@pytest.fixture
def m():
    mgr = make_manager()
    mgr.set_vcpu("primary", 8)
    mgr.set_mau("primary", 1)
    mgr.set_memory("primary", 16 * G)
    mgr.add_domain("web1")
    return mgr


def test_vcpu_add_and_remove_are_deltas_and_set_is_absolute(m):
    # C142
    assert m.add_vcpu("web1", 3).events[0].props == (("rasd:AllocationUnits", 3),)
    m.add_vcpu("web1", 2)
    m.remove_vcpu("web1", 1)
    assert m.constraints("web1").resources.vcpus == 4
    m.set_vcpu("web1", 7)
    assert m.constraints("web1").resources.vcpus == 7


def test_whole_core_requests_count_cores(m):
    # C142
    out = m.set_vcpu("web1", None, wcore=2)
    assert out.events[0].props == (("rasd:AllocationUnits", 16),)
    res = m.constraints("web1").resources
    assert (res.vcpus, res.wcore) == (16, 2)
    m.add_vcpu("web1", 8, wcore=1)
    assert m.constraints("web1").resources.wcore == 3


def test_whole_core_with_mismatching_units_fails(m):
    # C142
    with pytest.raises(LdmError, match="does not match wcore"):
        m.set_vcpu("web1", 10, wcore=1)


def test_whole_cores_bind_to_entire_free_cores(m):
    m.set_vcpu("web1", None, wcore=2)
    m.set_memory("web1", 1 * G)
    m.bind_domain("web1")
    b = m.bindings("web1")
    cores = {c.cid for c in b.cpus}
    assert len(cores) == 2 and len(b.cpus) == 16
    for cid in cores:
        assert sorted(c.pid for c in b.cpus if c.cid == cid) == list(range(cid * 8, cid * 8 + 8))


def test_removing_below_one_vcpu_is_refused_on_a_bound_domain(m):
    m.set_vcpu("web1", 1)
    m.set_memory("web1", 1 * G)
    m.bind_domain("web1")
    with pytest.raises(LdmError, match="at least one vCPU"):
        m.remove_vcpu("web1", 1)


def test_removing_more_than_held_is_refused(m):
    m.set_vcpu("web1", 2)
    with pytest.raises(LdmError, match="has only 2 vCPUs"):
        m.remove_vcpu("web1", 3)


def test_dynamic_vcpu_change_keeps_existing_strands_and_vids(m):
    m.set_vcpu("web1", 2)
    m.set_memory("web1", 1 * G)
    m.bind_domain("web1")
    m.start_domain("web1")
    before = [(c.vid, c.pid) for c in m.bindings("web1").cpus]
    m.add_vcpu("web1", 3)
    after = [(c.vid, c.pid) for c in m.bindings("web1").cpus]
    assert after[:2] == before and len(after) == 5
    m.remove_vcpu("web1", 4)
    assert [(c.vid, c.pid) for c in m.bindings("web1").cpus] == before[:1]


def test_mau_add_remove_are_deltas_and_set_allows_zero(m):
    # C143
    assert m.add_mau("web1", 2).events[0].action == "add-crypto"
    m.remove_mau("web1", 1)
    assert m.constraints("web1").resources.mau == 1
    assert m.set_mau("web1", 0).events[0].action == "set-crypto"
    assert m.constraints("web1").resources.mau == 0


def test_bound_crypto_units_prefer_the_cores_of_the_domains_strands(m):
    m.set_vcpu("web1", 2)
    m.set_mau("web1", 1)
    m.set_memory("web1", 1 * G)
    m.bind_domain("web1")
    b = m.bindings("web1")
    assert b.mau_units[0].id == b.cpus[0].cid


def test_memory_add_remove_are_deltas_and_set_is_absolute(m):
    # C143
    m.add_memory("web1", 2 * G)
    m.add_memory("web1", 1 * G)
    m.remove_memory("web1", 512 * M)
    assert m.constraints("web1").resources.memory == 2 * G + 512 * M
    out = m.set_memory("web1", 4 * G)
    assert out.events[0].props == (("rasd:AllocationUnits", 4 * G),)


def test_unaligned_memory_is_rounded_up_with_a_warning(m):
    # C143
    out = m.set_memory("web1", 1001 * M)
    assert m.constraints("web1").resources.memory == 1004 * M
    assert out.messages == [
        "Warning: memory size 1001M is not a multiple of 4M; rounded up to 1004M"]


def test_memory_blocks_start_at_the_guest_ra_base_and_do_not_overlap_primary(m):
    m.set_vcpu("web1", 1)
    m.set_memory("web1", 4 * G)
    m.bind_domain("web1")
    web = m.bindings("web1").memory_blocks
    prim = m.bindings("primary").memory_blocks
    assert web[0].ra == 0x10000000
    spans = sorted((b.pa, b.pa + b.size) for b in web + prim)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_shrinking_active_memory_trims_the_highest_real_addresses(m):
    m.set_vcpu("web1", 1)
    m.set_memory("web1", 4 * G)
    m.bind_domain("web1")
    m.start_domain("web1")
    m.remove_memory("web1", 1 * G)
    blocks = m.bindings("web1").memory_blocks
    assert sum(b.size for b in blocks) == 3 * G
    assert blocks[0].ra == 0x10000000


def test_a_failed_dynamic_change_changes_nothing():
    mgr = make_manager(tiny())
    mgr.set_vcpu("primary", 4)
    mgr.set_memory("primary", 256 * M)
    mgr.add_domain("web1")
    mgr.set_vcpu("web1", 2)
    mgr.set_memory("web1", 256 * M)
    mgr.bind_domain("web1")
    with pytest.raises(LdmError, match="not enough free vCPUs"):
        mgr.add_vcpu("web1", 5)
    assert mgr.constraints("web1").resources.vcpus == 2
    assert len(mgr.bindings("web1").cpus) == 2
