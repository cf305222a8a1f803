"""Write-through on socket transports (agent.xmpp.writethrough), on a real socket pair.

Spec ldm-xml §1.12 rule 1 (one document per write) and the order of writes are what must
survive sending at once instead of on the next reactor iteration.
"""

from __future__ import annotations

import socket

import pytest
from twisted.internet import main
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import StringTransport

from agent.xmpp.writethrough import bypass_tls_buffer, write_through, writer_for


class _Reactor:
    """Records what a FileDescriptor asks of the reactor."""

    def __init__(self) -> None:
        self.writers: set = set()

    def addWriter(self, selectable) -> None:  # noqa: N802
        self.writers.add(selectable)

    def removeWriter(self, selectable) -> None:  # noqa: N802
        self.writers.discard(selectable)


class _SocketTransport(FileDescriptor):
    """The parts of a Twisted socket transport that write_through relies on."""

    def __init__(self, sock: socket.socket, reactor: _Reactor) -> None:
        super().__init__(reactor=reactor)
        self.socket = sock
        self.connected = True

    def writeSomeData(self, data):  # noqa: N802 - as twisted.internet.tcp.Connection does
        try:
            return self.socket.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            return main.CONNECTION_LOST


@pytest.fixture
def pair():
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(5)
    yield ours, peer
    ours.close()
    peer.close()


def test_idle_transport_sends_at_once(pair):
    """With nothing queued the bytes reach the peer without a reactor iteration."""
    ours, peer = pair
    reactor = _Reactor()
    conn = _SocketTransport(ours, reactor)
    write_through(conn, b"<LDM_interface/>")
    assert peer.recv(100) == b"<LDM_interface/>"
    assert not reactor.writers and not conn._tempDataBuffer


def test_write_behind_queued_bytes_is_queued_in_order(pair):
    """A write never overtakes bytes already queued: it joins the queue behind them."""
    ours, peer = pair
    reactor = _Reactor()
    conn = _SocketTransport(ours, reactor)
    FileDescriptor.write(conn, b"first;")
    write_through(conn, b"second;")
    assert conn._tempDataBuffer == [b"first;", b"second;"]
    conn.doWrite()
    assert peer.recv(100) == b"first;second;"
    assert not reactor.writers


def test_unsent_rest_is_queued_when_the_socket_is_full(pair):
    """What the kernel does not take now is queued and sent by the reactor later."""
    ours, peer = pair
    reactor = _Reactor()
    conn = _SocketTransport(ours, reactor)
    data = bytes(range(256)) * 40000  # far more than a socket buffer
    write_through(conn, data)
    assert conn in reactor.writers and conn._tempDataLen > 0
    received = bytearray()
    while len(received) < len(data):
        conn.doWrite()
        received += peer.recv(1 << 20)
    assert bytes(received) == data


def test_send_error_is_left_to_the_reactor(pair):
    """A send error queues the bytes; the next doWrite reports the connection lost."""
    ours, peer = pair
    reactor = _Reactor()
    conn = _SocketTransport(ours, reactor)
    peer.close()  # a Unix socket pair reports EPIPE at once
    write_through(conn, b"x" * 10)
    assert conn._tempDataBuffer == [b"x" * 10] and conn in reactor.writers
    assert isinstance(conn.doWrite(), Exception)


def test_closing_transport_writes_the_twisted_way(pair):
    """While the transport is closing (or closed) nothing bypasses Twisted's own write."""
    ours, peer = pair
    reactor = _Reactor()
    conn = _SocketTransport(ours, reactor)
    conn.disconnecting = True
    write_through(conn, b"late")
    assert conn._tempDataBuffer == [b"late"]
    conn.connected = False
    write_through(conn, b"later")
    assert conn._tempDataBuffer == [b"late"]


def test_only_socket_transports_get_a_writer():
    """Test transports keep their own write; TLS bypass needs Twisted's startTLS layout."""
    assert writer_for(StringTransport()) is None
    assert bypass_tls_buffer(StringTransport()) is False
    ours, peer = socket.socketpair()
    try:
        assert writer_for(_SocketTransport(ours, _Reactor())) is not None
    finally:
        ours.close()
        peer.close()
