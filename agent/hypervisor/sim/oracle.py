"""The guest's integrity oracle: self-verifying pages and the scan that judges memory.

A data page written by the workload holds, for page index ``i`` and generation ``g``:

* bytes 0..16: the stamp, ``i`` and ``g`` as little-endian u64;
* bytes 16..P-8: the body, a slice of a fixed pseudo-random pool chosen by ``(i, g)``, so
  that every write changes the whole page and pages do not compress to nothing;
* bytes P-8..P-4: CRC-32 of the body followed by the stamp (little-endian u32);
* bytes P-4..P: zero.

The ledger (see ``layout``) records the last ``g`` of each page and the header counts all
writes, so ``sum(ledger) == pages_written``. ``verify_ram`` checks all of this and knows
nothing about migration: it is the independent judge of any copy of guest memory.
"""

from __future__ import annotations

import random
import struct
import zlib

from agent.hypervisor.sim import layout
from agent.hypervisor.sim.layout import Geometry

STAMP = struct.Struct("<QQ")
_POOL_SEED = 0x1D0_5EED


class PagePainter:
    """Writes stamped, checksummed pages into a guest memory buffer."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.body_len = page_size - 24
        self.slots = page_size // 8
        pool = random.Random(_POOL_SEED).randbytes(self.slots * 8 + self.body_len)
        self._pool = memoryview(pool)
        # CRC of each possible body, so a write costs no pass over the page: the checksum
        # of body+stamp is the stamp's CRC continued from the body's.
        self._body_crc = [
            zlib.crc32(self._pool[k * 8 : k * 8 + self.body_len]) for k in range(self.slots)
        ]

    def paint(self, ram: memoryview, index: int, generation: int) -> None:
        """Write generation ``generation`` of page ``index``."""
        size = self.page_size
        base = index * size
        slot = ((index * 2654435761) ^ (generation * 40503)) % self.slots
        stamp = STAMP.pack(index, generation)
        crc = zlib.crc32(stamp, self._body_crc[slot])
        # One assignment for the whole page: a single memcpy from a joined buffer is
        # cheaper than several slice stores from Python.
        ram[base : base + size - 4] = b"".join(
            (stamp, self._pool[slot * 8 : slot * 8 + self.body_len], crc.to_bytes(4, "little"))
        )


def page_problem(page: bytes, index: int, generation: int) -> str | None:
    """What is wrong with one page given the generation the ledger expects, or None."""
    size = len(page)
    if generation == 0:
        if page.count(0) != size:
            return f"page {index} was never written but is not zero"
        return None
    got_index, got_gen = STAMP.unpack_from(page, 0)
    if got_index != index or got_gen != generation:
        return (
            f"page {index} holds page {got_index} generation {got_gen}, "
            f"the ledger expects generation {generation}"
        )
    crc = zlib.crc32(page[0:16], zlib.crc32(page[16 : size - 8]))
    stored = int.from_bytes(page[size - 8 : size - 4], "little")
    if crc != stored or page[size - 4 :] != b"\0\0\0\0":
        return f"page {index} generation {generation} fails its checksum"
    return None


def ledger_view(ram: memoryview, geo: Geometry) -> memoryview:
    """The ledger as a sequence of u32, one per page."""
    return ram[geo.ledger_slice].cast("I")


def ledger_crc(ram: memoryview, geo: Geometry) -> int:
    return zlib.crc32(ram[geo.ledger_slice])


def verify_ram(ram: memoryview, geo: Geometry, header: bytes | None = None) -> str | None:
    """Scan guest memory; describe the first inconsistency found, or return None.

    The guest's writer must be held (paused, stopped or parked) while this runs.
    ``header`` replaces page 0 by a copy taken earlier (the heartbeat may still run).
    """
    mem = memoryview(ram).cast("B")
    size = geo.page_size
    head = mem[:size].tobytes() if header is None else header
    if not layout.has_header(head):
        # Never booted: memory must be untouched.
        if head.count(0) != size:
            return "page 0 is not zero on a guest that never ran"
        for index in range(1, geo.npages):
            if mem[index * size : (index + 1) * size].tobytes().count(0) != size:
                return f"page {index} is not zero on a guest that never ran"
        return None
    if not layout.header_sealed(head):
        return "header page fails its checksum"
    if head[layout.HEADER_USED :].count(0) != size - layout.HEADER_USED:
        return "header page: bytes past the header fields are not zero"
    for field, expected in (("page_size", size), ("npages", geo.npages)):
        if layout.read_field(head, field) != expected:
            return f"header page: {field} is {layout.read_field(head, field)}, expected {expected}"
    ledger = ledger_view(mem, geo)
    written = layout.read_field(head, "pages_written")
    total = sum(ledger)
    if total != written:
        return f"ledger: generations sum to {total} but the header counts {written} writes"
    for index in range(geo.first_data_page):
        if ledger[index]:
            return f"ledger: reserved page {index} has generation {ledger[index]}"
    tail = mem[geo.ledger_slice.stop : geo.first_data_page * size].tobytes()
    if tail.count(0) != len(tail):
        return "ledger: bytes past the last entry are not zero"
    for index in range(geo.first_data_page, geo.npages):
        page = mem[index * size : (index + 1) * size].tobytes()
        problem = page_problem(page, index, ledger[index])
        if problem:
            return problem
    return None
