"""Shared request builders for the handler tests, and the rules every action family shares:
unknown domains, wrong resource types, Item-level checks before any change (§3.7)."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from agent.actions.dispatch import execute
from agent.actions.handlers import HANDLERS
from agent.auth.identity import WRITE, Identity
from agent.xmlapi.decode import decode_request
from agent.xmlapi.model import ObjectResult, Response
from tests.ldm.fakes import FakeGuests, make_manager, tiny

NS = ('xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ovf="./schemas/envelope" '
      'xmlns:rasd="./schemas/CIM_ResourceAllocationSettingData" '
      'xmlns:gprop="./schemas/GenericProperty"')
M = 1 << 20
G = 1 << 30


class Ctx:
    """The session as handlers see it, over a real Manager on a MemoryStore (tiny platform)."""

    def __init__(self, authz: str = WRITE) -> None:
        self.guests = FakeGuests()
        self.manager = make_manager(tiny(), guests=self.guests)
        self.identity = Identity("tester", authz)
        self.switches: set[str] = set()
        self.server_name = "ctl1.example.com"
        self.events: list = []

    def emit(self, event) -> None:
        self.events.append(event)

    def run(self, *cmds: str) -> Response:
        """Send one document holding ``cmds`` through the decoder and the dispatcher."""
        raw = f'<LDM_interface version="1.3" {NS}>{"".join(cmds)}</LDM_interface>'
        return execute(decode_request(raw.encode()), self, HANDLERS)

    def objects(self, *cmds: str) -> list[ObjectResult]:
        """The object results of a one-command request (asserting it reached the handler)."""
        response = self.run(*cmds)
        result = response.commands[0]
        assert result.error is None, result.error
        return result.objects

    def ok(self, *cmds: str) -> list[ObjectResult]:
        """Run and assert every object succeeded."""
        objs = self.objects(*cmds)
        assert all(o.ok for o in objs), [o.messages for o in objs]
        return objs

    def take_events(self) -> list:
        events, self.events = self.events, []
        return events


def item(rtype: str, props: dict[str, str] | None = None) -> str:
    out = [f"<Item><rasd:OtherResourceType>{rtype}</rasd:OtherResourceType>"]
    for key, value in (props or {}).items():
        if key.startswith("rasd:") or key == "uuid":
            out.append(f"<{key}>{escape(value)}</{key}>")
        else:
            out.append(f"<gprop:GenericProperty key={quoteattr(key)}>{escape(value)}"
                       f"</gprop:GenericProperty>")
    return "".join(out) + "</Item>"


def section(*items: str, kind: str = "VirtualHardwareSection_Type") -> str:
    return f'<Section xsi:type="ovf:{kind}">{"".join(items)}</Section>'


def content(name: str, *items: str) -> str:
    inner = section(*items) if items else ""
    return f'<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="{name}">{inner}</Content>'


def data(*parts: str) -> str:
    if not parts:
        return '<data version="3.0"/>'
    return f'<data version="3.0"><Envelope><References/>{"".join(parts)}</Envelope></data>'


def cmd(action: str, *datas: str, options: str = "") -> str:
    opts = f"<options>{options}</options>" if options else ""
    return f"<cmd><action>{action}</action>{opts}{''.join(datas)}</cmd>"


def props_of(obj: ObjectResult, rtype: str, nth: int = 0) -> dict[str, str]:
    """The properties of the nth Item of ``rtype`` in a result's first Content."""
    assert obj.envelope is not None
    items = [it for it in obj.envelope.contents[0].items() if it.rtype == rtype]
    return dict(items[nth].props)


def new_domain(ctx: Ctx, name: str = "ldg1", vcpus: int = 2, memory: str = "256M") -> None:
    """An inactive domain with CPUs and memory, made through the XML actions."""
    ctx.ok(cmd("add-domain", data(content(name))))
    ctx.ok(cmd("add-vcpu", data(content(name, item("cpu", {"rasd:AllocationUnits": str(vcpus)})))))
    ctx.ok(cmd("add-memory", data(content(name, item("memory", {"rasd:AllocationUnits": memory})))))
    ctx.take_events()


def free_primary(ctx: Ctx) -> None:
    """Shrink the control domain to one core, one crypto unit and 512M (tiny platform)."""
    ctx.ok(cmd("set-vcpu", data(content("primary", item("cpu", {"rasd:AllocationUnits": "4"})))))
    ctx.ok(cmd("set-mau", data(content("primary", item("mau", {"rasd:AllocationUnits": "1"})))))
    ctx.ok(cmd("set-memory", data(content("primary",
                                          item("memory", {"rasd:AllocationUnits": "512M"})))))
    ctx.take_events()


def services(ctx: Ctx) -> None:
    """A disk server with one volume, a switch and a console concentrator in primary."""
    ctx.ok(cmd("add-vdiskserver", data(content("primary", item("vds", {"service_name": "vds0"})))))
    ctx.ok(cmd("add-vdiskserverdevice", data(section(item("vds_volume", {
        "vol_name": "vol1", "service_name": "vds0", "block_dev": "/img/vol1"})))))
    ctx.ok(cmd("add-vswitch", data(content("primary", item("vsw", {"service_name": "vsw0"})))))
    ctx.ok(cmd("add-vconscon", data(content("primary", item("vcc", {
        "service_name": "vcc0", "min_port": "5000", "max_port": "5100"})))))
    ctx.take_events()


# -- rules shared by every action ----------------------------------------------------------

def test_unknown_domain_fails_that_data_only_and_the_next_runs():
    """§3.7: an unknown domain is an object-level failure; other data still run."""
    ctx = Ctx()
    new_domain(ctx)
    objs = ctx.objects(cmd("add-vcpu",
                           data(content("web9", item("cpu", {"rasd:AllocationUnits": "1"}))),
                           data(content("ldg1", item("cpu", {"rasd:AllocationUnits": "1"})))))
    assert [o.ok for o in objs] == [False, True]
    assert objs[0].messages == ["Domain web9 does not exist"]
    assert ctx.manager.constraints("ldg1").resources.vcpus == 3


def test_wrong_resource_type_for_the_action_is_named():
    """§3.7, §5.1: an Item of a type the action does not take."""
    ctx = Ctx()
    new_domain(ctx)
    [obj] = ctx.objects(cmd("add-vcpu", data(content("ldg1", item("memory", {
        "rasd:AllocationUnits": "1G"})))))
    assert not obj.ok
    assert obj.messages == ["Resource type memory is not valid for add-vcpu"]


def test_every_item_is_checked_before_any_is_applied():
    """C103: §3.7: one bad Item among several leaves the data unapplied, and every problem is
    reported (a bad value and an unknown key)."""
    ctx = Ctx()
    new_domain(ctx)
    [obj] = ctx.objects(cmd("add-variable", data(content(
        "ldg1", item("var", {"name": "a", "value": "1"}), item("var", {"name": "b", "bogus": "x"}),
        item("var", {"name": "c@d", "value": "2"})))))
    assert not obj.ok
    assert obj.messages == ["Unknown property bogus for resource var",
                            'Invalid value "c@d" for name']
    assert ctx.manager.variables("ldg1") == []
    assert ctx.events == []


def test_a_manager_refusal_of_a_later_item_undoes_the_earlier_ones():
    """§3.7: the second variable exists already, so neither is added and no event goes out."""
    ctx = Ctx()
    new_domain(ctx)
    ctx.ok(cmd("add-variable", data(content("ldg1", item("var", {"name": "b", "value": "0"})))))
    ctx.take_events()
    [obj] = ctx.objects(cmd("add-variable", data(content(
        "ldg1", item("var", {"name": "a", "value": "1"}), item("var", {"name": "b", "value": "2"})))))
    assert obj.messages == ["Variable b already exists in domain ldg1"]
    assert ctx.manager.variables("ldg1") == [("b", "0")]
    assert ctx.events == []


def test_missing_domain_and_missing_item_are_object_failures():
    ctx = Ctx()
    new_domain(ctx)
    [obj] = ctx.objects(cmd("bind-domain"))
    assert obj.messages == ["bind-domain requires a domain"]
    [obj] = ctx.objects(cmd("add-memory", data(content("ldg1"))))
    assert obj.messages == ["add-memory requires a memory Item"]


def test_success_echoes_the_request_envelope():
    """§3.4, C111: a non-list action's response data holds the request's Envelope."""
    ctx = Ctx()
    new_domain(ctx)
    [obj] = ctx.ok(cmd("add-vcpu", data(content("ldg1", item("cpu", {"rasd:AllocationUnits": "1"})))))
    assert obj.envelope.contents[0].name == "ldg1"
    assert obj.envelope.contents[0].items()[0].props == [("rasd:AllocationUnits", "1")]


def test_data_plane_actions_fail_per_data():
    """C148."""
    ctx = Ctx()
    [obj] = ctx.objects(cmd("add-vdpcs", data(content("primary", item("vdpcs", {
        "service_name": "x"})))))
    assert obj.messages == ["add-vdpcs: not supported on this platform"]
