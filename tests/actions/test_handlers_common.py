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
