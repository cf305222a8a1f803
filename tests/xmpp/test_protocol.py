"""The Twisted shell on an in-memory transport and a fake clock (spec ldm-xml §1.8–§1.14)."""

from __future__ import annotations

import pytest
from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, globalLogPublisher

from agent.xmpp.server import FrontDoorConfig, build_factory
from agent.xmpp.tls import ServerTls, TlsMaterial, ensure_tls_files
from tests.xmpp.fakes import (BIND_EVENT, REGISTRATION, RESPONSE, FakeAuthenticator,
                              FakeLdmService)
from tests.xmpp.helpers import (AUTH_ADMIN, HEADER_RE, MINIMAL_HEADER, SERVER, STANDARD_HEADER,
                                STARTTLS, counter_ids)

TIMEOUT_ERROR = (b"<stream:error><connection-timeout xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                 b"</stream:error></stream:stream>")
NOT_AUTHORIZED = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"


class RecordingTransport(StringTransport):
    """A StringTransport that keeps each write apart and records STARTTLS and keep-alive."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.tls = None
        self.keepalive = None
        self.aborted = False
        self.read_paused = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)

    def startTLS(self, creator) -> None:  # noqa: N802
        self.tls = creator

    def setTcpKeepAlive(self, enabled) -> None:  # noqa: N802
        self.keepalive = enabled

    def abortConnection(self) -> None:  # noqa: N802
        self.aborted = True
        super().abortConnection()

    def pauseProducing(self) -> None:  # noqa: N802
        self.read_paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self.read_paused = False


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory) -> TlsMaterial:
    cert, key = ensure_tls_files(tmp_path_factory.mktemp("tls"), SERVER)
    return TlsMaterial(cert, key)


class Rig:
    """A factory wired to fakes, a fake clock and synchronous password checks."""

    def __init__(self, tls_material, *, local_uid=None, local_uids=None, config=None,
                 check_error=False) -> None:
        self.clock = Clock()
        self.service = FakeLdmService()
        self.auth = FakeAuthenticator(local_uids or {0: "write"})
        self.blocking_calls = 0

        def blocking(call, *args):
            self.blocking_calls += 1
            return fail(RuntimeError("backend down")) if check_error else succeed(call(*args))

        self.factory = build_factory(
            self.service, self.auth, tls_material, SERVER, reactor=self.clock,
            config=config or FrontDoorConfig(), new_id=counter_ids(),
            peer_uid=lambda transport: local_uid, blocking=blocking)

    def connect(self):
        protocol = self.factory.buildProtocol(None)
        transport = RecordingTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def negotiated(self, local=True):
        protocol, transport = self.connect()
        protocol.dataReceived(MINIMAL_HEADER)
        protocol.dataReceived(STARTTLS)
        protocol.dataReceived(MINIMAL_HEADER)
        if not local:
            protocol.dataReceived(AUTH_ADMIN)
            protocol.dataReceived(MINIMAL_HEADER)
        transport.writes.clear()
        return protocol, transport


@pytest.fixture
def errors():
    """Collect log events at warning level or above."""
    seen = []

    def observer(event):
        if event.get("log_level") is not None and event["log_level"] >= LogLevel.warn:
            seen.append(event)

    globalLogPublisher.addObserver(observer)
    yield seen
    globalLogPublisher.removeObserver(observer)


def test_keepalive_and_producer_registered_on_accept(tls_material):
    """§1.13: TCP keep-alive is enabled on accepted sockets; nothing is sent yet (C4)."""
    protocol, transport = Rig(tls_material).connect()
    assert transport.keepalive is True
    assert transport.producer is protocol
    assert transport.value() == b""


def test_starttls_switches_transport_with_server_tls(tls_material):
    """C15: proceed is one plaintext write, then the transport gets our TLS creator."""
    protocol, transport = Rig(tls_material).connect()
    protocol.dataReceived(MINIMAL_HEADER)
    protocol.dataReceived(STARTTLS)
    assert transport.writes[-1] == b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    assert isinstance(transport.tls, ServerTls)


def test_unusable_certificate_refuses_starttls(tmp_path, errors):
    """C19: a broken key file means internal-server-error on starttls."""
    (tmp_path / "c.pem").write_text("not a certificate")
    rig = Rig(TlsMaterial(tmp_path / "c.pem", tmp_path / "k.pem"))
    protocol, transport = rig.connect()
    protocol.dataReceived(MINIMAL_HEADER + STARTTLS)
    assert transport.writes[-1].startswith(b"<stream:error><internal-server-error ")
    assert transport.tls is None


def test_negotiation_timeout_fires_at_60_seconds(tls_material):
    """C66: connection-timeout after 60 s of negotiation, not before."""
    rig = Rig(tls_material)
    protocol, transport = rig.connect()
    protocol.dataReceived(MINIMAL_HEADER)
    rig.clock.advance(59.9)
    assert not transport.disconnecting
    rig.clock.advance(0.2)
    assert transport.writes[-1] == TIMEOUT_ERROR
    assert transport.disconnecting


def test_negotiation_timeout_is_configurable_and_cancelled_when_done(tls_material):
    """C66: an authenticated session stays open however long it idles."""
    rig = Rig(tls_material, local_uid=0, config=FrontDoorConfig(negotiation_timeout=5))
    protocol, transport = rig.negotiated()
    slow, slow_transport = rig.connect()
    rig.clock.advance(5)
    assert slow_transport.writes[-1].endswith(TIMEOUT_ERROR)
    slow.connectionLost(None)
    rig.clock.advance(3600)
    assert not transport.disconnecting
    assert rig.clock.getDelayedCalls() == []


def test_stalled_half_sent_element_cut_by_timeout(tls_material):
    """§1.13: a half-sent element during negotiation ends with connection-timeout."""
    rig = Rig(tls_material, local_uid=None)
    protocol, transport = rig.connect()
    protocol.dataReceived(MINIMAL_HEADER + b"<starttls xmlns='urn:ietf:para")
    rig.clock.advance(60)
    assert transport.writes[-1] == TIMEOUT_ERROR


def test_failure_delayed_by_one_second_via_clock(tls_material):
    """C28, §1.8: a wrong password's failure is written only after at least one second."""
    rig = Rig(tls_material, local_uid=None)
    protocol, transport = rig.connect()
    protocol.dataReceived(STANDARD_HEADER)
    protocol.dataReceived(STARTTLS)
    protocol.dataReceived(STANDARD_HEADER)
    transport.writes.clear()
    protocol.dataReceived(b"<auth mechanism='PLAIN'>AGFkbWluAHdyb25n</auth>")
    assert rig.blocking_calls == 1
    rig.clock.advance(0.99)
    assert transport.writes == []
    rig.clock.advance(0.02)
    assert transport.writes == [NOT_AUTHORIZED]


def test_three_failures_end_stream(tls_material):
    """C31: the third failure is the stream error not-authorized and a close."""
    rig = Rig(tls_material, local_uid=None)
    protocol, transport = rig.connect()
    protocol.dataReceived(STANDARD_HEADER + STARTTLS)
    protocol.dataReceived(STANDARD_HEADER)
    for _ in range(3):
        protocol.dataReceived(b"<auth mechanism='PLAIN'>AGFkbWluAHdyb25n</auth>")
        rig.clock.advance(1)
    assert transport.writes[-3:-1] == [NOT_AUTHORIZED, NOT_AUTHORIZED]
    assert transport.writes[-1].startswith(b"<stream:error><not-authorized ")
    assert transport.disconnecting


def test_backend_error_logs_no_credentials(tls_material, errors):
    """§1.8: an authenticator error gives temporary-auth-failure; the log holds no password."""
    rig = Rig(tls_material, local_uid=None, check_error=True)
    protocol, transport = rig.connect()
    protocol.dataReceived(STANDARD_HEADER + STARTTLS)
    protocol.dataReceived(STANDARD_HEADER)
    protocol.dataReceived(AUTH_ADMIN)
    rig.clock.advance(1)
    assert transport.writes[-1].endswith(b"<temporary-auth-failure/></failure>")
    text = repr(errors)
    assert "s3cret" not in text and "AGFkbWluAHMzY3JldCE" not in text


def test_remote_peer_authenticated_runs_with_sasl_identity(tls_material):
    """C34, C42: after SASL the LDM session is opened with the user's identity."""
    rig = Rig(tls_material, local_uid=None)
    protocol, transport = rig.negotiated(local=False)
    protocol.dataReceived(REGISTRATION)
    assert rig.service.sessions[0].identity.name == "admin"
    assert transport.writes == [RESPONSE]


def test_unknown_local_uid_is_remote(tls_material):
    """C43: a local uid the authenticator refuses gets mechanisms-only features."""
    rig = Rig(tls_material, local_uid=1234, local_uids={0: "write"})
    protocol, transport = rig.connect()
    protocol.dataReceived(MINIMAL_HEADER + b"")
    protocol.dataReceived(STARTTLS)
    protocol.dataReceived(MINIMAL_HEADER)
    assert b"<bind" not in transport.writes[-1]
    protocol.dataReceived(REGISTRATION)
    assert transport.writes[-1].startswith(b"<stream:error><not-authorized ")


def test_read_policy_local_uid(tls_material):
    """C44, C45: a uid given read authorization is local with read."""
    rig = Rig(tls_material, local_uid=1234, local_uids={1234: "read"})
    protocol, transport = rig.negotiated()
    protocol.dataReceived(REGISTRATION)
    assert rig.service.sessions[0].identity.authorization == "read"


def test_each_document_is_one_write_events_before_response(tls_material):
    """C50, C51, C56: events pushed while a request runs precede its response, one write each."""
    rig = Rig(tls_material, local_uid=0)
    rig.service.hold = True
    protocol, transport = rig.negotiated()
    protocol.dataReceived(REGISTRATION)
    rig.service.push(BIND_EVENT)
    rig.service.push(BIND_EVENT)
    rig.service.sessions[0].pending[0].callback(RESPONSE)
    assert transport.writes == [BIND_EVENT, BIND_EVENT, RESPONSE]


def test_requests_answered_in_order_when_first_is_slow(tls_material):
    """C55: the second request waits for the first one's answer."""
    rig = Rig(tls_material, local_uid=0)
    rig.service.hold = True
    protocol, transport = rig.negotiated()
    second = REGISTRATION.replace(b'version="1.1"', b'version="1.2"')
    protocol.dataReceived(REGISTRATION + second)
    ldm = rig.service.sessions[0]
    assert ldm.received == [REGISTRATION]
    ldm.pending[0].callback(b"<LDM_interface>first</LDM_interface>")
    assert ldm.received == [REGISTRATION, second]
    ldm.pending[1].callback(b"<LDM_interface>second</LDM_interface>")
    assert transport.writes == [b"<LDM_interface>first</LDM_interface>",
                                b"<LDM_interface>second</LDM_interface>"]


def test_slow_reader_disconnected_with_one_log_line(tls_material, errors):
    """§1.12: a consumer whose backlog passes the bound is dropped; the agent never blocks."""
    rig = Rig(tls_material, local_uid=0, config=FrontDoorConfig(max_backlog_documents=3))
    protocol, transport = rig.negotiated()
    protocol.dataReceived(REGISTRATION)
    transport.writes.clear()
    protocol.pauseProducing()  # what the transport does when its buffer is full
    for _ in range(3):
        rig.service.push(BIND_EVENT)
    assert transport.writes == [] and not transport.aborted
    rig.service.push(BIND_EVENT)
    assert transport.aborted
    assert len(errors) == 1


def test_backlog_flushed_in_order_on_resume(tls_material):
    """§1.12: held documents go out one write each, in order, when the transport drains."""
    rig = Rig(tls_material, local_uid=0)
    protocol, transport = rig.negotiated()
    protocol.dataReceived(REGISTRATION)
    transport.writes.clear()
    protocol.pauseProducing()
    rig.service.push(BIND_EVENT)
    protocol.dataReceived(b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
    protocol.resumeProducing()
    assert transport.writes == [BIND_EVENT, b"<iq type='result' id='p'/>"]


def test_abrupt_disconnect_is_quiet_and_leaves_nothing(tls_material, errors):
    """C69, R14: no logs, timers, registrations or sessions remain; close() runs once."""
    rig = Rig(tls_material, local_uid=0)
    protocol, transport = rig.negotiated()
    protocol.dataReceived(REGISTRATION)
    protocol.connectionLost(None)
    protocol.connectionLost(None)
    assert rig.service.sessions[0].closed == 1
    assert rig.service.registered == set()
    assert rig.factory.connections == set()
    assert rig.clock.getDelayedCalls() == []
    rig.service.push(BIND_EVENT)  # a late event is dropped, not written
    assert errors == []


def test_probe_connection_is_silent(tls_material, errors):
    """C72, R1: connect then close with no bytes."""
    rig = Rig(tls_material)
    protocol, transport = rig.connect()
    protocol.connectionLost(None)
    assert transport.value() == b"" and errors == []
    assert rig.clock.getDelayedCalls() == [] and rig.service.sessions == []


def test_disconnect_during_failure_delay_leaves_no_timer(tls_material):
    """C69: a pending failure delay is cancelled by the disconnect."""
    rig = Rig(tls_material, local_uid=None)
    protocol, transport = rig.connect()
    protocol.dataReceived(STANDARD_HEADER + STARTTLS)
    protocol.dataReceived(STANDARD_HEADER)
    protocol.dataReceived(b"<auth mechanism='PLAIN'>AGFkbWluAHdyb25n</auth>")
    protocol.connectionLost(None)
    assert rig.clock.getDelayedCalls() == []


def test_close_unregisters_producer_and_loses_connection(tls_material):
    """C68: </stream:stream> is answered, then a graceful close (close_notify under TLS)."""
    rig = Rig(tls_material, local_uid=0)
    protocol, transport = rig.negotiated()
    protocol.dataReceived(b"</stream:stream>")
    assert transport.writes == [b"</stream:stream>"]
    assert transport.producer is None and transport.disconnecting


def test_close_that_never_completes_is_aborted(tls_material):
    """§1.14: a peer that never lets the close finish is aborted after the close timeout."""
    rig = Rig(tls_material, local_uid=0, config=FrontDoorConfig(close_timeout=10))
    protocol, transport = rig.negotiated()
    protocol.dataReceived(b"</stream:stream>")
    rig.clock.advance(10)
    assert transport.aborted


def test_shutdown_reaches_every_session(tls_material):
    """C70: every open session receives system-shutdown; the Deferred fires when all are gone."""
    rig = Rig(tls_material, local_uid=0)
    first, first_transport = rig.negotiated()
    second, second_transport = rig.connect()
    done = rig.factory.shutdown()
    assert first_transport.writes[-1] == (
        b"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"</stream:error></stream:stream>")
    assert HEADER_RE.match(second_transport.writes[-1])
    first.connectionLost(None)
    second.connectionLost(None)
    assert done.called


def test_failing_ldm_session_ends_connection(tls_material):
    """§1.12 rule 4: when no response can be produced, the session ends instead of hanging."""
    rig = Rig(tls_material, local_uid=0)
    protocol, transport = rig.negotiated()
    protocol.dataReceived(REGISTRATION)
    ldm = rig.service.sessions[0]
    ldm.handle_element = lambda raw: fail(RuntimeError("boom"))
    protocol.dataReceived(REGISTRATION)
    assert transport.aborted


class _PlainBytesSession:
    """An LDM session answering at once with plain bytes (no Deferred), like the real one."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.received: list[bytes] = []

    def handle_element(self, raw):
        self.received.append(raw)
        return self.answer

    def close(self):
        pass


def test_answer_given_at_once_is_written_in_the_same_turn(tls_material):
    """C50, C55: an answer returned as bytes (no Deferred) is written at once, one write each,
    and back-to-back requests are answered in arrival order."""
    rig = Rig(tls_material, local_uid=0)
    protocol, transport = rig.negotiated()
    ldm = _PlainBytesSession(RESPONSE)
    rig.service.open_session = lambda identity, sink: ldm
    second = REGISTRATION.replace(b'version="1.1"', b'version="1.2"')
    protocol.dataReceived(REGISTRATION + second)
    assert ldm.received == [REGISTRATION, second]
    assert transport.writes == [RESPONSE, RESPONSE]


def test_flood_of_instant_answers_leaves_reading_resumed(tls_material):
    """§1.12: when more requests arrive in one read than may wait and each is answered at
    once, the pause and resume happen in the order the session asked for them, so reading
    ends up resumed (performed out of order, the pause came last and the session hung)."""
    rig = Rig(tls_material, local_uid=0, config=FrontDoorConfig(max_queued_requests=2))
    protocol, transport = rig.negotiated()
    protocol.dataReceived(REGISTRATION * 6)
    assert transport.writes == [RESPONSE] * 6
    assert not transport.read_paused
    protocol.dataReceived(REGISTRATION)
    assert transport.writes == [RESPONSE] * 7


def test_action_raised_by_ldm_session_ends_connection(tls_material, errors):
    """A session that raises instead of answering ends the connection (one answer per
    request cannot hold), and is logged once."""
    rig = Rig(tls_material, local_uid=0)
    protocol, transport = rig.negotiated()
    protocol.dataReceived(REGISTRATION)
    rig.service.sessions[0].handle_element = lambda raw: 1 / 0
    protocol.dataReceived(REGISTRATION)
    assert transport.aborted
    assert len(errors) == 1


def test_answer_of_the_wrong_type_ends_connection(tls_material, errors):
    """An answer that is neither bytes nor a Deferred cannot be written: the connection ends,
    logged once, instead of a write of something else."""
    rig = Rig(tls_material, local_uid=0)
    protocol, transport = rig.negotiated()
    protocol.dataReceived(REGISTRATION)
    transport.writes.clear()
    rig.service.sessions[0].handle_element = lambda raw: RESPONSE.decode()
    protocol.dataReceived(REGISTRATION)
    assert transport.aborted and transport.writes == []
    assert len(errors) == 1
