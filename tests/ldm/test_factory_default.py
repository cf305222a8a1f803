"""The factory default: primary owns every resource of the platform (list-domain, bindings)."""

from agent.ldm.model import CONTROL_DOMAIN
from tests.ldm.fakes import Clock, FakeGuests, make_manager

G = 1 << 30


def test_primary_is_the_only_domain_at_first_start():
    m = make_manager()
    assert m.domain_names() == [CONTROL_DOMAIN]


def test_primary_summary_is_active_control_domain_on_the_uart():
    guests = FakeGuests()
    guests.util["primary"] = 3.1
    clock = Clock()
    m = make_manager(guests=guests, clock=clock)
    clock.now += 86400
    s = m.summary("primary")
    assert s.state == "active"
    assert s.flags == "-n-c--"  # C156: no services at factory default, so no 'v'
    assert s.console == "UART"
    assert s.ncpu == 128
    assert s.memory == 256 * G
    assert s.util == 3.1
    assert s.uptime == 86400
    assert s.mac == "00:10:e0:4a:7c:3e" and s.hostid == "854a7c3e"


def test_list_domain_props_are_the_twelve_keys_in_order():
    # C155
    keys = [k for k, _ in make_manager().summary("primary").list_domain_props()]
    assert keys == ["uuid", "rasd:Address", "hostid", "state", "flags", "console", "ncpu",
                    "memory", "util", "uptime", "master", "failure-policy"]


def test_list_bindings_adds_four_keys_after_failure_policy():
    # C158
    keys = [k for k, _ in make_manager().summary("primary").list_bindings_props()]
    assert keys[12:] == ["extended-mapin-space", "rc-add-policy", "perf-counters", "cpu-arch"]


def test_primary_bindings_cover_every_strand_unit_block_and_device():
    m = make_manager()
    b = m.bindings("primary")
    assert [c.pid for c in b.cpus] == list(range(128))
    assert [c.vid for c in b.cpus] == list(range(128))
    assert b.cpus[9].cid == 1
    assert [u.id for u in b.mau_units] == list(range(16))
    assert b.mau_units[2].cpuset == tuple(range(16, 24))
    assert sum(blk.size for blk in b.memory_blocks) == 256 * G
    assert [blk.pa for blk in b.memory_blocks] == [0, 0x8000000000]
    assert b.memory_blocks[1].ra == b.memory_blocks[0].ra + 128 * G
    assert {d.name for d in b.io} == {d.name for d in m.platform.io}
    assert b.console is None


def test_no_device_is_free_at_factory_default():
    m = make_manager()
    for cls in ("cpu", "core", "mau", "memory", "physio_device"):
        assert m.devices(cls) == [], cls


def test_the_factory_default_spconfig_is_current():
    assert make_manager().spconfigs() == [("factory-default", "current")]
