"""A small blocking client of the LDM XML interface, used by the ``ldmx`` CLI, the demo and tools.

It speaks the agent's transport (spec ldm-xml §1): stream header, STARTTLS, then SASL PLAIN for
a remote peer or nothing for a local one, then LDM documents. The agent writes every document
whole, so the reader finds documents by their closing tags.

One thread uses a connection at a time, except :meth:`LdmConnection.close` and
:meth:`LdmConnection.abort`, which may come from another thread while one is blocked reading:
they shut the socket down (which wakes that reader) and leave releasing its descriptor to the
reader. Releasing it under a blocked TLS read is a real hazard, not a tidiness rule: OpenSSL
keeps the descriptor's number, the kernel hands the number to the next socket the process
opens, and the woken read then takes that new connection's bytes (its TLS handshake then fails
with "unexpected message", or a record with "bad record mac").
"""

from __future__ import annotations

import base64
import re
import select
import socket
import ssl
import threading
from pathlib import Path

STREAM_HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
_ERROR_RE = re.compile(rb"<stream:error><([A-Za-z-]+)")
_DOC_RE = re.compile(rb"</(LDM_interface|LDM_event)>")


class LdmClientError(Exception):
    """The agent refused or broke the session; the message says how."""


class LdmConnection:
    """One session with an agent. Use :meth:`tcp` or :meth:`unix`, then :meth:`request`."""

    def __init__(self, sock: socket.socket, server_name: str = "localhost", timeout: float = 30.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.server_name = server_name
        self.buffer = b""
        self.events: list[bytes] = []
        self.tls_version: str | None = None
        # How many threads are inside the socket, and whether close/abort was asked for: the
        # descriptor is released by the last thread to leave once closing (see the module doc).
        self._guard = threading.Lock()
        self._in_use = 0
        self._closing = False

    # -- connecting ---------------------------------------------------------------------
    @classmethod
    def tcp(cls, host: str, port: int, timeout: float = 30.0) -> "LdmConnection":
        sock = socket.create_connection((host, port), timeout=timeout)
        return cls(sock, host, timeout)

    @classmethod
    def unix(cls, path: str | Path, timeout: float = 30.0) -> "LdmConnection":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(path))
        return cls(sock, "localhost", timeout)

    def negotiate(self, user: str | None = None, password: str | None = None,
                  cafile: str | Path | None = None) -> None:
        """STARTTLS, then SASL PLAIN when ``user`` is given (required for remote peers)."""
        self._send(STREAM_HEADER)
        self._read_header()
        features = self._read_through(b"</stream:features>")
        if b"starttls" not in features:
            raise LdmClientError("the agent did not offer STARTTLS")
        self._send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self._read_through(b"/>")  # <proceed .../>
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False
        if cafile:
            ctx.load_verify_locations(cafile=str(cafile))
        else:
            ctx.verify_mode = ssl.CERT_NONE
        self._enter()
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname=None)
        finally:
            self._leave()
        self.tls_version = self.sock.version()
        self._send(STREAM_HEADER)
        self._read_header()
        features = self._read_through(b"</stream:features>")
        if user is None:
            if b"<bind" not in features:
                raise LdmClientError(
                    "the agent does not recognise this client as local; give a user name (-u) and a password")
            return
        payload = base64.b64encode(b"\0" + user.encode() + b"\0" + (password or "").encode())
        self._send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                   + payload + b"</auth>")
        answer = self._read_sasl_answer()
        if b"<success" not in answer:
            cond = re.search(rb"<failure[^>]*><([a-z-]+)", answer)
            raise LdmClientError(
                f"authentication failed for user {user}: {cond.group(1).decode() if cond else 'refused'}")
        self._send(STREAM_HEADER)
        self._read_header()
        self._read_through(b"</stream:features>")

    # -- documents ----------------------------------------------------------------------
    def request(self, document: bytes | str) -> bytes:
        """Send one request document and return its response; events seen meanwhile are
        appended to :attr:`events`."""
        if isinstance(document, str):
            document = document.encode("utf-8")
        self._send(document)
        while True:
            name, doc = self.next_document()
            if name == b"LDM_interface":
                return doc
            self.events.append(doc)

    def send(self, document: bytes | str) -> None:
        """Send one document without waiting for its answer (see :meth:`poll`)."""
        self._send(document.encode("utf-8") if isinstance(document, str) else document)

    def poll(self, timeout: float) -> tuple[bytes, bytes] | None:
        """The next document if one arrives within ``timeout`` seconds, else None."""
        pending = getattr(self.sock, "pending", lambda: 0)()
        if not _DOC_RE.search(self.buffer) and not pending:
            self._enter()
            try:
                readable, _, _ = select.select([self.sock], [], [], timeout)
            finally:
                self._leave()
            if not readable:
                return None
        return self.next_document()

    def next_document(self) -> tuple[bytes, bytes]:
        """Block until the next LDM document arrives; return (root name, bytes)."""
        scanned = 0
        while True:
            # Resume the search where the last one stopped (less a closing tag's length), so a
            # large response arriving in many reads is scanned once, not once per read.
            m = _DOC_RE.search(self.buffer, max(0, scanned - 16))
            if m:
                end = m.end()
                start = self.buffer.find(b"<" + m.group(1), 0, end)
                doc = self.buffer[start:end]
                self.buffer = self.buffer[end:]
                return m.group(1), doc
            scanned = len(self.buffer)
            self._fill()

    def close(self) -> None:
        """End the stream and release the socket; from another thread, see :meth:`abort`."""
        self._finish(goodbye=True)

    def abort(self) -> None:
        """Cut the session without a goodbye, as a killed client would.

        Safe while another thread is blocked in this connection: that thread wakes with
        :class:`LdmClientError` (or ``OSError``) and releases the socket as it leaves.
        """
        self._finish(goodbye=False)

    def _finish(self, goodbye: bool) -> None:
        with self._guard:
            if self._closing:
                return
            self._closing = True
            if self._in_use:
                # Another thread is inside the socket: wake it (under the lock, so it cannot
                # release the descriptor meanwhile) and let it release the socket on leaving.
                # The TLS layer is left alone: its state is not shared between threads.
                _shut_down(self.sock)
                return
        # Nobody else can enter now (_enter refuses while closing): the socket is ours alone.
        if goodbye:
            try:
                self.sock.sendall(b"</stream:stream>")
            except (OSError, ValueError):
                pass
        else:
            _shut_down(self.sock)
        _release(self.sock)

    def __enter__(self) -> "LdmConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------
    def _enter(self) -> None:
        with self._guard:
            if self._closing:
                raise LdmClientError("the session was closed")
            self._in_use += 1

    def _leave(self) -> None:
        with self._guard:
            self._in_use -= 1
            if self._closing and not self._in_use:
                _release(self.sock)

    def _send(self, data: bytes) -> None:
        self._enter()
        try:
            self.sock.sendall(data)
        finally:
            self._leave()

    def _fill(self) -> None:
        self._enter()
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            raise LdmClientError("timed out waiting for the agent") from None
        finally:
            self._leave()
        if not chunk:
            raise LdmClientError("the agent closed the connection")
        self.buffer += chunk
        # Only the new bytes (and a tag's length before them) can hold a new stream error.
        m = _ERROR_RE.search(self.buffer, max(0, len(self.buffer) - len(chunk) - 32))
        if m:
            raise LdmClientError(f"the agent ended the stream: {m.group(1).decode()}")

    def _read_through(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        end = self.buffer.index(marker) + len(marker)
        out, self.buffer = self.buffer[:end], self.buffer[end:]
        return out

    def _read_header(self) -> None:
        while True:
            i = self.buffer.find(b"<stream:stream")
            if i >= 0 and self.buffer.find(b">", i) >= 0:
                self.buffer = self.buffer[self.buffer.index(b">", i) + 1:]
                return
            self._fill()

    def _read_sasl_answer(self) -> bytes:
        while True:
            if b"<success" in self.buffer:
                return self._read_through(b"/>")
            if b"</failure>" in self.buffer:
                return self._read_through(b"</failure>")
            self._fill()


def _shut_down(sock: socket.socket) -> None:
    """Shut both directions of the OS socket; a TLS socket's TLS state is not touched."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer, or never connected


def _release(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
