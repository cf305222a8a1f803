"""Phase-1 rules that need facts the manager does not model yet (guest OS state and
capabilities, API groups, EFI labels, named resources, storage ids, NIU attachment): the
source is a ``mig-check`` description dict, the target a real machine's ``describe_target``."""

import copy

import pytest

from agent.migration import checks
from agent.migration.checks import CheckSettings, apply_force, run_source, run_target
from agent.migration.describe import describe_target
from agent.migration.versions import CpuRules
from tests.migration.test_checks_support import (
    G, M, SOURCE_FACTS, example_source, guest, machine, request)


def roomy_target(**platform):
    """system2 with room for the §11 guest: 4 cores, 20G, vol0, vol1, both switches."""
    platform.setdefault("ranges", '{ pa = 0x0, size = "20G" }')
    mgr = machine("system2", seed=2, freq=2848, **platform)
    mgr.add_vsw("primary", "primary-vsw1")
    return mgr


def source(state="active", **domain):
    desc = example_source()
    desc["domain"]["state"] = state
    desc["domain"]["flags"] = "-n----" if state == "active" else "------"
    if state == "inactive":
        desc["domain"]["memory-blocks"] = []
    desc["domain"].update(domain)
    return desc


def both(desc, target=None, req=None, settings=checks.DEFAULT_SETTINGS, host_edit=None):
    """Source and target results merged, as the source agent reports them."""
    local = describe_target(target or roomy_target())
    if host_edit:
        local["host"].update(host_edit)
    view = (req or request()).view()
    return checks.merge(run_source(desc, SOURCE_FACTS, local["host"], view, settings),
                        run_target(desc, local, view, settings))


def lines(results, check=None):
    return [line for r in results if check in (None, r.check) for line in r.lines]


def test_the_example_guest_passes_on_a_roomy_target():
    assert both(source()) == []


# -- K01 (§6.15) -------------------------------------------------------------------------------

def test_missing_firmware_migration_support_fails_live_source_line_first():
    # M26
    desc = source()
    desc["host"]["firmware-features"] = ["efi-gpt"]
    results = both(desc, host_edit={"firmware-features": ["efi-gpt"]})
    assert lines(results, "K01") == [
        "The system firmware on system1 does not support domain migration",
        "The system firmware on system2 does not support domain migration"]
    assert both(source("bound"), host_edit={"firmware-features": ["efi-gpt"]}) == []


def test_firmware_below_the_minimum_fails_live_and_not_bound():
    # M26
    results = both(source(), host_edit={"firmware-version": "8.2.2"})
    assert lines(results, "K01") == [
        "System firmware version 8.2.2 on system2 is older than 8.2.2.c, the minimum for live "
        "migration on SPARC-T4"]
    assert both(source(), host_edit={"firmware-version": "8.2.2.c"}) == []
    assert both(source("bound"), host_edit={"firmware-version": "8.2.2"}) == []


def test_a_7x_to_8x_firmware_pair_fails_live_and_not_bound():
    # M26
    desc = source(**{"cpu-arch": "generic"})
    desc["host"].update({"cpu-type": "UltraSPARC-T2", "firmware-version": "7.4.5"})
    target = roomy_target(cpu_type="SPARC-T3", firmware="8.4.0")
    assert lines(both(desc, target), "K01") == [
        "Live migration between system firmware 7.4.5 and 8.4.0 is not supported"]
    bound = copy.deepcopy(desc)
    bound["domain"].update(state="bound", flags="------")
    assert both(bound, target) == []


def test_an_unsupported_api_group_between_equal_types_gives_the_two_line_message():
    # M27
    desc = source(**{"api-groups": [[0x20B, "1.0"]]})
    assert [r.lines for r in both(desc)] == [(
        "Domain ldg1 is using features of the system firmware that are not supported in",
        "the version of the firmware running on the target machine.")]


def test_api_groups_the_target_supports_pass():
    desc = source(**{"api-groups": [[0x20B, "1.0"], [0x100, "1.3"]]})
    assert both(desc, host_edit={"hv-api-groups": [[0, 0x1FF, 1, 999], [0x20B, 0x20B, 1, 1]]}) == []
    lower = both(desc, host_edit={"hv-api-groups": [[0, 0x1FF, 1, 2], [0x20B, 0x20B, 1, 1]]})
    assert lower and lower[0].check == "K01"  # minor 3 negotiated, 2 offered


def test_an_unsupported_group_across_types_is_reported_per_group_in_ascending_order():
    # M27
    desc = source(**{"api-groups": [[0x214, "1.0"], [0x20B, "1.0"]], "cpu-arch": "generic"})
    desc["host"].update({"cpu-type": "SPARC-T7", "firmware-version": "9.5.0"})
    results = both(desc, roomy_target(cpu_type="SPARC-T5", firmware="9.1.0"))
    assert lines(results, "K01") == [
        "API group 0x20b v1.0 is not supported in the version of the firmware",
        " running on the target machine.",
        "API group 0x214 v1.0 is not supported in the version of the firmware",
        " running on the target machine."]


def test_a_running_os_without_suspend_fails_live_and_migrates_once_stopped():
    # M28
    desc = source(**{"os-capabilities": ["migration-v2", "cpu-dr"]})
    assert lines(both(desc), "K01") == [
        "Domain ldg1 is running an operating system that does not support live migration"]
    assert both(source("bound", **{"os-capabilities": []})) == []


@pytest.mark.parametrize("state", ["active", "bound", "inactive"])
def test_an_efi_label_needs_efi_gpt_on_the_target_in_every_state(state):
    # M29
    desc = source(state)
    desc["domain"]["vdisks"][0]["efi"] = True
    assert lines(both(desc, host_edit={"firmware-features": ["migration"]}), "K01") == [
        "Virtual disk vdisk0 of domain ldg1 has an EFI label, which the system firmware on "
        "system2 does not support"]
    assert both(desc) == []


def test_a_build_without_class_values_rejects_them():
    # M25
    settings = CheckSettings(supported_cpu_arch=("native", "generic"))
    desc = source("inactive", **{"cpu-arch": "migration-class1"})
    assert lines(both(desc, settings=settings)) == [
        "Target machine system2 does not support cpu-arch=migration-class1"]
    assert both(desc) == []


def test_the_exclusion_table_can_be_changed():
    # §1.3: tests must be able to change the exclusion table
    rules = CpuRules(excluded_cpu_groups=(frozenset({"SPARC-T4"}), frozenset({"SPARC-T5"})))
    desc = source(**{"cpu-arch": "generic"})
    target = roomy_target(cpu_type="SPARC-T5", firmware="9.1.0")
    assert both(desc, target) == []
    assert lines(both(desc, target, settings=CheckSettings(rules=rules)), "K09") == [
        "Live migration between SPARC-T4 and SPARC-T5 machines is not supported"]


# -- K03 starting/stopping, K06 legacy notice --------------------------------------------------

def test_a_domain_starting_or_stopping_fails_k03():
    # M78
    results = both(source(flags="sn----"))
    assert lines(results) == ["Domain ldg1 is starting or stopping and cannot be migrated now"]


@pytest.mark.parametrize("softstate, caps", [
    ("OpenBoot Running", []),
    ("Solaris debugging", []),
    ("Solaris running", ["suspend", "cpu-dr"]),  # a running OS without migration-v2
])
def test_legacy_mode_gives_the_two_line_notice_and_does_not_fail(softstate, caps):
    # M75
    results = both(source(softstate=softstate, **{"os-capabilities": caps}))
    assert [(r.check, r.result, r.lines) for r in results] == [("K06", "notice", (
        "Domain ldg1 is not running an operating system that is",
        "compatible with the latest migration functionality."))]
    ok, out = checks.report_lines(results, "ldg1", dry_run=False)
    assert ok and out == ["Notice: Domain ldg1 is not running an operating system that is\n"
                          "compatible with the latest migration functionality."]


def test_a_bound_domain_gets_no_legacy_notice():
    assert both(source("bound", softstate="", **{"os-capabilities": []})) == []


# -- K09 legacy whole cores, named cores and cidmap --------------------------------------------

def test_legacy_mode_needs_whole_free_cores():
    # M58: 4 cores; primary holds core 0
    target = roomy_target()
    guest(target, "filler", vcpus=9, memory=256 * M, state="bound", disks=False, nets=False)
    legacy = source(vcpus=4, softstate="OpenBoot Running", **{"os-capabilities": []})
    assert lines(both(legacy, target), "K09") == []  # core 3 is still whole
    guest(target, "filler2", vcpus=8, memory=256 * M, state="bound", disks=False, nets=False)
    assert lines(both(legacy, target), "K09") == [
        "Target machine system2 has 0 free whole cores; domain ldg1 needs 1"]
    assert lines(both(source(vcpus=4), target), "K09") == []  # 7 single strands are free


def named(**extra):
    return source(**{"named-cores": [2, 3], "whole-cores": 2, "vcpus": 16, **extra})


def test_named_cores_go_to_their_mapped_ids_and_must_be_free():
    # M59
    target = roomy_target(cores=8)
    assert both(named(), target, request(cidmap=[(2, 6)])) == []
    guest(target, "filler", vcpus=8, memory=256 * M, state="bound", disks=False, nets=False)
    # filler took core 1; core 3 is unmapped and keeps its id; core 9 does not exist.
    guest(target, "filler2", vcpus=8, memory=256 * M, state="bound", disks=False, nets=False)
    assert lines(both(named(), target, request(cidmap=[(2, 9), (3, 2)])), "K09") == [
        "Core 9 does not exist on target machine system2",
        "Core 2 is not free on target machine system2"]


def test_cidmap_prerequisites_are_checked_in_every_state():
    # M59, §6.1 part 4, §6.12
    assert lines(both(source("inactive"), req=request(cidmap=[(1, 2)]))) == [
        "Domain ldg1 has no named cores, so cidmap cannot be used"]
    assert lines(both(named(), req=request(cidmap=[(5, 1)])), "K09") == [
        "Core 5 in cidmap is not a named core of domain ldg1"]
    assert lines(both(named(**{"whole-cores": 0})), "K09")[0] == (
        "Domain ldg1 uses named resources and must have cpu-arch=native and the whole-core "
        "constraint to be migrated")


# -- K10 placement and mblockmap ---------------------------------------------------------------

def test_blocks_are_placed_congruently_for_a_live_migration_only():
    # M61, M62: the 2G-congruent layout exists only below 2G here.
    target = roomy_target(ranges='{ pa = 0x0, size = "2G" }, { pa = 0x90000000, size = "10G" }')
    desc = source(**{"memory-blocks": [{"ra": 0x80000000, "pa": 0x400000000, "size": 2 * G,
                                        "named": False}], "memory": 2 * G})
    assert lines(both(desc, target), "K10") == []  # first fit, congruent: 0x100000000
    odd = copy.deepcopy(desc)
    odd["domain"]["memory-blocks"][0]["ra"] = 0x90000000
    assert lines(both(odd, target), "K10") == []  # 0x90000000 itself is congruent
    odd["domain"]["memory-blocks"][0]["ra"] = 0x84000000
    target_small = roomy_target(ranges='{ pa = 0x0, size = "1G" }, { pa = 0x80000000, size = "2G" }')
    assert lines(both(odd, target_small), "K10") == [
        "Free memory layout and congruency requirements prevent binding the memory block with "
        "PA 0x400000000, RA 0x84000000, and size 2G"]
    bound = copy.deepcopy(odd)
    bound["domain"].update(state="bound", flags="------")
    assert lines(both(bound, target_small), "K10") == []


def named_block(**extra):
    block = {"ra": 0x80000000, "pa": 0x400000000, "size": 2 * G, "named": True}
    return source(**{"memory-blocks": [block], "memory": 2 * G, "whole-cores": 1, **extra})


def test_mblockmap_errors_are_raised_for_their_conditions():
    # M63
    target = roomy_target()
    assert lines(both(source(), target, request(mblockmap=[(0x400000000, 0x80000000)])), "K10") == [
        "Domain ldg1 has no named memory blocks, so mblockmap cannot be used"]
    assert lines(both(named_block(), target, request(mblockmap=[(0x800000000, 0x80000000)])),
                 "K10") == [
        "Address 0x800000000 in mblockmap is not the start of a named memory block of domain ldg1"]
    assert lines(both(named_block(), target, request(mblockmap=[(0x400000000, 0x0)])), "K10") == [
        "Memory range at 0x0 named in mblockmap is not free on target machine system2"]
    assert lines(both(named_block(), target, request(mblockmap=[(0x400000000, 0x80000000)])),
                 "K10") == []


def test_overlapping_mblockmap_targets_are_refused():
    # M63
    blocks = [{"ra": 0x80000000, "pa": 0x400000000, "size": 2 * G, "named": True},
              {"ra": 0x100000000, "pa": 0x500000000, "size": 2 * G, "named": True}]
    desc = source(**{"memory-blocks": blocks, "memory": 4 * G, "whole-cores": 1})
    mbm = [(0x400000000, 0x80000000), (0x500000000, 0x100000000)]
    assert lines(both(desc, req=request(mblockmap=mbm)), "K10") == []
    mbm = [(0x400000000, 0x80000000), (0x500000000, 0xc0000000)]
    assert "Target ranges in mblockmap overlap at 0xc0000000" in lines(
        both(desc, req=request(mblockmap=mbm)), "K10")


# -- K11, K12, K13, K14 ------------------------------------------------------------------------

def test_crypto_units_without_crypto_dr_fail_a_live_migration():
    # M72
    desc = source(mau=1, **{"mau-bound": 1, "os-capabilities": ["suspend", "migration-v2"]})
    assert lines(both(desc), "K11") == [
        "Domain ldg1 has cryptographic units but its operating system cannot reconfigure them "
        "dynamically"]
    assert lines(both(source(mau=1, **{"mau-bound": 1})), "K11") == []


def test_a_missing_mpgroup_is_overridable_and_differing_storage_only_warns():
    # M67, §6.4 rules 3 and 4
    desc = source()
    desc["domain"]["vdisks"][0].update(mpgroup="mp1", **{"storage-id": "lun-a"})
    local = describe_target(roomy_target())
    local["vdss"]["primary-vds0"]["volumes"]["vol0"]["storage-id"] = "lun-b"
    results = run_target(desc, local, request().view())
    assert [(r.klass, r.lines[0]) for r in results] == [
        ("overridable", "Volume vol0@primary-vds0 on target machine system2 is not in mpgroup mp1"),
        ("warning", "Warning: Volume vol0@primary-vds0 on target machine system2 may not refer to "
                    "the same storage as on this machine")]
    assert [r.result for r in apply_force(results, True)] == ["warn", "warn"]


def test_a_hybrid_device_without_niu_capacity_only_warns():
    # M71
    desc = source()
    desc["domain"]["vnets"][0]["mode"] = "hybrid"
    local = describe_target(roomy_target())
    results = run_target(desc, local, request().view())
    assert [(r.check, r.result, r.lines) for r in results] == [("K13", "warn", (
        "Warning: NIU hybrid mode of virtual network device vnet0 cannot be provided on target "
        "machine system2; the constraint is kept but not met",))]
    local["nius"] = {"niu_0": {"capacity": 8, "in-use": 0}}
    local["vsws"]["primary-vsw0"]["niu"] = "niu_0"
    assert run_target(desc, local, request().view()) == []


def test_an_alternate_mac_collision_names_the_network_device():
    # M77
    desc = source()
    desc["domain"]["vnets"][1]["alt-macs"] = ["00:14:4f:fb:99:99"]
    local = describe_target(roomy_target())
    local["domains"].append({"name": "web9", "uuid": "x", "hostid": "0", "state": "bound",
                             "macs": ["00:14:4f:fb:99:99"]})
    assert lines(run_target(desc, local, request().view()), "K14") == [
        "MAC address 00:14:4f:fb:99:99 of virtual network device vnet1 of domain ldg1 is already "
        "used by domain web9 on target machine system2"]
