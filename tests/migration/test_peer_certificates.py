"""The control-channel client's certificate steps (migration.md §4.1, §4.4), without a network.

The target's certificate is judged before any credential is written; in certificate mode the
client uses EXTERNAL only when the target offers it, and names the refusing side otherwise.
"""

from __future__ import annotations

import pytest
from twisted.internet.testing import StringTransport

from agent.migration import peer
from agent.migration.peer import ControlProtocol, PeerError

FEATURES_PLAIN = (b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                  b"<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
FEATURES_EXTERNAL = FEATURES_PLAIN.replace(b"</mechanisms>",
                                           b"<mechanism>EXTERNAL</mechanism></mechanisms>")


class _Transport(StringTransport):
    """Records writes; TLS is a no-op."""

    aborted = False

    def startTLS(self, options):  # noqa: N802
        pass

    def abortConnection(self):  # noqa: N802
        self.aborted = True


class _Trust:
    """Answers ``check`` with ``refusal`` and records both calls."""

    def __init__(self, refusal=None):
        self.refusal = refusal
        self.checked = []
        self.pinned = []

    def check(self, host, port, der, cert_mode):
        self.checked.append((host, port, der, cert_mode))
        return self.refusal

    def authenticated(self, host, port, der, cert_mode):
        self.pinned.append((host, der, cert_mode))


@pytest.fixture(autouse=True)
def target_certificate(monkeypatch):
    monkeypatch.setattr(peer, "peer_certificate_der", lambda transport: b"target-certificate")


def _after_tls(trust, cert_mode=False, password="s3cret!"):
    proto = ControlProtocol("system2", "admin", password, port=6482, trust=trust,
                            cert_mode=cert_mode)
    proto._tls_options = lambda: "options"  # no files needed for a fake handshake
    transport = _Transport()
    proto.makeConnection(transport)
    proto.dataReceived(b"<stream:stream><stream:features><starttls/></stream:features>")
    proto.dataReceived(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    transport.clear()
    errors = []
    proto.ready.addErrback(lambda f: errors.append(f.trap(PeerError) and f.value.args[0]))
    return proto, transport, errors


def test_a_refused_target_certificate_stops_before_the_password_is_written():
    """§4.4, M42: the refusal line is the migration's failure; no <auth> ever leaves."""
    trust = _Trust("The certificate of system2 has changed since the last migration to it")
    proto, transport, errors = _after_tls(trust)
    proto.dataReceived(b"<stream:stream>" + FEATURES_PLAIN)
    assert trust.checked == [("system2", 6482, b"target-certificate", False)]
    assert b"<auth" not in transport.value() and b"s3cret" not in transport.value()
    assert errors == ["The certificate of system2 has changed since the last migration to it"]
    assert transport.aborted


def test_an_accepted_certificate_is_recorded_after_the_login_succeeds():
    """§4.4 tofu: the pin is written only once the target accepted the credentials."""
    trust = _Trust()
    proto, transport, _ = _after_tls(trust)
    proto.dataReceived(b"<stream:stream>" + FEATURES_PLAIN)
    assert b"mechanism='PLAIN'" in transport.value()
    assert trust.pinned == []
    proto.dataReceived(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    assert trust.pinned == [("system2", b"target-certificate", False)]


def test_certificate_mode_uses_external_when_offered():
    """§4.1: -c sends EXTERNAL with the empty authzid, never a password."""
    proto, transport, errors = _after_tls(_Trust(), cert_mode=True, password="")
    proto.dataReceived(b"<stream:stream>" + FEATURES_EXTERNAL)
    assert transport.value() == (b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                                 b"mechanism='EXTERNAL'>=</auth>")
    assert errors == []


def test_certificate_mode_without_external_means_this_machine_is_not_trusted():
    """§4.1, Appendix A: no EXTERNAL offered (our certificate is not in the target's store)."""
    proto, transport, errors = _after_tls(_Trust(), cert_mode=True, password="")
    proto.dataReceived(b"<stream:stream>" + FEATURES_PLAIN)
    assert b"<auth" not in transport.value()
    assert errors == ["The certificate of this machine is not trusted by system2"]


def test_certificate_mode_refused_external_means_this_machine_is_not_trusted():
    """Appendix A: the target refused EXTERNAL (its trust store changed meanwhile)."""
    proto, transport, errors = _after_tls(_Trust(), cert_mode=True, password="")
    proto.dataReceived(b"<stream:stream>" + FEATURES_EXTERNAL)
    proto.dataReceived(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                       b"<invalid-mechanism/></failure>")
    assert errors == ["The certificate of this machine is not trusted by system2"]
