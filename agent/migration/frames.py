"""Binary frame codec of the migration data channel (pure: no sockets, threads or clocks).

Every frame is a fixed 32-byte header followed by ``length`` payload bytes:

    offset size field
    0      2    magic 0x4C4D ("LM")
    2      1    kind (see the ``Kind`` constants)
    3      1    flags (bit 0: payload is zlib-compressed)
    4      4    payload length
    8      8    arg0 (first page index, round number, ...)
    16     8    arg1 (page count, byte count, ...)
    24     4    sequence number (0, 1, 2, ... per direction)
    28     4    checksum of header bytes 0..27 followed by the payload

All integers are big-endian. The checksum is CRC-32 for the HELLO frame; the HELLO
carries a random 32-byte key, and every later frame, both ways, uses ``KeyedChecksum``
under that key: the first four bytes of the Poly1305 tag for payloads of 32 KiB or more
(about twice as fast as ``zlib.crc32`` there), CRC-32 seeded with the key's CRC below
(Poly1305's set-up cost dominates a one-page frame). The checksum is the data plane's
largest CPU cost after TLS and hashing. TLS already authenticates the bytes on the wire; the checksum guards the
path from guest RAM to guest RAM (a torn read, a bug, a bad buffer).

``docs/migration-protocol.md`` gives the meaning of the arguments per kind. The encoder returns the header only, so a caller can write a payload
that is a memoryview of guest RAM without copying it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

MAGIC = 0x4C4D
HEADER = struct.Struct("!HBBIQQII")
HEADER_SIZE = HEADER.size  # 32
PREFIX_SIZE = HEADER_SIZE - 4  # the bytes the checksum covers before the payload
_PREFIX = struct.Struct("!HBBIQQI")  # the header without its checksum
MAX_PAYLOAD = 64 * 1024 * 1024

FLAG_ZLIB = 0x01
_KNOWN_FLAGS = FLAG_ZLIB

# Frame kinds. Source -> target unless noted.
HELLO = 1  # payload: token, checksum key, stream index, stream count; arg0: protocol version;
# arg1: guest page count
# On stream s of N, PAGES and ZERO cover the pages first, first + N, first + 2N, ... (all
# equal to s mod N): page i always travels on stream i mod N (spec §10.1).
PAGES = 2  # arg0: first page index; arg1: page count; payload: the pages (maybe compressed)
ZERO = 3  # arg0: first page index; arg1: page count; no payload
ROUND_END = 4  # arg0: round number; arg1: frames sent in the round; payload: stats JSON
VCPU = 5  # payload: the vCPU state blob
EOS = 6  # arg0: total frames sent before it; arg1: guest page count; payload: totals JSON
ACK = 7  # target -> source. arg0: round acknowledged; arg1: payload bytes received
ERROR = 8  # either way. payload: UTF-8 reason; the sender closes after it
READY = 9  # target -> source. arg0: frames received; arg1: pages accounted for

KIND_NAMES = {
    HELLO: "HELLO",
    PAGES: "PAGES",
    ZERO: "ZERO",
    ROUND_END: "ROUND_END",
    VCPU: "VCPU",
    EOS: "EOS",
    ACK: "ACK",
    ERROR: "ERROR",
    READY: "READY",
}

PROTOCOL_VERSION = 2  # 2: the HELLO names its stream (index, count)
MAX_STREAMS = 8  # migration_parallel_streams range 1..8 (spec §10.1)


class Crc32Checksum:
    """CRC-32 (zlib) over header prefix and payload."""

    name = "crc32"

    def __call__(self, prefix: bytes | memoryview, payload) -> int:
        crc = zlib.crc32(prefix)
        return zlib.crc32(payload, crc) if len(payload) else crc


class KeyedChecksum:
    """32 bits under a per-connection key: the first four bytes of the Poly1305 tag for a
    payload of ``POLY1305_MIN`` bytes or more, CRC-32 started from the key's CRC below.

    Poly1305 (OpenSSL, through ``cryptography``) hashes about 4.8 GB/s here against 2 GB/s
    for CRC-32, but each call costs about 8 us to set up: on a one-page frame (a scattered
    dirty set) it took 9.7 us against 4.2 us for CRC-32. The two break even near 28 KiB.
    """

    name = "poly1305-32/crc32"
    KEY_SIZE = 32
    POLY1305_MIN = 32 * 1024

    def __init__(self, key: bytes) -> None:
        if len(key) != self.KEY_SIZE:
            raise ValueError("a checksum key has 32 bytes")
        from cryptography.hazmat.primitives.poly1305 import Poly1305

        self._poly = Poly1305
        self._key = key
        self._seed = zlib.crc32(key)

    def __call__(self, prefix: bytes | memoryview, payload) -> int:
        size = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
        if size < self.POLY1305_MIN:
            crc = zlib.crc32(prefix, self._seed)
            return zlib.crc32(payload, crc) if size else crc
        mac = self._poly(self._key)
        mac.update(prefix)
        mac.update(payload)
        return int.from_bytes(mac.finalize()[:4], "big")


CRC32 = Crc32Checksum()


class FrameError(Exception):
    """A frame that cannot be accepted; the channel must be closed after it."""


class ChecksumError(FrameError):
    """The frame's CRC-32 does not match its header and payload."""


class Header(NamedTuple):
    """A decoded frame header (a named tuple: built once per frame, five times cheaper than
    a frozen dataclass)."""

    kind: int
    flags: int
    length: int
    arg0: int
    arg1: int
    seq: int
    crc: int

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_ZLIB)

    @property
    def name(self) -> str:
        return KIND_NAMES.get(self.kind, f"kind-{self.kind}")


@dataclass(frozen=True, slots=True)
class Frame:
    """A whole frame, as the incremental decoder returns it."""

    header: Header
    payload: bytes


def encode_header(
    kind: int,
    seq: int,
    arg0: int = 0,
    arg1: int = 0,
    payload: bytes | memoryview = b"",
    flags: int = 0,
    checksum=CRC32,
) -> bytes:
    """Return the 32-byte header for a frame carrying ``payload`` (not included)."""
    if kind not in KIND_NAMES:
        raise ValueError(f"unknown frame kind {kind}")
    length = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
    if length > MAX_PAYLOAD:
        raise ValueError(f"payload of {length} bytes exceeds {MAX_PAYLOAD}")
    prefix = _PREFIX.pack(MAGIC, kind, flags, length, arg0, arg1, seq & 0xFFFFFFFF)
    return prefix + checksum(prefix, payload).to_bytes(4, "big")


def encode_frame(
    kind: int,
    seq: int,
    arg0: int = 0,
    arg1: int = 0,
    payload: bytes = b"",
    flags: int = 0,
    checksum=CRC32,
) -> bytes:
    """Return header and payload as one bytes object (for small frames)."""
    return encode_header(kind, seq, arg0, arg1, payload, flags, checksum) + bytes(payload)


def parse_header(data: bytes | bytearray | memoryview) -> Header:
    """Decode and sanity-check a 32-byte header; the payload is checked by ``check_payload``."""
    magic, kind, flags, length, arg0, arg1, seq, crc = HEADER.unpack(data)
    if magic != MAGIC:
        raise FrameError(f"bad frame magic 0x{magic:04x}")
    if kind not in KIND_NAMES:
        raise FrameError(f"unknown frame kind {kind}")
    if flags & ~_KNOWN_FLAGS:
        raise FrameError(f"unknown frame flags 0x{flags:02x}")
    if length > MAX_PAYLOAD:
        raise FrameError(f"frame payload of {length} bytes exceeds {MAX_PAYLOAD}")
    return Header(kind, flags, length, arg0, arg1, seq, crc)


def check_payload(
    raw_header: bytes | bytearray | memoryview, header: Header, payload, checksum=CRC32
) -> None:
    """Raise ``ChecksumError`` unless the checksum covers this header prefix and payload."""
    if checksum(raw_header[:PREFIX_SIZE], payload if header.length else b"") != header.crc:
        raise ChecksumError(
            f"checksum mismatch in {header.name} frame #{header.seq}"
            f" (arg0={header.arg0}, arg1={header.arg1})"
        )


class NeedData:
    """Sentinel: the decoder needs more bytes before it can return a frame."""


NEED_DATA = NeedData()


class FrameDecoder:
    """Incremental decoder: push bytes with ``receive_data``, pull frames with ``next_frame``.

    Used for the small control frames (HELLO, ACK, READY, ERROR) and in tests; the
    target's bulk path reads headers with ``parse_header`` and payloads straight into RAM.
    The decoder checks checksums and the sequence numbers (frames must arrive in order).
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD, checksum=CRC32) -> None:
        self.checksum = checksum  # may be replaced once the HELLO has set a key
        self._buffer = bytearray()
        self._max_payload = max_payload
        self._expected_seq = 0
        self._failed: FrameError | None = None

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> Frame | NeedData:
        if self._failed is not None:
            raise self._failed
        try:
            return self._next_frame()
        except FrameError as error:
            # A broken stream cannot be resynchronised: every later call fails the same way.
            self._failed = error
            raise

    def _next_frame(self) -> Frame | NeedData:
        if len(self._buffer) < HEADER_SIZE:
            return NEED_DATA
        raw = bytes(self._buffer[:HEADER_SIZE])
        header = parse_header(raw)
        if header.length > self._max_payload:
            raise FrameError(f"frame payload of {header.length} bytes exceeds {self._max_payload}")
        end = HEADER_SIZE + header.length
        if len(self._buffer) < end:
            return NEED_DATA
        payload = bytes(self._buffer[HEADER_SIZE:end])
        check_payload(raw, header, payload, self.checksum)
        check_sequence(header, self._expected_seq)
        self._expected_seq = (self._expected_seq + 1) & 0xFFFFFFFF
        del self._buffer[:end]
        return Frame(header, payload)


def check_sequence(header: Header, expected: int) -> None:
    """Raise ``FrameError`` when a frame was lost, repeated or reordered."""
    if header.seq != expected:
        raise FrameError(f"{header.name} frame has sequence {header.seq}, expected {expected}")
