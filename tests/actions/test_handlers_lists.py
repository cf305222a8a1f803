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
