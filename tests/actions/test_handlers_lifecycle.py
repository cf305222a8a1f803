"""Domain lifecycle through the dispatcher (§5.2; C116, C125, C126, C136–C141, C163)."""

from __future__ import annotations

from agent.xmlapi.model import DOMAIN, RESOURCE
from tests.actions.test_handlers_common import (Ctx, cmd, content, data, free_primary, item,
                                                new_domain, props_of, section, services)


def names(events):
    return [(e.category, e.action, e.envelope.contents[0].name) for e in events]


def test_add_domain_creates_an_inactive_domain_with_its_properties():
    """C136, C125: the given ldom_info keys are kept; one add-domain event."""
    ctx = Ctx()
    ctx.ok(cmd("add-domain", data(content("ldg1", item("ldom_info", {
        "rasd:Address": "00:14:4F:F8:00:0A", "hostid": "0x1234", "failure-policy": "reset",
        "master": "primary"})))))
    s = ctx.manager.summary("ldg1")
    assert (s.state, s.mac, s.hostid, s.failure_policy, s.master) == (
        "inactive", "00:14:4f:f8:00:0a", "00001234", "reset", "primary")
    assert names(ctx.events) == [(DOMAIN, "add-domain", "ldg1")]


def test_add_domain_with_a_name_in_use_fails_and_emits_nothing():
    """C136, C126."""
    ctx = Ctx()
    new_domain(ctx)
    [obj] = ctx.objects(cmd("add-domain", data(content("ldg1"))))
    assert not obj.ok and obj.messages == ["Domain ldg1 already exists"]
    assert ctx.events == []


def test_list_constraints_replays_through_add_domain():
    """C137, C159: list-constraints, remove-domain, add-domain of the listed Content gives
    identical list-constraints output; the replay emits only the add-domain event."""
    ctx = Ctx()
    services(ctx)
    new_domain(ctx, "ldg1")
    ctx.ok(cmd("add-mau", data(content("ldg1", item("mau", {"rasd:AllocationUnits": "1"})))))
    ctx.ok(cmd("add-variable", data(content("ldg1", item("var", {"name": "auto-boot?",
                                                               "value": "false"})))))
    ctx.ok(cmd("add-vdisk", data(content("ldg1", item("disk", {
        "vdisk_name": "d0", "service_name": "vds0", "vol_name": "vol1", "timeout": "30"})))))
    ctx.ok(cmd("add-vnet", data(content("ldg1", item("network", {
        "vnet_name": "n0", "service_name": "vsw0", "vid": "7,3"})))))
    ctx.ok(cmd("set-vconsole", data(content("ldg1", item("console", {"port": "5004",
                                                                   "group": "g"})))))
    ctx.ok(cmd("set-domain", data(content("ldg1", item("policy", {"policy_name": "p1",
                                                                "policy_vcpu_min": "1"})))))
    ctx.ok(cmd("add-vdiskserver", data(content("ldg1", item("vds", {"service_name": "vds1"})))))
    ctx.ok(cmd("add-vdiskserverdevice", data(content("ldg1", item("vds_volume", {
        "vol_name": "v", "service_name": "vds1", "block_dev": "/img/v", "vol_opts": "ro"})))))
    [before] = ctx.ok(cmd("list-constraints", data(content("ldg1"))))
    ctx.ok(cmd("remove-domain", data(content("ldg1"))))
    ctx.take_events()
    replay = before.envelope.contents[0]
    section_xml = "".join(
        section(*(_item_xml(it) for it in s.items), kind=s.type) for s in replay.sections)
    ctx.ok(cmd("add-domain", data(
        f'<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="ldg1">{section_xml}</Content>')))
    assert names(ctx.events) == [(DOMAIN, "add-domain", "ldg1")]
    [after] = ctx.ok(cmd("list-constraints", data(content("ldg1"))))
    assert after.envelope == before.envelope
    assert {it.rtype for it in replay.items()} >= {"ldom_info", "cpu", "mau", "memory", "var",
                                                   "vds", "vds_volume", "network", "disk",
                                                   "console", "policy"}


def _item_xml(it) -> str:
    return item(it.rtype, dict(it.props))


def test_a_failing_replay_item_creates_nothing():
    """§3.7: the domain is not created when one of its Items is refused."""
    ctx = Ctx()
    [obj] = ctx.objects(cmd("add-domain", data(content("ldg1", item("disk", {
        "vdisk_name": "d0", "service_name": "nope", "vol_name": "v"})))))
    assert obj.messages == ["Virtual disk server nope does not exist"]
    assert "ldg1" not in ctx.manager.domains and ctx.events == []


def test_lifecycle_transitions_and_their_events():
    """C139, C125: inactive → bound → active → bound → inactive, one event each."""
    ctx = Ctx()
    free_primary(ctx)
    new_domain(ctx)
    for action in ("bind-domain", "start-domain", "stop-domain", "unbind-domain"):
        ctx.ok(cmd(action, data(content("ldg1"))))
    assert names(ctx.events) == [(DOMAIN, a, "ldg1") for a in (
        "bind-domain", "start-domain", "stop-domain", "unbind-domain")]
    assert ctx.manager.summary("ldg1").state == "inactive"
    assert ctx.guests.calls == [("launch", "ldg1"), ("halt", "ldg1")]


def test_transitions_from_the_wrong_state_fail_at_object_level():
    """C139: §3.6 wrong-state wording, no event."""
    ctx = Ctx()
    new_domain(ctx)
    for action, required in (("start-domain", "bound"), ("stop-domain", "active or suspended"),
                             ("unbind-domain", "bound")):
        [obj] = ctx.objects(cmd(action, data(content("ldg1"))))
        assert obj.messages == [f"Domain ldg1 is inactive; {action} requires it to be {required}"]
    assert ctx.events == []


def test_failed_start_emits_no_event():
    """C126: the hypervisor refuses; the domain stays bound."""
    ctx = Ctx()
    free_primary(ctx)
    new_domain(ctx)
    ctx.ok(cmd("bind-domain", data(content("ldg1"))))
    ctx.take_events()
    ctx.guests.fail.add("launch")
    [obj] = ctx.objects(cmd("start-domain", data(content("ldg1"))))
    assert not obj.ok and obj.messages[0].startswith("Could not start domain ldg1")
    assert ctx.events == [] and ctx.manager.summary("ldg1").state == "bound"


def test_all_forms_answer_per_domain():
    """C116, C138, C140: start -a starts bound domains, stop -a stops active ones except
    primary, remove -a removes all but primary; one data and one event per domain."""
    ctx = Ctx()
    free_primary(ctx)
    new_domain(ctx, "a", vcpus=1, memory="128M")
    new_domain(ctx, "b", vcpus=1, memory="128M")
    new_domain(ctx, "c", vcpus=1, memory="128M")
    for name in ("a", "b"):
        ctx.ok(cmd("bind-domain", data(content(name))))
    ctx.take_events()
    objs = ctx.ok(cmd("start-domain", options="-a"))
    assert [o.envelope.contents[0].name for o in objs] == ["a", "b"]
    assert names(ctx.take_events()) == [(DOMAIN, "start-domain", "a"),
                                        (DOMAIN, "start-domain", "b")]
    objs = ctx.ok(cmd("stop-domain", options="-a"))
    assert [o.envelope.contents[0].name for o in objs] == ["a", "b"]
    ctx.ok(cmd("unbind-domain", data(content("a"))))
    ctx.take_events()
    objs = ctx.objects(cmd("remove-domain", options="-a"))
    assert [(o.envelope.contents[0].name, o.ok) for o in objs] == [
        ("a", True), ("b", False), ("c", True)]
    assert objs[1].messages == ["Domain b is bound; remove-domain requires it to be inactive"]
    assert ctx.manager.domain_names() == ["primary", "b"]
    assert names(ctx.events) == [(DOMAIN, "remove-domain", "a"), (DOMAIN, "remove-domain", "c")]


def test_all_form_with_named_domains_is_a_command_failure():
    """§3.7: -a combined with named domains."""
    ctx = Ctx()
    new_domain(ctx)
    result = ctx.run(cmd("remove-domain", data(content("ldg1")), options="-a")).commands[0]
    assert result.error == "remove-domain: -a cannot be combined with named domains"
    assert "ldg1" in ctx.manager.domains


def test_all_form_with_nothing_to_do_answers_one_empty_success():
    ctx = Ctx()
    objs = ctx.ok(cmd("stop-domain", options="-a"))
    assert len(objs) == 1 and objs[0].envelope is None


def test_set_domain_changes_resets_and_refuses_uuid_without_events():
    """C141, C126: a settable key changes, an empty value resets it, uuid is refused."""
    ctx = Ctx()
    new_domain(ctx)
    ctx.ok(cmd("set-domain", data(content("ldg1", item("ldom_info", {
        "failure-policy": "stop", "perf-counters": "global,strand"})))))
    s = ctx.manager.summary("ldg1")
    assert (s.failure_policy, s.perf_counters) == ("stop", "global,strand")
    ctx.ok(cmd("set-domain", data(content("ldg1", item("ldom_info", {"failure-policy": ""})))))
    assert ctx.manager.summary("ldg1").failure_policy == "ignore"
    [obj] = ctx.objects(cmd("set-domain", data(content("ldg1", item("ldom_info", {
        "uuid": "0b8e5a54-3f7d-4c61-b2d9-6a1c0e7f4b23"})))))
    assert obj.messages == ["The UUID of domain ldg1 cannot be changed"]
    assert ctx.events == []


def test_set_domain_policy_creates_then_updates():
    """C163: a policy Item creates the policy, a second with the same name updates it; both
    show in list-constraints."""
    ctx = Ctx()
    new_domain(ctx)
    ctx.ok(cmd("set-domain", data(content("ldg1", item("policy", {
        "policy_name": "p", "policy_vcpu_min": "2"})))))
    ctx.ok(cmd("set-domain", data(content("ldg1", item("policy", {
        "policy_name": "p", "policy_vcpu_max": "4", "policy_enable": "OFF"})))))
    [obj] = ctx.ok(cmd("list-constraints", data(content("ldg1"))))
    p = props_of(obj, "policy")
    assert (p["policy_vcpu_min"], p["policy_vcpu_max"], p["policy_enable"]) == ("2", "4", "off")
    assert not [e for e in ctx.events if e.category == RESOURCE]
