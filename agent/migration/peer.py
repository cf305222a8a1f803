"""The control channel: a Twisted client of another agent's XML interface (spec migration.md §4.1).

It opens TCP, sends the stream header, upgrades with STARTTLS (TLS 1.2 or later), checks
the target's certificate (:class:`~agent.migration.peertrust.PeerTrust`, §4.4) before any
credential leaves, and authenticates with SASL PLAIN (the operator's user and password, or
``migration/<id>`` and the resolution token when resolving, §4.2) or, in certificate mode,
with SASL EXTERNAL after presenting this agent's certificate (§4.1). After that it sends one
request document at a time and hands back each response; events the target might send are ignored. The reactor
never blocks: every step is driven by ``dataReceived``.

The password is held only until the SASL message is written and is never logged.
"""

from __future__ import annotations

import base64
import re
from collections import deque

from twisted.internet import defer, protocol, ssl
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.logger import Logger

from agent.migration.keepalive import Keepalive, watch
from agent.migration.messages import (auth_failed, certificate_not_trusted_by, connect_failed,
                                      lost)
from agent.xmpp.tls import peer_certificate_der

log = Logger()

_HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
           b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
_STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
_FEATURES_END = b"</stream:features>"
_DOCUMENT = re.compile(rb"</(LDM_interface|LDM_event)>")
_STREAM_ERROR = re.compile(rb"<stream:error>")
_EXTERNAL = b"<mechanism>EXTERNAL</mechanism>"


class PeerError(Exception):
    """The control channel could not be opened, or broke; the message is the operator's line."""


class ControlProtocol(protocol.Protocol):
    """One authenticated session with the target agent."""

    def __init__(self, host: str, user: str, password: str, reactor=None,
                 keepalive: tuple[float, int] | None = None, *, port: int | None = None,
                 trust=None, cert_mode: bool = False) -> None:
        self.host = host
        self.port = port
        self.reactor = reactor
        # PeerTrust (None: the target's certificate is not checked); cert_mode: -c (§4.1).
        self.trust = trust
        self.cert_mode = cert_mode
        self._target_der: bytes | None = None
        # (migration_keepalive_interval, migration_keepalive_count), §9.1; None: no keepalives.
        self._keepalive_config = keepalive
        self.keepalive: Keepalive | None = None
        self._keepalive_loop = None
        self._credentials: tuple[str, str] | None = (user, password)
        self._buffer = b""
        self._step = "features"
        self._pending: deque[defer.Deferred] = deque()
        self.ready: defer.Deferred = defer.Deferred()
        self.closed: defer.Deferred = defer.Deferred()
        self._is_closed = False

    # -- negotiation ----------------------------------------------------------------------
    def connectionMade(self) -> None:
        self.transport.write(_HEADER)

    def dataReceived(self, data: bytes) -> None:
        if self.keepalive is not None:
            self.keepalive.received(self.reactor.seconds())
        self._buffer += data
        if _STREAM_ERROR.search(self._buffer):
            self._fail(PeerError(self._auth_refused() if self._step == "auth"
                                 else lost(self.host)))
            return
        progressed = True
        while progressed and not self._is_closed:
            progressed = getattr(self, "_on_" + self._step)()

    def _take_through(self, marker: bytes) -> bool:
        index = self._buffer.find(marker)
        if index < 0:
            return False
        self._buffer = self._buffer[index + len(marker):]
        return True

    def _on_features(self) -> bool:
        if not self._take_through(_FEATURES_END):
            return False
        self.transport.write(_STARTTLS)
        self._step = "proceed"
        return True

    def _on_proceed(self) -> bool:
        if not self._take_through(b"<proceed"):
            return False
        self._take_through(b"/>")
        self.transport.startTLS(self._tls_options())
        self.transport.write(_HEADER)
        self._step = "tls_features"
        return True

    def _tls_options(self) -> ssl.CertificateOptions:
        if not self.cert_mode:
            return ssl.CertificateOptions(raiseMinimumTo=ssl.TLSVersion.TLSv1_2)
        with open(self.trust.cert_file, "rb") as cert, open(self.trust.key_file, "rb") as key:
            own = ssl.PrivateCertificate.loadPEM(cert.read() + b"\n" + key.read())
        return ssl.CertificateOptions(privateKey=own.privateKey.original,
                                      certificate=own.original,
                                      raiseMinimumTo=ssl.TLSVersion.TLSv1_2)

    def _on_tls_features(self) -> bool:
        end = self._buffer.find(_FEATURES_END)
        if end < 0:
            return False
        features = self._buffer[:end]
        self._buffer = self._buffer[end + len(_FEATURES_END):]
        # The target must be the one we trust before any credential is written (§4.4).
        self._target_der = peer_certificate_der(self.transport)
        if self.trust is not None:
            refusal = self.trust.check(self.host, self.port, self._target_der, self.cert_mode)
            if refusal:
                self._credentials = None
                self._fail(PeerError(refusal))
                return False
        if self.cert_mode:
            if _EXTERNAL not in features:  # offered only to a trusted client certificate
                self._fail(PeerError(certificate_not_trusted_by(self.host)))
                return False
            self.transport.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                                 b"mechanism='EXTERNAL'>=</auth>")
            self._step = "auth"
            return True
        user, password = self._credentials or ("", "")
        self._credentials = None  # the password is not kept once it is on its way (§4.2)
        payload = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        self.transport.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                             + payload + b"</auth>")
        self._step = "auth"
        return True

    def _on_auth(self) -> bool:
        if b"<failure" in self._buffer:
            self._fail(PeerError(self._auth_refused()))
            return False
        if not self._take_through(b"<success"):
            return False
        self._take_through(b"/>")
        if self.trust is not None:
            self.trust.authenticated(self.host, self.port, self._target_der, self.cert_mode)
        self.transport.write(_HEADER)
        self._step = "bound_features"
        return True

    def _auth_refused(self) -> str:
        return certificate_not_trusted_by(self.host) if self.cert_mode else auth_failed(self.host)

    def _on_bound_features(self) -> bool:
        if not self._take_through(_FEATURES_END):
            return False
        self._step = "documents"
        self._start_keepalive()
        self.ready.callback(self)
        return True

    # -- keepalives (§9.1) ----------------------------------------------------------------
    def _start_keepalive(self) -> None:
        if self._keepalive_config is None or self.reactor is None:
            return
        interval, count = self._keepalive_config
        self.keepalive = Keepalive(interval, count, self.reactor.seconds())
        self._keepalive_loop = watch(self.reactor, self.keepalive, self.transport.write,
                                     self._silent)

    def _silent(self) -> None:
        """Nothing from the target for interval × count: the peer is lost (§9.1)."""
        log.warn("no traffic from {host} for {s} s: control channel declared lost",
                 host=self.host, s=self.keepalive.silence_limit)
        self.transport.abortConnection()

    def _stop_keepalive(self) -> None:
        loop, self._keepalive_loop = self._keepalive_loop, None
        if loop is not None and loop.running:
            loop.stop()

    # -- documents ------------------------------------------------------------------------
    def _on_documents(self) -> bool:
        self._buffer = self._buffer.lstrip()  # keepalives between documents (§9.1)
        match = _DOCUMENT.search(self._buffer)
        if match is None:
            return False
        end = match.end()
        start = self._buffer.find(b"<" + match.group(1), 0, end)
        document, self._buffer = self._buffer[start:end], self._buffer[end:]
        if match.group(1) == b"LDM_interface" and self._pending:
            self._pending.popleft().callback(document)
        return True

    def request(self, document: bytes) -> defer.Deferred:
        """Send one request; the Deferred fires with the response document's bytes."""
        if self._is_closed:
            return defer.fail(PeerError(lost(self.host)))
        d: defer.Deferred = defer.Deferred()
        self._pending.append(d)
        self.transport.write(document)
        if self.keepalive is not None:
            self.keepalive.sent(self.reactor.seconds())  # a request is traffic too
        return d

    def close(self) -> None:
        if not self._is_closed:
            self.transport.write(b"</stream:stream>")
            self.transport.loseConnection()

    def abort(self) -> None:
        """Drop the connection at once (fault injection: a cut control channel)."""
        self.transport.abortConnection()

    # -- the end ----------------------------------------------------------------------------
    def _fail(self, error: Exception) -> None:
        if not self.ready.called:
            self.ready.errback(error)
        self.transport.abortConnection()

    def connectionLost(self, reason) -> None:
        self._is_closed = True
        self._stop_keepalive()
        error = PeerError(lost(self.host))
        if not self.ready.called:
            self.ready.errback(PeerError(connect_failed(self.host)) if self._step == "features"
                               else error)
        while self._pending:
            self._pending.popleft().errback(error)
        self.closed.callback(None)


class _Factory(protocol.ClientFactory):
    def __init__(self, host: str, user: str, password: str, reactor=None,
                 keepalive: tuple[float, int] | None = None, **tls) -> None:
        self.host, self.user, self.password = host, user, password
        self.reactor, self.keepalive = reactor, keepalive
        self.tls = tls  # port, trust, cert_mode for ControlProtocol
        self.ready: defer.Deferred = defer.Deferred()

    def buildProtocol(self, addr) -> ControlProtocol:
        proto = ControlProtocol(self.host, self.user, self.password, self.reactor,
                                self.keepalive, **self.tls)
        self.password = ""
        proto.factory = self
        proto.ready.chainDeferred(self.ready)
        return proto

    def clientConnectionFailed(self, connector, reason) -> None:
        message = connect_failed(self.host)
        if reason.check(DNSLookupError):
            message = f"Unable to resolve target host {self.host}"
        elif not reason.check(ConnectError):
            log.info("control connection to {host} failed: {why}", host=self.host,
                     why=reason.getErrorMessage())
        if not self.ready.called:
            self.ready.errback(PeerError(message))


def open_control(reactor, host: str, port: int, user: str | None, password: str | None,
                 timeout: float = 30.0,
                 keepalive: tuple[float, int] | None = None, *, trust=None,
                 cert_mode: bool = False) -> defer.Deferred:
    """Connect, STARTTLS, authenticate; fire with a ready :class:`ControlProtocol`.

    With ``keepalive`` = (interval, count) the channel sends a keepalive after each silent
    interval and drops itself after interval × count without traffic from the target (§9.1).
    ``trust`` (a :class:`~agent.migration.peertrust.PeerTrust`) checks the target's
    certificate; ``cert_mode`` presents this agent's certificate and uses SASL EXTERNAL
    instead of ``user`` and ``password`` (§4.1; it needs ``trust``).
    """
    if cert_mode and trust is None:
        raise ValueError("certificate mode needs this agent's certificate (PeerTrust)")
    factory = _Factory(host, user or "", password or "", reactor, keepalive, port=port,
                       trust=trust, cert_mode=cert_mode)
    reactor.connectTCP(host, port, factory, timeout=timeout)
    d = factory.ready
    d.addTimeout(timeout, reactor, onTimeoutCancel=lambda *a: PeerError(connect_failed(host)))
    return d
