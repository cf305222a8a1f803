"""The resource table: Item-level request rules of §2.6, the §5 "Takes" column, typed values
(C94-C97, C99 request side; C134 action coverage)."""

from __future__ import annotations

import pytest

from agent.actions.table import ACTIONS
from agent.xmlapi import messages, resources as R
from agent.xmlapi.model import Item

SPEC_ACTIONS = """add-domain add-io add-mau add-memory add-spconfig add-variable add-vconscon
add-vcpu add-vdisk add-vdiskserver add-vdiskserverdevice add-vdpcc add-vdpcs add-vnet
add-vswitch bind-domain cancel-operation list-bindings list-constraints list-devices
list-domain list-services list-spconfig list-variable migrate-domain reg-all-events
reg-domain-events reg-hardware-events reg-resource-events remove-domain remove-io remove-mau
remove-memory remove-reconf remove-spconfig remove-variable remove-vconscon remove-vcpu
remove-vdisk remove-vdiskserver remove-vdiskserverdevice remove-vdpcc remove-vdpcs remove-vnet
remove-vswitch set-domain set-io set-mau set-memory set-spconfig set-variable set-vconscon
set-vconsole set-vcpu set-vnet set-vswitch start-domain stop-domain unbind-domain
unreg-all-events unreg-domain-events unreg-hardware-events unreg-resource-events""".split()


def test_action_resources_cover_exactly_the_63_actions():
    """§5.14: one row per action string, the same set as the action table."""
    assert len(SPEC_ACTIONS) == 63
    assert set(R.ACTION_RESOURCES) == set(SPEC_ACTIONS) == set(ACTIONS)


@pytest.mark.parametrize("action, takes", [
    ("add-vcpu", {"cpu"}), ("set-mau", {"mau"}), ("remove-memory", {"memory"}),
    ("set-io", {"physio_device"}), ("add-vdiskserverdevice", {"vds_volume"}),
    ("set-vconsole", {"console"}), ("set-domain", {"ldom_info", "policy"}),
    ("migrate-domain", {"ldom_info"}), ("list-variable", {"var"}),
    ("list-devices", {"cpu", "core", "mau", "memory", "physio_device"}),
    ("add-vdpcc", {"vdpcc"}), ("start-domain", set()), ("reg-all-events", set())])
def test_takes_column(action, takes):
    assert R.ACTION_RESOURCES[action] == takes


def test_add_domain_replay_takes_every_constraint_type_but_not_vdp_or_core():
    """§5.2, §6.17: replay accepts the list-constraints vocabulary only."""
    takes = R.ACTION_RESOURCES["add-domain"]
    assert {"ldom_info", "cpu", "mau", "memory", "physio_device", "var", "vcc", "vds",
            "vds_volume", "vsw", "network", "disk", "console", "policy"} == takes
    assert not takes & {"vdpcs", "vdpcc", "core", "spconfig"}


def test_every_resource_type_of_section_6_is_in_the_table():
    assert set(R.RESOURCES) == {"ldom_info", "cpu", "mau", "memory", "vds", "vds_volume", "disk",
                                "vsw", "network", "vcc", "var", "physio_device", "spconfig",
                                "policy", "console", "vdpcs", "vdpcc", "core"}


def test_valid_item_has_no_errors():
    item = Item("disk", [("vdisk_name", "rootdisk"), ("service_name", "svc-vds0"),
                         ("vol_name", "web1-root"), ("timeout", "30")])
    assert R.check_item("add-vdisk", item, setting=False) == []


def test_repeated_key_is_an_error_once():
    """C95: a key given twice (or three times) is reported once."""
    item = Item("var", [("name", "a"), ("value", "1"), ("value", "2"), ("value", "3")])
    assert R.check_item("add-variable", item, setting=False) == [
        messages.duplicate_property("value", "var")]


def test_alias_and_its_key_together_count_as_a_repeat():
    item = Item("ldom_info", [("rasd:Address", "00:14:4f:f9:0a:11"),
                              ("mac-addr", "00:14:4f:f9:0a:12")])
    assert R.check_item("set-domain", item, setting=True) == [
        messages.duplicate_property("mac-addr", "ldom_info")]


def test_unknown_key_is_an_error():
    """C95."""
    item = Item("memory", [("rasd:AllocationUnits", "4G"), ("size", "4G"), ("speed", "1")])
    assert R.check_item("add-memory", item, setting=False) == [
        messages.unknown_property("speed", "memory")]


def test_uuid_and_address_elements_are_unknown_where_the_table_lacks_them():
    item = Item("var", [("name", "a"), ("uuid", "x"), ("rasd:AllocationUnits", "1")])
    assert R.check_item("set-variable", item, setting=True) == [
        messages.unknown_property("uuid", "var"),
        messages.unknown_property("rasd:AllocationUnits", "var")]


def test_unknown_resource_type():
    """C94: an unknown rasd:OtherResourceType."""
    assert R.check_item("add-vcpu", Item("gpu", [("n", "1")]), setting=False) == [
        messages.unknown_resource("gpu")]


@pytest.mark.parametrize("action", ["add-domain", "set-domain", "list-domain", "add-vcpu"])
@pytest.mark.parametrize("key, text", [("target", "sys2"), ("username", "YWRtaW4="),
                                       ("password", "czNjcmV0IQ==")])
def test_migration_keys_are_refused_outside_migrate_domain(action, key, text):
    """C97."""
    assert R.check_item(action, Item("ldom_info", [(key, text)]), setting=False) == [
        messages.property_not_for_action(key, "ldom_info", action)]


def test_migration_keys_are_accepted_in_migrate_domain():
    item = Item("ldom_info", [("target", "sys2.example.com"), ("username", "YWRtaW4="),
                              ("password", "czNjcmV0IQ==")])
    assert R.check_item("migrate-domain", item, setting=False) == []


def test_request_only_keys_of_other_resources():
    assert R.check_item("remove-vdpcc", Item("vdpcc", [("vdpcc_name", "c"),
                                                       ("service_name", "s")]),
                        setting=False) == [
        messages.property_not_for_action("service_name", "vdpcc", "remove-vdpcc")]
    assert R.check_item("add-domain", Item("ldom_info", [("mac-addr", "0:1:2:3:4:5")]),
                        setting=False) == []


def test_response_only_keys_and_ignored_cim_elements_are_skipped():
    """C96: list-bindings/list-domain output fed back is not an error, whatever its values."""
    info = Item("ldom_info", [("uuid", "0b8e5a54-3f7d-4c61-b2d9-6a1c0e7f4b23"),
                              ("state", "weird"), ("flags", "-n----"), ("ncpu", "lots"),
                              ("progress", "37%"), ("role", "source"), ("rasd:Caption", "c")])
    assert R.check_item("add-domain", info, setting=False) == []
    disk = Item("disk", [("vdisk_name", "d"), ("device", "disk@0")])
    assert R.check_item("add-vdisk", disk, setting=False) == []


def test_bad_values_are_reported_with_the_invalid_value_text():
    item = Item("vsw", [("service_name", "svc"), ("pvid", "4095"), ("mtu", "1500"),
                        ("vid", "1,2,x"), ("inter_vnet_link", "yes"), ("rasd:Address", "1:2")])
    assert R.check_item("add-vswitch", item, setting=False) == [
        messages.invalid_value("4095", "pvid"), messages.invalid_value("1,2,x", "vid"),
        messages.invalid_value("yes", "inter_vnet_link"),
        messages.invalid_value("1:2", "rasd:Address")]


def test_master_accepts_up_to_four_domain_names():
    four = Item("ldom_info", [("master", "a,b,c,d")])
    five = Item("ldom_info", [("master", "a,b,c,d,e")])
    assert R.check_item("set-domain", four, setting=True) == []
    assert R.check_item("set-domain", five, setting=True) == [
        messages.invalid_value("a,b,c,d,e", "master")]


def test_empty_values_mean_not_given_in_add_and_reset_in_set():
    """C99 (request side): an empty identifying key is refused only when setting."""
    item = Item("vsw", [("service_name", ""), ("pvid", "")])
    assert R.check_item("add-vswitch", item, setting=False) == []
    assert R.check_item("set-vswitch", item, setting=True) == [
        messages.invalid_value("", "service_name")]
    assert R.usable_props("add-vswitch", item, setting=False) == {}
    assert R.usable_props("set-vswitch", Item("vsw", [("service_name", "s"), ("pvid", "")]),
                          setting=True) == {"service_name": "s", "pvid": ""}


def test_usable_props_renames_aliases_and_drops_response_only_keys():
    item = Item("vsw", [("service_name", "s"), ("dev-path", "net0"), ("device", "switch@0"),
                        ("rasd:Caption", "c")])
    assert R.usable_props("add-vswitch", item, setting=False) == {
        "service_name": "s", "dev_path": "net0"}
    io = Item("physio_device", [("name", "pci_0"), ("iov_bus_enable_iov", "on")])
    assert R.check_item("set-io", io, setting=True) == []
    assert R.usable_props("set-io", io, setting=True) == {"name": "pci_0", "iov": "on"}


def test_parse_and_format_value_by_key():
    assert R.parse_value("memory", "rasd:AllocationUnits", "4096m") == 4 << 30
    assert R.format_value("memory", "rasd:AllocationUnits", 1536 << 20) == "1536M"
    assert R.parse_value("ldom_info", "mac-addr", "0:14:4F:f9:A:1") == 0x00144FF90A01
    assert R.format_value("ldom_info", "rasd:Address", 0x00144FF90A01) == "00:14:4f:f9:0a:01"
    assert R.parse_value("vds_volume", "vol_opts", "ro,excl") == ["ro", "excl"]
    assert R.format_value("console", "enable-log", False) == "off"
    assert R.parse_value("policy", "policy_vcpu_max", "unlimited") == "unlimited"
    assert R.parse_value("ldom_info", "password", "czNjcmV0IQ==") == b"s3cret!"
    with pytest.raises(KeyError):
        R.parse_value("cpu", "speed", "1")


def test_resource_event_names_and_layout():
    """C127, C128 (building side): mau actions map to *-crypto; set-io without owner puts the
    Section directly under the Envelope; no set-vdisk/set-vdiskserverdevice events exist."""
    ev = R.resource_event("set-mau", "web1", "mau", {"rasd:AllocationUnits": 2})
    assert ev.action == "set-crypto" and ev.category == "resource"
    assert ev.envelope.contents[0].items()[0].props == [("rasd:AllocationUnits", "2")]
    io = R.resource_event("set-io", None, "physio_device", {"name": "pci_1"})
    assert io.envelope.contents == [] and io.envelope.sections[0].items[0].get("name") == "pci_1"
    variables = R.resource_event("set-variable", "web1", "var", [{"name": "a"}, {"name": "b"}])
    assert [i.get("name") for i in variables.envelope.contents[0].items()] == ["a", "b"]
    console = R.resource_event("set-vconsole", "web1", "console",
                               {"service_name": "svc-vcc0", "port": 5001})
    assert console.envelope.contents[0].items()[0].keys() == ["port", "service_name"]
    zero = R.resource_event("set-mau", "web1", "mau", {"rasd:AllocationUnits": 0})
    assert zero.envelope.contents[0].items()[0].get("rasd:AllocationUnits") == "0"
    assert "set-vdisk" not in R.RESOURCE_EVENTS and "set-vdiskserverdevice" not in R.RESOURCE_EVENTS
    for action in ("add-vdpcs", "list-domain", "add-domain"):
        with pytest.raises(ValueError):
            R.resource_event(action, "web1", "cpu", {})


def test_domain_and_progress_event_builders_refuse_wrong_input():
    with pytest.raises(ValueError):
        R.domain_event("set-domain", "web1")
    with pytest.raises(ValueError):
        R.hardware_event("list-spconfig", "x")
    with pytest.raises(ValueError):
        R.progress_event("web1", {"progress": 3, "status": "ongoing"})
