"""Virtual disk, network and console actions through the dispatcher (§5.5–§5.7; C127,
C145–C147)."""

from __future__ import annotations

from tests.actions.test_handlers_common import (Ctx, cmd, content, data, item, new_domain,
                                                props_of, section, services)


def event_summary(ctx):
    out = []
    for ev in ctx.take_events():
        part = ev.envelope.parts[0]
        owner = getattr(part, "name", None)
        items = part.items() if owner else part.items
        out.append((ev.action, owner, [dict(it.props) for it in items]))
    return out


def test_disk_services_volumes_and_disks():
    """C145, C127: create server, volume and disk; each event names the owning domain."""
    ctx = Ctx()
    new_domain(ctx)
    ctx.ok(cmd("add-vdiskserver", data(content("primary", item("vds", {"service_name": "vds0"})))))
    ctx.ok(cmd("add-vdiskserverdevice", data(section(item("vds_volume", {
        "vol_name": "vol1", "service_name": "vds0", "block_dev": "/img/v1"}))), options="-q"))
    ctx.ok(cmd("add-vdisk", data(content("ldg1", item("disk", {
        "vdisk_name": "d0", "service_name": "vds0", "vol_name": "vol1"})))))
    assert event_summary(ctx) == [
        ("add-vdiskserver", "primary", [{"service_name": "vds0"}]),
        ("add-vdiskserverdevice", "primary", [{"vol_name": "vol1", "service_name": "vds0"}]),
        ("add-vdisk", "ldg1", [{"vdisk_name": "d0"}])]
    assert ctx.manager.constraints("ldg1").vdisks["d0"].volume == "vol1"


def test_removing_used_servers_and_volumes_needs_force():
    """C145: a server with volumes and a volume used by a disk are refused without -f."""
    ctx = Ctx()
    services(ctx)
    new_domain(ctx)
    ctx.ok(cmd("add-vdisk", data(content("ldg1", item("disk", {
        "vdisk_name": "d0", "service_name": "vds0", "vol_name": "vol1"})))))
    vol = data(section(item("vds_volume", {"vol_name": "vol1", "service_name": "vds0"})))
    [obj] = ctx.objects(cmd("remove-vdiskserverdevice", vol))
    assert obj.messages == ["Volume vol1@vds0 is used by virtual disk d0 of domain ldg1"]
    ctx.ok(cmd("remove-vdiskserverdevice", vol, options="-f"))
    ctx.ok(cmd("add-vdiskserverdevice", data(section(item("vds_volume", {
        "vol_name": "vol2", "service_name": "vds0", "block_dev": "/img/v2"})))))
    server = data(section(item("vds", {"service_name": "vds0"})))
    [obj] = ctx.objects(cmd("remove-vdiskserver", server))
    assert obj.messages == ["Virtual disk server vds0 still has volumes"]
    ctx.ok(cmd("remove-vdiskserver", server, options="-f"))
    ctx.ok(cmd("remove-vdisk", data(content("ldg1", item("disk", {"vdisk_name": "d0"})))))
    assert ctx.manager.constraints("ldg1").vdisks == {}
    assert ctx.manager.service_domains() == ["primary"]  # the switch and vcc remain


def test_envelope_action_with_a_content_must_name_the_owner():
    """§5.1: an Envelope resource given inside a Content must belong to that domain."""
    ctx = Ctx()
    services(ctx)
    new_domain(ctx)
    [obj] = ctx.objects(cmd("remove-vswitch", data(content("ldg1", item("vsw", {
        "service_name": "vsw0"})))))
    assert obj.messages == ["Service vsw0 does not belong to domain ldg1"]
    ctx.ok(cmd("remove-vswitch", data(content("primary", item("vsw", {"service_name": "vsw0"})))))


def test_switches_and_networks_are_created_changed_moved_and_removed():
    """C146: set-vswitch changes and resets, set-vnet with another service_name moves the
    device, remove-vswitch of a switch in use needs -f."""
    ctx = Ctx()
    services(ctx)
    new_domain(ctx)
    ctx.ok(cmd("add-vswitch", data(content("primary", item("vsw", {
        "service_name": "vsw1", "vid": "10,20", "mtu": "9000"})))))
    ctx.ok(cmd("set-vswitch", data(section(item("vsw", {
        "service_name": "vsw1", "pvid": "5", "mtu": ""})))))
    sw = ctx.manager.constraints("primary").vsws["vsw1"]
    assert (sw.vid, sw.pvid, sw.mtu) == ([10, 20], 5, 1500)
    ctx.ok(cmd("add-vnet", data(content("ldg1", item("network", {
        "vnet_name": "n0", "service_name": "vsw0"})))))
    ctx.ok(cmd("set-vnet", data(content("ldg1", item("network", {
        "vnet_name": "n0", "service_name": "vsw1", "pvid": "3"})))))
    net = ctx.manager.constraints("ldg1").vnets["n0"]
    assert (net.service, net.pvid) == ("vsw1", 3)
    [obj] = ctx.objects(cmd("remove-vswitch", data(section(item("vsw", {"service_name": "vsw1"})))))
    assert obj.messages == ["Virtual switch vsw1 is used by virtual network n0 of domain ldg1"]
    ctx.ok(cmd("remove-vnet", data(content("ldg1", item("network", {"vnet_name": "n0"})))))
    ctx.ok(cmd("remove-vswitch", data(section(item("vsw", {"service_name": "vsw1"})))))
    assert [a for a, _, _ in event_summary(ctx)] == [
        "add-vswitch", "set-vswitch", "add-vnet", "set-vnet", "remove-vnet", "remove-vswitch"]


def test_bad_switch_values_are_refused_by_item_checks():
    ctx = Ctx()
    [obj] = ctx.objects(cmd("add-vswitch", data(content("primary", item("vsw", {
        "service_name": "vsw1", "pvid": "5000"})))))
    assert obj.messages == ['Invalid value "5000" for pvid']
    assert ctx.manager.service_domains() == []


def test_console_concentrators_and_a_domain_console():
    """C147: add-/set-/remove-vconscon and set-vconsole; the console event carries the
    service and port after the change."""
    ctx = Ctx()
    new_domain(ctx)
    ctx.ok(cmd("add-vconscon", data(content("primary", item("vcc", {
        "service_name": "vcc0", "min_port": "5000", "max_port": "5010"})))))
    ctx.ok(cmd("set-vconscon", data(section(item("vcc", {"service_name": "vcc0",
                                                           "max_port": "5020"})))))
    vcc = ctx.manager.constraints("primary").vccs["vcc0"]
    assert (vcc.min_port, vcc.max_port) == (5000, 5020)
    ctx.ok(cmd("set-vconsole", data(content("ldg1", item("console", {
        "service_name": "vcc0", "port": "5003", "enable-log": "off"})))))
    console = ctx.manager.console_settings("ldg1")
    assert (console.service, console.port, console.log) == ("vcc0", 5003, "off")
    [obj] = ctx.objects(cmd("remove-vconscon", data(section(item("vcc", {"service_name": "vcc0"})))))
    assert obj.messages == ["Console concentrator vcc0 is used by domain ldg1"]
    ctx.ok(cmd("set-vconsole", data(content("ldg1", item("console", {"service_name": "",
                                                                   "port": ""})))))
    ctx.ok(cmd("remove-vconscon", data(section(item("vcc", {"service_name": "vcc0"})))))
    events = event_summary(ctx)
    assert events[2] == ("set-vconsole", "ldg1", [{"port": "5003", "service_name": "vcc0"}])
    assert [a for a, _, _ in events] == ["add-vconscon", "set-vconscon", "set-vconsole",
                                         "set-vconsole", "remove-vconscon"]


def test_list_bindings_shows_service_clients():
    """C158: the disk server's binding names the client disk; the disk's names the server."""
    ctx = Ctx()
    services(ctx)
    new_domain(ctx)
    ctx.ok(cmd("add-vdisk", data(content("ldg1", item("disk", {
        "vdisk_name": "d0", "service_name": "vds0", "vol_name": "vol1"})))))
    [obj] = ctx.ok(cmd("list-bindings", data(content("primary"))))
    vds = [it for it in obj.envelope.contents[0].items() if it.rtype == "vds"][0]
    assert [dict(b.props) for b in vds.bindings] == [
        {"vdisk_name": "d0", "ldom": "ldg1", "vol_name": "vol1"}]
    [obj] = ctx.ok(cmd("list-bindings", data(content("ldg1"))))
    disk = [it for it in obj.envelope.contents[0].items() if it.rtype == "disk"][0]
    assert disk.get("device") == "disk@0"
    assert disk.bindings[0].rtype == "vds_volume"
    assert dict(disk.bindings[0].props) == {"vol_name": "vol1", "service_name": "vds0",
                                            "ldom": "primary"}
    assert props_of(obj, "disk")["timeout"] == ""
