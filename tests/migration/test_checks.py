"""Phase-1 checks on real managers: the §11 examples and each check that the manager's
state can express, with a passing and a failing case."""

import pytest

from agent.ldm import LdmError
from agent.migration import checks
from agent.migration.checks import apply_force, merge, report_lines, source_checks, target_checks
from agent.migration.describe import describe_host, describe_source
from tests.migration.test_checks_support import (
    G, describe, example_source, example_target, guest, machine, request)

EXAMPLE_DRY_RUN = [
    "Target CPU frequency 2998 MHz differs from source CPU frequency 2848 MHz",
    "Target machine system2 has 6 free virtual CPUs; domain ldg1 needs 8",
    "Target machine system2 has 7G of free memory; domain ldg1 needs 8G",
    "Free memory layout and congruency requirements prevent binding the memory block with "
    "PA 0x880000000, RA 0x400000000, and size 6G",
    "Volume vol1@primary-vds0 used by virtual disk vdisk1 does not exist on target machine system2",
    "Virtual switch primary-vsw1 used by virtual network device vnet1 does not exist on target "
    "machine system2",
    "MAC address 00:14:4f:fb:2c:01 of virtual network device vnet0 of domain ldg1 is already "
    "used by domain web3 on target machine system2",
]


def phase1(src, tgt, req, name="ldg1", guest_facts=None):
    """Both sides as the source agent would merge them (§2.4 steps 1-4), with -f applied."""
    host = describe_host(src, src.platform.hostname, "3.0.0.2")
    target_host = describe_host(tgt, tgt.platform.hostname, "3.0.0.2")
    mine = source_checks(src, name, req, target_host, guest=guest_facts)
    desc = describe_source(src, name, host, guest=guest_facts)
    theirs = target_checks(tgt, desc, req.view())
    return apply_force(merge(mine, theirs), req.force)


def lines_of(results, check=None):
    return [line for r in results if check in (None, r.check) for line in r.lines]


def give_io(mgr, name, *devices):
    """Move devices from the control domain (a delayed reconfiguration, then its reboot)."""
    for dev in devices:
        mgr.remove_io("primary", dev)
    mgr.guest_reset("primary")
    for dev in devices:
        mgr.add_io(name, dev)


@pytest.fixture
def pair():
    src = machine("system1", seed=1)
    tgt = machine("system2", seed=2)
    guest(src, "ldg1")
    return src, tgt


# -- §11 examples (M51, M52) -------------------------------------------------------------------

def test_the_dry_run_of_example_11_2_lists_every_failure_in_report_order():
    # M51, §11.2
    results = target_checks(example_target(), example_source(), request().view())
    ok, lines = report_lines(results, "ldg1", dry_run=True)
    assert not ok
    assert lines == EXAMPLE_DRY_RUN + ["Domain Migration of LDom ldg1 would fail if attempted"]


def test_the_forced_dry_run_of_example_11_2_turns_overridable_failures_into_warnings():
    # M52, §11.2 second command
    results = target_checks(example_target(), example_source(), request(force=True).view())
    ok, lines = report_lines(apply_force(results, True), "ldg1", dry_run=True)
    assert not ok
    assert lines == (EXAMPLE_DRY_RUN[1:6] + ["Warning: " + EXAMPLE_DRY_RUN[0],
                                             "Warning: " + EXAMPLE_DRY_RUN[6],
                                             "Domain Migration of LDom ldg1 would fail if attempted"])


def test_the_real_run_of_example_11_2_prints_only_the_first_failure():
    # M51, §11.2 last command
    results = target_checks(example_target(), example_source(), request(dry_run=False).view())
    assert report_lines(results, "ldg1", dry_run=False) == (
        False, [EXAMPLE_DRY_RUN[0], "Domain Migration of LDom ldg1 failed"])


def test_a_dry_run_that_passes_prints_nothing(pair):
    # §11.1, M47 (exit 0 <=> ok)
    src, tgt = pair
    results = phase1(src, tgt, request())
    assert results == []
    assert report_lines(results, "ldg1", dry_run=True) == (True, [])


def test_target_checks_change_nothing_on_the_target(pair):
    # M2, §6.0 "change nothing"
    src, tgt = pair
    before = {n: (tgt.summary(n), tgt.bindings(n).memory_blocks) for n in tgt.domain_names()}
    serial = tgt.meta.serial
    phase1(src, tgt, request())
    assert {n: (tgt.summary(n), tgt.bindings(n).memory_blocks) for n in tgt.domain_names()} == before
    assert tgt.meta.serial == serial


# -- K02, K03, K04 -----------------------------------------------------------------------------

def test_an_existing_target_name_or_uuid_fails_k02(pair):
    # M76
    src, tgt = pair
    guest(tgt, "ldg1", state="inactive", disks=False, nets=False)
    lines = lines_of(phase1(src, tgt, request()), "K02")
    assert lines == ["Domain ldg1 already exists on target machine system2"]
    uuid = src.summary("ldg1").uuid
    tgt.add_domain("other", uuid=uuid)
    lines = lines_of(phase1(src, tgt, request(target_name="fresh")), "K02")
    assert lines == [f"A domain with UUID {uuid} already exists on target machine system2"]


def test_a_new_target_name_passes_k02(pair):
    src, tgt = pair
    guest(tgt, "ldg1", state="inactive", disks=False, nets=False)
    assert lines_of(phase1(src, tgt, request(target_name="ldg-web")), "K02") == []


def test_the_control_domain_cannot_be_migrated(pair):
    # M78
    src, tgt = pair
    lines = lines_of(source_checks(src, "primary", request("primary"), {}), "K03")
    assert lines == ["Domain primary is the control domain and cannot be migrated"]


@pytest.mark.parametrize("flag, text", [
    ("s", "Domain ldg1 is already being migrated"),
    ("t", "Domain ldg1 is already being migrated"),
    ("e", "Domain ldg1 has an unresolved migration; resolve it before migrating the domain again"),
])
def test_a_migration_flag_fails_k03(pair, flag, text):
    # M78
    src, tgt = pair
    src.set_migration_flag("ldg1", flag)
    assert lines_of(source_checks(src, "ldg1", request(), {}), "K03") == [text]


def test_a_memory_dr_in_progress_fails_k03(pair):
    # M78
    src, _ = pair
    src.memory_dr("ldg1", True)
    assert lines_of(source_checks(src, "ldg1", request(), {}), "K03") == [
        "Domain ldg1 has a memory dynamic reconfiguration in progress"]


def test_an_unknown_source_domain_raises_for_the_standard_message(pair):
    # §6.16 last paragraph
    src, _ = pair
    with pytest.raises(LdmError, match="^Domain nosuch does not exist$"):
        source_checks(src, "nosuch", request("nosuch"), {})


@pytest.mark.parametrize("state", ["active", "bound", "inactive"])
def test_a_delayed_reconfiguration_on_either_control_domain_fails_k04(state, pair):
    # M73
    src, tgt = pair
    if state != "active":
        src.stop_domain("ldg1")
        if state == "inactive":
            src.unbind_domain("ldg1")
    src.remove_io("primary", "pci_0")  # an I/O change on the running control domain
    tgt.remove_io("primary", "pci_0")
    lines = lines_of(phase1(src, tgt, request()), "K04")
    assert lines == [
        "Domain migration is not possible while a delayed reconfiguration is pending on domain primary",
        "Domain migration is not possible while a delayed reconfiguration is pending on domain "
        "primary of target machine system2",
    ]


def test_no_delayed_reconfiguration_passes_k04(pair):
    src, tgt = pair
    assert lines_of(phase1(src, tgt, request()), "K04") == []


# -- K05 ---------------------------------------------------------------------------------------

def test_the_elastic_policy_fails_k05_only_when_set_to_refuse():
    # M74
    src = machine("system1", pm_policy="elastic")
    tgt = machine("system2", seed=2, pm_policy="elastic")
    guest(src, "ldg1")
    req = request()
    host = describe_host(src, "system1", "3.0.0.2")
    desc = describe_source(src, "ldg1", host)
    tgt_host = describe_host(tgt, "system2", "3.0.0.2")
    refuse = checks.CheckSettings(elastic_policy="refuse")
    allow = merge(source_checks(src, "ldg1", req, tgt_host), target_checks(tgt, desc, req.view()))
    assert lines_of(allow, "K05") == []
    refused = merge(source_checks(src, "ldg1", req, tgt_host, settings=refuse),
                    target_checks(tgt, desc, req.view(), settings=refuse))
    assert lines_of(refused, "K05") == [
        "Domain migration is not possible while the elastic power management policy is in effect on system1",
        "Domain migration is not possible while the elastic power management policy is in effect on system2",
    ]


def test_the_refuse_mode_does_not_concern_a_bound_domain():
    # §6.0 table: K05 not checked for bound domains
    src = machine("system1", pm_policy="elastic")
    guest(src, "ldg1", state="bound")
    refuse = checks.CheckSettings(elastic_policy="refuse")
    assert lines_of(source_checks(src, "ldg1", request(), {}, settings=refuse), "K05") == []


# -- K07, K08 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["active", "bound"])
def test_a_bus_a_function_or_an_endpoint_fails_k07_and_k08(state):
    # M64, M65
    src = machine("system1")
    guest(src, "ldg1", state="inactive")
    give_io(src, "ldg1", "pci_0", "/SYS/MB/PCIE1", "/SYS/MB/NET0/IOVNET.PF0.VF0")
    if state != "inactive":
        src.bind_domain("ldg1")
    if state == "active":
        src.start_domain("ldg1")
    results = source_checks(src, "ldg1", request(), {})
    assert [(r.check, r.klass, r.lines[0]) for r in results if r.check in ("K07", "K08")] == [
        ("K07", "hard", "Domain ldg1 owns PCIe bus pci_0 and cannot be migrated"),
        ("K07", "hard", "Domain ldg1 has virtual function /SYS/MB/NET0/IOVNET.PF0.VF0 and cannot be migrated"),
        ("K08", "hard", "Domain ldg1 has PCIe endpoint device /SYS/MB/PCIE1 and cannot be migrated"),
    ]


def test_physical_io_of_an_inactive_domain_only_warns():
    # M64, M65
    src = machine("system1")
    guest(src, "ldg1", state="inactive")
    give_io(src, "ldg1", "/SYS/MB/PCIE1")
    results = [r for r in source_checks(src, "ldg1", request(), {}) if r.check in ("K07", "K08")]
    assert [(r.check, r.result, r.lines) for r in results] == [
        ("K07", "warn", ("Warning: Domain ldg1 has physical I/O constraints that target machine "
                         "system2 must satisfy when the domain is bound",))]


def test_a_domain_without_physical_io_passes_k07_and_k08(pair):
    src, _ = pair
    assert [r for r in source_checks(src, "ldg1", request(), {}) if r.check in ("K07", "K08")] == []


# -- K09 ---------------------------------------------------------------------------------------

def test_native_between_cpu_types_fails_active_and_passes_bound():
    # M53
    src = machine("system1")
    tgt = machine("system2", seed=2, cpu_type="SPARC-T5", firmware="9.1.0")
    guest(src, "ldg1")
    assert lines_of(phase1(src, tgt, request()), "K09") == [
        "Domain ldg1 has cpu-arch=native and cannot be migrated from a SPARC-T4 machine to a "
        "SPARC-T5 machine"]
    src.stop_domain("ldg1")
    assert phase1(src, tgt, request()) == []


def test_a_frequency_difference_fails_without_f_and_warns_with_f():
    # M54
    src = machine("system1", freq=2848)
    tgt = machine("system2", seed=2, freq=2998)
    guest(src, "ldg1")
    text = "Target CPU frequency 2998 MHz differs from source CPU frequency 2848 MHz"
    assert report_lines(phase1(src, tgt, request(dry_run=False)), "ldg1", False) == (
        False, [text, "Domain Migration of LDom ldg1 failed"])
    forced = phase1(src, tgt, request(force=True, dry_run=False))
    assert report_lines(forced, "ldg1", False) == (True, ["Warning: " + text])


@pytest.mark.parametrize("arch, stype, ttype, ok", [
    ("migration-class1", "SPARC-T4", "SPARC-T5", True),
    ("migration-class1", "SPARC-T5", "SPARC-T4", True),
    ("migration-class1", "SPARC-T3", "SPARC-T4", False),
    ("sparc64-class1", "SPARC64-X", "SPARC64-X+", True),
    ("sparc64-class1", "SPARC-T4", "SPARC-T5", False),
    ("generic", "SPARC-T4", "SPARC-T5", True),
    ("generic", "SPARC-T3", "SPARC-T5", False),
])
def test_cpu_arch_classes_allow_exactly_their_pairs(arch, stype, ttype, ok):
    # M55, M56
    fw = {"SPARC64-X": "XCP2210", "SPARC64-X+": "XCP2210", "SPARC-T3": "8.4.0"}
    src = machine("system1", cpu_type=stype, firmware=fw.get(stype, "9.1.0"))
    tgt = machine("system2", seed=2, cpu_type=ttype, firmware=fw.get(ttype, "9.1.0"))
    guest(src, "ldg1")
    # The source could not bind a class value outside its class: state the domain directly.
    desc = describe(src, **{"cpu-arch": arch})
    k09 = [r for r in target_checks(tgt, desc, request().view()) if r.check == "K09"]
    assert (k09 == []) is ok
    assert all(r.klass == "hard" for r in k09)


def test_generic_from_t3_to_t5_fails_live_and_passes_bound():
    # M56
    src = machine("system1", cpu_type="SPARC-T3", firmware="8.4.0")
    tgt = machine("system2", seed=2, cpu_type="SPARC-T5", firmware="9.1.0")
    guest(src, "ldg1", state="inactive")
    src.set_domain("ldg1", cpu_arch="generic")
    src.bind_domain("ldg1")
    src.start_domain("ldg1")
    assert lines_of(phase1(src, tgt, request()), "K09") == [
        "Live migration between SPARC-T3 and SPARC-T5 machines is not supported"]
    src.stop_domain("ldg1")
    assert phase1(src, tgt, request()) == []


def test_a_bound_class_domain_needs_a_member_target():
    # M80
    src = machine("system1", cpu_type="SPARC-T4")
    tgt = machine("system2", seed=2, cpu_type="SPARC-T3", firmware="8.4.0")
    guest(src, "ldg1", state="inactive")
    src.set_domain("ldg1", cpu_arch="migration-class1")
    src.bind_domain("ldg1")
    assert lines_of(phase1(src, tgt, request()), "K09") == [
        "Domain ldg1 with cpu-arch=migration-class1 cannot be bound on a SPARC-T3 machine"]


def test_perf_counters_across_types_fail_and_the_api_group_still_fails_with_f():
    # M57, M27 (different types: one [P] message per group)
    src = machine("system1", cpu_type="SPARC-T7", firmware="9.5.0")
    tgt = machine("system2", seed=2, cpu_type="SPARC-T5", firmware="9.1.0")
    guest(src, "ldg1", state="inactive")
    src.set_domain("ldg1", cpu_arch="migration-class1", perf_counters="global")
    src.bind_domain("ldg1")
    src.start_domain("ldg1")
    plain = phase1(src, tgt, request())
    assert [(r.check, r.klass, r.result) for r in plain] == [
        ("K01", "hard", "fail"), ("K09", "overridable", "fail")]
    assert lines_of(plain, "K09") == [
        "Domain ldg1 uses perf-counters=global, which a SPARC-T5 machine may not support"]
    forced = phase1(src, tgt, request(force=True, dry_run=False))
    assert report_lines(forced, "ldg1", dry_run=False) == (False, [
        "API group 0x20b v1.0 is not supported in the version of the firmware",
        " running on the target machine.",
        "Domain Migration of LDom ldg1 failed"])


def test_free_strands_are_counted_for_a_plain_domain(pair):
    # M58
    src, tgt = pair
    guest(tgt, "big", vcpus=20, state="bound", disks=False, nets=False)  # 4 left free
    assert lines_of(phase1(src, tgt, request()), "K09") == [
        "Target machine system2 has 4 free virtual CPUs; domain ldg1 needs 8"]


def test_the_whole_core_constraint_needs_whole_free_cores():
    # M58
    src = machine("system1")
    tgt = machine("system2", seed=2)
    guest(src, "ldg1", state="inactive")
    src.set_vcpu("ldg1", None, wcore=1)
    src.bind_domain("ldg1")
    src.start_domain("ldg1")
    assert lines_of(phase1(src, tgt, request()), "K09") == []
    for i in range(3):  # one strand on each remaining core leaves no whole core free
        guest(tgt, f"g{i}", vcpus=1, memory=256 << 20, state="bound", disks=False, nets=False)
        tgt.domains[f"g{i}"].binding.strands = [8 * (i + 1)]
    assert lines_of(phase1(src, tgt, request()), "K09") == [
        "Target machine system2 has 0 free whole cores; domain ldg1 needs 1"]


# -- K10 ---------------------------------------------------------------------------------------

def test_a_bound_domain_whose_block_cannot_be_placed_gets_the_bind_line():
    # M62
    src = machine("system1")
    tgt = machine("system2", seed=2, ranges='{ pa = 0x0, size = "2G" }')
    guest(src, "ldg1", memory=2 * G, state="bound")
    blocks = src.bindings("ldg1").memory_blocks
    assert len(blocks) == 1
    lines = lines_of(phase1(src, tgt, request()), "K10")
    assert lines == ["Target machine system2 has 1G of free memory; domain ldg1 needs 2G",
                     f"Unable to bind 2G memory region at real address 0x{blocks[0].ra:x}"]


def test_memory_that_fits_passes_k10(pair):
    src, tgt = pair
    assert lines_of(phase1(src, tgt, request()), "K10") == []


# -- K11 ---------------------------------------------------------------------------------------

def test_a_crypto_shortage_on_the_target_only_warns(pair):
    # M72
    src, tgt = pair
    src.stop_domain("ldg1")
    src.unbind_domain("ldg1")
    src.set_mau("ldg1", 2)
    src.bind_domain("ldg1")
    src.start_domain("ldg1")
    assert lines_of(phase1(src, tgt, request()), "K11") == [
        "Warning: Target machine system2 can provide 1 of the 2 cryptographic units of domain ldg1"]


def test_crypto_units_on_the_planned_cores_pass_k11(pair):
    src, tgt = pair
    src.stop_domain("ldg1")
    src.unbind_domain("ldg1")
    src.set_mau("ldg1", 1)
    src.bind_domain("ldg1")
    src.start_domain("ldg1")
    assert lines_of(phase1(src, tgt, request()), "K11") == []


# -- K12 ---------------------------------------------------------------------------------------

def test_a_missing_volume_or_switch_fails_k12_for_a_bound_domain(pair):
    # M66, M68
    src, tgt = pair
    src.stop_domain("ldg1")
    tgt.remove_vdsdev("primary-vds0", "vol0")
    tgt.remove_vsw("primary-vsw0")
    assert lines_of(phase1(src, tgt, request()), "K12") == [
        "Volume vol0@primary-vds0 used by virtual disk vdisk0 does not exist on target machine system2",
        "Virtual switch primary-vsw0 used by virtual network device vnet0 does not exist on target machine system2",
    ]


def test_a_service_domain_that_is_not_active_fails_an_active_domain_only():
    # M66
    src = machine("system1")
    guest(src, "ldg1")
    tgt = machine("system2", seed=2, services=False)
    tgt.add_domain("svc")
    tgt.set_vcpu("svc", 1)
    tgt.set_memory("svc", 256 << 20)
    tgt.add_vds("svc", "primary-vds0")
    tgt.add_vdsdev("primary-vds0", "vol0", "/images/vol0")
    tgt.add_vsw("svc", "primary-vsw0")
    tgt.add_vcc("primary", "primary-vcc0", 5000, 5010)
    tgt.bind_domain("svc")
    assert lines_of(phase1(src, tgt, request()), "K12") == [
        "Service primary-vds0 on target machine system2 belongs to domain svc, which is not active",
        "Service primary-vsw0 on target machine system2 belongs to domain svc, which is not active",
    ]
    src.stop_domain("ldg1")
    assert lines_of(phase1(src, tgt, request()), "K12") == []


def test_differing_volume_options_fail_an_active_domain_and_not_a_bound_one(pair):
    # M67
    src, tgt = pair
    tgt.remove_vdsdev("primary-vds0", "vol0")
    tgt.add_vdsdev("primary-vds0", "vol0", "/images/vol0", ["ro"])
    results = [r for r in phase1(src, tgt, request()) if r.check == "K12"]
    assert [(r.klass, r.lines) for r in results] == [("overridable", (
        "Volume vol0@primary-vds0 has options ro on target machine system2 but none on this machine",))]
    src.stop_domain("ldg1")
    assert lines_of(phase1(src, tgt, request()), "K12") == []


def test_no_free_console_port_fails_k12(pair):
    # M69
    src, tgt = pair
    tgt.set_vcc("primary-vcc0", 5000, 5000)
    guest(tgt, "holder", vcpus=1, memory=256 << 20, state="bound", disks=False, nets=False)
    assert lines_of(phase1(src, tgt, request()), "K12") == [
        "No virtual console concentrator with a free port exists on target machine system2"]


def test_a_named_console_concentrator_must_exist_and_a_taken_port_constraint_warns(pair):
    # M69
    src, tgt = pair
    src.stop_domain("ldg1")
    src.unbind_domain("ldg1")
    src.set_vconsole("ldg1", port=5000)
    src.bind_domain("ldg1")
    src.start_domain("ldg1")
    guest(tgt, "holder", vcpus=1, memory=256 << 20, state="bound", disks=False, nets=False)
    assert lines_of(phase1(src, tgt, request()), "K12") == [
        "Warning: Console port 5000 is not free on target machine system2; domain ldg1 will use port 5001"]
    src.stop_domain("ldg1")
    src.unbind_domain("ldg1")
    src.set_vconsole("ldg1", port=None, service="primary-vcc0")
    src.bind_domain("ldg1")
    tgt2 = machine("system3", seed=3, services=False)
    tgt2.add_vds("primary", "primary-vds0")
    tgt2.add_vdsdev("primary-vds0", "vol0", "/images/vol0")
    tgt2.add_vsw("primary", "primary-vsw0")
    assert lines_of(phase1(src, tgt2, request(host="system3")), "K12") == [
        "Virtual console concentrator primary-vcc0 does not exist on target machine system3"]


def test_a_domain_providing_a_service_to_others_cannot_be_migrated():
    # M70
    src = machine("system1")
    guest(src, "svc", vcpus=1, state="inactive", disks=False, nets=False)
    src.add_vsw("svc", "svc-vsw0")
    guest(src, "ldg2", vcpus=1, state="inactive", disks=False, nets=False)
    src.add_vnet("ldg2", "vnet0", "svc-vsw0")
    src.bind_domain("svc")
    assert lines_of(source_checks(src, "svc", request("svc"), {}), "K12") == [
        "Domain svc provides service svc-vsw0 to other domains and cannot be migrated"]
    src.remove_vnet("ldg2", "vnet0")
    assert lines_of(source_checks(src, "svc", request("svc"), {}), "K12") == []


# -- K14 ---------------------------------------------------------------------------------------

def test_a_mac_or_hostid_collision_is_overridable_for_bound_and_a_warning_for_inactive(pair):
    # M77
    src, tgt = pair
    src.stop_domain("ldg1")
    dom = src.summary("ldg1")
    tgt.add_domain("twin", mac=dom.mac, hostid=dom.hostid)
    expected = [
        f"MAC address {dom.mac} of domain ldg1 is already used by domain twin on target machine system2",
        f"Host ID 0x{dom.hostid} of domain ldg1 is already used by domain twin on target machine system2",
    ]
    bound = [r for r in phase1(src, tgt, request()) if r.check == "K14"]
    assert [(r.klass, r.result) for r in bound] == [("overridable", "fail")] * 2
    assert lines_of(bound) == expected
    assert [r.result for r in apply_force(bound, True)] == ["warn", "warn"]
    src.unbind_domain("ldg1")
    inactive = [r for r in phase1(src, tgt, request()) if r.check == "K14"]
    assert [(r.klass, r.result) for r in inactive] == [("warning", "warn")] * 2
    assert lines_of(inactive) == ["Warning: " + line for line in expected]


def test_a_switch_mac_collision_names_the_service(pair):
    # M77, §6.14
    src, tgt = pair
    mac = src.bindings("ldg1").vnets[0][0].mac
    tgt.add_vsw("primary", "other-vsw", mac=mac)
    assert lines_of(phase1(src, tgt, request()), "K14") == [
        f"MAC address {mac} of virtual network device vnet0 of domain ldg1 is already used by "
        f"domain service other-vsw on target machine system2"]


# -- states: inactive domains (§6.12) ----------------------------------------------------------

def test_an_inactive_domain_migrates_to_a_target_without_its_resources_or_services():
    # M79
    src = machine("system1")
    guest(src, "ldg1", vcpus=16, memory=4 * G, state="inactive")
    tgt = machine("system2", seed=2, cores=1, ranges='{ pa = 0x0, size = "1G" }', services=False)
    assert phase1(src, tgt, request()) == []


def test_the_description_is_json_ready(pair):
    # §2.4 item 2: mig-check carries it
    import json
    src, _ = pair
    desc = describe(src)
    assert json.loads(json.dumps(desc)) == desc
