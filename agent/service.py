"""The LDM service behind the front door: decode, dispatch, encode, and the event bus.

The front door (``agent.xmpp``) opens one :class:`LdmSession` per authenticated peer and hands
it every top-level element; the session answers with the bytes of one response document.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from agent import faults
from agent.actions.dispatch import execute
from agent.actions.handlers import HANDLERS
from agent.actions.handlers import migration as migration_handlers
from agent.auth.identity import Identity
from agent.events import EventBus
from agent.xmlapi.decode import decode_request
from agent.xmlapi.encode import encode_event, encode_response
from agent.xmlapi.model import Event, Response
from agent.xmpp.api import IDocumentSink, ILdmService, ILdmSession

log = Logger()


@implementer(ILdmService)
class LdmService:
    """Opens sessions; owns the event bus and what handlers need of the agent."""

    def __init__(self, *, server_name: str, max_document_bytes: int = 1 << 20,
                 handlers=None, manager=None) -> None:
        self.server_name = server_name
        self.max_document_bytes = max_document_bytes
        self.handlers = HANDLERS if handlers is None else handlers
        self.manager = manager
        self.bus = EventBus(encode_event)
        self.migrations = None  # agent.migration.coordinator.Migrations, once wired

    def open_session(self, identity: Identity, sink: IDocumentSink) -> "LdmSession":
        session = LdmSession(self, identity, sink)
        self.bus.attach(session)
        return session


@implementer(ILdmSession)
class LdmSession:
    """One peer's session: its identity, its event switches and its requests."""

    def __init__(self, service: LdmService, identity: Identity, sink: IDocumentSink) -> None:
        self.service = service
        self.identity = identity
        self.sink = sink
        self.switches: set[str] = set()
        self.closed = False

    # -- what handlers use ----------------------------------------------------------------
    @property
    def manager(self):
        return self.service.manager

    @property
    def server_name(self) -> str:
        return self.service.server_name

    @property
    def migrations(self):
        """The migration coordinator (None until the migration room is wired in)."""
        return self.service.migrations

    def emit(self, event: Event) -> None:
        self.service.bus.publish(event)

    # -- what the bus uses ------------------------------------------------------------------
    def deliver(self, document: bytes) -> None:
        if not self.closed:
            self.sink.write_document(document)

    # -- ILdmSession ------------------------------------------------------------------------
    def handle_element(self, raw: bytes) -> bytes | defer.Deferred:
        decoded = decode_request(raw, max_bytes=self.service.max_document_bytes)
        if not migration_handlers.answers_later(decoded):
            return self.answer_decoded(decoded)  # the front door writes it in this turn
        # migrate-domain answers when the migration ends (C171); the front door waits.
        d = migration_handlers.answer_later(decoded, self)
        d.addErrback(self._internal_error, decoded)
        return d.addCallback(encode_response)

    def _internal_error(self, failure, decoded) -> Response:
        log.failure("internal error while answering a request from {user}", failure,
                    user=self.identity.name)
        return Response(getattr(decoded, "version", "1.0"),
                        error="Internal error in ldmx while processing the request; see the agent log")

    def answer(self, raw: bytes) -> bytes:
        """Answer one top-level element synchronously (also used by benchmarks)."""
        return self.answer_decoded(decode_request(raw, max_bytes=self.service.max_document_bytes))

    def answer_decoded(self, decoded) -> bytes:
        try:
            response = execute(decoded, self, self.service.handlers)
        except Exception:
            # A bug must not take the session down: answer a document failure and log it.
            log.failure("internal error while answering a request from {user}",
                        user=self.identity.name)
            response = Response(getattr(decoded, "version", "1.0"),
                                error="Internal error in ldmx while processing the request; see the agent log")
        # The point between "changes committed" and "answer written" (durability tests).
        for command in response.commands:
            faults.crash_point("after-apply", command.command.action or "")
        return encode_response(response)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.service.bus.detach(self)
            if self.service.migrations is not None:
                self.service.migrations.session_closed(self)
