"""Verifying memory before resume (migration.md §10.7) on the data plane.

The source reads its memory digest from the hypervisor after the last dirty sync, while
the domain is suspended, and sends it in the ``EOS`` record with the digest of the vCPU
state blob it sent. The target keeps its own digest current as it applies ``PAGES`` and
``ZERO`` records (:class:`TargetDigest`) and compares both before it answers ``READY``.
With ``migration_verify`` off the digests are still computed and reported, not compared.

Relation to the frame checksum: each frame's keyed checksum covers one frame's
bytes in transit (socket buffer to socket buffer). The digests cover the whole memory end
to end: a page the source never sent, a record applied at the wrong place, or a write into
the target's memory after a page was applied (F19) all pass every frame checksum and fail
here.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from agent.hypervisor import digest
from agent.migration import digestproc, messages

MEMORY_KEY = "memory-digest"  # keys of the EOS payload (JSON, hex digests)
VCPU_KEY = "vcpu-digest"


class VerificationFailed(Exception):
    """The target's memory or state digest differs from the source's."""


def source_memory_digest(hypervisor, name: str, ram: memoryview, page_size: int) -> bytes:
    """The source domain's memory digest now: the hypervisor's, else a full scan.

    The full scan is the fallback for hypervisors without ``memory_digest`` (test
    doubles): exact, but its cost grows with memory, so it is no way to meet a budget.
    """
    read = getattr(hypervisor, "memory_digest", None)
    if read is not None:
        return read(name)
    return digest.memory_digest(ram, page_size)


def keep_current(hypervisor, name: str) -> None:
    """Let the hypervisor re-hash what the guest wrote during a round (a running guest).

    The read at suspend then only re-hashes the pages written since the last round ended.
    """
    read = getattr(hypervisor, "memory_digest", None)
    if read is not None:
        read(name)


def start_first_read(hypervisor, name: str) -> threading.Thread | None:
    """Start the hypervisor's first digest read (a full scan) beside round 0.

    BLAKE2b releases the GIL on page-sized inputs, so the scan runs on another CPU while
    round 0 sends; a dirty sync that comes while it runs waits for it (the hypervisor's
    digest lock). A failure here is not an error: the next read scans again.
    """
    read = getattr(hypervisor, "memory_digest", None)
    if read is None:
        return None

    def scan() -> None:
        try:
            read(name)
        except Exception:
            pass  # the guest went away: the copy itself reports that

    thread = threading.Thread(target=scan, name=f"digest-{name}", daemon=True)
    thread.start()
    return thread


def end_fields(memory: bytes, vcpu_blob: bytes) -> dict[str, str]:
    """The digests the ``EOS`` payload carries."""
    return {MEMORY_KEY: memory.hex(), VCPU_KEY: digest.state_digest(vcpu_blob).hex()}


@dataclass(frozen=True)
class Verdict:
    """The outcome of the target's comparison, for the log and the statistics."""

    source: str
    target: str
    vcpu_source: str
    vcpu_target: str
    compared: bool
    ms: float

    @property
    def matches(self) -> bool:
        return self.source == self.target and self.vcpu_source == self.vcpu_target


class TargetDigest:
    """The receiving domain's memory digest, kept current record by record.

    The receiving memory is all zero at the start (phase 2), which is the digest's start.
    A write into that memory by anything but the data plane must be reported through
    :meth:`written` (the hypervisor's job for its own writes); the page is re-hashed from
    memory at the check. A change nobody reports is not seen without a full re-read.
    Not thread-safe: with several streams, use :class:`StreamDigests`.
    """

    def __init__(self, page_count: int, page_size: int) -> None:
        self.memory = digest.MemoryDigest(page_count, page_size)
        self.page_size = page_size
        self._written: set[int] = set()

    def applied(self, first: int, pages, stride: int = 1) -> None:
        """Pages ``first``, ``first + stride``, ... now hold ``pages`` (one after another)."""
        self.memory.set_pages(first, pages, stride)

    def cleared(self, first: int, count: int, stride: int = 1) -> None:
        self.memory.clear_pages(first, count, stride)

    def written(self, offset: int) -> None:
        """Something other than the data plane wrote the byte at ``offset``."""
        self._written.add(offset // self.page_size)

    def value(self, ram: memoryview) -> bytes:
        """The digest now, after re-hashing the pages reported as written."""
        ps = self.page_size
        for index in sorted(self._written):
            self.memory.set_pages(index, ram[index * ps : (index + 1) * ps])
        self._written.clear()
        return self.memory.value()

    def check(self, ram: memoryview, totals: dict, vcpu_blob: bytes, compare: bool,
              clock=time.monotonic) -> Verdict:
        """Compare with the source's digests in ``totals``; raise on a mismatch if ``compare``."""
        return _check(lambda: self.value(ram), totals, vcpu_blob, compare, clock)


class StreamDigests:
    """The target digest of a transfer over N streams: one :class:`TargetDigest` per stream.

    Page i always travels on stream i mod N, so each page's term lives in exactly one of
    them and the memory digest is their XOR (exact). Each receiving thread updates only its
    own stream's digest, so the hot path takes no lock; the check runs once every stream
    has ended.
    """

    def __init__(self, streams: int, page_count: int, page_size: int) -> None:
        self.streams = [TargetDigest(page_count, page_size) for _ in range(streams)]
        self.page_size = page_size

    def __getitem__(self, stream: int) -> TargetDigest:
        return self.streams[stream]

    def written(self, offset: int) -> None:
        """Something other than the data plane wrote the byte at ``offset``."""
        page = offset // self.page_size
        self.streams[page % len(self.streams)].written(offset)

    def merged(self, ram: memoryview) -> digest.MemoryDigest:
        """The whole memory's page terms in one digest (reported writes re-hashed first)."""
        for stream in self.streams:
            stream.value(ram)
        return digest.merge([stream.memory for stream in self.streams])

    def value(self, ram: memoryview) -> bytes:
        combined = 0
        for stream in self.streams:
            combined ^= int.from_bytes(stream.value(ram), "big")
        return combined.to_bytes(digest.DIGEST_SIZE, "big")

    def check(self, ram: memoryview, totals: dict, vcpu_blob: bytes, compare: bool,
              clock=time.monotonic) -> Verdict:
        """Compare with the source's digests in ``totals``; raise on a mismatch if ``compare``."""
        return _check(lambda: self.value(ram), totals, vcpu_blob, compare, clock)


class _Closed(Exception):
    """The worker was closed: the jobs still queued are skipped."""


class DigestWorker:
    """Keeps one stream's :class:`TargetDigest` current on a thread of its own.

    The receiving thread applies a record to guest memory, then hands the page span here;
    the worker hashes the pages as they then stand in memory. BLAKE2b releases the GIL
    on page-sized inputs, so the hashing (the largest CPU cost of a receive) runs on
    the other CPU while the next record is read and decrypted, instead of after it.

    Jobs run in the order given. Page i always arrives on the same stream, so the last
    job touching a page runs after the data plane's last write to it and reads the final
    content; an earlier job may already read a later record's content, which the later
    job hashes again. :meth:`finish` waits for every job before the comparison.

    At most ``MAX_BEHIND`` jobs wait: a receiver that runs ahead blocks, so the hashing
    left when the last record arrives (part of the downtime, §10.7) stays a few frames.
    """

    # Batches waiting, and the pages a batch covers before it is handed over (512 KiB):
    # the same figures as the digest process, so both keep the same tail at EOS.
    MAX_BEHIND = digestproc.DigestProcess.MAX_BEHIND
    BATCH_PAGES = digestproc.DigestProcess.BATCH_PAGES

    def __init__(self, digest: TargetDigest, ram: memoryview, page_size: int,
                 name: str = "ldmx-digest") -> None:
        self.digest = digest
        self._ram = ram
        self._page_size = page_size
        self._jobs: queue.Queue = queue.Queue(self.MAX_BEHIND)
        self._error: BaseException | None = None
        self._batch: list[tuple] = []
        self._batch_pages = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def applied(self, first: int, count: int, stride: int = 1) -> None:
        """Pages ``first``, ``first + stride``, ... (``count``) were written: hash them."""
        self._add((True, first, count, stride), count)

    def cleared(self, first: int, count: int, stride: int = 1) -> None:
        """Pages ``first``, ``first + stride``, ... (``count``) are now all zero."""
        self._add((False, first, count, stride), count)

    def _add(self, job: tuple, pages: int) -> None:
        # Small records (a scattered dirty set: one page each) travel in batches, so that
        # a hand-off to the worker thread is not paid per page.
        self._batch.append(job)
        self._batch_pages += pages
        if self._batch_pages >= self.BATCH_PAGES:
            self._submit()

    def _submit(self) -> None:
        if self._batch:
            self._jobs.put(self._batch)
            self._batch = []
            self._batch_pages = 0

    def finish(self) -> None:
        """Wait until every job given so far is done; raise the worker's failure if any."""
        self._submit()
        done = threading.Event()
        self._jobs.put(done)
        done.wait()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """End the worker (pending jobs are skipped); safe to call more than once."""
        if not self._thread.is_alive():
            return
        self._error = self._error or _Closed()
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        ps = self._page_size
        ram = self._ram
        digest = self.digest
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if isinstance(job, threading.Event):
                job.set()
                continue
            if self._error is not None:
                continue  # the failure is reported at finish(); skip the rest
            try:
                for is_write, first, count, stride in job:
                    if not is_write:
                        digest.cleared(first, count, stride)
                    elif stride == 1:
                        digest.applied(first, ram[first * ps : (first + count) * ps])
                    else:
                        for page in range(first, first + count * stride, stride):
                            digest.applied(page, ram[page * ps : page * ps + ps])
            except BaseException as error:  # reported by finish(), never lost
                self._error = error


def _check(target_value, totals: dict, vcpu_blob: bytes, compare: bool, clock) -> Verdict:
    started = clock()
    verdict = Verdict(
        source=str(totals.get(MEMORY_KEY, "")),
        target=target_value().hex(),
        vcpu_source=str(totals.get(VCPU_KEY, "")),
        vcpu_target=digest.state_digest(vcpu_blob).hex(),
        compared=compare,
        ms=(clock() - started) * 1000.0,
    )
    if compare and not verdict.matches:
        raise VerificationFailed(messages.digest_mismatch(verdict.source, verdict.target,
                                                          verdict.vcpu_source,
                                                          verdict.vcpu_target))
    return verdict
