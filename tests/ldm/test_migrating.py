"""Manager hooks for migration: export/import keep identity and RAs; locks of §2.12."""

import pytest

from agent.ldm import LdmError
from tests.ldm.fakes import make_manager

G = 1 << 30


def host(seed):
    m = make_manager(seed=seed)
    m.set_vcpu("primary", 8)
    m.set_memory("primary", 16 * G)
    m.add_vsw("primary", "vsw0")
    return m


@pytest.fixture
def pair():
    src, dst = host(1), host(2)
    src.add_domain("web1")
    src.set_vcpu("web1", 4)
    src.set_memory("web1", 6 * G)
    src.add_vnet("web1", "vnet0", "vsw0")
    src.set_variables("web1", {"auto-boot?": "true"})
    src.bind_domain("web1")
    src.start_domain("web1")
    return src, dst


def test_the_target_domain_keeps_identity_constraints_and_real_addresses(pair):
    # migration.md §2.5 step 2-3, §2.11 I4
    src, dst = pair
    dst.import_domain(src.export_domain("web1"), bind=True)
    s, t = src.summary("web1"), dst.summary("web1")
    assert (t.uuid, t.mac, t.hostid) == (s.uuid, s.mac, s.hostid)
    assert (t.state, t.flags) == ("bound", "-----t")
    assert dst.variables("web1") == [("auto-boot?", "true")]
    assert dst.bindings("web1").vnets[0][0].mac == src.bindings("web1").vnets[0][0].mac
    ras = lambda m: [(b.ra, b.size) for b in m.bindings("web1").memory_blocks]
    assert ras(dst) == ras(src)


def test_import_refuses_a_uuid_or_mac_already_on_the_target(pair):
    src, dst = pair
    dst.import_domain(src.export_domain("web1"))
    with pytest.raises(LdmError, match="UUID"):
        dst.import_domain(src.export_domain("web1"), name="web2")


def test_a_migrating_domain_cannot_be_modified(pair):
    # migration.md §2.12
    src, _ = pair
    src.set_migration_flag("web1", "s")
    assert src.summary("web1").flags == "-n---s"
    with pytest.raises(LdmError, match="Domain web1 is being migrated and cannot be modified"):
        src.set_vcpu("web1", 2)


def test_binding_changes_of_other_domains_wait_for_the_migration(pair):
    # migration.md §2.12
    src, _ = pair
    src.add_domain("db1")
    src.set_vcpu("db1", 1)
    src.set_memory("db1", 1 * G)
    src.set_migration_flag("web1", "s")
    src.set_vcpu("db1", 2)  # constraints of an inactive domain may change
    with pytest.raises(LdmError, match="Operation not permitted while a domain migration"):
        src.bind_domain("db1")
    with pytest.raises(LdmError, match="delayed reconfiguration cannot be started"):
        src.remove_io("primary", "pci_1")


def test_handoff_suspends_the_source_evicts_it_and_runs_the_target(pair):
    src, dst = pair
    dst.import_domain(src.export_domain("web1"), bind=True)
    src.set_migration_flag("web1", "s")
    src.set_suspended("web1", True)
    assert (src.summary("web1").state, src.summary("web1").flags) == ("suspended", "-n---s")
    dst.mark_running("web1")
    dst.set_migration_flag("web1", "")
    src.evict_domain("web1")
    assert src.domain_names() == ["primary"]
    assert len(src.devices("cpu")) == 128 - 8
    assert dst.summary("web1").flags == "-n----"
