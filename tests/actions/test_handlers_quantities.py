"""vCPU, crypto, memory and I/O actions through the dispatcher (§5.3, §5.4; C127, C142–C144)."""

from __future__ import annotations

from agent.xmlapi.model import RESOURCE
from tests.actions.test_handlers_common import (Ctx, cmd, content, data, item, new_domain,
                                                section)


def cpu(units=None, wcore=None):
    props = {}
    if units is not None:
        props["rasd:AllocationUnits"] = units
    if wcore is not None:
        props["wcore"] = wcore
    return item("cpu", props)


def event_item(ev):
    [c] = ev.envelope.contents
    [s] = c.sections
    [it] = s.items
    return c.name, it.rtype, dict(it.props)


def test_vcpu_add_remove_are_deltas_and_set_is_absolute_with_events():
    """C142, C127: the event carries the count after the change."""
    ctx = Ctx()
    new_domain(ctx, vcpus=2)
    ctx.ok(cmd("add-vcpu", data(content("ldg1", cpu("3")))))
    ctx.ok(cmd("remove-vcpu", data(content("ldg1", cpu("1")))))
    assert ctx.manager.constraints("ldg1").resources.vcpus == 4
    ctx.ok(cmd("set-vcpu", data(content("ldg1", cpu("6")))))
    assert ctx.manager.constraints("ldg1").resources.vcpus == 6
    evs = ctx.take_events()
    assert [(e.category, e.action) for e in evs] == [
        (RESOURCE, "add-vcpu"), (RESOURCE, "remove-vcpu"), (RESOURCE, "set-vcpu")]
    assert [event_item(e) for e in evs][-1] == ("ldg1", "cpu", {"rasd:AllocationUnits": "6"})


def test_whole_core_requests_and_a_mismatching_count():
    """C142: wcore N works in cores (4 strands per core on the tiny platform); a count that
    is not N cores fails."""
    ctx = Ctx()
    new_domain(ctx, vcpus=1)
    ctx.ok(cmd("set-vcpu", data(content("ldg1", cpu(wcore="1")))))
    r = ctx.manager.constraints("ldg1").resources
    assert (r.vcpus, r.wcore) == (4, 1)
    [obj] = ctx.objects(cmd("set-vcpu", data(content("ldg1", cpu("3", "1")))))
    assert not obj.ok and "does not match wcore 1" in obj.messages[0]
    [obj] = ctx.objects(cmd("add-vcpu", data(content("ldg1", cpu(wcore="0")))))
    assert obj.messages == ["add-vcpu requires property rasd:AllocationUnits of resource cpu"]


def test_bad_vcpu_count_is_an_invalid_value():
    ctx = Ctx()
    new_domain(ctx)
    [obj] = ctx.objects(cmd("add-vcpu", data(content("ldg1", cpu("two")))))
    assert obj.messages == ['Invalid value "two" for rasd:AllocationUnits']


def test_mau_deltas_absolute_zero_and_crypto_event_names():
    """C143, C127: add-/set-/remove-mau emit add-/set-/remove-crypto."""
    ctx = Ctx()
    new_domain(ctx)
    ctx.ok(cmd("add-mau", data(content("ldg1", item("mau", {"rasd:AllocationUnits": "2"})))))
    ctx.ok(cmd("remove-mau", data(content("ldg1", item("mau", {"rasd:AllocationUnits": "1"})))))
    ctx.ok(cmd("set-mau", data(content("ldg1", item("mau", {"rasd:AllocationUnits": "0"})))))
    assert ctx.manager.constraints("ldg1").resources.mau == 0
    evs = ctx.take_events()
    assert [e.action for e in evs] == ["add-crypto", "remove-crypto", "set-crypto"]
    assert event_item(evs[0]) == ("ldg1", "mau", {"rasd:AllocationUnits": "2"})
    [obj] = ctx.objects(cmd("remove-mau", data(content("ldg1", item("mau", {
        "rasd:AllocationUnits": "1"})))))
    assert obj.messages == ["Domain ldg1 has only 0 crypto units"]


def test_memory_deltas_and_an_unaligned_size_warns():
    """C143, §3.3: the warning rides on a success."""
    ctx = Ctx()
    new_domain(ctx, memory="256M")
    ctx.ok(cmd("add-memory", data(content("ldg1", item("memory", {"rasd:AllocationUnits": "64M"})))))
    ctx.ok(cmd("remove-memory", data(content("ldg1", item("memory", {
        "rasd:AllocationUnits": "32M"})))))
    assert ctx.manager.constraints("ldg1").resources.memory == 288 << 20
    [obj] = ctx.ok(cmd("set-memory", data(content("ldg1", item("memory", {
        "rasd:AllocationUnits": "3000K"})))))
    assert len(obj.messages) == 1 and obj.messages[0].startswith("Warning: ")
    assert ctx.manager.constraints("ldg1").resources.memory == 4 << 20
    ev = ctx.take_events()[-1]
    assert event_item(ev) == ("ldg1", "memory", {"rasd:AllocationUnits": "4M"})


def test_remove_io_dry_run_changes_nothing_and_says_so():
    """C144: -n reports that removal would succeed, changes nothing, emits nothing."""
    ctx = Ctx()
    [obj] = ctx.ok(cmd("remove-io", data(content("primary", item("physio_device", {
        "name": "/SYS/MB/PCIE1"}))), options="-n"))
    assert obj.messages and obj.messages[0].startswith("Notice: ")
    assert "/SYS/MB/PCIE1" in ctx.manager.constraints("primary").resources.io
    assert ctx.events == []
    [obj] = ctx.objects(cmd("remove-io", data(content("primary", item("physio_device", {
        "name": "/SYS/MB/NOPE"}))), options="-n"))
    assert obj.messages == ["I/O device /SYS/MB/NOPE does not exist"]


def test_io_moves_between_domains():
    """C144: primary gives the slot up (delayed reconfiguration, with a notice); once it
    rebooted, add-io gives it to an inactive domain, remove-io takes it back."""
    ctx = Ctx()
    new_domain(ctx)
    dev = item("physio_device", {"name": "/SYS/MB/PCIE1"})
    [obj] = ctx.ok(cmd("remove-io", data(content("primary", dev))))
    assert obj.messages[0].startswith("Notice: A delayed reconfiguration of domain primary")
    ctx.manager.guest_reset("primary")
    ctx.ok(cmd("add-io", data(content("ldg1", dev))))
    assert ctx.manager.constraints("ldg1").resources.io == ["/SYS/MB/PCIE1"]
    ctx.ok(cmd("remove-io", data(content("ldg1", dev))))
    assert ctx.manager.constraints("ldg1").resources.io == []
    evs = [e for e in ctx.events if e.category == RESOURCE]
    assert [(e.action, event_item(e)) for e in evs] == [
        ("remove-io", ("primary", "physio_device", {"name": "/SYS/MB/PCIE1"})),
        ("add-io", ("ldg1", "physio_device", {"name": "/SYS/MB/PCIE1"})),
        ("remove-io", ("ldg1", "physio_device", {"name": "/SYS/MB/PCIE1"}))]


def test_add_io_of_an_owned_device_fails():
    ctx = Ctx()
    new_domain(ctx)
    [obj] = ctx.objects(cmd("add-io", data(content("ldg1", item("physio_device", {
        "name": "/SYS/MB/PCIE1"})))))
    assert obj.messages == ["I/O device /SYS/MB/PCIE1 is already assigned to domain primary"]


def test_set_io_changes_the_root_complex_setting():
    """C144: set-io with iov from the Envelope; the event names the owning domain."""
    ctx = Ctx()
    ctx.ok(cmd("set-io", data(section(item("physio_device", {"name": "pci_0", "iov": "on"})))))
    [obj] = ctx.ok(cmd("list-devices", data(section(item("physio_device"))), options="-a"))
    bus = next(it for it in obj.envelope.sections[0].items if it.get("name") == "pci_0")
    assert bus.get("iov") == "on"
    [ev] = ctx.events
    assert (ev.action, event_item(ev)) == ("set-io", ("primary", "physio_device",
                                                      {"name": "pci_0"}))
    [obj] = ctx.objects(cmd("set-io", data(section(item("physio_device", {"name": "pci_0"})))))
    assert obj.messages == ["set-io requires property iov of resource physio_device"]


def test_set_io_with_an_empty_iov_fails_with_the_value_message_and_changes_nothing():
    """Found by the fuzzer (tools/fuzz): an empty iov used to raise an internal error. An
    on/off switch has no reset, so "" is an invalid value; nothing is applied, no event."""
    ctx = Ctx()
    [obj] = ctx.objects(cmd("set-io", data(section(item("physio_device", {"name": "pci_0", "iov": ""})))))
    assert not obj.ok
    assert obj.messages == ['Invalid value "" for iov']
    assert ctx.events == []
    [listed] = ctx.ok(cmd("list-devices", data(section(item("physio_device"))), options="-a"))
    bus = next(it for it in listed.envelope.sections[0].items if it.get("name") == "pci_0")
    assert bus.get("iov") == "off"
