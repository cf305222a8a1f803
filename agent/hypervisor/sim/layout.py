"""Where things live in a simulated guest's memory and state directory.

Guest memory (the RAM file) is divided into pages of ``page_size`` bytes:

* page 0, the *header page*: geometry, the write counter and the heartbeat (fields below);
* pages 1 .. L, the *ledger*: one little-endian u32 per page of memory, the generation of
  the last write to that page (0 = never written, so the page must be all zero);
* pages L+1 .. n-1, the *data pages* the workload writes.

The ledger and the heartbeat live in guest memory on purpose: they are dirtied and copied
like any other page, so after a migration the target's memory carries the oracle that
judges it, and the heartbeat's last tick on the source is still there when the target's
first tick measures the gap. What memory alone cannot prove (that the final copy was not
dropped as a whole) is covered by the vCPU blob, which records the write counter and the
ledger's checksum at suspend time.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"LDMXGST1"

# Header page fields: name -> byte offset of a little-endian u64 (the magic is at 0).
HEADER_FIELDS = {
    "page_size": 8,
    "npages": 16,
    "ledger_pages": 24,
    "pages_written": 32,
    "last_beat_ns": 40,  # time.monotonic_ns() of the latest heartbeat
    "longest_gap_ns": 48,  # longest time between two consecutive heartbeats
    "longest_gap_end_ns": 56,  # when that gap ended
    "beats": 64,
    "resume_gap_ns": 72,  # the gap across the latest resume (a pause or a switch-over)
}
HEADER_BYTES = 80  # the fields above; then a u64 holding CRC-32 of bytes 0..HEADER_BYTES
HEADER_CRC_OFFSET = 80
HEADER_USED = 88  # the rest of the header page stays zero

# Files in a guest's directory.
SPEC_FILE = "spec.json"
RAM_FILE = "ram"
DIRTY_FILE = "dirty"
PID_FILE = "pid"
STOPPED_FILE = "stopped"  # present when the guest ended on request (not dead)
PENDING_VCPU_FILE = "vcpu-pending"  # a vCPU blob to apply at the next start
LOG_FILE = "guest.log"

MIN_DATA_PAGES = 1


@dataclass(frozen=True)
class Geometry:
    """Page counts of one guest's memory."""

    page_size: int
    npages: int

    @property
    def ledger_pages(self) -> int:
        return -(-self.npages * 4 // self.page_size)

    @property
    def first_data_page(self) -> int:
        return 1 + self.ledger_pages

    @property
    def data_pages(self) -> int:
        return self.npages - self.first_data_page

    @property
    def memory_bytes(self) -> int:
        return self.npages * self.page_size

    @property
    def bitmap_bytes(self) -> int:
        """Length of the dirty bitmap handed to callers: one bit per page, LSB first."""
        return -(-self.npages // 8)

    @property
    def ledger_slice(self) -> slice:
        """Byte range of the ledger entries inside guest memory."""
        start = self.page_size
        return slice(start, start + self.npages * 4)


def geometry_for(memory_bytes: int, page_size: int) -> Geometry:
    """Check a memory size and page size and return the geometry, or raise ValueError."""
    if page_size < 512 or page_size & (page_size - 1):
        raise ValueError(f"page size {page_size} is not a power of two of at least 512")
    if memory_bytes <= 0 or memory_bytes % page_size:
        raise ValueError(
            f"memory size {memory_bytes} is not a positive multiple of the page size {page_size}"
        )
    geo = Geometry(page_size, memory_bytes // page_size)
    if geo.data_pages < MIN_DATA_PAGES:
        raise ValueError(
            f"memory size {memory_bytes} is too small: the header and ledger need "
            f"{geo.first_data_page} pages of {page_size} bytes"
        )
    return geo


def read_field(ram, name: str) -> int:
    """One header field of a mapped guest memory."""
    return struct.unpack_from("<Q", ram, HEADER_FIELDS[name])[0]


def write_field(ram, name: str, value: int) -> None:
    struct.pack_into("<Q", ram, HEADER_FIELDS[name], value)


def seal_header(ram) -> None:
    """Refresh the header checksum after changing fields."""
    struct.pack_into("<Q", ram, HEADER_CRC_OFFSET, zlib.crc32(ram[0:HEADER_BYTES]))


def header_sealed(ram) -> bool:
    stored = struct.unpack_from("<Q", ram, HEADER_CRC_OFFSET)[0]
    return stored == zlib.crc32(ram[0:HEADER_BYTES])


def has_header(ram) -> bool:
    """Whether the guest has booted at least once on this memory."""
    return bytes(ram[0:8]) == MAGIC


def init_header(ram, geo: Geometry) -> None:
    """Write a fresh header (first boot on zeroed memory)."""
    ram[0:8] = MAGIC
    write_field(ram, "page_size", geo.page_size)
    write_field(ram, "npages", geo.npages)
    write_field(ram, "ledger_pages", geo.ledger_pages)
    seal_header(ram)


def socket_name(guest_dir: Path) -> bytes:
    """The guest's control socket, in the abstract namespace.

    Abstract names have no 108-byte path limit (test state directories are long) and
    vanish with the process, so a stale socket can never answer for a dead guest.
    """
    digest = hashlib.sha256(str(Path(guest_dir).resolve()).encode()).hexdigest()[:32]
    return b"\0ldmx-guest-" + digest.encode()
