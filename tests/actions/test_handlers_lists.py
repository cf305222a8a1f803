"""The list actions through the dispatcher (§3.5, §6.19–§6.23; C114, C115, C152, C158–C164)."""

from __future__ import annotations

from tests.actions.test_handlers_common import Ctx, cmd, content, data, item, new_domain


def test_list_bindings_of_primary_shows_every_binding():
    """C158: ldom_info with the four extras, one bind:Binding per strand and memory block."""
    ctx = Ctx()
    [obj] = ctx.ok(cmd("list-bindings", data(content("primary"))))
    c = obj.envelope.contents[0]
    assert c.name == "primary"
    info = c.sections[0].items[0]
    assert info.keys()[-4:] == ["extended-mapin-space", "rc-add-policy", "perf-counters",
                                "cpu-arch"]
    hw = {it.rtype: it for it in c.sections[1].items}
    cpu = hw["cpu"]
    assert cpu.get("rasd:AllocationUnits") == "8"
    assert [b.get("pid") for b in cpu.bindings] == [str(i) for i in range(8)]
    assert {b.get("cid") for b in cpu.bindings} == {"0", "1"}
    assert all(not b.bindings for b in cpu.bindings)
    mem = hw["memory"]
    assert mem.get("rasd:AllocationUnits") == "960M"  # 1G less the 64M blacklisted
    assert sum(1 for _ in mem.bindings) >= 1 and mem.bindings[0].keys() == ["ra", "pa", "size"]
    assert [b.keys() for b in hw["mau"].bindings] == [["id", "cpuset"]] * 2
    assert hw["physio_device"].get("type") == "bus"


def test_empty_list_bindings_answers_one_data_per_domain_primary_first():
    """C114: one data per domain in §6.19 order."""
    ctx = Ctx()
    ctx.manager.add_domain("b")
    ctx.manager.add_domain("a")
    objs = ctx.ok(cmd("list-bindings"))
    assert [o.envelope.contents[0].name for o in objs] == ["primary", "a", "b"]


def test_list_of_unknown_domain_fails_that_data_only():
    ctx = Ctx()
    objs = ctx.objects(cmd("list-bindings", data(content("nope")), data(content("primary"))))
    assert [o.ok for o in objs] == [False, True]
    assert objs[0].messages == ["Domain nope does not exist"]


def test_list_services_answers_per_service_domain():
    """C152: vcc, vds (followed by its volumes) and vsw Items of each service domain."""
    from tests.actions.test_handlers_common import services
    ctx = Ctx()
    new_domain(ctx)
    assert [o.envelope for o in ctx.ok(cmd("list-services"))] == [None]  # C115
    services(ctx)
    [obj] = ctx.ok(cmd("list-services"))
    c = obj.envelope.contents[0]
    assert c.name == "primary"
    assert [it.rtype for it in c.items()] == ["vcc", "vds", "vds_volume", "vsw"]
    assert c.items()[2].get("block_dev") == "/img/vol1"


def test_list_constraints_items_carry_exactly_the_both_keys():
    """C159, C154: no response-only key, no binding, zero quantities omitted."""
    ctx = Ctx()
    new_domain(ctx)
    [obj] = ctx.ok(cmd("list-constraints", data(content("ldg1"))))
    c = obj.envelope.contents[0]
    assert [s.type for s in c.sections] == ["ResourceAllocationSection_Type",
                                            "VirtualHardwareSection_Type"]
    assert c.sections[0].items[0].keys() == [
        "uuid", "rasd:Address", "hostid", "master", "failure-policy", "extended-mapin-space",
        "rc-add-policy", "perf-counters", "cpu-arch"]
    assert [(it.rtype, it.props) for it in c.sections[1].items] == [
        ("cpu", [("rasd:AllocationUnits", "2"), ("wcore", "0")]),
        ("memory", [("rasd:AllocationUnits", "256M")])]
    assert all(not it.bindings for it in c.items())


def test_list_devices_classes_free_and_all():
    """C160, C161: empty data lists the five classes in order; without -a only free devices
    (none: primary holds everything), with -a all of them."""
    ctx = Ctx()
    objs = ctx.ok(cmd("list-devices"))
    assert [[it.rtype for it in o.envelope.sections[0].items] for o in objs] == [[]] * 5
    assert all(not o.envelope.contents for o in objs)
    objs = ctx.ok(cmd("list-devices", options="-a"))
    kinds = [{it.rtype for it in o.envelope.sections[0].items} for o in objs]
    assert kinds == [{"cpu"}, {"core"}, {"mau"}, {"memory"}, {"physio_device"}]
    assert [it.get("pid") for it in objs[0].envelope.sections[0].items] == [str(i) for i in range(8)]
    assert {it.get("bound") for it in objs[0].envelope.sections[0].items} == {"primary"}


def test_list_devices_selectors_and_blacklist():
    """C160, C161: selected classes in request order; an unknown class fails its own data;
    -B lists evacuated memory with its status."""
    from tests.actions.test_handlers_common import section
    ctx = Ctx()
    ctx.ok(cmd("set-memory", data(content("primary", item("memory", {
        "rasd:AllocationUnits": "512M"})))))
    objs = ctx.objects(cmd("list-devices", data(section(item("memory"), item("crypto"),
                                                       item("cpu")))))
    assert [o.ok for o in objs] == [True, False, True]
    assert objs[1].messages == ["Resource type crypto is not valid for list-devices"]
    free = objs[0].envelope.sections[0].items
    assert [it.get("size") for it in free] == ["448M"] and free[0].get("bound") == ""
    objs = ctx.ok(cmd("list-devices", options="-B"))
    core, memory = [o.envelope.sections[0].items for o in objs]
    assert core == []
    assert [it.props for it in memory] == [
        [("pa", "0x3c000000"), ("size", "64M"), ("status", "blacklisted")]]


def test_list_variable_filters_and_unknown_names():
    """C164: name order, restricted to requested names; an unknown name fails that data."""
    ctx = Ctx()
    new_domain(ctx)
    ctx.ok(cmd("add-variable", data(content("ldg1", item("var", {"name": "z", "value": "1"}),
                                            item("var", {"name": "a", "value": "x y"})))))
    [obj] = ctx.ok(cmd("list-variable", data(content("ldg1"))))
    assert [it.props for it in obj.envelope.contents[0].items()] == [
        [("name", "a"), ("value", "x y")], [("name", "z"), ("value", "1")]]
    [obj] = ctx.ok(cmd("list-variable", data(content("ldg1", item("var", {"name": "z"})))))
    assert [it.get("name") for it in obj.envelope.contents[0].items()] == ["z"]
    [obj] = ctx.objects(cmd("list-variable", data(content("ldg1", item("var", {"name": "q"})))))
    assert obj.messages == ["Variable q does not exist in domain ldg1"]
    objs = ctx.ok(cmd("list-variable"))
    assert [o.envelope.contents[0].name for o in objs] == ["primary", "ldg1"]
