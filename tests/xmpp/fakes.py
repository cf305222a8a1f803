"""Small stand-ins for the rest of the agent, used by the front-door tests.

The fake LDM service answers every element with the registration response of the spec's §1.16
transcript (a fixed, valid ``LDM_interface``), remembers what it was asked, and pushes the
transcript's ``bind-domain`` event (or one for another action/domain) to registered sinks.
"""

from __future__ import annotations

import re

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from agent.auth.identity import READ, WRITE, Identity
from agent.xmpp.api import IAuthenticator, ILdmService, ILdmSession

ROOT_ATTRS = (
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ovf="./schemas/envelope"'
    ' xmlns:rasd="./schemas/CIM_ResourceAllocationSettingData"'
    ' xmlns:vssd="./schemas/CIM_VirtualSystemSettingData"'
    ' xmlns:gprop="./schemas/GenericProperty" xmlns:bind="./schemas/Binding"'
)

REGISTRATION = (
    b'<LDM_interface version="1.1">   <cmd>      <action>reg-domain-events</action>'
    b'      <data version="3.0"> </data>   </cmd></LDM_interface>'
)
"""The minimal client's registration, byte for byte (§1.15 R9)."""

RESPONSE = (
    '<LDM_interface version="1.1"' + ROOT_ATTRS + '><cmd><action>reg-domain-events</action>'
    '<data version="3.0"><response><status>success</status></response></data>'
    '<response><status>success</status></response></cmd>'
    '<response><status>success</status></response></LDM_interface>'
).encode()
"""The transcript's registration response (§1.16)."""


def domain_event(action: str = "bind-domain", domain: str = "web2") -> bytes:
    """An ``LDM_event`` shaped like the transcript's (§1.16)."""
    return (
        '<LDM_event version="1.1"' + ROOT_ATTRS + f'><cmd><action>{action}</action>'
        '<data version="3.0"><Envelope><References/>'
        f'<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="{domain}"/></Envelope></data>'
        '</cmd></LDM_event>'
    ).encode()


BIND_EVENT = domain_event()

_EMIT = re.compile(rb"<action>emit ([a-z-]+) ([A-Za-z0-9_.-]+) (\d+)</action>")


@implementer(ILdmSession)
class FakeLdmSession:
    """Answers each element with :data:`RESPONSE`, or with a Deferred when ``hold`` is set.

    A request whose action is ``emit ACTION DOMAIN COUNT`` first pushes COUNT events to every
    registered session (the way a real command's events precede its response, §1.12 rule 5).
    """

    def __init__(self, service: "FakeLdmService", identity: Identity, sink) -> None:
        self.service = service
        self.identity = identity
        self.sink = sink
        self.received: list[bytes] = []
        self.pending: list[Deferred] = []
        self.closed = 0

    def handle_element(self, raw: bytes) -> Deferred:
        self.received.append(raw)
        if b"reg-domain-events" in raw:
            self.service.registered.add(self)
        emit = _EMIT.search(raw)
        if emit:
            for _ in range(int(emit.group(3))):
                self.service.push(domain_event(emit.group(1).decode(), emit.group(2).decode()))
        if self.service.hold:
            d: Deferred = Deferred()
            self.pending.append(d)
            return d
        return succeed(RESPONSE)

    def close(self) -> None:
        self.closed += 1
        self.service.registered.discard(self)


@implementer(ILdmService)
class FakeLdmService:
    """Opens :class:`FakeLdmSession` objects and broadcasts events to registered ones."""

    def __init__(self) -> None:
        self.sessions: list[FakeLdmSession] = []
        self.registered: set[FakeLdmSession] = set()
        self.hold = False

    def open_session(self, identity: Identity, sink) -> FakeLdmSession:
        session = FakeLdmSession(self, identity, sink)
        self.sessions.append(session)
        return session

    def push(self, document: bytes) -> None:
        for session in list(self.registered):
            session.sink.write_document(document)


@implementer(IAuthenticator)
class FakeAuthenticator:
    """Users ``admin``/``s3cret!`` (write) and ``viewer``/``look`` (read); local uids by table."""

    def __init__(self, local_uids: dict[int, str] | None = None) -> None:
        self.users = {"admin": ("s3cret!", WRITE), "viewer": ("look", READ)}
        self.local_uids = local_uids or {}
        self.checked: list[str] = []

    def check_password(self, user: str, password: str) -> Identity | None:
        self.checked.append(user)
        entry = self.users.get(user)
        if entry is None or entry[0] != password:
            return None
        return Identity(user, entry[1])

    def local_identity(self, uid: int) -> Identity | None:
        authorization = self.local_uids.get(uid)
        if authorization is None:
            return None
        return Identity("root" if uid == 0 else f"uid{uid}", authorization, local=True, uid=uid)
