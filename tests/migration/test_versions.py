"""Version facts of migration.md §1.2, §1.3 and §3: protocol ranges, firmware order, CPU rules."""

import pytest

from agent.migration import versions
from agent.migration.versions import (CpuRules, api_supported, bindable, choose_protocol,
                                      common_features, firmware_at_least, in_class,
                                      meets_minimum, protocol_range)


def test_an_agent_accepts_its_protocol_and_the_one_before():
    # §3.1
    assert protocol_range(2) == (1, 2)
    assert protocol_range(1) == (1, 1)


@pytest.mark.parametrize("a, b, chosen", [(2, 2, 2), (2, 3, 2), (3, 2, 2), (1, 2, 1), (1, 3, None),
                                          (4, 2, None)])
def test_peers_one_apart_run_the_lower_protocol_and_two_apart_do_not_meet(a, b, chosen):
    # M23
    assert choose_protocol(protocol_range(a), protocol_range(b)) == chosen


def test_a_feature_offered_by_one_side_only_is_off_without_error():
    # M24
    assert common_features(["zlib", "streams", "verify"], ["verify", "zlib"]) == ["verify", "zlib"]
    assert common_features([], ["zlib"]) == []


@pytest.mark.parametrize("low, high", [
    ("8.2.2", "8.2.2.c"), ("8.2.2.c", "8.2.3"), ("8.2.2.a", "8.2.2.c"), ("7.4.5", "8.0"),
    ("8.2", "8.2.0.a"), ("8.9", "8.10"), ("XCP2210", "XCP2230"),
])
def test_firmware_versions_compare_field_by_field_with_letters_after_the_number(low, high):
    # §1.2
    assert firmware_at_least(high, low) is True
    assert firmware_at_least(low, high) is False


def test_a_missing_field_counts_as_zero_and_xcp_never_compares_with_dotted():
    # §1.2
    assert firmware_at_least("8.2", "8.2.0") is True and firmware_at_least("8.2.0", "8.2") is True
    assert firmware_at_least("XCP2210", "8.2.2") is None
    with pytest.raises(ValueError):
        firmware_at_least("8.2.2.C", "8.0")


@pytest.mark.parametrize("fw, cpu, ok", [
    ("8.2.2.c", "SPARC-T4", True), ("8.2.2", "SPARC-T4", False), ("7.4.5", "UltraSPARC-T2", True),
    ("7.4.4", "UltraSPARC-T2+", False), ("1.0", "SPARC-T5", True), ("XCP2210", "SPARC64-X", True),
    ("9.1.0", "SPARC64-X+", False),
])
def test_live_migration_needs_the_minimum_firmware_of_the_cpu_type(fw, cpu, ok):
    # M26, §1.3
    assert meets_minimum(fw, cpu) is ok


def test_the_minimum_firmware_column_can_be_changed():
    # §1.3
    rules = CpuRules(cpu_types={**versions.CPU_TYPES,
                                "SPARC-T5": versions.CpuType(8, 2 << 30, True, False, "9.2")})
    assert meets_minimum("9.1.0", "SPARC-T5") is True
    assert meets_minimum("9.1.0", "SPARC-T5", rules) is False


def test_7x_and_8x_firmware_are_an_excluded_pair():
    # M26, §1.3
    rules = versions.DEFAULT_RULES
    assert rules.firmware_pair_excluded("7.4.5", "8.4.0")
    assert rules.firmware_pair_excluded("8.4.0", "7.4.5")
    assert not rules.firmware_pair_excluded("8.1.0", "8.4.0")
    assert not rules.firmware_pair_excluded("9.1.0", "8.4.0")


@pytest.mark.parametrize("a, b", [("SPARC-T3", "SPARC-T5"), ("UltraSPARC-T2", "SPARC-M7"),
                                  ("SPARC-T7", "UltraSPARC-T2+")])
def test_the_cpu_exclusion_table_holds_in_either_direction(a, b):
    # §1.3
    assert versions.DEFAULT_RULES.cpu_pair_excluded(a, b)
    assert versions.DEFAULT_RULES.cpu_pair_excluded(b, a)
    assert not versions.DEFAULT_RULES.cpu_pair_excluded("SPARC-T4", "SPARC-T5")


def test_class_membership_and_binding_follow_1_3_and_1_6():
    # M55, M80
    assert in_class("migration-class1", "SPARC-T4") and in_class("migration-class1", "SPARC-M7")
    assert not in_class("migration-class1", "SPARC-T3")
    assert in_class("sparc64-class1", "SPARC64-X+") and not in_class("sparc64-class1", "SPARC-T5")
    assert bindable("native", "SPARC-T3") and bindable("generic", "SPARC64-X")
    assert not bindable("migration-class1", "SPARC64-X")
    assert not bindable("sparc64-class1", "SPARC-T4")


def test_only_t7_and_m7_offer_the_performance_counter_groups():
    # §1.3
    rules = versions.DEFAULT_RULES
    t7, t5 = rules.default_api_groups("SPARC-T7"), rules.default_api_groups("SPARC-T5")
    assert api_supported(t7, 0x20B, "1.0") and api_supported(t7, 0x214, "1.0")
    assert not api_supported(t5, 0x20B, "1.0") and not api_supported(t5, 0x214, "1.0")
    assert api_supported(t5, 0x100, "1.7") and not api_supported(t5, 0x100, "2.0")
