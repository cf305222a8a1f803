"""The Twisted protocol around :class:`agent.xmpp.session.Session` (spec ldm-xml §1).

It performs the session's actions on a real transport: writes (one per document, kept apart
under TLS), STARTTLS, password checks off the reactor thread, the SASL failure delay, the
negotiation timeout, handing elements to the LDM session, and a bounded outgoing backlog for
consumers that stop reading. Abrupt disconnects are quiet.

The request path is kept short because it is most of what one client waits for: an answer
that the LDM session gives at once is written in the same reactor turn as the read (no
Deferred), and on socket transports the write goes straight to the socket when nothing is
queued (:mod:`agent.xmpp.writethrough`) instead of waiting for the next reactor iteration.
Actions run in the order the session produced them, one at a time: an action that leads to
more actions (a synchronous answer) queues them behind the ones already waiting.
"""

from __future__ import annotations

import types
from collections import deque
from typing import TYPE_CHECKING, Callable, get_args

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from agent.xmpp import session as s
from agent.xmpp.api import IDocumentSink
from agent.xmpp.writethrough import bypass_tls_buffer, writer_for

if TYPE_CHECKING:
    from agent.xmpp.server import FrontDoorFactory

_log = Logger()
_AFTER_CLOSE_LIMIT = 64 * 1024


def keep_documents_apart(transport: object) -> None:
    """Make every later write on a just-started TLS transport its own TLS record, sent now.

    Twisted's TLS layer (``BufferingTLSTransport``) joins the small writes of one reactor
    iteration into one record, which would put two LDM documents into one read of a client
    that reads record by record (§1.12 rule 1). Writing straight through the unbuffered
    ``TLSMemoryBIOProtocol.write`` keeps one record per write (writes over 16 KiB become
    several records, which the rule allows). Below the TLS layer, records go to the socket
    at once when nothing is queued (:func:`agent.xmpp.writethrough.bypass_tls_buffer`).
    """
    tls = getattr(transport, "protocol", None)
    if isinstance(tls, TLSMemoryBIOProtocol):
        tls.write = types.MethodType(TLSMemoryBIOProtocol.write, tls)  # type: ignore[method-assign]
        bypass_tls_buffer(transport)


@implementer(IDocumentSink)
class _Sink:
    """Where the LDM session writes events; inert once the connection is gone."""

    def __init__(self, protocol: "FrontDoorProtocol") -> None:
        self._protocol: FrontDoorProtocol | None = protocol

    def write_document(self, data: bytes) -> None:
        protocol = self._protocol
        if protocol is not None and protocol.session.ldm_ready:
            protocol.send(data)

    def detach(self) -> None:
        self._protocol = None


@implementer(IPushProducer)
class FrontDoorProtocol(Protocol):
    """One management connection (TCP or Unix socket)."""

    def __init__(self, factory: "FrontDoorFactory") -> None:
        self.factory = factory
        self.session: s.Session
        self._sink = _Sink(self)
        self._ldm = None
        self._timers: dict[str, object] = {}
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._paused = False
        self._gone = False
        self._ignored = 0
        self._lost_waiters: list[Deferred] = []
        self._actions: deque[s.Action] = deque()
        self._performing = False
        self._write: Callable[[bytes], None] = self._transport_write
        # Reactor times of the last bytes in and out: a migration target's keepalive watch
        # reads them (migration.md §9.1).
        self.last_received = self.last_sent = factory.reactor.seconds()

    # -- connection life ------------------------------------------------------------------

    def connectionMade(self) -> None:  # noqa: N802
        factory = self.factory
        if hasattr(self.transport, "setTcpKeepAlive"):
            self.transport.setTcpKeepAlive(True)
        self.session = s.Session(factory.session_config, local=factory.local_identity(self.transport),
                                 tls_available=factory.tls is not None, new_id=factory.new_id)
        self.transport.registerProducer(self, True)
        self._write = writer_for(self.transport) or self._transport_write
        factory.connections.add(self)
        self._later("negotiation", factory.config.negotiation_timeout, self._timed_out)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.session.closed:
            # A TLS close waits for the peer's close_notify; a peer that keeps sending
            # instead (a flood cut off by a stream error) is dropped rather than read on.
            self._ignored += len(data)
            if self._ignored > _AFTER_CLOSE_LIMIT:
                # Stop reading rather than abort: an abort now could discard the stream error
                # still waiting in the write buffer. The close timer aborts later.
                self.transport.pauseProducing()
            return
        self.last_received = self.factory.reactor.seconds()
        self._run(self.session.data_received(data))

    def connectionLost(self, reason: object = None) -> None:  # noqa: N802
        self._gone = True
        for timer in self._timers.values():
            if timer.active():  # type: ignore[attr-defined]
                timer.cancel()  # type: ignore[attr-defined]
        self._timers.clear()
        self._backlog.clear()
        self.session.connection_lost()
        self._sink.detach()
        self.factory.connections.discard(self)
        waiters, self._lost_waiters = self._lost_waiters, []
        ldm, self._ldm = self._ldm, None
        if ldm is not None:
            try:
                ldm.close()
            except Exception:
                _log.failure("LDM session close failed")
        for waiter in waiters:
            waiter.callback(None)

    def when_lost(self) -> Deferred:
        """A Deferred that fires (with None) once this connection is gone."""
        d: Deferred = Deferred()
        if self._gone:
            d.callback(None)
        else:
            self._lost_waiters.append(d)
        return d

    def shutdown(self) -> None:
        """Send ``system-shutdown`` and close (§1.14)."""
        if not self._gone:
            self._run(self.session.shutdown())

    # -- IPushProducer: the transport tells us when its buffer is full --------------------

    def pauseProducing(self) -> None:  # noqa: N802
        self._paused = True

    def resumeProducing(self) -> None:  # noqa: N802
        self._paused = False
        while self._backlog and not self._paused and not self._gone:
            data = self._backlog.popleft()
            self._backlog_bytes -= len(data)
            self._write(data)

    def stopProducing(self) -> None:  # noqa: N802
        self._paused = True

    # -- output ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write one complete element or document in one write, or hold it while paused."""
        if self._gone:
            return
        self.last_sent = self.factory.reactor.seconds()
        if not self._paused and not self._backlog:
            self._write(data)
            return
        config = self.factory.config
        self._backlog.append(data)
        self._backlog_bytes += len(data)
        if (len(self._backlog) > config.max_backlog_documents
                or self._backlog_bytes > config.max_backlog_bytes):
            _log.warn("Disconnecting {peer}: it does not read its output ({n} documents queued)",
                      peer=self.transport.getPeer(), n=len(self._backlog))
            self._backlog.clear()
            self.session.connection_lost()
            self.transport.abortConnection()

    def _transport_write(self, data: bytes) -> None:
        self.transport.write(data)

    # -- actions --------------------------------------------------------------------------

    def _run(self, actions: list[s.Action]) -> None:
        """Perform ``actions`` in order, after any still waiting (never re-entered)."""
        queue = self._actions
        queue.extend(actions)
        if self._performing:
            return
        self._performing = True
        try:
            while queue and not self._gone:
                action = queue.popleft()
                _PERFORM[type(action)](self, action)
        finally:
            self._performing = False
            queue.clear()  # only non-empty when the connection is gone or an action raised

    def _do_Write(self, action: s.Write) -> None:  # noqa: N802
        self.send(action.data)

    def _do_StartTls(self, action: s.StartTls) -> None:  # noqa: N802
        self.transport.startTLS(self.factory.tls)
        keep_documents_apart(self.transport)
        self._write = self._transport_write  # through the TLS layer from now on

    def _do_CheckPassword(self, action: s.CheckPassword) -> None:  # noqa: N802
        d = self.factory.blocking(self.factory.authenticator.check_password,
                                  action.user, action.password)
        d.addCallbacks(self._password_checked, self._password_check_failed)

    def _do_CheckCertificate(self, action: s.CheckCertificate) -> None:  # noqa: N802
        # Synchronous: TLS is up, so the client's certificate (if any) is known by now.
        identity = self.factory.certificate_identity(self.transport)
        self._run(self.session.certificate_checked(identity))

    def _password_checked(self, identity: object) -> None:
        if not self._gone:
            self._run(self.session.password_checked(identity))

    def _password_check_failed(self, failure: object) -> None:
        # The failure may carry the credentials in its frames: log only its type.
        _log.error("Password check failed: {kind}", kind=getattr(failure, "type", None))
        if not self._gone:
            self._run(self.session.password_check_failed())

    def _do_Wait(self, action: s.Wait) -> None:  # noqa: N802
        self._later("wake", action.seconds, lambda: self._run(self.session.wake()))

    def _do_OpenLdm(self, action: s.OpenLdm) -> None:  # noqa: N802
        self._ldm = self.factory.service.open_session(action.identity, self._sink)

    def _do_Dispatch(self, action: s.Dispatch) -> None:  # noqa: N802
        try:
            answer = self._ldm.handle_element(action.raw)  # type: ignore[union-attr]
        except Exception:
            self._not_answered(Failure())
            return
        # Tested as bytes first: an isinstance check against Deferred (an ABC) costs more.
        if isinstance(answer, bytes):  # answered at once: respond in this reactor turn
            self._answered(answer)
        elif isinstance(answer, Deferred):
            answer.addCallbacks(self._answered, self._not_answered)
        else:
            self._not_answered(Failure(TypeError(
                f"handle_element returned {type(answer).__name__}, not bytes or a Deferred")))

    def _answered(self, data: bytes) -> None:
        if not self._gone:
            self._run(self.session.response_ready(data))

    def _not_answered(self, failure: object) -> None:
        # Without a response the one-answer-per-request rule cannot hold: end the session.
        _log.failure("LDM request failed without a response", failure)
        if not self._gone:
            self.session.connection_lost()
            self._do_Abort(s.Abort())

    def _do_NegotiationDone(self, action: s.NegotiationDone) -> None:  # noqa: N802
        timer = self._timers.pop("negotiation", None)
        if timer is not None and timer.active():  # type: ignore[attr-defined]
            timer.cancel()  # type: ignore[attr-defined]

    def _do_PauseReading(self, action: s.PauseReading) -> None:  # noqa: N802
        self.transport.pauseProducing()

    def _do_ResumeReading(self, action: s.ResumeReading) -> None:  # noqa: N802
        self.transport.resumeProducing()

    def _do_Close(self, action: s.Close) -> None:  # noqa: N802
        while self._backlog:  # the transport buffers the rest; the backlog bound still held
            self.transport.write(self._backlog.popleft())
        self._backlog_bytes = 0
        # A registered producer would hold TLS close_notify back until it is unregistered.
        self.transport.unregisterProducer()
        self.transport.loseConnection()
        self._later("close", self.factory.config.close_timeout, self.transport.abortConnection)

    def _do_Abort(self, action: s.Abort) -> None:  # noqa: N802
        self.transport.abortConnection()

    # -- timers ---------------------------------------------------------------------------

    def _later(self, name: str, seconds: float, call: object) -> None:
        self._timers[name] = self.factory.reactor.callLater(seconds, self._fire, name, call)

    def _fire(self, name: str, call: object) -> None:
        self._timers.pop(name, None)
        if not self._gone:
            call()  # type: ignore[operator]

    def _timed_out(self) -> None:
        self._run(self.session.timed_out())


# How each session action is performed (one lookup per action on the request path).
_PERFORM: dict[type, Callable[[FrontDoorProtocol, s.Action], None]] = {
    action: getattr(FrontDoorProtocol, "_do_" + action.__name__) for action in get_args(s.Action)
}
