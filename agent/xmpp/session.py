"""The per-connection XMPP negotiation state machine (spec ldm-xml §1.2–§1.14). Sans-IO.

A :class:`Session` is fed inputs (received bytes, the outcome of a password check, the end of a
delay, an LDM response, a timeout) and answers each with a list of actions for the shell to
perform in order: :class:`Write` (one transport write), :class:`StartTls`, :class:`CheckPassword`,
:class:`CheckCertificate`, :class:`Wait`, :class:`OpenLdm`, :class:`Dispatch`,
:class:`NegotiationDone`, :class:`PauseReading`/:class:`ResumeReading`, :class:`Close` and
:class:`Abort`. It never touches sockets, threads or clocks.

Which element is allowed in which state is the table :data:`RULES`.

SASL ``EXTERNAL`` (migration.md §4.1, M36): with ``SessionConfig.client_certificates`` a
session asks the shell, once TLS is up, whether the client presented a certificate of
the migration trust store (:class:`CheckCertificate`). Only then is ``EXTERNAL`` offered
next to ``PLAIN``, and it authenticates as the identity the shell reported (a migration
peer); for anyone else ``EXTERNAL`` is an unknown mechanism.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from agent.auth.identity import Identity
from agent.xmpp import wire
from agent.xmpp.reader import (NEED_DATA, Element, Header, Node, StreamEnd, StreamFault,
                               StreamReader)
from agent.xmpp.sasl import PlainError, decode_plain

# States of §1.2. TLS_HANDSHAKE is left at once: the shell switches the transport to TLS
# before it reads another byte, and the first bytes it then delivers are the restarted header.
WAIT_HEADER = "WAIT_HEADER"
PLAIN = "PLAIN"
TLS_WAIT_HEADER = "TLS_WAIT_HEADER"
TLS = "TLS"
SASL = "SASL"
AUTH_CHECK = "AUTH_CHECK"  # a password is being checked (off the reactor thread)
AUTH_DELAY = "AUTH_DELAY"  # a failure is being held back by the failure delay
CERT_CHECK = "CERT_CHECK"  # the shell looks the client certificate up (after TLS)
SASL_WAIT_HEADER = "SASL_WAIT_HEADER"
READY = "READY"
CLOSED = "CLOSED"

_STANZAS = frozenset({"starttls", "auth", "response", "abort", "iq", "presence", "message"})

# state -> element local name -> method name; "*" is every other name (LDM documents).
RULES: dict[str, dict[str, str]] = {
    PLAIN: {"starttls": "_starttls", "*": "_policy_violation"},
    TLS: {
        "starttls": "_policy_violation",
        "auth": "_auth",
        "response": "_policy_violation",
        "abort": "_policy_violation",
        "iq": "_iq_before_auth",
        "presence": "_ignore_before_auth",
        "message": "_ignore_before_auth",
        "*": "_document_before_auth",
    },
    SASL: {"response": "_response", "abort": "_sasl_abort", "*": "_policy_violation"},
    READY: {
        "starttls": "_policy_violation",
        "auth": "_policy_violation",
        "response": "_policy_violation",
        "abort": "_policy_violation",
        "iq": "_iq",
        "presence": "_ignore",
        "message": "_ignore",
        "*": "_document",
    },
}

_NEGOTIATING = frozenset({WAIT_HEADER, PLAIN, TLS_WAIT_HEADER, TLS, SASL, AUTH_CHECK,
                          AUTH_DELAY, SASL_WAIT_HEADER, CERT_CHECK})


@dataclass(frozen=True)
class Write:
    """Hand ``data`` to the transport in exactly one write."""

    data: bytes


@dataclass(frozen=True)
class StartTls:
    """Switch the transport to TLS now, before reading any further byte."""


@dataclass(frozen=True)
class CheckPassword:
    """Check these credentials; report with :meth:`Session.password_checked`."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class CheckCertificate:
    """Look up the client's TLS certificate; report with :meth:`Session.certificate_checked`."""


@dataclass(frozen=True)
class Wait:
    """Call :meth:`Session.wake` after ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class OpenLdm:
    """Open the LDM session for this identity (once per connection)."""

    identity: Identity


@dataclass(frozen=True)
class Dispatch:
    """Hand this element to the LDM session; report the answer with :meth:`Session.response_ready`."""

    raw: bytes


@dataclass(frozen=True)
class NegotiationDone:
    """Negotiation finished in time: cancel the negotiation timeout."""


@dataclass(frozen=True)
class PauseReading:
    """Too many requests are waiting: stop reading from the transport."""


@dataclass(frozen=True)
class ResumeReading:
    """Requests have drained: read again."""


@dataclass(frozen=True)
class Close:
    """Close the connection gracefully after the pending writes (TLS close_notify first)."""


@dataclass(frozen=True)
class Abort:
    """Drop the connection at once, without a reply."""


Action = (Write | StartTls | CheckPassword | CheckCertificate | Wait | OpenLdm | Dispatch
          | NegotiationDone | PauseReading | ResumeReading | Close | Abort)


@dataclass(frozen=True)
class SessionConfig:
    """Limits and names of one session (defaults from §1.8 and §1.13)."""

    server_name: str
    pre_auth_limit: int = 16 * 1024
    document_limit: int = 1024 * 1024
    max_depth: int = 32
    failure_delay: float = 1.0
    max_failures: int = 3
    max_queued_requests: int = 32
    client_certificates: bool = False  # offer EXTERNAL to trusted client certificates


def _random_id() -> str:
    return secrets.token_hex(8)


class Session:
    """One connection's negotiation, authentication and request ordering.

    ``local`` is the identity of a local peer (§1.10) or None for a remote one;
    ``tls_available`` is false when no certificate could be loaded (§1.5);
    ``new_id`` returns 16 lowercase hex characters for each stream header (and generated
    resources); it defaults to :mod:`secrets`.
    """

    def __init__(self, config: SessionConfig, *, local: Identity | None = None,
                 tls_available: bool = True, new_id: Callable[[], str] = _random_id) -> None:
        self.config = config
        self.local = local
        self.identity: Identity | None = local
        self.tls_available = tls_available
        self._new_id = new_id
        self.state = WAIT_HEADER
        self._out: list[Action] = []
        self._reader = self._new_reader()
        self._header_sent = False
        self._bound = False
        self._failures = 0
        self._held_failure = ""
        self._certificate: Identity | None = None  # a trusted client certificate's identity
        self._mechanism = ""
        self._ldm_open = False
        self._requests: deque[bytes] = deque()
        self._running = False
        self._reading_paused = False

    # -- inputs ---------------------------------------------------------------------------

    def data_received(self, data: bytes) -> list[Action]:
        """Bytes from the peer (plaintext before STARTTLS, decrypted after)."""
        if self.state != CLOSED:
            self._reader.feed(data)
            self._pump()
        return self._flush()

    def password_checked(self, identity: Identity | None) -> list[Action]:
        """The outcome of a :class:`CheckPassword`: the user's identity, or None."""
        if self.state == AUTH_CHECK:
            if identity is None:
                self._fail("not-authorized")
            else:
                self._succeed(identity)
        return self._flush()

    def certificate_checked(self, identity: Identity | None) -> list[Action]:
        """The outcome of a :class:`CheckCertificate`: the migration-peer identity of a
        trusted client certificate, or None (no certificate, or one not trusted)."""
        if self.state == CERT_CHECK:
            self._certificate = identity
            self._tls_features()
            self._pump()
        return self._flush()

    def password_check_failed(self) -> list[Action]:
        """The authentication back end could not answer."""
        if self.state == AUTH_CHECK:
            self._fail("temporary-auth-failure", counts=False)
        return self._flush()

    def wake(self) -> list[Action]:
        """A :class:`Wait` has elapsed: send the held-back SASL failure."""
        if self.state == AUTH_DELAY:
            if self._failures >= self.config.max_failures:
                self._stream_error("not-authorized")
            else:
                self._write(wire.sasl_failure(self._held_failure))
                self.state = TLS
                self._pump()
        return self._flush()

    def response_ready(self, data: bytes) -> list[Action]:
        """The LDM session answered the element of the last :class:`Dispatch`."""
        self._running = False
        if self.state != CLOSED:  # after a close, responses are discarded (§1.14)
            self._write(data)
            self._dispatch_next()
            self._pump()
        return self._flush()

    def timed_out(self) -> list[Action]:
        """The negotiation timeout expired."""
        if self.state in _NEGOTIATING:
            self._stream_error("connection-timeout")
        return self._flush()

    def shutdown(self) -> list[Action]:
        """The agent is stopping."""
        if self.state != CLOSED:
            self._stream_error("system-shutdown")
        return self._flush()

    def connection_lost(self) -> None:
        """The transport is gone; nothing more will be written."""
        self.state = CLOSED
        self._requests.clear()

    @property
    def closed(self) -> bool:
        """True once the session has ended or is ending (nothing more may be written)."""
        return self.state == CLOSED

    @property
    def ldm_ready(self) -> bool:
        """True when LDM documents (and events) may flow."""
        return self.state == READY

    # -- machinery ------------------------------------------------------------------------

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _write(self, data: bytes) -> None:
        self._out.append(Write(data))

    def _new_reader(self) -> StreamReader:
        authenticated = self.state in (READY, SASL_WAIT_HEADER)
        limit = self.config.document_limit if authenticated else self.config.pre_auth_limit
        return StreamReader(max_element=limit, max_depth=self.config.max_depth,
                            stanza_names=_STANZAS)

    def _restart_stream(self, state: str) -> None:
        self.state = state
        self._reader = self._new_reader()
        self._header_sent = False
        self._bound = False

    def _pump(self) -> None:
        while self.state in RULES or self.state in (WAIT_HEADER, TLS_WAIT_HEADER,
                                                    SASL_WAIT_HEADER):
            if len(self._requests) >= self.config.max_queued_requests:
                if not self._reading_paused:
                    self._reading_paused = True
                    self._out.append(PauseReading())
                return
            if self._reading_paused:
                self._reading_paused = False
                self._out.append(ResumeReading())
            try:
                event = self._reader.next_event()
            except StreamFault as fault:
                self._stream_error(fault.condition)
                return
            if event is NEED_DATA:
                return
            if isinstance(event, Header):
                self._header()
            elif isinstance(event, StreamEnd):
                self._stream_end()
            elif isinstance(event, Element):
                self._element(event)

    def _send_header(self) -> None:
        self._write(wire.stream_header(self._new_id(), self.config.server_name))
        self._header_sent = True

    def _header(self) -> None:
        if self.state == WAIT_HEADER:
            self._send_header()
            self._write(wire.FEATURES_PRE_TLS)
            self.state = PLAIN
        elif self.state == TLS_WAIT_HEADER and self.config.client_certificates:
            self.state = CERT_CHECK  # the pump stops until certificate_checked()
            self._out.append(CheckCertificate())
        elif self.state == TLS_WAIT_HEADER:
            self._tls_features()
        elif self.state == SASL_WAIT_HEADER:
            self._send_header()
            self._write(wire.FEATURES_BOUND)
            self.state = READY
            self._out.append(NegotiationDone())

    def _tls_features(self) -> None:
        """The header and features after STARTTLS; EXTERNAL only for a trusted certificate."""
        self._send_header()
        external = self._certificate is not None
        if self.local is not None:
            self._write(wire.FEATURES_LOCAL_EXTERNAL if external else wire.FEATURES_LOCAL)
        else:
            self._write(wire.FEATURES_REMOTE_EXTERNAL if external else wire.FEATURES_REMOTE)
        self.state = TLS
        if self.local is not None:
            self._reader.max_element = self.config.document_limit
            self._out.append(NegotiationDone())

    def _element(self, element: Element) -> None:
        rules = RULES.get(self.state)
        if rules is None:  # a restarted stream must start with a header
            self._stream_error("bad-format")
            return
        getattr(self, rules.get(element.local, rules["*"]))(element)

    def _stream_end(self) -> None:
        self._write(wire.STREAM_CLOSE)
        self._out.append(Close())
        self.state = CLOSED
        self._requests.clear()

    def _stream_error(self, condition: str) -> None:
        header = b""
        if not self._header_sent:
            header = wire.stream_header(self._new_id(), self.config.server_name)
        self._write(header + wire.stream_error(condition))
        self._out.append(Close())
        self.state = CLOSED
        self._requests.clear()

    def _abort(self) -> None:
        self._out.append(Abort())
        self.state = CLOSED
        self._requests.clear()

    # -- element rules --------------------------------------------------------------------

    def _policy_violation(self, element: Element) -> None:
        self._stream_error("policy-violation")

    def _ignore(self, element: Element) -> None:
        pass

    def _starttls(self, element: Element) -> None:
        if self._reader.pending():  # pipelined plaintext is never trusted (§1.5)
            self._abort()
            return
        if not self.tls_available:
            self._stream_error("internal-server-error")
            return
        self._write(wire.PROCEED)
        self._out.append(StartTls())
        self._restart_stream(TLS_WAIT_HEADER)

    def _auth(self, element: Element) -> None:
        assert element.tree is not None
        mechanism = element.tree.attrs.get("mechanism")
        if mechanism == "EXTERNAL" and self._certificate is not None:
            self._mechanism = mechanism
        elif mechanism != "PLAIN":
            self._fail("invalid-mechanism")
            return
        else:
            self._mechanism = mechanism
        if element.tree.text.strip():
            self._respond(element.tree.text)
        else:
            self._write(wire.CHALLENGE)
            self.state = SASL

    def _response(self, element: Element) -> None:
        assert element.tree is not None
        self._respond(element.tree.text)

    def _respond(self, text: str) -> None:
        if self._mechanism == "EXTERNAL":
            self._external(text)
        else:
            self._check(text)

    def _external(self, text: str) -> None:
        """EXTERNAL's message is the authzid: only the empty one ('=' or nothing) is accepted."""
        if text.strip() not in ("", "="):
            self._fail("invalid-authzid")
            return
        assert self._certificate is not None
        self._succeed(self._certificate)

    def _sasl_abort(self, element: Element) -> None:
        self._fail("aborted")

    def _check(self, text: str) -> None:
        try:
            credentials = decode_plain(text)
        except PlainError as error:
            self._fail(error.condition)
            return
        self.state = AUTH_CHECK
        self._out.append(CheckPassword(credentials.user, credentials.password))

    def _fail(self, condition: str, counts: bool = True) -> None:
        if counts:
            self._failures += 1
        self._held_failure = condition
        self.state = AUTH_DELAY
        self._out.append(Wait(self.config.failure_delay))

    def _succeed(self, identity: Identity) -> None:
        if self._reader.pending():  # bytes after </auth> before the restart (§1.8)
            self._abort()
            return
        self._write(wire.SUCCESS)
        self.identity = identity
        self._failures = 0
        self._restart_stream(SASL_WAIT_HEADER)

    def _iq_before_auth(self, element: Element) -> None:
        if self.local is None:
            self._stream_error("not-authorized")
            return
        self._iq(element)

    def _ignore_before_auth(self, element: Element) -> None:
        if self.local is None:
            self._stream_error("not-authorized")

    def _document_before_auth(self, element: Element) -> None:
        if self.local is None:
            self._stream_error("not-authorized")
            return
        self.state = READY
        self._document(element)

    def _document(self, element: Element) -> None:
        if not self._ldm_open:
            assert self.identity is not None
            self._ldm_open = True
            self._out.append(OpenLdm(self.identity))
        self._requests.append(element.raw)
        self._dispatch_next()

    def _dispatch_next(self) -> None:
        if not self._running and self._requests:
            self._running = True
            self._out.append(Dispatch(self._requests.popleft()))

    def _iq(self, element: Element) -> None:
        tree = element.tree
        assert tree is not None
        kind = tree.attrs.get("type")
        iq_id = tree.attrs.get("id", "")
        if kind not in ("get", "set"):
            return  # results and errors get no reply
        payload = tree.children[0].local if tree.children else ""
        if kind == "set" and payload == "bind":
            self.state = READY
            self._bind(iq_id, tree.children[0].child("resource"))
        elif (kind, payload) in (("set", "session"), ("get", "ping")):
            self._write(wire.iq_result(iq_id))
        else:
            self._write(wire.iq_error(iq_id, "service-unavailable"))

    def _bind(self, iq_id: str, resource_node: Node | None) -> None:
        if self._bound:
            self._write(wire.iq_error(iq_id, "not-allowed"))
            return
        assert self.identity is not None
        resource = resource_node.text.strip() if resource_node is not None else ""
        if not resource:
            resource = self._new_id()
        self._bound = True
        jid = f"{self.identity.name}@{self.config.server_name}/{resource}"
        self._write(wire.iq_bind_result(iq_id, jid))
