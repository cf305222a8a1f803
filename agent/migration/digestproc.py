"""The target's §10.7 page hashing in a child process, reading guest RAM from its file.

Why a process: BLAKE2b releases the GIL only while it hashes one page. A hashing thread
beside the receiving thread hands the GIL back and forth once or more per page, and on a
scattered dirty set (one page per record) those hand-offs cost more than the hashing:
measured here, a 1-page record took 50-60 us of target time with the thread and 23-35 us
with this process. The child reads the pages from the receiving guest's RAM file, so they
never cross the pipe; only the jobs do (``kind, first, count, stride``, 21 bytes each).

:class:`DigestProcess` has the interface of :class:`verify.DigestWorker` (``applied``,
``cleared``, ``finish``, ``close``). The page terms live in shared memory (a memfd both
processes map): the child writes them until ``finish``, which answers with the digest and
the count of pages hashed; from then on the stream's :class:`verify.TargetDigest` owns them,
so everything after (reported writes, the comparison, the hand-over to the hypervisor) is
unchanged and nothing is copied.

Flow control as in the thread: jobs travel in batches of about 64 pages, the child
acknowledges each batch with one byte, and the receiver waits once more than
``MAX_BEHIND`` batches are unacknowledged, so the hashing left at EOS stays small.

Run as ``python -m agent.migration.digestproc RAM_FILE TERMS_FD PAGE_COUNT PAGE_SIZE
VALUE_HEX``: jobs on standard input, acknowledgements and the totals on standard output.
"""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
import threading

from agent.hypervisor.digest import DIGEST_SIZE, MemoryDigest

JOB = struct.Struct("<BqqI")  # kind, first page, page count, stride
TOTALS = struct.Struct("<16sQ")  # the answer to FINISH: digest, pages hashed
APPLY, CLEAR, BATCH_END, FINISH = 1, 2, 3, 4
ACK = b"\x01"


class DigestProcessFailed(Exception):
    """The hashing child ended or could not be started."""


class DigestProcess:
    """Keeps one stream's :class:`verify.TargetDigest` current through a child process."""

    MAX_BEHIND = 4  # batches unacknowledged (verify.DigestWorker takes the same figures)
    BATCH_PAGES = 64

    def __init__(self, digest, ram_file: str, page_size: int) -> None:
        self.digest = digest
        memory = digest.memory
        size = DIGEST_SIZE * memory.page_count
        try:
            fd = os.memfd_create("ldmx-digest-terms")
            try:
                os.ftruncate(fd, size)
                terms = mmap.mmap(fd, size)
                terms[:] = memory.terms
                self._child = subprocess.Popen(
                    [sys.executable, "-m", __name__, ram_file, str(fd), str(memory.page_count),
                     str(page_size), memory.value().hex()],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, pass_fds=[fd],
                    env=_child_environment(),
                )
            finally:
                os.close(fd)
        except (OSError, AttributeError) as error:
            raise DigestProcessFailed(f"the digest process could not start: {error}") from None
        # The child writes the terms until finish(); the stream's digest reads them after.
        digest.memory = MemoryDigest(memory.page_count, page_size, terms, memory.value())
        self._jobs = self._child.stdin.fileno()
        self._replies = self._child.stdout.fileno()
        self._batch: list[bytes] = []
        self._batch_pages = 0
        self._unacked = 0
        self._closed = False

    def applied(self, first: int, count: int, stride: int = 1) -> None:
        """Pages ``first``, ``first + stride``, ... (``count``) were written: hash them."""
        self._add(JOB.pack(APPLY, first, count, stride), count)

    def cleared(self, first: int, count: int, stride: int = 1) -> None:
        """Pages ``first``, ``first + stride``, ... (``count``) are now all zero."""
        self._add(JOB.pack(CLEAR, first, count, stride), count)

    def _add(self, job: bytes, pages: int) -> None:
        self._batch.append(job)
        self._batch_pages += pages
        if self._batch_pages >= self.BATCH_PAGES:
            self._submit()

    def _submit(self) -> None:
        if not self._batch:
            return
        self._batch.append(JOB.pack(BATCH_END, 0, 0, 0))
        self._send(b"".join(self._batch))
        self._batch = []
        self._batch_pages = 0
        self._unacked += 1
        while self._unacked > self.MAX_BEHIND:
            self._unacked -= len(self._read(self._unacked - self.MAX_BEHIND, exact=False))

    def finish(self) -> None:
        """Wait until every job given so far is done; the stream's digest then takes the
        child's totals (the terms are already in the shared memory)."""
        self._submit()
        self._send(JOB.pack(FINISH, 0, 0, 0))
        if self._unacked:
            self._read(self._unacked)
            self._unacked = 0
        totals = self._read(TOTALS.size)
        value, hashed = TOTALS.unpack(totals)
        self.digest.memory.take_over(value, hashed)

    def close(self) -> None:
        """End the child (it exits on the end of its input); safe to call more than once.

        The exit is waited for on a thread: the target closes its children between READY
        and resuming the guest, and a child's exit took 2-8 ms here (more with bigger
        guests), which would be downtime.
        """
        if self._closed:
            return
        self._closed = True
        for stream in (self._child.stdin, self._child.stdout):
            try:
                stream.close()
            except OSError:
                pass
        threading.Thread(target=self._child.wait, name="ldmx-digest-reaper", daemon=True).start()

    def wait(self, timeout: float | None = None) -> int:
        """The child's exit status, once it has ended (tests and benchmarks)."""
        return self._child.wait(timeout)

    def _send(self, data: bytes) -> None:
        try:
            _write_all(self._jobs, data)
        except OSError:
            raise self._ended() from None

    def _read(self, size: int, exact: bool = True) -> bytes:
        """``size`` bytes from the child (or, with ``exact`` false, 1 to ``size``)."""
        out = bytearray()
        while len(out) < size:
            try:
                chunk = os.read(self._replies, size - len(out))
            except OSError:
                chunk = b""
            if not chunk:
                raise self._ended()
            out += chunk
            if not exact:
                break
        return bytes(out)

    def _ended(self) -> DigestProcessFailed:
        try:
            status = self._child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            status = None
        return DigestProcessFailed(f"the digest process ended unexpectedly (status {status})")


def _child_environment() -> dict[str, str]:
    """This environment, with the directory that holds the ``agent`` package first on the
    child's path: the agent may run from a checkout that is not installed, or elsewhere
    than its current directory."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def serve(ram_file: str, terms_fd: int, page_count: int, page_size: int, value: bytes,
          jobs: int = 0, replies: int = 1) -> int:
    """The child's loop: hash the pages each job names, as they stand in the RAM file."""
    terms = mmap.mmap(terms_fd, DIGEST_SIZE * page_count)
    os.close(terms_fd)
    digest = MemoryDigest(page_count, page_size, terms, value)
    # pread, not mmap: a process that mapped a whole guest took 40 ms per 256 MiB to exit
    # (the kernel unmapping every page), and its page faults cost more than the copy.
    ram = os.open(ram_file, os.O_RDONLY)
    ps = page_size
    chunk_pages = MemoryDigest.CHUNK_PAGES
    pending = b""
    while True:
        chunk = os.read(jobs, 1 << 16)
        if not chunk:
            return 0
        pending += chunk
        usable = len(pending) - len(pending) % JOB.size
        for kind, first, count, stride in JOB.iter_unpack(pending[:usable]):
            if kind == APPLY:
                if stride == 1:
                    for at in range(first, first + count, chunk_pages):
                        n = min(chunk_pages, first + count - at)
                        digest.set_pages(at, os.pread(ram, n * ps, at * ps))
                else:
                    for page in range(first, first + count * stride, stride):
                        digest.set_pages(page, os.pread(ram, ps, page * ps))
            elif kind == CLEAR:
                digest.clear_pages(first, count, stride)
            elif kind == BATCH_END:
                os.write(replies, ACK)
            elif kind == FINISH:
                _write_all(replies, TOTALS.pack(digest.value(), digest.hashed))
            else:
                raise ValueError(f"unknown digest job kind {kind}")
        pending = pending[usable:]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


if __name__ == "__main__":
    status = serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                   bytes.fromhex(sys.argv[5]))
    # Without the interpreter's teardown: the target waits for this exit before it
    # reports, and a normal exit took about 30 ms here.
    sys.stdout.flush()
    os._exit(status)
