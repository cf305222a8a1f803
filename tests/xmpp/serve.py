"""A front door on real loopback sockets with fake back ends, run as a subprocess by tests.

Usage: ``python -m tests.xmpp.serve STATE_DIR [REMOTE_NEGOTIATION_TIMEOUT]``. Listens on
127.0.0.1 port 0 twice (``local``: the caller's uid is a local peer with write; ``remote``:
no uid is local) and on ``STATE_DIR/ldm.sock`` (local factory), then prints one JSON line with
the ports and path. A request whose action is ``stats`` is answered with counters (open
connections, open LDM sessions, registrations, open descriptors) so tests can look for leaks;
one whose action is ``big N`` is answered with a document of exactly N bytes (:func:`big`).
SIGTERM sends ``system-shutdown`` to every session, then stops.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import DeferredList, succeed

from agent.xmpp.server import FrontDoorConfig, build_factory
from agent.xmpp.tls import TlsMaterial, ensure_tls_files
from tests.xmpp.fakes import FakeAuthenticator, FakeLdmService

_BIG = re.compile(rb"<action>big (\d+)</action>")


def big(size: int) -> bytes:
    """An LDM document of exactly ``size`` bytes (at least 64)."""
    head, tail = b'<LDM_interface version="1.1"><pad>', b"</pad></LDM_interface>"
    return head + b"x" * (size - len(head) - len(tail)) + tail

SERVER_NAME = "ctl1.example.com"


class StatsService(FakeLdmService):
    """The fake service, plus a ``stats`` action for leak checks."""

    def __init__(self, factories: list) -> None:
        super().__init__()
        self.factories = factories

    def open_session(self, identity, sink):
        session = super().open_session(identity, sink)
        answer = session.handle_element

        def handle(raw: bytes):
            if b"<action>stats</action>" in raw:
                session.received.append(raw)
                return succeed(self.stats())
            wanted = _BIG.search(raw)
            if wanted:
                return big(int(wanted.group(1)))  # answered at once, as bytes
            return answer(raw)

        session.handle_element = handle
        return session

    def stats(self) -> bytes:
        connections = sum(len(f.connections) for f in self.factories)
        open_sessions = sum(1 for s in self.sessions if not s.closed)
        fds = len(os.listdir("/proc/self/fd"))
        return (f'<LDM_interface version="1.1"><stats connections="{connections}" '
                f'sessions="{open_sessions}" registered="{len(self.registered)}" '
                f'fds="{fds}"/></LDM_interface>').encode()


def main() -> None:
    state = Path(sys.argv[1])
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    cert, key = ensure_tls_files(state, SERVER_NAME)
    config = FrontDoorConfig()
    factories: list = []
    service = StatsService(factories)
    local = build_factory(service, FakeAuthenticator({os.getuid(): "write"}),
                          TlsMaterial(cert, key), SERVER_NAME, reactor=reactor, config=config)
    remote = build_factory(service, FakeAuthenticator({}), TlsMaterial(cert, key), SERVER_NAME,
                           reactor=reactor, config=FrontDoorConfig(negotiation_timeout=timeout))
    factories += [local, remote]
    local_port = reactor.listenTCP(0, local, interface="127.0.0.1")
    remote_port = reactor.listenTCP(0, remote, interface="127.0.0.1")
    sock = state / "ldm.sock"
    reactor.listenUNIX(str(sock), local, mode=0o600)

    def shut_down():
        # Delays the reactor's shutdown until every session got system-shutdown and closed.
        return DeferredList([f.shutdown() for f in factories])

    reactor.addSystemEventTrigger("before", "shutdown", shut_down)
    print(json.dumps({"local": local_port.getHost().port, "remote": remote_port.getHost().port,
                      "unix": str(sock)}), flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
