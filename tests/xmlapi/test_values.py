"""Value formats of §2.7: what is accepted, what is refused (with the §3.6 message), and the
canonical emitted form (C100-C102)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, strategies as st

from agent.xmlapi import values
from agent.xmlapi.values import InvalidValue


def test_invalid_value_carries_value_key_and_operator_message():
    with pytest.raises(InvalidValue) as info:
        values.parse_size("4T", "rasd:AllocationUnits")
    assert (info.value.value, info.value.key) == ("4T", "rasd:AllocationUnits")
    assert str(info.value) == 'Invalid value "4T" for rasd:AllocationUnits'
    assert info.value.message == str(info.value)
    assert isinstance(info.value, ValueError)


def test_memory_sizes_in_every_spelling_are_equal():
    """C100: 4294967296, 4194304K, 4096m and 4G are the same size."""
    sizes = {values.parse_size(s, "memory") for s in ("4294967296", "4194304K", "4096m", "4G",
                                                       "4g", "0004G")}
    assert sizes == {4 << 30}


@pytest.mark.parametrize("nbytes, text", [(4 << 30, "4G"), (1536 << 20, "1536M"),
                                          (512 << 10, "512K"), (1000, "1000"), (0, "0"),
                                          ((3 << 30) + (1 << 10), "3145729K")])
def test_sizes_are_emitted_with_the_largest_exact_suffix(nbytes, text):
    """C100: output uses the largest suffix that divides the size."""
    assert values.format_size(nbytes) == text


@pytest.mark.parametrize("bad", ["", "4T", "4 G", "-4G", "4.5G", "G", "0x10", "4GB"])
def test_malformed_sizes_are_refused(bad):
    with pytest.raises(InvalidValue):
        values.parse_size(bad, "memory")


@given(st.integers(min_value=0, max_value=1 << 50))
def test_size_round_trip(nbytes):
    text = values.format_size(nbytes)
    assert values.parse_size(text, "memory") == nbytes
    assert values.parse_size(text.lower(), "memory") == nbytes


@given(st.integers(min_value=0, max_value=(1 << 48) - 1))
def test_mac_round_trip_and_canonical_form(number):
    text = values.format_mac(number)
    assert len(text) == 17 and text == text.lower()
    assert values.parse_mac(text) == number
    assert values.parse_mac(text.upper()) == number


def test_short_and_upper_case_mac_addresses_are_emitted_canonically():
    """C101: one-digit groups and upper case come out as six two-digit lower-case groups."""
    number = values.parse_mac("0:14:4F:F9:3A:1")
    assert values.format_mac(number) == "00:14:4f:f9:3a:01"


@pytest.mark.parametrize("bad", ["00:14:4f:f9:3a", "00:14:4f:f9:3a:01:02", "00-14-4f-f9-3a-01",
                                 "000:14:4f:f9:3a:01", "g0:14:4f:f9:3a:01", ""])
def test_malformed_macs_are_refused(bad):
    with pytest.raises(InvalidValue):
        values.parse_mac(bad)


def test_host_ids_accept_short_and_prefixed_forms_and_emit_eight_digits():
    """C101: host IDs come out as 8 lower-case hex digits without 0x."""
    assert values.format_hostid(values.parse_hostid("0x84F90A11")) == "84f90a11"
    assert values.format_hostid(values.parse_hostid("a11")) == "00000a11"
    for bad in ("", "0x", "123456789", "xyz", "0x-1"):
        with pytest.raises(InvalidValue):
            values.parse_hostid(bad)


def test_uuids_are_emitted_in_lower_case():
    """C101."""
    parsed = values.parse_uuid("0B8E5A54-3F7D-4C61-B2D9-6A1C0E7F4B23")
    assert values.format_uuid(parsed) == "0b8e5a54-3f7d-4c61-b2d9-6a1c0e7f4b23"
    assert values.format_uuid(str(uuid.UUID(int=5))) == str(uuid.UUID(int=5))
    for bad in ("0b8e5a543f7d4c61b2d96a1c0e7f4b23", "{0b8e5a54-3f7d-4c61-b2d9-6a1c0e7f4b23}",
                "0b8e5a54-3f7d-4c61-b2d9-6a1c0e7f4b2"):
        with pytest.raises(InvalidValue):
            values.parse_uuid(bad)


def test_domain_names_follow_the_character_and_length_rules():
    """C102: 64 characters are fine, 65 or a character outside the set are not."""
    assert values.parse_domain_name("a" * 64) == "a" * 64
    assert values.parse_domain_name("web-1_x.y+z") == "web-1_x.y+z"
    for bad in ("a" * 65, "", "-web", ".web", "web 1", "web/1", "wéb", "web@1"):
        with pytest.raises(InvalidValue) as info:
            values.parse_domain_name(bad, "ovf:id")
        assert info.value.key == "ovf:id"


def test_service_and_variable_names():
    assert values.parse_name("svc-vds0", "service_name") == "svc-vds0"
    assert values.parse_name("auto-boot?", "name", variable=True) == "auto-boot?"
    for bad in ("auto-boot?", "a@b", "a,b", "a=b", "a b", "", "x" * 65, "tab\t"):
        with pytest.raises(InvalidValue):
            values.parse_name(bad, "service_name")
    for bad in ("a@b", "a,b", "a=b", "a b"):
        with pytest.raises(InvalidValue):
            values.parse_name(bad, "name", variable=True)


def test_integers_allow_leading_zeros_and_emit_without_them():
    assert values.parse_int("007", "pvid") == 7
    assert values.format_int(7) == "7"
    assert values.parse_int("4094", "pvid", minimum=1, maximum=4094) == 4094
    for bad, lo, hi in (("4095", 1, 4094), ("0", 1, None), ("-1", None, None), ("1.0", None, None),
                        ("", None, None), (" 1", None, None)):
        with pytest.raises(InvalidValue):
            values.parse_int(bad, "pvid", minimum=lo, maximum=hi)


def test_on_off_is_case_insensitive_and_emitted_lower_case():
    assert values.parse_on_off("ON", "enable-log") is True
    assert values.parse_on_off("Off", "enable-log") is False
    assert values.format_on_off(True) == "on" and values.format_on_off(False) == "off"
    for bad in ("yes", "1", "", "onn"):
        with pytest.raises(InvalidValue):
            values.parse_on_off(bad, "enable-log")


def test_addresses_need_0x_and_emit_lower_case():
    assert values.parse_address("0x410000000", "pa") == 0x410000000
    assert values.format_address(values.parse_address("0X1ABC", "pa")) == "0x1abc"
    for bad in ("410000000", "0x", "0xg1", ""):
        with pytest.raises(InvalidValue):
            values.parse_address(bad, "pa")


def test_percentages_and_progress():
    assert values.format_percent(12.5) == "12.5"
    assert values.format_percent(3) == "3.0"
    assert values.parse_percent("12.5", "util") == 12.5
    assert values.parse_progress("37%") == 37
    assert values.format_progress(100) == "100%"
    for bad in ("12.55", "abc", "", "1e3"):
        with pytest.raises(InvalidValue):
            values.parse_percent(bad, "util")
    for bad in ("37", "101%", "-1%", "%"):
        with pytest.raises(InvalidValue):
            values.parse_progress(bad)


def test_lists_are_comma_separated_without_spaces():
    assert values.parse_list("", "vid") == []
    assert values.parse_list("ro,excl", "vol_opts") == ["ro", "excl"]
    ints = values.parse_list("16,17,18", "cpuset", values.parse_int)
    assert ints == [16, 17, 18] and values.format_list(ints) == "16,17,18"
    for bad in ("ro, excl", "ro,,excl", ",ro", "ro,"):
        with pytest.raises(InvalidValue):
            values.parse_list(bad, "vol_opts")
    with pytest.raises(InvalidValue) as info:
        values.parse_list("1,x", "vid", values.parse_int)
    assert info.value.value == "1,x"


def test_base64_ignores_whitespace_and_needs_padding():
    assert values.parse_base64("czNj\n cmV0IQ==", "password") == b"s3cret!"
    assert values.format_base64(b"s3cret!") == "czNjcmV0IQ=="
    for bad in ("czNjcmV0IQ", "czNj*mV0IQ==", "c=Nj", "czNjcmV0IQ==="):
        with pytest.raises(InvalidValue):
            values.parse_base64(bad, "password")


@given(st.binary(max_size=64))
def test_base64_round_trip(raw):
    assert values.parse_base64(values.format_base64(raw), "username") == raw


def test_time_of_day():
    assert values.parse_tod("09:30", "policy_tod_begin") == "09:30"
    assert values.parse_tod("23:59:59", "policy_tod_end") == "23:59:59"
    for bad in ("24:00", "9:30", "09:60", "09:30:60", "0930"):
        with pytest.raises(InvalidValue):
            values.parse_tod(bad, "policy_tod_begin")
