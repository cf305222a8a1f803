"""Event routing through the service and its bus (spec ldm-xml §4.1, §4.7)."""

import random
import time

import pytest

from agent.auth.identity import READ, Identity
from agent.ldm.manager import Manager
from agent.ldm.platform import load_platform
from agent.service import LdmService
from agent.store.memory import MemoryStore

PLATFORM = "samples/platforms/tiny.toml"
HEAD = '<LDM_interface version="1.3">'


class Sink:
    def __init__(self):
        self.documents = []

    def write_document(self, data):
        self.documents.append(data)

    def actions(self):
        return [d.split(b"<action>")[1].split(b"</action>")[0].decode() for d in self.documents]


class NoGuests:
    def launch(self, *a): pass
    def halt(self, *a): pass
    def reset(self, *a): pass
    def panic(self, *a): pass
    def utilisation(self, name): return None


@pytest.fixture
def service():
    manager = Manager(load_platform(PLATFORM), MemoryStore(), NoGuests(), time.time,
                      random.Random(7))
    return LdmService(server_name="ctl1", manager=manager)


def request(session, body: str) -> bytes:
    return session.answer((HEAD + body + "</LDM_interface>").encode())


def register(session, action: str) -> None:
    assert b"<status>failure</status>" not in request(
        session, f'<cmd><action>{action}</action><data version="3.0"/></cmd>')


def add_domain(session, name: str) -> bytes:
    return request(session, f'<cmd><action>add-domain</action><data version="3.0"><Envelope>'
                            f'<References/><Content ovf:id="{name}"/></Envelope></data></cmd>')


def add_variable(session, name: str) -> bytes:
    return request(session, f'<cmd><action>add-variable</action><data version="3.0"><Envelope>'
                            f'<References/><Content ovf:id="{name}"><Section><Item>'
                            f'<rasd:OtherResourceType>var</rasd:OtherResourceType>'
                            f'<gprop:GenericProperty key="name">boot-file</gprop:GenericProperty>'
                            f'<gprop:GenericProperty key="value">-v</gprop:GenericProperty>'
                            f'</Item></Section></Content></Envelope></data></cmd>')


def add_spconfig(session, name: str) -> bytes:
    return request(session, f'<cmd><action>add-spconfig</action><data version="3.0"><Envelope>'
                            f'<References/><Section xsi:type="ovf:ResourceAllocationSection_Type">'
                            f'<Item><rasd:OtherResourceType>spconfig</rasd:OtherResourceType>'
                            f'<gprop:GenericProperty key="spconfig_name">{name}'
                            f'</gprop:GenericProperty></Item></Section></Envelope></data></cmd>')


def test_each_switch_lets_only_its_category_through(service):
    """C131, C133: domain, resource and hardware events reach only the sessions with the
    matching switch (reg-all for all three); a session that never registered gets none."""
    sinks = {name: Sink() for name in ("domain", "resource", "hardware", "all", "none")}
    sessions = {name: service.open_session(Identity(name, READ), sink)
                for name, sink in sinks.items()}
    for name in ("domain", "resource", "hardware", "all"):
        register(sessions[name], f"reg-{name}-events")
    actor = service.open_session(Identity("admin", "write"), Sink())
    add_domain(actor, "ldg1")
    add_variable(actor, "ldg1")
    add_spconfig(actor, "cfg1")
    assert sinks["domain"].actions() == ["add-domain"]
    assert sinks["resource"].actions() == ["add-variable"]
    assert sinks["hardware"].actions() == ["add-spconfig"]
    assert sinks["all"].actions() == ["add-domain", "add-variable", "add-spconfig"]
    assert sinks["none"].documents == []


def test_the_causing_session_gets_its_event_once(service):
    """C132: the requesting session receives the event it caused, before its response, and
    only once although it registered twice and for all categories too."""
    sink = Sink()
    session = service.open_session(Identity("admin", "write"), sink)
    register(session, "reg-domain-events")
    register(session, "reg-domain-events")
    register(session, "reg-all-events")
    add_domain(session, "ldg2")
    assert sink.actions() == ["add-domain"]


def test_registrations_end_with_the_session(service):
    """C122: a new session of the same user receives nothing until it registers itself."""
    first = service.open_session(Identity("ops", READ), Sink())
    register(first, "reg-all-events")
    first.close()
    later_sink = Sink()
    later = service.open_session(Identity("ops", READ), later_sink)
    actor = service.open_session(Identity("admin", "write"), Sink())
    add_domain(actor, "ldg3")
    assert later_sink.documents == []
    register(later, "reg-domain-events")
    add_domain(actor, "ldg4")
    assert later_sink.actions() == ["add-domain"]
    assert len(service.bus) == 2  # the closed session is gone from the bus
