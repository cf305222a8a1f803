"""Variables, SP configurations and pending operations through the dispatcher (§5.9, §5.10,
§5.13; C129, C149–C151, C162)."""

from __future__ import annotations

from agent.xmlapi.model import HARDWARE, RESOURCE
from tests.actions.test_handlers_common import (Ctx, cmd, content, data, item, new_domain,
                                                section)


def spconfig(name):
    return data(section(item("spconfig", {"spconfig_name": name}),
                        kind="ResourceAllocationSection_Type"))


def listed(ctx, options=""):
    objs = ctx.ok(cmd("list-spconfig", options=options))
    out = []
    for o in objs:
        if o.envelope is None:
            continue
        [s] = o.envelope.sections
        out += [(it.get("spconfig_name"), it.get("spconfig_status")) for it in s.items]
    return out


def test_variables_add_set_remove_with_one_event_per_data():
    """C150, C127: one event per data with one var Item (name only) per variable."""
    ctx = Ctx()
    new_domain(ctx)
    ctx.ok(cmd("add-variable", data(content("ldg1", item("var", {"name": "auto-boot?",
                                                               "value": "false"}),
                                            item("var", {"name": "boot-device",
                                                         "value": "disk net"})))))
    [ev] = ctx.take_events()
    assert (ev.category, ev.action) == (RESOURCE, "add-variable")
    assert [dict(it.props) for it in ev.envelope.contents[0].items()] == [
        {"name": "auto-boot?"}, {"name": "boot-device"}]
    ctx.ok(cmd("set-variable", data(content("ldg1", item("var", {"name": "boot-device",
                                                               "value": "net"}),
                                            item("var", {"name": "new", "value": "1"})))))
    assert ctx.manager.variables("ldg1") == [("auto-boot?", "false"), ("boot-device", "net"),
                                             ("new", "1")]
    ctx.ok(cmd("remove-variable", data(content("ldg1", item("var", {"name": "new"})))))
    assert [e.action for e in ctx.take_events()] == ["set-variable", "remove-variable"]


def test_add_existing_and_remove_unknown_variable_fail():
    """C150."""
    ctx = Ctx()
    new_domain(ctx)
    ctx.ok(cmd("add-variable", data(content("ldg1", item("var", {"name": "a", "value": "1"})))))
    [obj] = ctx.objects(cmd("add-variable", data(content("ldg1", item("var", {
        "name": "a", "value": "2"})))))
    assert obj.messages == ["Variable a already exists in domain ldg1"]
    [obj] = ctx.objects(cmd("remove-variable", data(content("ldg1", item("var", {"name": "zz"})))))
    assert obj.messages == ["Variable zz does not exist in domain ldg1"]
    [obj] = ctx.objects(cmd("add-variable", data(content("ldg1", item("var", {"name": "b"})))))
    assert obj.messages == ["add-variable requires property value of resource var"]


def test_spconfig_save_select_remove_and_list():
    """C149, C162, C129: factory-default first; current/next statuses; hardware events."""
    ctx = Ctx()
    ctx.ok(cmd("add-spconfig", spconfig("one")))
    ctx.ok(cmd("add-spconfig", spconfig("two")))
    ctx.ok(cmd("set-spconfig", spconfig("one")))
    assert listed(ctx) == [("factory-default", None), ("one", "next"), ("two", "current")]
    ctx.ok(cmd("remove-spconfig", spconfig("two")))
    assert listed(ctx) == [("factory-default", None), ("one", "next")]
    evs = ctx.take_events()
    assert [(e.category, e.action) for e in evs] == [
        (HARDWARE, "add-spconfig"), (HARDWARE, "add-spconfig"), (HARDWARE, "set-spconfig"),
        (HARDWARE, "remove-spconfig")]
    [s] = evs[0].envelope.sections
    assert s.type == "ResourceAllocationSection_Type"
    assert s.items[0].props == [("spconfig_name", "one")]
    [obj] = ctx.objects(cmd("set-spconfig", spconfig("nope")))
    assert obj.messages == ["SP configuration nope does not exist"]


def test_autosave_copies_restore_and_remove():
    """C149, C162: a change after saving makes the autosave copy newer; add-spconfig -r
    restores it; remove-spconfig -r drops only the copy."""
    ctx = Ctx()
    ctx.ok(cmd("add-spconfig", spconfig("cfg")))
    new_domain(ctx)
    assert listed(ctx, "-r") == [("cfg", "newer")]
    ctx.ok(cmd("add-spconfig", options="-r cfg"))
    assert listed(ctx, "-r cfg") == [("cfg", None)]
    ctx.ok(cmd("remove-spconfig", spconfig("cfg"), options="-r"))
    assert listed(ctx, "-r") == []
    assert ("cfg", "current") in listed(ctx)
    [obj] = ctx.objects(cmd("add-spconfig", spconfig("other"), options="-r cfg"))
    assert obj.messages == ['Invalid value "other" for spconfig_name']


def test_list_spconfig_of_named_configurations():
    ctx = Ctx()
    objs = ctx.objects(cmd("list-spconfig", spconfig("factory-default"), spconfig("nope")))
    assert [o.ok for o in objs] == [True, False]
    assert objs[1].messages == ["SP configuration nope does not exist"]


def test_cancel_operation_words():
    """C151: migration answers that none is in progress; reconf and memdr cancel what is
    pending and fail when nothing is; remove-reconf is cancel-operation reconf."""
    ctx = Ctx()
    new_domain(ctx)
    [obj] = ctx.objects(cmd("cancel-operation", data(content("ldg1")), options="migration"))
    assert obj.messages == ["No migration is in progress for domain ldg1"]
    [obj] = ctx.objects(cmd("cancel-operation", data(content("ldg1")), options="memdr"))
    assert obj.messages == ["Domain ldg1 has no memory dynamic reconfiguration in progress"]
    ctx.manager.memory_dr("ldg1", True)
    ctx.ok(cmd("cancel-operation", data(content("ldg1")), options="memdr"))
    dev = item("physio_device", {"name": "/SYS/MB/PCIE1"})
    for request in (cmd("cancel-operation", data(content("primary")), options="reconf"),
                    cmd("remove-reconf", data(content("primary")))):
        ctx.ok(cmd("remove-io", data(content("primary", dev))))
        assert ctx.manager.summary("primary").flags[2] == "d"
        ctx.ok(request)
        assert ctx.manager.summary("primary").flags[2] == "-"
    [obj] = ctx.objects(cmd("remove-reconf", data(content("primary"))))
    assert obj.messages == ["Domain primary has no delayed reconfiguration pending"]
    result = ctx.run(cmd("cancel-operation", data(content("ldg1")), options="-f reconf"))
    assert result.commands[0].error == 'Invalid option "-f" for cancel-operation'
