"""Domain lifecycle: add, remove, bind, unbind, start, stop, set-domain, platform reports."""

import pytest

from agent.ldm import LdmError
from tests.ldm.fakes import Clock, FakeGuests, make_manager, tiny

G = 1 << 30
M = 1 << 20


def small_guest(m, name="web1", vcpus=2, memory=256 * M):
    m.add_domain(name)
    m.add_vcpu(name, vcpus)
    m.add_memory(name, memory)


def tiny_manager(**kw):
    m = make_manager(tiny(), **kw)
    m.set_vcpu("primary", 2)
    m.set_memory("primary", 256 * M)
    return m


def test_add_domain_creates_an_inactive_domain_with_given_properties():
    # C136
    m = make_manager()
    out = m.add_domain("web1", mac="00:14:4F:F9:0A:11", hostid="84f90a11",
                       failure_policy="reset", master=["primary"])
    assert [(e.category, e.action, e.domain) for e in out.events] == [
        ("domain", "add-domain", "web1")]
    s = m.summary("web1")
    assert (s.state, s.flags, s.mac, s.hostid) == ("inactive", "------", "00:14:4f:f9:0a:11",
                                                  "84f90a11")
    assert (s.master, s.failure_policy, s.ncpu, s.memory) == ("primary", "reset", 0, 0)


def test_add_domain_with_an_existing_name_fails():
    m = make_manager()
    m.add_domain("web1")
    with pytest.raises(LdmError, match="Domain web1 already exists"):
        m.add_domain("web1")


def test_generated_identities_are_unique_and_hostid_follows_the_mac():
    m = make_manager()
    for i in range(20):
        m.add_domain(f"d{i}")
    macs = {m.summary(f"d{i}").mac for i in range(20)}
    assert len(macs) == 20
    assert all(mac.startswith("00:14:4f:f") for mac in macs)
    s = m.summary("d3")
    assert s.hostid == "84" + s.mac.replace(":", "")[-6:]


def test_invalid_names_and_values_are_refused():
    m = make_manager()
    with pytest.raises(LdmError, match="Invalid domain name"):
        m.add_domain("1bad")
    with pytest.raises(LdmError, match="failure-policy"):
        m.add_domain("ok", failure_policy="explode")
    assert "ok" not in m.domain_names()


def test_duplicate_mac_or_uuid_is_refused():
    m = make_manager()
    m.add_domain("a", mac="00:14:4f:f9:00:01", uuid="0b8e5a54-3f7d-4c61-b2d9-6a1c0e7f4b23")
    with pytest.raises(LdmError, match="already in use"):
        m.add_domain("b", mac="00:14:4f:f9:00:01")
    with pytest.raises(LdmError, match="UUID"):
        m.add_domain("c", uuid="0b8e5a54-3f7d-4c61-b2d9-6a1c0e7f4b23")


def test_lifecycle_runs_inactive_bound_active_bound_inactive():
    # C139
    guests = FakeGuests()
    m = tiny_manager(guests=guests)
    small_guest(m)
    actions = []
    for call in (m.bind_domain, m.start_domain, m.stop_domain, m.unbind_domain):
        actions += [e.action for e in call("web1").events]
    assert actions == ["bind-domain", "start-domain", "stop-domain", "unbind-domain"]
    assert guests.calls == [("launch", "web1"), ("halt", "web1")]
    assert m.summary("web1").state == "inactive"


@pytest.mark.parametrize("call,state", [
    ("start_domain", "inactive"), ("stop_domain", "inactive"), ("unbind_domain", "inactive"),
])
def test_transitions_from_the_wrong_state_fail_with_the_state(call, state):
    # C139
    m = tiny_manager()
    small_guest(m)
    with pytest.raises(LdmError, match=f"Domain web1 is {state}; "):
        getattr(m, call)("web1")


def test_bind_twice_and_remove_bound_fail():
    # C138, C139
    m = tiny_manager()
    small_guest(m)
    m.bind_domain("web1")
    with pytest.raises(LdmError, match="Domain web1 is bound; bind-domain requires it to be inactive"):
        m.bind_domain("web1")
    with pytest.raises(LdmError, match="remove-domain requires it to be inactive"):
        m.remove_domain("web1")


def test_remove_domain_destroys_an_inactive_domain_but_never_primary():
    # C138
    m = make_manager()
    m.add_domain("web1")
    assert [e.action for e in m.remove_domain("web1").events] == ["remove-domain"]
    assert m.domain_names() == ["primary"]
    with pytest.raises(LdmError, match="control domain primary cannot be removed"):
        m.remove_domain("primary")


def test_bind_without_vcpus_or_memory_fails():
    m = tiny_manager()
    m.add_domain("web1")
    with pytest.raises(LdmError, match="no vCPUs"):
        m.bind_domain("web1")
    m.add_vcpu("web1", 1)
    with pytest.raises(LdmError, match="no memory"):
        m.bind_domain("web1")


def test_bind_fails_when_the_platform_has_too_few_strands():
    m = tiny_manager()  # tiny: 8 strands, primary keeps 2
    small_guest(m, vcpus=7)
    with pytest.raises(LdmError, match="Could not bind domain web1: not enough free vCPUs"):
        m.bind_domain("web1")
    assert m.summary("web1").state == "inactive"


def test_bind_fails_when_memory_does_not_fit():
    m = tiny_manager()  # 960M usable, primary keeps 256M
    small_guest(m, memory=800 * M)
    with pytest.raises(LdmError, match="not enough free memory"):
        m.bind_domain("web1")


def test_start_failure_in_the_hypervisor_leaves_the_domain_bound():
    guests = FakeGuests()
    m = tiny_manager(guests=guests)
    small_guest(m)
    m.bind_domain("web1")
    guests.fail.add("launch")
    with pytest.raises(LdmError, match="Could not start domain web1: simulated launch failure"):
        m.start_domain("web1")
    assert m.summary("web1").state == "bound"


def test_uptime_and_util_of_an_active_domain_come_from_clock_and_hypervisor():
    clock, guests = Clock(), FakeGuests()
    m = tiny_manager(clock=clock, guests=guests)
    small_guest(m)
    m.bind_domain("web1")
    assert (m.summary("web1").uptime, m.summary("web1").util) == (None, None)
    m.start_domain("web1")
    guests.util["web1"] = 12.5
    clock.now += 3600
    s = m.summary("web1")
    assert (s.uptime, s.util, s.flags) == (3600, 12.5, "-n----")


def test_the_control_domain_cannot_be_stopped_or_unbound():
    m = make_manager()
    with pytest.raises(LdmError, match="cannot be stopped"):
        m.stop_domain("primary")
    with pytest.raises(LdmError, match="cannot be unbound"):
        m.unbind_domain("primary")


def test_set_domain_changes_resets_and_refuses_uuid():
    # C141
    m = make_manager()
    m.add_domain("web1")
    m.set_domain("web1", failure_policy="stop", perf_counters=["global", "strand"])
    assert (m.summary("web1").failure_policy, m.summary("web1").perf_counters) == (
        "stop", "global,strand")
    m.set_domain("web1", failure_policy=None, perf_counters=None)
    assert (m.summary("web1").failure_policy, m.summary("web1").perf_counters) == ("ignore", "")
    with pytest.raises(LdmError, match="UUID"):
        m.set_domain("web1", uuid="0b8e5a54-3f7d-4c61-b2d9-6a1c0e7f4b23")


def test_mac_hostid_and_cpu_arch_change_only_while_inactive():
    m = tiny_manager()
    small_guest(m)
    m.bind_domain("web1")
    with pytest.raises(LdmError, match="changing cpu-arch requires it to be inactive"):
        m.set_domain("web1", cpu_arch="generic")
    m.set_domain("web1", master=["primary"])  # allowed on a bound domain
    assert m.summary("web1").master == "primary"


def test_guest_halt_makes_the_domain_bound_and_applies_the_masters_failure_policy():
    guests = FakeGuests()
    m = tiny_manager(guests=guests)
    small_guest(m, "master1", vcpus=1, memory=128 * M)
    small_guest(m, "slave1", vcpus=1, memory=128 * M)
    m.set_domain("master1", failure_policy="stop")
    m.set_domain("slave1", master=["master1"])
    for name in ("master1", "slave1"):
        m.bind_domain(name)
        m.start_domain(name)
    out = m.guest_halted("master1")
    assert [(e.action, e.domain) for e in out.events] == [
        ("stop-domain", "master1"), ("stop-domain", "slave1")]
    assert ("halt", "slave1") in guests.calls
    assert m.summary("slave1").state == "bound"


def test_guest_reset_restarts_uptime_and_a_reset_policy_resets_slaves():
    clock, guests = Clock(), FakeGuests()
    m = tiny_manager(clock=clock, guests=guests)
    small_guest(m, "master1", vcpus=1, memory=128 * M)
    small_guest(m, "slave1", vcpus=1, memory=128 * M)
    m.set_domain("master1", failure_policy="reset")
    m.set_domain("slave1", master=["master1"])
    for name in ("master1", "slave1"):
        m.bind_domain(name)
        m.start_domain(name)
    clock.now += 100
    out = m.guest_panicked("master1")
    assert [(e.action, e.domain) for e in out.events] == [
        ("panic-domain", "master1"), ("domain-reset", "slave1")]
    assert m.summary("master1").uptime == 0
    assert ("reset", "slave1") in guests.calls


def test_a_master_cannot_be_removed_while_named():
    m = make_manager()
    m.add_domain("a")
    m.add_domain("b", master=["a"])
    with pytest.raises(LdmError, match="Domain a is a master of domain b"):
        m.remove_domain("a")


def test_migration_flag_shows_in_column_six():
    m = tiny_manager()
    small_guest(m)
    m.bind_domain("web1")
    m.set_migration_flag("web1", "t")
    assert m.summary("web1").flags == "-----t"


def test_panic_domain_asks_the_hypervisor_and_restarts_uptime():
    clock, guests = Clock(), FakeGuests()
    m = tiny_manager(clock=clock, guests=guests)
    small_guest(m)
    m.bind_domain("web1")
    m.start_domain("web1")
    clock.now += 50
    assert [e.action for e in m.panic_domain("web1").events] == ["panic-domain"]
    assert ("panic", "web1") in guests.calls
    assert m.summary("web1").uptime == 0


def test_memory_dr_in_progress_shows_r_and_can_be_cancelled():
    m = tiny_manager()
    small_guest(m)
    m.memory_dr("web1", True)
    assert m.summary("web1").flags == "--r---"
    m.cancel_memdr("web1")
    assert m.summary("web1").flags == "------"
    with pytest.raises(LdmError, match="no memory dynamic reconfiguration"):
        m.cancel_memdr("web1")
