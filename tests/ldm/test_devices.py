"""list-devices views (C160, C161) on the tiny platform."""

import pytest

from agent.ldm import LdmError
from tests.ldm.fakes import make_manager, tiny

M = 1 << 20


@pytest.fixture
def m():
    mgr = make_manager(tiny())
    mgr.set_vcpu("primary", 2)
    mgr.set_mau("primary", 1)
    mgr.set_memory("primary", 256 * M)
    mgr.remove_io("primary", "/SYS/MB/PCIE1")
    mgr.guest_reset("primary")
    return mgr


def props(items):
    return [dict(i.props) for i in items]


def test_free_strands_and_cores(m):
    # C161
    assert [p["pid"] for p in props(m.devices("cpu"))] == [2, 3, 4, 5, 6, 7]
    assert props(m.devices("core")) == [
        {"cid": 0, "free": 50, "cpuset": "0,1,2,3"},
        {"cid": 1, "free": 100, "cpuset": "4,5,6,7"},
    ]


def test_all_strands_with_a_name_their_owner(m):
    bound = [p["bound"] for p in props(m.devices("cpu", include_bound=True))]
    assert bound == ["primary", "primary", "", "", "", "", "", ""]


def test_free_crypto_units(m):
    assert props(m.devices("mau")) == [{"id": 1, "cpuset": "4,5,6,7", "bound": ""}]


def test_free_memory_is_what_primary_left_of_the_usable_ranges(m):
    assert props(m.devices("memory")) == [{"pa": 256 * M, "size": 704 * M, "bound": ""}]
    everything = props(m.devices("memory", include_bound=True))
    assert everything[0] == {"pa": 0, "size": 256 * M, "bound": "primary"}


def test_unowned_io_devices_are_free(m):
    assert props(m.devices("physio_device")) == [
        {"name": "/SYS/MB/PCIE1", "device": "pci@400/pci@1", "type": "pcie", "bound": ""}]
    bus = props(m.devices("physio_device", include_bound=True))[1]
    assert bus == {"name": "pci_0", "iov": "off", "device": "pci@400", "type": "bus",
                   "bound": "primary"}


def test_blacklisted_memory_and_cores(m):
    # C161
    assert props(m.devices("memory", blacklisted=True)) == [
        {"pa": 0x3C000000, "size": 64 * M, "status": "blacklisted"}]
    assert m.devices("core", blacklisted=True) == []


def test_unknown_class_fails(m):
    # C160
    with pytest.raises(LdmError, match="Unknown device class disk"):
        m.devices("disk")
