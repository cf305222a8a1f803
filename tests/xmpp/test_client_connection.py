"""The blocking client (``agent/cli/connection.py``) cut from another thread (ldm-xml §1.5).

A test or tool that gives up on a session while another thread is blocked reading it must not
release the socket under that read: the descriptor number is reused by the next socket the
process opens, and the woken read (OpenSSL keeps the number) takes that connection's bytes,
which broke the next session's STARTTLS handshake ("unexpected message") or its records
("bad record mac") under load. These tests pin the order: wake the reader first, release the
descriptor only once no thread is inside the socket.
"""

from __future__ import annotations

import socket
import threading

import pytest

from agent.cli.connection import LdmClientError, LdmConnection


class RecordingSocket(socket.socket):
    """A real socket that logs when a read starts and ends and when it is released."""

    def __init__(self, raw: socket.socket) -> None:
        super().__init__(raw.family, raw.type, raw.proto, raw.detach())
        self.log: list[str] = []
        self.reading = threading.Event()

    def recv(self, size: int, *args) -> bytes:
        self.log.append("read")
        self.reading.set()
        try:
            return super().recv(size, *args)
        finally:
            self.log.append("read ended")

    def close(self) -> None:
        self.log.append("released")
        super().close()


@pytest.fixture
def blocked_reader():
    """A connection whose reader thread is blocked in recv, and the agent's end of the pair."""
    ours, agents = socket.socketpair()
    sock = RecordingSocket(ours)
    conn = LdmConnection(sock, timeout=30.0)
    outcome: dict = {}

    def read() -> None:
        try:
            conn.next_document()
        except Exception as error:  # noqa: BLE001 - the outcome is what the test checks
            outcome["error"] = error

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert sock.reading.wait(5)
    yield conn, sock, reader, outcome
    agents.close()
    sock.close()


@pytest.mark.parametrize("cut", ["abort", "close"])
def test_a_cut_from_another_thread_wakes_the_reader_before_releasing_the_socket(
        blocked_reader, cut):
    """The reader wakes with a client error and the descriptor is released after its read
    ended, by the reader (close() then sends no goodbye: the TLS state is the reader's)."""
    conn, sock, reader, outcome = blocked_reader
    getattr(conn, cut)()
    reader.join(timeout=5)
    assert not reader.is_alive(), "the blocked reader was not woken"
    assert sock.log == ["read", "read ended", "released"]
    assert isinstance(outcome.get("error"), LdmClientError)


def test_the_connection_refuses_use_after_a_cut(blocked_reader):
    conn, _sock, reader, _outcome = blocked_reader
    conn.abort()
    reader.join(timeout=5)
    with pytest.raises(LdmClientError, match="closed"):
        conn.request(b"<LDM_interface/>")


def test_close_without_a_reader_says_goodbye_and_releases_at_once():
    ours, agents = socket.socketpair()
    sock = RecordingSocket(ours)
    LdmConnection(sock).close()
    assert sock.log == ["released"]
    assert agents.recv(100) == b"</stream:stream>"
    agents.close()
