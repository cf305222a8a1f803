"""The source domain's §10.7 memory digest, kept current from the dirty log.

The spec has the simulated hypervisor update the digest on every write. Here the writer
is the guest process, and hashing every write there (BLAKE2b runs at 250-600 MB/s on the
development VM) would slow the guest's own loop. The equivalent used instead: the agent
keeps each page's term (``MemoryDigest``) and a *digest-dirty* set, fed by the same dirty
log that records every guest write (vCPU and device writes alike, §10.2). A read of the
digest takes the log's new bits, re-hashes only the pages written since the previous read
and returns the XOR. The first read scans the whole memory (zero pages are not hashed).

The read takes bits from the dirty log that the migration's own dirty sync has not seen
yet; they are kept (``carry``) and handed to the next ``get_and_clear_dirty``, so reading
the digest never hides a write from the copy. A page written during a read has its bit
set after the read fetched the log, so the next read re-hashes it: the digest is exact
whenever the guest is paused (§10.7 reads it while suspended).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from agent.hypervisor import pagescan
from agent.hypervisor.digest import MemoryDigest


class GuestDigest:
    """One guest's page terms, digest-dirty set and carried-over dirty bits."""

    def __init__(self, ram: memoryview, page_size: int) -> None:
        self.ram = ram
        self.page_size = page_size
        self.page_count = ram.nbytes // page_size
        self.digest: MemoryDigest | None = None  # None until the first (full) read
        self.written = 0  # digest-dirty pages, as an int bitmap
        self.carry = 0  # dirty bits taken by a read, owed to the next dirty sync

    def took(self, bits: int) -> int:
        """A dirty sync took ``bits``: note them, and return them with what is owed."""
        self.written |= bits
        owed, self.carry = self.carry, 0
        return bits | owed

    def read(self, bits: int) -> bytes:
        """The digest now, ``bits`` being the dirty log fetched for this read."""
        self.carry |= bits
        ps = self.page_size
        if self.digest is None:
            self.digest = MemoryDigest(self.page_count, ps)
            self.digest.set_pages(0, self.ram[: self.page_count * ps])
        else:
            pending = (self.written | bits).to_bytes(-(-self.page_count // 8), "little")
            for first, count in pagescan.dirty_runs(pending):
                count = min(count, self.page_count - first)
                if count > 0:
                    self.digest.set_pages(first, self.ram[first * ps : (first + count) * ps])
        self.written = 0
        return self.digest.value()


class DigestLog:
    """The digests of the guests whose digest was read at least once (thread-safe)."""

    def __init__(self) -> None:
        self._guests: dict[str, GuestDigest] = {}
        self._lock = threading.Lock()

    def sync(self, name: str, fetch: Callable[[], bytes]) -> bytes:
        """A dirty sync: ``fetch`` takes the log; its bits are noted, carried bits added.

        The fetch runs under the lock, so that a digest read cannot fall between a sync's
        fetch and the noting of its bits.
        """
        with self._lock:
            bitmap = fetch()
            guest = self._guests.get(name)
            if guest is None:
                return bitmap
            bits = guest.took(int.from_bytes(bitmap, "little"))
        return bits.to_bytes(len(bitmap), "little")

    def read(self, name: str, fetch: Callable[[], bytes], ram: Callable[[], memoryview],
             page_size: int) -> bytes:
        """The guest's memory digest; ``fetch`` takes the dirty log, ``ram`` maps memory."""
        with self._lock:
            guest = self._guests.get(name)
            if guest is None:
                guest = self._guests[name] = GuestDigest(ram(), page_size)
            return guest.read(int.from_bytes(fetch(), "little"))

    def forget(self, name: str) -> None:
        """Drop a guest's terms: its memory may change without the dirty log knowing."""
        with self._lock:
            self._guests.pop(name, None)
