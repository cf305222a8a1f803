"""Blocking raw-stream clients for the loopback tests.

:class:`RawClient` speaks bytes over TCP or a Unix socket and upgrades to TLS by hand.
After the upgrade it can read TLS *records* one by one (``read_record``), so a test sees exactly
how the agent's writes were cut into records. :class:`MinimalClient` is the replica of the known
minimal client of spec ldm-xml §1.15 (R1–R14), written from that description.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
import warnings
import xml.etree.ElementTree as ET
from xml.parsers import expat

STARTTLS = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
MINIMAL_HEADER = b"<?xml version='1.0'?><stream:stream xml:lang=\"en\" version=\"1.0\" id=\"xmpp\">"
REGISTRATION = (
    b'<LDM_interface version="1.1">   <cmd>      <action>reg-domain-events</action>'
    b'      <data version="3.0"> </data>   </cmd></LDM_interface>'
)
DOMAIN_EVENTS = ("add-domain", "remove-domain", "bind-domain", "unbind-domain", "start-domain",
                 "stop-domain", "domain-reset", "panic-domain")


def client_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.MAXIMUM_SUPPORTED,
                   alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client context that verifies nothing (like the minimal client, R6)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the *client* offer old versions
    with warnings.catch_warnings():  # TLS 1.1 is deprecated on the client side, on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = minimum
        context.maximum_version = maximum
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


class RawClient:
    """A byte-level client; ``address`` is a (host, port) pair or a Unix socket path."""

    def __init__(self, address, timeout: float = 10.0) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.tls: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._raw = b""
        self.buffer = b""

    def send(self, data: bytes) -> None:
        if self.tls is None:
            self.sock.sendall(data)
        else:
            self.tls.write(data)
            self._flush()

    def recv_until(self, marker: bytes) -> bytes:
        """Read (plaintext or all decrypted records) until ``marker``; return everything up to it."""
        while marker not in self.buffer:
            if self.tls is None:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed while waiting for {marker!r}: {self.buffer!r}")
                self.buffer += chunk
            else:
                self.buffer += self.read_record()
        end = self.buffer.index(marker) + len(marker)
        data, self.buffer = self.buffer[:end], self.buffer[end:]
        return data

    def recv_all(self) -> bytes:
        """Read until the peer closes (plaintext side)."""
        data = self.buffer
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def starttls(self, context: ssl.SSLContext | None = None) -> None:
        """Run the TLS handshake over the socket with memory BIOs."""
        self.tls = (context or client_context()).wrap_bio(self._in, self._out,
                                                          server_side=False)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._feed_record()
        self._flush()

    def _flush(self) -> None:
        data = self._out.read()
        if data:
            self.sock.sendall(data)

    def _feed_record(self) -> None:
        """Move exactly one TLS record from the socket into the TLS object."""
        while True:
            if len(self._raw) >= 5:
                length = int.from_bytes(self._raw[3:5], "big")
                if len(self._raw) >= 5 + length:
                    record, self._raw = self._raw[:5 + length], self._raw[5 + length:]
                    self._in.write(record)
                    return
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self._raw += chunk

    def read_record(self) -> bytes:
        """The application data of the next TLS record that carries any (b"" at close_notify)."""
        assert self.tls is not None
        while True:
            self._feed_record()
            data = b""
            try:
                while True:
                    data += self.tls.read(65536)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return data
            self._flush()
            if data:
                return data

    def close(self) -> None:
        self.sock.close()


def _end_tags(data: bytes) -> list[str]:
    """The literal names of elements that end in one read, parsed alone (R4, R10)."""
    names: list[str] = []
    parser = expat.ParserCreate()  # not namespace-aware: names are compared literally
    parser.EndElementHandler = names.append
    try:
        parser.Parse(data, False)
    except expat.ExpatError:
        return names + ["<parse error>"]
    return names


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class MinimalClient:
    """The replica of the known minimal client (spec ldm-xml §1.15).

    ``port`` is the agent's loopback port. ``run`` performs R2–R11 and then collects events
    (R12, R13) until ``expected`` were seen, then drops the connection abruptly (R14).
    """

    READ_SIZE = 1024

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.seen: list[bytes] = []       # every read, as received
        self.ends: list[list[str]] = []   # the end tags seen in each read
        self.status: str | None = None
        self.events: list[tuple[str, str | None]] = []

    def _read(self, conn) -> bytes:
        data = conn.recv(self.READ_SIZE)
        if not data:
            raise ConnectionError("agent closed")
        self.seen.append(data)
        ends = _end_tags(data)
        self.ends.append(ends)
        if "failure" in ends or "stream:stream" in ends or "<parse error>" in ends:
            raise ConnectionError(f"dropped on {ends}")  # R14
        return data

    def _wait_for(self, conn, name: str) -> None:
        while True:
            self._read(conn)
            if name in self.ends[-1]:
                return

    def connect(self) -> ssl.SSLSocket:
        """R2–R8: header, STARTTLS, header again inside TLS, wait for the features."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        sock.sendall(MINIMAL_HEADER)
        self._wait_for(sock, "starttls")
        sock.sendall(STARTTLS)
        self._wait_for(sock, "proceed")
        context = client_context()
        conn = context.wrap_socket(sock, server_hostname=None)  # R6: no SNI
        conn.sendall(MINIMAL_HEADER)
        self.ends.clear()
        self._wait_for(conn, "stream:features")
        return conn

    def register(self, conn) -> None:
        """R9–R11: send the registration and check the response by literal paths."""
        conn.sendall(REGISTRATION)
        data = self._read(conn)
        if "LDM_interface" not in self.ends[-1]:
            raise AssertionError(f"response not in one read: {data!r}")
        root = ET.fromstring(data)  # the whole read as one standalone document (R10)
        cmd = root.find("cmd")
        if cmd is None or cmd.findtext("action") != "reg-domain-events":
            raise AssertionError(f"unexpected response {data!r}")
        self.status = cmd.findtext("response/status")

    def read_event(self, conn) -> tuple[str, str | None] | None:
        """R12, R13: one read = one event; returns (action, domain) or None if ignored."""
        data = self._read(conn)
        if "LDM_event" not in self.ends[-1] and "LDM_interface" not in self.ends[-1]:
            return None
        root = ET.fromstring(data)
        action = (root.findtext("cmd/action") or "").lower()
        if action not in DOMAIN_EVENTS:
            return None
        name = None
        for element in root.iter():
            if _local(element.tag) == "Content":
                name = element.get("{./schemas/envelope}id")
        event = (action, name)
        self.events.append(event)
        return event


def pause(seconds: float) -> None:
    """The client's sleep between reconnects (R14: 3 s in the real client)."""
    time.sleep(seconds)


STATS = re.compile(rb'connections="(\d+)" sessions="(\d+)" registered="(\d+)" fds="(\d+)"')
