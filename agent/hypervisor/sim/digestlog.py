"""The source domain's §10.7 memory digest, kept current from the dirty log.

The spec has the simulated hypervisor update the digest on every write. Here the writer
is the guest process, and hashing every write there (BLAKE2b runs at 250-600 MB/s on the
development VM) would slow the guest's own loop. The equivalent used instead: the agent
keeps each page's term (``MemoryDigest``) and a *digest-dirty* set, fed by the same dirty
log that records every guest write (vCPU and device writes alike, §10.2). A read of the
digest takes the log's new bits, re-hashes only the pages written since the previous read
and returns the XOR. The first read scans the whole memory (zero pages are not hashed).
:class:`DigestKeeper` reads every running guest's digest in the background, from its
start, so a migration finds it current and pays only for the pages written since.

The read takes bits from the dirty log that the migration's own dirty sync has not seen
yet; they are kept (``carry``) and handed to the next ``get_and_clear_dirty``, so reading
the digest never hides a write from the copy. A page written during a read has its bit
set after the read fetched the log, so the next read re-hashes it: the digest is exact
whenever the guest is paused (§10.7 reads it while suspended).

Locks: the bit bookkeeping of one guest is under its ``state`` lock, held only for a
fetch of the log; the hashing is under its ``hashing`` lock, so one guest's long first
scan never holds up a dirty sync, of that guest or of any other.
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
        self.state = threading.Lock()  # written and carry
        self.hashing = threading.Lock()  # digest: one reader at a time

    def took(self, bits: int) -> int:
        """A dirty sync took ``bits``: note them, and return them with what is owed."""
        self.written |= bits
        owed, self.carry = self.carry, 0
        return bits | owed

    def claim(self, bits: int) -> int:
        """A read fetched ``bits``: owe them to the copy; return the pages to re-hash."""
        self.carry |= bits
        pending, self.written = self.written | bits, 0
        return pending

    def rehash(self, pending: int) -> bytes:
        """Re-hash the ``pending`` pages (everything, the first time); the digest now."""
        ps = self.page_size
        if self.digest is None:
            self.digest = MemoryDigest(self.page_count, ps)
            self.digest.set_pages(0, self.ram[: self.page_count * ps])
        elif pending:
            bitmap = pending.to_bytes(-(-self.page_count // 8), "little")
            for first, count in pagescan.dirty_runs(bitmap):
                count = min(count, self.page_count - first)
                if count > 0:
                    self.digest.set_pages(first, self.ram[first * ps : (first + count) * ps])
        return self.digest.value()


class DigestLog:
    """The digests of the guests whose digest was read at least once (thread-safe)."""

    def __init__(self) -> None:
        self._guests: dict[str, GuestDigest] = {}
        self._lock = threading.Lock()  # the dict

    def sync(self, name: str, fetch: Callable[[], bytes]) -> bytes:
        """A dirty sync: ``fetch`` takes the log; its bits are noted, carried bits added.

        The fetch runs under the guest's state lock, so that a digest read cannot fall
        between a sync's fetch and the noting of its bits.
        """
        with self._lock:
            guest = self._guests.get(name)
            if guest is None:
                return fetch()  # under the dict lock: no read can start following it now
        with guest.state:
            bitmap = fetch()
            bits = guest.took(int.from_bytes(bitmap, "little"))
        return bits.to_bytes(len(bitmap), "little")

    def read(self, name: str, fetch: Callable[[], bytes], ram: Callable[[], memoryview],
             page_size: int) -> bytes:
        """The guest's memory digest; ``fetch`` takes the dirty log, ``ram`` maps memory."""
        with self._lock:
            guest = self._guests.get(name)
            if guest is None:
                guest = self._guests[name] = GuestDigest(ram(), page_size)
        with guest.hashing:
            with guest.state:
                pending = guest.claim(int.from_bytes(fetch(), "little"))
            return guest.rehash(pending)

    def adopt(self, name: str, ram: memoryview, page_size: int, digest: MemoryDigest) -> None:
        """Follow a guest whose memory ``digest`` describes exactly (a migrated guest: the
        data plane hashed every page it wrote), so that no first scan is needed."""
        guest = GuestDigest(ram, page_size)
        guest.digest = digest
        with self._lock:
            self._guests[name] = guest

    def following(self, name: str) -> bool:
        """Whether the guest's digest has been read since it started."""
        with self._lock:
            return name in self._guests

    def forget(self, name: str) -> None:
        """Drop a guest's terms: its memory may change without the dirty log knowing."""
        with self._lock:
            self._guests.pop(name, None)


class DigestKeeper:
    """Keeps the digest of every followed guest current, one read every ``interval`` s.

    A daemon thread, started with the first guest it follows. ``read(name)`` is the
    hypervisor's digest read; a guest that has gone (any error) is no longer followed.
    The first read of a guest is a full scan, made here in the background instead of in
    a migration's first round.
    """

    def __init__(self, read: Callable[[str], bytes], interval: float = 1.0) -> None:
        self._read = read
        self.interval = interval
        self._names: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def follow(self, name: str) -> None:
        """Keep ``name``'s digest current from now on (its first read comes at once)."""
        with self._lock:
            self._names.add(name)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ldmx-digest-keeper",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def unfollow(self, name: str) -> None:
        with self._lock:
            self._names.discard(name)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._lock:
                names = sorted(self._names)
            for name in names:
                with self._lock:
                    if name not in self._names:
                        continue
                try:
                    self._read(name)
                except Exception:  # stopped, destroyed, or died: nothing to keep current
                    self.unfollow(name)
