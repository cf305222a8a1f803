"""Wiring the migration room into the daemon: journal, data port, peer authentication, recovery.

Kept here so that ``agent/daemon.py`` only calls :func:`authenticator` and :func:`install`.
"""

from __future__ import annotations

from dataclasses import dataclass

from zope.interface import implementer

from agent.auth.identity import MIGRATION_PEER, Identity
from agent.auth.truststore import TrustStore
from agent.migration.coordinator import Migrations
from agent.migration.datalisten import DataPort
from agent.migration.faults import Faults
from agent.migration.journal import Journal
from agent.migration.peertrust import KnownHosts, PeerTrust
from agent.xmpp.api import IAuthenticator

PEER_ROLE = MIGRATION_PEER  # holds neither read nor write: only its own mig-* requests


@implementer(IAuthenticator)
class PeerTokenAuthenticator:
    """The agent's authenticator plus ``migration/<id>`` + resolution token (§4.2)."""

    def __init__(self, inner, migrations=lambda: None) -> None:
        self.inner = inner
        self.migrations = migrations

    def check_password(self, user: str, password: str) -> Identity | None:
        if user.startswith("migration/"):
            found = self.migrations()
            if found is not None and password and found.check_token(user, password):
                return Identity(name=user, authorization=PEER_ROLE)
            return None
        return self.inner.check_password(user, password)

    def certificate_identity(self, der: bytes | None) -> Identity | None:
        return self.inner.certificate_identity(der)

    def local_identity(self, uid: int) -> Identity | None:
        return self.inner.local_identity(uid)


@dataclass
class _Address:
    host: str
    port: int


class DataPortListening:
    """The data port as the daemon's list of listening ports sees it."""

    def __init__(self, port: DataPort) -> None:
        self.port = port

    def getHost(self) -> _Address:
        return _Address(self.port.host, self.port.port)

    def stopListening(self) -> None:
        self.port.stop()


def install(cfg, reactor, service, hypervisor, cert_file, key_file) -> DataPortListening:
    """Create the agent's migrations, start the data port, finish open records once running."""
    journal = Journal(cfg.state_dir)
    service.manager.scrub_rate = cfg.scrub_rate  # the simulated scrub (§10.11)
    migrations = Migrations(reactor=reactor, manager=service.manager, hypervisor=hypervisor,
                            journal=journal, server_name=cfg.host_name,
                            publish=service.bus.publish, cert_file=str(cert_file),
                            faults=Faults.from_environment(),
                            incoming_enabled=cfg.incoming_migration_enabled,
                            outgoing_enabled=cfg.outgoing_migration_enabled,
                            max_concurrent=cfg.migration_max_concurrent,
                            keepalive=(cfg.migration_keepalive_interval,
                                       cfg.migration_keepalive_count),
                            record_retention=cfg.migration_record_retention,
                            peer_trust=PeerTrust(TrustStore(cfg.state_dir),
                                                 KnownHosts(cfg.state_dir),
                                                 verify=cfg.migration_peer_verify,
                                                 host_match=cfg.migration_tls_host_match,
                                                 cert_file=str(cert_file),
                                                 key_file=str(key_file)),
                            data_defaults={"streams": cfg.migration_parallel_streams,
                                           "compression": cfg.migration_compression,
                                           "max-bandwidth": cfg.migration_max_bandwidth})
    host, port = cfg.migration_listen
    data_port = DataPort(str(cert_file), str(key_file), host, port, hypervisor,
                         migrations.guest_of, migrations.deliver,
                         verify=cfg.migration_verify).start()
    migrations.attach_data_port(data_port)
    service.migrations = migrations
    reactor.callWhenRunning(migrations.recover)
    return DataPortListening(data_port)
