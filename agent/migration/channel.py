"""The data channel's transport: TLS 1.2+ with a pinned target certificate, token login.

Blocking sockets, meant for the data-plane thread. The source connects, checks that the
SHA-256 fingerprint of the target's certificate equals the one learnt on the control
session (constant-time compare), then sends a HELLO frame with its one-time token. The
target reads the HELLO first and closes the connection without a reply when the
authorization callback refuses the token (spec §4.5).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import select
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.migration import frames

HELLO_TIMEOUT_S = 10.0
_SOCKET_BUFFER = 4 * 1024 * 1024
# Frames with small payloads are gathered and written together: a scattered dirty set
# otherwise costs one write, one TCP segment and one wake-up of the target per page.
_SMALL_PAYLOAD = 16 * 1024
_BATCH = 256 * 1024
_RECV_BUFFER = 256 * 1024  # what one read from the socket may bring in
_DIRECT_READ = 64 * 1024  # a read this large goes straight into the caller's buffer


class ChannelError(Exception):
    """The data channel failed: connection, TLS, pinning, login or peer error."""


def fingerprint(der_certificate: bytes) -> str:
    """Lower-case hex SHA-256 of a DER certificate, as the control session reports it."""
    return hashlib.sha256(der_certificate).hexdigest()


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS context of the target's data port (TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.num_tickets = 0  # no resumption, and no stray records after the handshake
    return context


def client_context() -> ssl.SSLContext:
    """TLS context of the source side. Trust comes from the pinned fingerprint, not a CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # replaced by the fingerprint check in connect()
    return context


def make_self_signed(directory: str, name: str = "ldmx-target") -> tuple[str, str, str]:
    """Write a fresh ECDSA P-256 certificate and key; return (cert, key, fingerprint)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    cert_path = os.path.join(directory, f"{name}.crt")
    key_path = os.path.join(directory, f"{name}.key")
    with open(cert_path, "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path, fingerprint(cert.public_bytes(serialization.Encoding.DER))


class DataChannel:
    """One established data connection: frame writes and exact reads on a TLS socket."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self._send_seq = 0
        self._recv_seq = 0
        self._header = bytearray(frames.HEADER_SIZE)
        self._header_view = memoryview(self._header)
        self.checksum = frames.CRC32  # until the HELLO has set the channel's key
        # Small frames waiting to be written, in a buffer allocated once: appending to a
        # bytearray that is cleared after every batch reallocates and copies it again and
        # again (8 us against 0.6 us per 8 KiB frame here).
        self._out = bytearray(_BATCH + _SMALL_PAYLOAD + frames.HEADER_SIZE)
        self._out_view = memoryview(self._out)
        self._out_len = 0
        # Bytes read from the socket and not consumed yet. A small frame (a header, a
        # page of a scattered dirty set) then costs a copy instead of two or three TLS
        # reads; a large payload is still read straight into its destination.
        self._in = memoryview(bytearray(_RECV_BUFFER))
        self._in_at = 0
        self._in_end = 0

    @property
    def cipher(self) -> str:
        info = self.sock.cipher()
        return f"{info[1]} {info[0]}" if info else "none"

    def send(self, kind: int, arg0: int = 0, arg1: int = 0, payload=b"", flags: int = 0) -> int:
        """Queue or write one frame; return its payload size.

        Small frames wait in a batch (written by ``flush``, which every read does first);
        a large payload is written straight from the caller's buffer, without a copy.
        """
        header = frames.encode_header(
            kind, self._send_seq, arg0, arg1, payload, flags, self.checksum
        )
        self._send_seq = (self._send_seq + 1) & 0xFFFFFFFF
        size = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
        at = self._out_len
        out = self._out_view
        out[at : at + frames.HEADER_SIZE] = header
        at += frames.HEADER_SIZE
        if size <= _SMALL_PAYLOAD:
            out[at : at + size] = payload
            self._out_len = at + size
            if self._out_len >= _BATCH:
                self.flush()
        else:
            self._out_len = at
            self.flush()
            self.sock.sendall(payload)
        return size

    def flush(self) -> None:
        """Write the queued small frames."""
        if self._out_len:
            self.sock.sendall(self._out_view[: self._out_len])
            self._out_len = 0

    def read_header(self) -> tuple[frames.Header, bytes]:
        """Read and parse the next header; return it with its raw bytes (for the checksum)."""
        self.flush()  # the peer may be waiting for what we queued before it answers
        at = self._in_at
        if self._in_end - at >= frames.HEADER_SIZE:
            raw = bytes(self._in[at : at + frames.HEADER_SIZE])
            self._in_at = at + frames.HEADER_SIZE
        else:
            self.read_into(self._header_view)
            raw = bytes(self._header)
        header = frames.parse_header(raw)
        frames.check_sequence(header, self._recv_seq)
        self._recv_seq = (self._recv_seq + 1) & 0xFFFFFFFF
        return header, raw

    def read_into(self, view: memoryview) -> None:
        """Fill ``view`` exactly: from the bytes already read, then from the socket."""
        size = view.nbytes
        got = self._take(view, size)
        while got < size:
            left = size - got
            if left >= _DIRECT_READ:
                count = self.sock.recv_into(view[got:], left)
                if count == 0:
                    raise ChannelError("the data connection was closed by the peer")
                got += count
            else:
                self._read_more()
                got += self._take(view[got:], left)

    def _take(self, view: memoryview, size: int) -> int:
        """Move up to ``size`` buffered bytes into ``view``; return how many."""
        at = self._in_at
        count = min(size, self._in_end - at)
        if count:
            view[:count] = self._in[at : at + count]
            self._in_at = at + count
        return count

    def _read_more(self) -> None:
        """One read from the socket into the emptied buffer (at least one byte, or an
        error). Callers come here only once every buffered byte has been taken."""
        count = self.sock.recv_into(self._in)
        if count == 0:
            raise ChannelError("the data connection was closed by the peer")
        self._in_at, self._in_end = 0, count

    def read_frame(self, max_payload: int = 1 << 20) -> frames.Frame:
        """Read one small frame whole and check it."""
        header, raw = self.read_header()
        if header.length > max_payload:
            raise frames.FrameError(f"{header.name} frame too large ({header.length} bytes)")
        payload = bytearray(header.length)
        self.read_into(memoryview(payload))
        frames.check_payload(raw, header, payload, self.checksum)
        return frames.Frame(header, bytes(payload))

    def poll_frame(self) -> frames.Frame | None:
        """Return the next frame if one has started to arrive, else None, without blocking."""
        self.flush()
        if self._in_at == self._in_end:
            if not self.sock.pending() and not select.select([self.sock], [], [], 0)[0]:
                return None
            # Readable may mean TLS housekeeping only, so read without blocking.
            self.sock.setblocking(False)
            try:
                self._read_more()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return None
            finally:
                self.sock.setblocking(True)
        return self.read_frame()

    def drain(self, seconds: float) -> None:
        """Read and discard until the peer closes or ``seconds`` have passed."""
        self.flush()
        deadline = time.monotonic() + seconds
        scratch = bytearray(65536)
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                if not self.sock.recv_into(scratch):
                    return
            except (OSError, ValueError):
                return

    def close(self) -> None:
        try:
            self.flush()
        except (OSError, ValueError):
            pass  # closing after a failure: what was queued cannot matter any more
        try:
            self.sock.close()
        except OSError:
            pass


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)


def connect(
    host: str,
    port: int,
    expected_fingerprint: str,
    token: bytes,
    page_count: int,
    context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
    stream: int = 0,
    streams: int = 1,
) -> DataChannel:
    """Open data stream ``stream`` of ``streams`` to the target and log in with ``token``."""
    if not 0 <= stream < streams <= frames.MAX_STREAMS:
        raise ChannelError(f"stream {stream} of {streams} is outside 1..{frames.MAX_STREAMS}")
    context = context or client_context()
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as error:
        raise ChannelError(f"cannot connect to the data port {host}:{port}: {error}") from error
    try:
        _tune(raw)
        sock = context.wrap_socket(raw, server_hostname=None)
    except (OSError, ssl.SSLError) as error:
        raw.close()
        raise ChannelError(f"TLS handshake with {host}:{port} failed: {error}") from error
    actual = fingerprint(sock.getpeercert(binary_form=True) or b"")
    if not hmac.compare_digest(actual, expected_fingerprint.lower()):
        sock.close()
        raise ChannelError(f"the data port {host}:{port} presented certificate {actual},"
                           f" not the pinned {expected_fingerprint}")
    sock.settimeout(None)
    channel = DataChannel(sock)
    key = os.urandom(frames.KeyedChecksum.KEY_SIZE)
    hello = token + key + bytes((stream, streams))
    channel.send(frames.HELLO, frames.PROTOCOL_VERSION, page_count, hello)
    channel.flush()  # the target reads nothing else before it
    channel.checksum = frames.KeyedChecksum(key)
    return channel


@dataclass(frozen=True)
class Login:
    """What the source announced in its HELLO."""

    version: int
    page_count: int
    stream: int = 0  # this connection's index
    streams: int = 1  # how many data streams the source opens (spec §10.1)


class DataListener:
    """The target's data port: accepts one connection at a time and checks its token."""

    def __init__(self, context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0) -> None:
        self.context = context
        self.sock = socket.create_server((host, port))
        self.port = self.sock.getsockname()[1]

    def accept(
        self, authorize: Callable[[bytes, int], bool], timeout: float | None = None
    ) -> tuple[DataChannel, Login]:
        """Wait for a source whose token ``authorize(token, stream)`` accepts; refuse others
        silently (a token is good for one stream only, M39)."""
        self.sock.settimeout(timeout)
        while True:
            try:
                raw, _address = self.sock.accept()
            except TimeoutError as error:
                raise ChannelError("no source connected to the data port in time") from error
            accepted = self._login(raw, authorize)
            if accepted is not None:
                return accepted

    def _login(self, raw: socket.socket, authorize) -> tuple[DataChannel, Login] | None:
        try:
            _tune(raw)
            raw.settimeout(HELLO_TIMEOUT_S)
            sock = self.context.wrap_socket(raw, server_side=True)
            channel = DataChannel(sock)
            frame = channel.read_frame(max_payload=256)
        except (OSError, ssl.SSLError, ChannelError, frames.FrameError):
            raw.close()
            return None
        key_size = frames.KeyedChecksum.KEY_SIZE
        tail = key_size + 2  # the key, then the stream index and count
        body = frame.payload
        token, key = body[:-tail], body[-tail:-2]
        stream, streams = (body[-2], body[-1]) if len(body) > tail else (0, 0)
        valid = frame.header.kind == frames.HELLO and len(body) > tail
        if not valid or not authorize(token, stream):
            channel.close()  # no reply: a wrong token learns nothing (§4.5)
            return None
        channel.checksum = frames.KeyedChecksum(key)
        problem = None
        if frame.header.arg0 != frames.PROTOCOL_VERSION:
            problem = b"unsupported data protocol version"
        elif not 0 <= stream < streams <= frames.MAX_STREAMS:
            problem = b"bad data stream index or count"
        if problem:
            channel.send(frames.ERROR, payload=problem)
            channel.close()
            return None
        sock.settimeout(None)
        return channel, Login(frame.header.arg0, frame.header.arg1, stream, streams)

    def close(self) -> None:
        self.sock.close()


def token_checker(expected: bytes | list[bytes]) -> Callable[..., bool]:
    """An ``authorize`` callback for one-time tokens: ``expected[s]`` is stream ``s``'s."""
    tokens = [expected] if isinstance(expected, bytes) else list(expected)
    used: set[int] = set()

    def authorize(token: bytes, stream: int = 0) -> bool:
        if stream in used or not 0 <= stream < len(tokens):
            return False
        if not hmac.compare_digest(token, tokens[stream]):
            return False
        used.add(stream)
        return True

    return authorize
