"""The factory the daemon listens with, on TCP and on the Unix socket (spec ldm-xml §1.1).

Use :func:`build_factory`; the same factory object may serve several endpoints.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any, Callable

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from agent.auth.identity import Identity
from agent.xmpp import localpeer
from agent.xmpp.protocol import FrontDoorProtocol
from agent.xmpp.session import SessionConfig
from agent.xmpp.tls import ServerTls, TlsMaterial, peer_certificate_der

_log = Logger()


@dataclass(frozen=True)
class FrontDoorConfig:
    """Tunables of the front door (defaults from spec ldm-xml §1.8, §1.13)."""

    pre_auth_limit: int = 16 * 1024
    document_limit: int = 1024 * 1024
    max_depth: int = 32
    negotiation_timeout: float = 60.0
    failure_delay: float = 1.0
    max_failures: int = 3
    max_queued_requests: int = 32
    max_backlog_documents: int = 1024
    max_backlog_bytes: int = 8 * 1024 * 1024
    close_timeout: float = 10.0
    client_certificates: bool = False  # SASL EXTERNAL for trusted client certificates


class FrontDoorFactory(Factory):
    """Builds one :class:`FrontDoorProtocol` per accepted connection and tracks them."""

    protocol = FrontDoorProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(self, *, service: Any, authenticator: Any, tls: ServerTls | None,
                 server_name: str, reactor: Any, config: FrontDoorConfig,
                 new_id: Callable[[], str], peer_uid: Callable[[Any], int | None],
                 blocking: Callable[..., Deferred]) -> None:
        self.service = service
        self.authenticator = authenticator
        self.tls = tls
        self.reactor = reactor
        self.config = config
        self.new_id = new_id
        self.peer_uid = peer_uid
        self.blocking = blocking
        self.connections: set[FrontDoorProtocol] = set()
        self.session_config = SessionConfig(
            server_name=server_name,
            pre_auth_limit=config.pre_auth_limit,
            document_limit=config.document_limit,
            max_depth=config.max_depth,
            failure_delay=config.failure_delay,
            max_failures=config.max_failures,
            max_queued_requests=config.max_queued_requests,
            client_certificates=config.client_certificates,
        )

    def buildProtocol(self, addr: Any) -> FrontDoorProtocol:  # noqa: N802
        return FrontDoorProtocol(self)

    def local_identity(self, transport: Any) -> Identity | None:
        """The identity of a local peer on this transport, or None for a remote one (§1.10)."""
        uid = self.peer_uid(transport)
        if uid is None:
            return None
        return self.authenticator.local_identity(uid)

    def certificate_identity(self, transport: Any) -> Identity | None:
        """The migration-peer identity of the client certificate on this TLS transport, or
        None when there is none or it is not in the trust store (migration.md §4.1)."""
        der = peer_certificate_der(transport)
        if der is None:
            return None
        identity = self.authenticator.certificate_identity(der)
        if identity is None:
            _log.info("client certificate from {peer} is not in the migration trust store",
                      peer=transport.getPeer())
        else:
            _log.info("trusted client certificate from {peer}: {name}", peer=transport.getPeer(),
                      name=identity.name)
        return identity

    def shutdown(self) -> Deferred:
        """Send ``system-shutdown`` to every session; fires when all connections are gone."""
        waits = []
        for connection in list(self.connections):
            waits.append(connection.when_lost())
            connection.shutdown()
        return DeferredList(waits)


def build_factory(service: Any, authenticator: Any, tls: TlsMaterial | None, server_name: str,
                  *, reactor: Any, config: FrontDoorConfig = FrontDoorConfig(),
                  new_id: Callable[[], str] | None = None,
                  peer_uid: Callable[[Any], int | None] | None = None,
                  blocking: Callable[..., Deferred] | None = None,
                  client_certificates: bool = False) -> FrontDoorFactory:
    """Build the front door's factory for the TCP and Unix-socket endpoints.

    ``service`` provides ``ILdmService`` and ``authenticator`` ``IAuthenticator``. When
    ``tls`` is None or unusable, ``<starttls/>`` is answered with ``internal-server-error``.
    ``new_id`` (stream ids), ``peer_uid`` (local-peer detection) and ``blocking`` (how a
    password check runs off the reactor thread; default: the reactor's thread pool) exist for
    tests. With ``client_certificates`` (``authenticator`` then provides
    ``certificate_identity``) a client certificate of the migration trust store is offered SASL
    EXTERNAL (migration.md §4.1).
    """
    if client_certificates:
        config = replace(config, client_certificates=True)
    server_tls = None
    if tls is not None:
        try:
            server_tls = ServerTls(tls)
        except Exception as error:  # noqa: BLE001 - any unusable file means "no TLS"
            _log.error("TLS certificate unusable ({error}); STARTTLS will be refused",
                       error=error)
    if blocking is None:
        def blocking(call: Callable[..., Any], *args: Any) -> Deferred:
            return deferToThreadPool(reactor, reactor.getThreadPool(), call, *args)
    return FrontDoorFactory(
        service=service, authenticator=authenticator, tls=server_tls,
        server_name=server_name, reactor=reactor, config=config,
        new_id=new_id or (lambda: secrets.token_hex(8)),
        peer_uid=peer_uid or localpeer.peer_uid, blocking=blocking,
    )
