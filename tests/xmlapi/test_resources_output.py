"""List outputs built from plain values with the resource helpers and encoded: the spec's
§6.19-§6.22 examples byte for byte, plus the ordering and omission rules (C153-C155, C158,
C159, C114)."""

from __future__ import annotations

import uuid

from lxml import etree

from agent.xmlapi import encode, model, resources as R
from agent.xmlapi.model import Command, CommandResult, ObjectResult, Response
from tests.xmlapi.test_encode import checked, fixture

GPROP = "{./schemas/GenericProperty}GenericProperty"
BIND = "{./schemas/Binding}Binding"


def list_response(action: str, envelopes: list[model.Envelope], options=None) -> bytes:
    cmd = Command(action, options=options or [], option_tag="options" if options else None)
    objs = [ObjectResult(env) for env in envelopes]
    return checked(encode.encode_response(Response("1.3", [CommandResult(cmd, objs)])))


PRIMARY_INFO = {"uuid": uuid.UUID("5D1B6F1E-8C2A-4E0B-9A77-3F8E2B4C9D10"), "rasd:Address": 0x0010E04A7C3E,
                "hostid": 0x854A7C3E, "master": [], "failure-policy": "ignore"}
WEB1_INFO = {"uuid": "0b8e5a54-3f7d-4c61-b2d9-6a1c0e7f4b23", "rasd:Address": "00:14:4f:f9:0a:11",
             "hostid": "84f90a11", "state": "active", "flags": "-n----", "console": "5000",
             "ncpu": 2, "memory": 4 << 30, "util": 12.5, "uptime": 3600, "master": ["primary"],
             "failure-policy": "ignore"}


def test_list_domain_from_plain_values_matches_spec_bytes():
    """C114, C155: one data per domain, exactly the twelve keys in order, typed values
    formatted canonically (MAC, host ID, size, percentage, UUID case)."""
    primary = dict(PRIMARY_INFO, state="active", flags="-n-cv-", console="UART", ncpu=8,
                   memory=16 << 30, util=3.1, uptime=86400)
    envs = [R.domain_envelope("primary", [R.item_for_output("ldom_info", primary)]),
            R.domain_envelope("web1", [R.item_for_output("ldom_info", WEB1_INFO)])]
    assert list_response("list-domain", envs) == fixture("list-domain")


def test_list_domain_item_has_exactly_twelve_keys_without_migration_information():
    """C155: unset keys are present with empty text; no migration key appears."""
    item = R.item_for_output("ldom_info", {"state": "inactive"}, R.LIST_DOMAIN)
    assert item.keys() == ["uuid", "rasd:Address", "hostid", "state", "flags", "console", "ncpu",
                           "memory", "util", "uptime", "master", "failure-policy"]
    assert item.get("util") == "" and item.get("state") == "inactive"


def test_list_domain_item_adds_migration_keys_after_the_twelve():
    """C155, C157 (encoding side): progress, status, source then statistics, after failure-policy."""
    vals = dict(WEB1_INFO, flags="-n---s", progress=37, status="ongoing",
                source="ctl1.example.com", role="source", peer="sys2", **{"peer-ldom": "web1"})
    item = R.item_for_output("ldom_info", vals, R.LIST_DOMAIN)
    keys = item.keys()
    assert tuple(keys[:12]) == R.output_keys("ldom_info", R.LIST_DOMAIN)[:12]
    assert keys[12:15] == ["progress", "status", "source"]
    assert set(keys[15:]) == {"role", "peer", "peer-ldom"}
    assert item.get("progress") == "37%"


def test_list_bindings_from_plain_values_matches_spec_bytes():
    """C158, C154: ldom_info extras, §6.0 Item order from a scrambled input, bindings last with
    one unprefixed Item each."""
    info = R.item_for_output("ldom_info", dict(
        WEB1_INFO, **{"extended-mapin-space": False, "rc-add-policy": None,
                      "perf-counters": [], "cpu-arch": "native"}), R.LIST_BINDINGS)
    cpu = R.item_for_output("cpu", {"rasd:AllocationUnits": 2, "wcore": 0}, R.LIST_BINDINGS,
                            bindings=[{"vid": 0, "pid": 16, "cid": 2, "util": 14.0},
                                      {"vid": 1, "pid": 17, "cid": 2, "util": 11.0}])
    memory = R.item_for_output("memory", {"rasd:AllocationUnits": 4 << 30}, R.LIST_BINDINGS,
                               bindings=[{"ra": 0x10000000, "pa": 0x410000000, "size": 4 << 30}])
    var = R.item_for_output("var", {"name": "auto-boot?", "value": "true"}, R.LIST_BINDINGS)
    vnet = R.item_for_output("network", {
        "rasd:Address": 0x00144FF90A12, "vnet_name": "vnet1", "service_name": "svc-vsw0",
        "pvid": 1, "id": 0, "mtu": 1500, "device": "network@0"}, R.LIST_BINDINGS,
        bindings=[{"service_name": "svc-vsw0", "ldom": "primary"}])
    disk = R.item_for_output("disk", {
        "vdisk_name": "rootdisk", "service_name": "svc-vds0", "vol_name": "web1-root",
        "timeout": 30, "id": 0, "device": "disk@0"}, R.LIST_BINDINGS,
        bindings=[{"vol_name": "web1-root", "service_name": "svc-vds0", "ldom": "primary"}])
    console = R.item_for_output("console", {
        "port": 5000, "service_name": "svc-vcc0", "group": "web1", "enable-log": True},
        R.LIST_BINDINGS, bindings=[{"service_name": "svc-vcc0", "ldom": "primary"}])
    mau = R.item_for_output("mau", {"rasd:AllocationUnits": 0}, R.LIST_BINDINGS)
    assert mau is None  # C154: a zero quantity is omitted
    scrambled = [console, disk, mau, vnet, var, memory, cpu, info]
    data = list_response("list-bindings", [R.domain_envelope("web1", scrambled)])
    assert data == fixture("list-bindings")
    for binding in etree.fromstring(data).iter(BIND):
        assert [child.tag for child in binding] == ["Item"]
        assert binding.find(f"Item/{BIND}") is None


def _primary_constraints() -> list[model.Item | None]:
    c = R.LIST_CONSTRAINTS
    return [
        R.item_for_output("vsw", {"service_name": "svc-vsw0", "rasd:Address": "00:14:4f:f9:00:01",
                                  "default-vlan-id": 1, "dev_path": "net0", "id": 0,
                                  "inter_vnet_link": True, "pvid": 1, "mtu": 1500, "vid": []}, c),
        R.item_for_output("vds_volume", {"vol_name": "web1-root", "service_name": "svc-vds0",
                                         "block_dev": "/images/web1-root.img",
                                         "vol_opts": ["excl"]}, c),
        R.item_for_output("memory", {"rasd:AllocationUnits": 16 << 30}, c),
        R.item_for_output("vds", {"service_name": "svc-vds0"}, c),
        R.item_for_output("vcc", {"service_name": "svc-vcc0", "min_port": 5000,
                                  "max_port": 5100}, c),
        R.item_for_output("physio_device", {"name": "pci_0"}, c),
        R.item_for_output("mau", {"rasd:AllocationUnits": 1}, c),
        R.item_for_output("cpu", {"rasd:AllocationUnits": 8, "wcore": 1}, c),
        R.item_for_output("ldom_info", dict(PRIMARY_INFO, **{
            "extended-mapin-space": "off", "cpu-arch": "native"}), c),
    ]


def test_list_constraints_from_plain_values_matches_spec_bytes():
    """C159, C154: Both keys only, no bindings, volumes right after their server."""
    data = list_response("list-constraints",
                         [R.domain_envelope("primary", _primary_constraints())])
    assert data == fixture("list-constraints")
    assert b"bind:Binding" not in data


_CONSTRAINT_ACTION = {"ldom_info": "add-domain", "cpu": "add-vcpu", "mau": "add-mau",
                      "memory": "add-memory", "physio_device": "add-io", "vcc": "add-vconscon",
                      "vds": "add-vdiskserver", "vds_volume": "add-vdiskserverdevice",
                      "vsw": "add-vswitch", "network": "add-vnet", "disk": "add-vdisk",
                      "var": "add-variable", "console": "set-vconsole", "policy": "set-domain"}


def test_every_list_constraints_item_is_valid_input_to_its_add_action():
    """C159: each Item is accepted unchanged by its add- (set-vconsole, set-domain) action,
    and by add-domain replay."""
    items = [i for i in _primary_constraints() if i is not None]
    items.append(R.item_for_output("network", {"vnet_name": "vnet1", "service_name": "svc-vsw0",
                                               "rasd:Address": 0x00144FF90A12}, R.LIST_CONSTRAINTS))
    items.append(R.item_for_output("disk", {"vdisk_name": "d0", "service_name": "s",
                                            "vol_name": "v", "timeout": 0}, R.LIST_CONSTRAINTS))
    items.append(R.item_for_output("var", {"name": "auto-boot?", "value": "a b\nc"},
                                   R.LIST_CONSTRAINTS))
    items.append(R.item_for_output("console", {"port": 5001, "service_name": "svc-vcc0",
                                               "group": "g", "enable-log": False},
                                   R.LIST_CONSTRAINTS))
    items.append(R.item_for_output("policy", {"policy_name": "p1", "policy_enable": True,
                                              "policy_priority": 1, "policy_vcpu_max": "unlimited",
                                              "policy_tod_begin": "09:00"}, R.LIST_CONSTRAINTS))
    assert {i.rtype for i in items} == set(_CONSTRAINT_ACTION)
    for item in items:
        action = _CONSTRAINT_ACTION[item.rtype]
        assert item.rtype in R.ACTION_RESOURCES[action]
        assert R.check_item(action, item, setting=action.startswith("set-")) == [], item
        assert R.check_item("add-domain", item, setting=False) == [], item


def test_list_constraints_items_carry_only_both_keys():
    """C159: no response-only or request-only key is part of any list-constraints output set."""
    for rtype, resource in R.RESOURCES.items():
        emitted = R.output_keys(rtype, R.LIST_CONSTRAINTS)
        assert all(resource.key(k).dir == R.BOTH for k in emitted), rtype
        both = [k.name for k in resource.keys if k.dir == R.BOTH and k.alias_of is None]
        missing = set(both) - set(emitted)
        # iov is Both but the spec emits it only in list-devices (§6.12 "Used by").
        expected_missing = {"iov"} if rtype == "physio_device" else (
            set(both) if rtype == "spconfig" else set())
        assert missing == expected_missing, rtype


def test_list_devices_sections_sorted_and_directly_under_envelope():
    """§6.22 layout: one data per class, Section directly in the Envelope, devices in numeric
    order whatever the input order."""
    cores = R.device_section("core", [
        {"cid": 3, "free": 100, "cpuset": list(range(24, 32))},
        {"cid": 2, "free": 75, "cpuset": list(range(16, 24))}])
    memory = R.device_section("memory", [{"pa": 0x510000000, "size": 12 << 30, "bound": ""}])
    data = list_response("list-devices", [model.Envelope([cores]), model.Envelope([memory])])
    assert data == fixture("list-devices")


def test_list_devices_blacklisted_view_and_empty_class():
    """C161 (encoding side): -B keys, numeric sort of addresses, empty Section for no device."""
    section = R.device_section("memory", [{"pa": "0x20000000", "size": "256M",
                                           "status": "blacklisted"},
                                          {"pa": 0x8000000, "size": 1 << 28,
                                           "status": "blacklisted"}], blacklisted=True)
    assert [i.keys() for i in section.items] == [["pa", "size", "status"]] * 2
    assert [i.get("pa") for i in section.items] == ["0x8000000", "0x20000000"]
    core = R.device_section("core", [{"cid": 1, "status": "blacklisted"}], blacklisted=True)
    assert core.items[0].props == [("cid", "1"), ("status", "blacklisted")]
    empty = R.device_section("cpu", [])
    data = encode.encode_envelope(model.Envelope([empty]))
    assert data == (b'<Envelope><References/>'
                    b'<Section xsi:type="ovf:VirtualHardwareSection_Type"/></Envelope>')


def test_physio_device_iov_only_for_buses_in_list_devices():
    bus = R.item_for_output("physio_device", {"name": "pci_0", "iov": True, "device": "pci@400",
                                              "type": "bus", "bound": "primary"}, R.LIST_DEVICES)
    slot = R.item_for_output("physio_device", {"name": "/SYS/MB/PCIE1", "device": "pci@400/x",
                                               "type": "pcie", "bound": ""}, R.LIST_DEVICES)
    assert bus.keys() == ["name", "iov", "device", "type", "bound"]
    assert slot.keys() == ["name", "device", "type", "bound"]
    assert bus.get("iov") == "on"


def test_section_types_per_resource():
    """C153: ldom_info and spconfig in ResourceAllocationSection, everything else hardware."""
    for rtype, resource in R.RESOURCES.items():
        expected = (model.RESOURCE_ALLOCATION if rtype in ("ldom_info", "spconfig")
                    else model.VIRTUAL_HARDWARE)
        assert resource.section == expected, rtype
    env = R.spconfig_envelope("factory-default", "current")
    doc = etree.fromstring(list_response("list-spconfig", [env, R.spconfig_envelope("two")]))
    sections = doc.findall("cmd/data/Envelope/Section")
    assert [s.get("{http://www.w3.org/2001/XMLSchema-instance}type") for s in sections] == \
        ["ovf:ResourceAllocationSection_Type"] * 2
    assert [[p.get("key") for p in s.iter(GPROP)] for s in sections] == \
        [["spconfig_name", "spconfig_status"], ["spconfig_name"]]


def test_content_orders_types_then_names_and_uses_at_most_two_sections():
    """C154: ldom_info section first, one hardware section ordered by type then name."""
    c = R.LIST_CONSTRAINTS
    items = [R.item_for_output("var", {"name": "z"}, c), R.item_for_output("var", {"name": "a"}, c),
             R.item_for_output("vds_volume", {"vol_name": "v2", "service_name": "b"}, c),
             R.item_for_output("vds", {"service_name": "b"}, c),
             R.item_for_output("vds_volume", {"vol_name": "v1", "service_name": "a"}, c),
             R.item_for_output("vds", {"service_name": "a"}, c),
             R.item_for_output("policy", {"policy_name": "p"}, c),
             R.item_for_output("cpu", {"rasd:AllocationUnits": 1}, c),
             R.item_for_output("ldom_info", {}, c)]
    content = R.content_for_output("d", items)
    assert [s.type for s in content.sections] == [model.RESOURCE_ALLOCATION, model.VIRTUAL_HARDWARE]
    hw = content.sections[1].items
    assert [(i.rtype, i.get(R.RESOURCES[i.rtype].name_key or "", ""))
            for i in hw] == [("cpu", ""), ("var", "a"), ("var", "z"), ("vds", "a"),
                             ("vds_volume", "v1"), ("vds", "b"), ("vds_volume", "v2"),
                             ("policy", "p")]
    only_vars = R.content_for_output("d", [R.item_for_output("var", {"name": "x"}, R.LIST_VARIABLE)])
    assert [s.type for s in only_vars.sections] == [model.VIRTUAL_HARDWARE]


def test_output_helpers_refuse_keys_outside_the_view():
    import pytest
    with pytest.raises(ValueError):
        R.item_for_output("ldom_info", {"extended-mapin-space": "on"}, R.LIST_DOMAIN)
    with pytest.raises(ValueError):
        R.item_for_output("ldom_info", {"password": "x"}, R.LIST_BINDINGS)
    with pytest.raises(ValueError):
        R.item_for_output("cpu", {"rasd:AllocationUnits": 1}, R.LIST_CONSTRAINTS,
                          bindings=[{"vid": 0}])
    with pytest.raises(ValueError):
        R.binding_item("cpu", {"ldom": "x"})
