"""Physical I/O assignment and the control domain's delayed reconfiguration (C144)."""

import pytest

from agent.ldm import LdmError
from tests.ldm.fakes import make_manager

G = 1 << 30


@pytest.fixture
def m():
    mgr = make_manager()
    mgr.set_vcpu("primary", 8)
    mgr.set_memory("primary", 16 * G)
    mgr.add_domain("io1")
    mgr.set_vcpu("io1", 2)
    mgr.set_memory("io1", 2 * G)
    return mgr


def test_removing_io_from_active_primary_starts_a_delayed_reconfiguration(m):
    out = m.remove_io("primary", "pci_1")
    assert out.messages and out.messages[0].startswith("Notice: A delayed reconfiguration")
    assert m.summary("primary").flags == "-ndc--"
    assert "pci_1" not in m.constraints("primary").resources.io
    assert "pci_1" in [d.name for d in m.bindings("primary").io]  # still held until reboot


def test_other_domains_are_frozen_during_the_delayed_reconfiguration(m):
    m.remove_io("primary", "pci_1")
    with pytest.raises(LdmError, match="delayed reconfiguration of the control domain"):
        m.add_io("io1", "pci_1")
    with pytest.raises(LdmError, match="delayed reconfiguration"):
        m.add_domain("x")


def test_reboot_of_primary_applies_the_pending_configuration(m):
    m.remove_io("primary", "pci_1")
    m.set_vcpu("primary", 4)  # joins the pending configuration
    assert len(m.bindings("primary").cpus) == 8
    out = m.guest_reset("primary")
    assert [e.action for e in out.events] == ["domain-reset"]
    assert m.summary("primary").flags == "-n-c--"
    assert len(m.bindings("primary").cpus) == 4
    assert m.io_owner("pci_1") is None
    m.add_io("io1", "pci_1")
    assert m.io_owner("pci@500") == "io1"


def test_cancel_reconf_discards_the_pending_changes(m):
    m.remove_io("primary", "pci_1")
    m.cancel_reconf("primary")
    assert m.summary("primary").flags == "-n-c--"
    assert "pci_1" in m.constraints("primary").resources.io
    with pytest.raises(LdmError, match="no delayed reconfiguration pending"):
        m.cancel_reconf("primary")


def test_add_io_of_an_owned_device_fails(m):
    with pytest.raises(LdmError, match="already assigned to domain primary"):
        m.add_io("io1", "pci_0")


def test_remove_io_dry_run_changes_nothing(m):
    out = m.remove_io("primary", "/SYS/MB/PCIE2", dry_run=True)
    assert out.events == [] and out.messages
    assert m.summary("primary").flags == "-n-c--"


def test_io_of_an_active_guest_cannot_change(m):
    m.remove_io("primary", "/SYS/MB/PCIE2")
    m.guest_reset("primary")
    m.add_io("io1", "/SYS/MB/PCIE2")
    m.bind_domain("io1")
    m.start_domain("io1")
    with pytest.raises(LdmError, match="Domain io1 is active; remove-io"):
        m.remove_io("io1", "/SYS/MB/PCIE2")


def test_set_io_changes_iov_and_reports_the_owner(m):
    out = m.set_io("pci_1", True)
    assert (out.events[0].action, out.events[0].domain) == ("set-io", "primary")
    item = [d for d in m.devices("physio_device", include_bound=True) if d.props[0][1] == "pci_1"]
    assert dict(item[0].props)["iov"] == "on"


def test_unknown_device_is_named(m):
    with pytest.raises(LdmError, match="I/O device pci_9 does not exist"):
        m.add_io("io1", "pci_9")
