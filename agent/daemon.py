"""The running agent: wires configuration, state, the service and the front door to a reactor.

This is the thin Twisted shell around the pure core: it opens the listening endpoints, prints
the ready line, and shuts everything down cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import gc
import sys

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger, globalLogBeginner

from agent.auth.authenticator import Authenticator
from agent.auth.truststore import TrustStore
from agent.auth.users import UsersFile
from agent.config import AgentConfig, ConfigError, format_endpoint
from agent.logging import observer_for
from agent.service import LdmService

log = Logger()


def _listen_tcp(reactor, factory, endpoint: tuple[str, int]):
    host, port = endpoint
    try:
        return reactor.listenTCP(port, factory, interface=host)
    except Exception as e:  # CannotListenError carries the reason
        raise ConfigError(f"cannot listen on {format_endpoint(host, port)}: {e}") from None


def build(cfg: AgentConfig, reactor):
    """Create the agent's objects and listeners; return (service, factory, ports, ready line)."""
    from agent.xmpp.server import FrontDoorConfig, build_factory
    from agent.xmpp.tls import TlsMaterial, ensure_tls_files

    if cfg.tls_cert:
        cert, key = cfg.tls_cert, cfg.tls_key
    else:
        cert, key = ensure_tls_files(cfg.state_dir, cfg.host_name)
    tls = TlsMaterial(cert, key)
    users = UsersFile(cfg.state_dir)
    from agent.migration import wiring
    authenticator = wiring.PeerTokenAuthenticator(
        Authenticator(users, cfg.local_users, cfg.unknown_local_uid,
                      trust_store=TrustStore(cfg.state_dir)))
    hypervisor = open_hypervisor(cfg)
    manager = open_manager(cfg, hypervisor)
    service = LdmService(server_name=cfg.host_name, max_document_bytes=cfg.max_document_bytes,
                         manager=manager)
    authenticator.migrations = lambda: service.migrations
    from agent.guestwatch import GuestWatch
    GuestWatch(hypervisor, manager, service.bus.publish, reactor).start()
    from agent import memtrim
    memtrim.start(reactor)
    front = FrontDoorConfig(document_limit=cfg.max_document_bytes,
                            negotiation_timeout=cfg.negotiation_timeout)
    factory = build_factory(service, authenticator, tls, cfg.host_name, reactor=reactor,
                            config=front, client_certificates=True)

    tcp = _listen_tcp(reactor, factory, cfg.listen)
    sock_path = cfg.socket
    if sock_path.exists() or sock_path.is_symlink():
        sock_path.unlink()  # a stale socket from a previous run
    unix = reactor.listenUNIX(str(sock_path), factory, mode=0o666)
    try:
        mig = wiring.install(cfg, reactor, service, hypervisor, cert, key)
    except OSError as e:
        raise ConfigError(f"cannot listen on {format_endpoint(*cfg.migration_listen)}: {e}") from None
    tcp_addr, mig_addr = tcp.getHost(), mig.getHost()
    ready = (f"ldmx-agent ready listen={format_endpoint(tcp_addr.host, tcp_addr.port)} "
             f"socket={sock_path} migration={format_endpoint(mig_addr.host, mig_addr.port)}")
    return service, factory, [tcp, unix, mig], ready


def open_hypervisor(cfg: AgentConfig):
    """The simulated hypervisor; its guests live under ``<state-dir>/guests`` and are found
    again after a restart."""
    from agent.hypervisor.base import HypervisorError
    from agent.hypervisor.sim.hypervisor import SimHypervisor

    try:
        hv = SimHypervisor(cfg.state_dir / "guests")
    except HypervisorError as e:
        raise ConfigError(str(e)) from None
    hv.reattach()
    return hv


def open_manager(cfg: AgentConfig, hypervisor=None):
    """The domain manager on its SQLite store (created with `primary` at first start)."""
    import random
    import time

    from agent.ldm.hvport import HypervisorGuests
    from agent.ldm.manager import Manager
    from agent.ldm.platform import default_platform, load_platform
    from agent.store.sqlite import SqliteStore

    try:
        platform = load_platform(cfg.platform) if cfg.platform else default_platform()
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load platform {cfg.platform}: {e}") from None
    hv = hypervisor if hypervisor is not None else open_hypervisor(cfg)
    return Manager(platform, SqliteStore(cfg.database),
                   HypervisorGuests(hv, workload=cfg.guest_workload,
                                    os_capabilities=cfg.guest_os_capabilities), time.time,
                   random.SystemRandom())


def log_observer(cfg: AgentConfig) -> ILogObserver:
    """The configured log observer: text or JSON lines, on stderr or appended to a file."""
    stream = sys.stderr
    if cfg.log_file is not None:
        try:
            stream = open(cfg.log_file, "a", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot open log file {cfg.log_file}: {e.strerror}") from None
    return observer_for(cfg.log_format, stream, cfg.log_level)


def shutdown(cfg: AgentConfig, ports, factory):
    """Stop accepting, then tell every session we are going away (system-shutdown); the
    returned Deferred fires when every connection is gone."""
    # Twisted's Unix port removes its socket file itself once it has stopped listening.
    stopped = [defer.maybeDeferred(port.stopListening) for port in ports]
    return defer.gatherResults(stopped + [factory.shutdown()], consumeErrors=True)


def _started(ready: str) -> None:
    # Everything built so far lives as long as the agent: move it out of the collector's
    # reach, so that the occasional full collection does not rescan it in the middle of a
    # request (it was about 3 us per request on average, and a long pause in the tail).
    gc.freeze()
    print(ready, file=sys.stderr, flush=True)


def run(cfg: AgentConfig) -> int:
    """Run the agent until SIGTERM/SIGINT; return the process exit status."""
    from twisted.internet import reactor

    try:
        globalLogBeginner.beginLoggingTo([log_observer(cfg)], redirectStandardIO=False)
        service, factory, ports, ready = build(cfg, reactor)
    except ConfigError as e:
        print(f"ldmx-agent: {e}", file=sys.stderr)
        return 2

    reactor.addSystemEventTrigger("before", "shutdown", lambda: shutdown(cfg, ports, factory))
    reactor.callWhenRunning(_started, ready)
    reactor.run()
    return 0


class AgentService(Service):
    """The agent as a Twisted service, for twistd (``twistd -n ldmx``): listens when the
    service starts and shuts down like :func:`run` when it stops. A listener that cannot be
    opened is logged as critical and stops the reactor."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.ports: list = []
        self.factory = None

    def startService(self) -> None:
        from twisted.internet import reactor

        super().startService()
        try:
            _, self.factory, self.ports, ready = build(self.cfg, reactor)
        except ConfigError as e:
            log.critical("ldmx-agent: {error}", error=str(e))
            reactor.stop()
            return
        log.info("{ready}", ready=ready)

    def stopService(self):
        super().stopService()
        if self.factory is None:
            return None
        return shutdown(self.cfg, self.ports, self.factory)
