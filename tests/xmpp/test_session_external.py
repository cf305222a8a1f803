"""SASL EXTERNAL for trusted client certificates, driven without I/O (migration.md §4.1, M36).

With ``client_certificates`` the session asks its shell about the client's TLS certificate
once TLS is up, and offers EXTERNAL next to PLAIN only when the shell reported a trusted one.
"""

from __future__ import annotations

import base64

from agent.auth.identity import MIGRATION_PEER, Identity
from agent.xmpp import session as s
from tests.xmpp.helpers import (HEADER_RE, ROOT, STANDARD_HEADER, STARTTLS, kinds,
                                new_session, writes)

PEER = Identity("certificate/system1", MIGRATION_PEER)
PLAIN_ONLY = (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
              b"<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
WITH_EXTERNAL = (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                 b"<mechanism>PLAIN</mechanism><mechanism>EXTERNAL</mechanism></mechanisms>"
                 b"</stream:features>")
BIND = b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
SUCCESS = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"


def external(text: str = "=") -> bytes:
    return (f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{text}"
            f"</auth>").encode()


def after_tls(local: Identity | None = None) -> tuple[s.Session, list]:
    session = new_session(local=local, client_certificates=True)
    session.data_received(STANDARD_HEADER)
    assert s.StartTls() in session.data_received(STARTTLS)
    return session, session.data_received(STANDARD_HEADER)


def failure_after_delay(session: s.Session, actions: list) -> bytes:
    assert s.Wait(1.0) in actions and writes(actions) == []
    return b"".join(writes(session.wake()))


def test_features_wait_for_the_certificate_lookup():
    """M36: after STARTTLS the session asks about the client certificate before it answers
    the restarted header; nothing is written until the shell reports."""
    session, actions = after_tls()
    assert kinds(actions) == ["CheckCertificate"]
    assert session.data_received(external()) == []  # pipelined input waits too
    assert session.state == s.CERT_CHECK


def test_no_trusted_certificate_gets_plain_only():
    """M36, §4.1: without a trusted certificate a remote client is offered PLAIN alone."""
    session, _ = after_tls()
    out = writes(session.certificate_checked(None))
    assert HEADER_RE.fullmatch(out[0]) and out[1] == PLAIN_ONLY


def test_trusted_certificate_gets_external_and_authenticates_as_migration_peer():
    """M36, §4.1, §4.3: a trusted certificate is offered EXTERNAL next to PLAIN; EXTERNAL with
    the empty authzid succeeds and the session becomes the migration peer the shell named."""
    session, _ = after_tls()
    out = writes(session.certificate_checked(PEER))
    assert out[1] == WITH_EXTERNAL
    assert writes(session.data_received(external())) == [SUCCESS]
    assert session.identity == PEER and not PEER.may("read")


def test_external_without_initial_response_gets_a_challenge():
    """RFC 6120 §6.4.2: an empty <auth/> is no initial response: challenge, then '='."""
    session, _ = after_tls()
    session.certificate_checked(PEER)
    assert writes(session.data_received(external(""))) == [
        b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"]
    response = b"<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</response>"
    assert writes(session.data_received(response)) == [SUCCESS]
    assert session.identity == PEER


def test_external_refused_to_a_client_without_a_trusted_certificate():
    """M36: 'any other client is refused': EXTERNAL is not a mechanism for it."""
    session, _ = after_tls()
    session.certificate_checked(None)
    actions = session.data_received(external())
    assert failure_after_delay(session, actions) == (
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>")
    assert session.identity is None


def test_external_with_an_authzid_is_refused():
    """Only the certificate's own identity may be assumed: a non-empty authzid fails."""
    session, _ = after_tls()
    session.certificate_checked(PEER)
    actions = session.data_received(external(base64.b64encode(b"admin").decode()))
    assert failure_after_delay(session, actions) == (
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-authzid/></failure>")
    assert session.identity is None


def test_plain_still_works_for_a_client_with_a_trusted_certificate():
    """§4.1: EXTERNAL comes in addition to PLAIN, not instead of it."""
    session, _ = after_tls()
    session.certificate_checked(PEER)
    plain = (b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
             + base64.b64encode(b"\0admin\0s3cret!") + b"</auth>")
    assert s.CheckPassword("admin", "s3cret!") in session.data_received(plain)


def test_local_peer_with_a_trusted_certificate_gets_external_and_bind():
    """A local peer (loopback agents) keeps its bind feature and may also use EXTERNAL."""
    session, _ = after_tls(local=ROOT)
    actions = session.certificate_checked(PEER)
    assert writes(actions)[1] == WITH_EXTERNAL.replace(b"</stream:features>",
                                                       BIND + b"</stream:features>")
    assert s.NegotiationDone() in actions


def test_without_client_certificates_nothing_changes():
    """The front door without a trust store answers the restarted header at once."""
    session = new_session()
    session.data_received(STANDARD_HEADER)
    session.data_received(STARTTLS)
    out = writes(session.data_received(STANDARD_HEADER))
    assert out[1] == PLAIN_ONLY
