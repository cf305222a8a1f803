"""Shared byte strings and drivers for the front-door tests."""

from __future__ import annotations

import itertools
import re

from agent.auth.identity import WRITE, Identity
from agent.xmpp import session as s

SERVER = "ctl1.example.com"
MINIMAL_HEADER = b"<?xml version='1.0'?><stream:stream xml:lang=\"en\" version=\"1.0\" id=\"xmpp\">"
STANDARD_HEADER = (
    b"<?xml version='1.0'?><stream:stream to='ctl1.example.com' xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
)
STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
AUTH_ADMIN = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFkbWluAHMzY3JldCE=</auth>"
HEADER_RE = re.compile(
    rb"<\?xml version='1.0'\?><stream:stream xmlns='jabber:client' "
    rb"xmlns:stream='http://etherx.jabber.org/streams' id='([0-9a-f]{16})' "
    rb"from='ctl1\.example\.com' version='1\.0'>"
)
ADMIN = Identity("admin", WRITE)
ROOT = Identity("root", WRITE, local=True, uid=0)


def counter_ids():
    """A deterministic stream-id source: 0000000000000001, 0000000000000002, ..."""
    numbers = itertools.count(1)
    return lambda: f"{next(numbers):016x}"


def new_session(local: Identity | None = None, tls: bool = True, **config) -> s.Session:
    return s.Session(s.SessionConfig(SERVER, **config), local=local, tls_available=tls,
                     new_id=counter_ids())


def writes(actions: list) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, s.Write)]


def kinds(actions: list) -> list[str]:
    return [type(a).__name__ for a in actions]


def to_tls(session: s.Session, header: bytes = MINIMAL_HEADER) -> list:
    """Drive a session through STARTTLS and the restarted header; return the last actions."""
    session.data_received(header)
    assert s.StartTls() in session.data_received(STARTTLS)
    return session.data_received(header)


def to_ready(session: s.Session, header: bytes = STANDARD_HEADER) -> list:
    """Drive a remote session through TLS, SASL (admin) and the restart."""
    to_tls(session, header)
    actions = session.data_received(AUTH_ADMIN)
    assert s.CheckPassword("admin", "s3cret!") in actions
    assert writes(session.password_checked(ADMIN)) == [
        b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"]
    return session.data_received(header)
