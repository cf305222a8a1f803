"""The target's §10.7 hashing in a child process (M113): the same digest as a full scan,
a clear failure when the child dies, and the thread when no child can be started."""

import os
import subprocess

import pytest

from agent.hypervisor.digest import MemoryDigest, memory_digest
from agent.migration import digestproc, verify
from agent.migration.dataplane import TargetEngine
from agent.migration.channel import Login
from agent.migration import frames

PAGE = 8192
PAGES = 512


def ram_file(tmp_path, pages=PAGES):
    path = tmp_path / "ram"
    data = bytearray(pages * PAGE)
    for page in range(0, pages, 3):
        data[page * PAGE : page * PAGE + 64] = os.urandom(64)
    path.write_bytes(data)
    return path, data


def test_the_child_keeps_the_same_digest_as_a_full_scan(tmp_path):
    path, data = ram_file(tmp_path)
    digest = verify.TargetDigest(PAGES, PAGE)
    hasher = digestproc.DigestProcess(digest, str(path), PAGE)
    try:
        hasher.applied(0, 64)  # contiguous
        hasher.applied(64, PAGES - 64)  # more than one read of 64 pages
        hasher.applied(1, 100, 5)  # every fifth page again (a stream's share)
        hasher.cleared(6, 4)  # these pages became zero
        data[6 * PAGE : 10 * PAGE] = bytes(4 * PAGE)
        path.write_bytes(data)
        hasher.applied(200, 1)
        hasher.finish()
    finally:
        hasher.close()
    assert hasher.wait(timeout=10) == 0  # it exits on the end of its input
    assert digest.value(memoryview(data)) == memory_digest(data, PAGE)
    # The stream's digest owns the terms now: a reported write is re-hashed in place.
    data[300 * PAGE] ^= 0xFF
    digest.written(300 * PAGE)
    assert digest.value(memoryview(data)) == memory_digest(data, PAGE)


def test_finish_fails_clearly_when_the_child_died(tmp_path):
    path, _ = ram_file(tmp_path)
    hasher = digestproc.DigestProcess(verify.TargetDigest(PAGES, PAGE), str(path), PAGE)
    hasher._child.kill()
    hasher._child.wait()
    with pytest.raises(digestproc.DigestProcessFailed, match="ended unexpectedly"):
        for first in range(0, PAGES, 8):
            hasher.applied(first, 8)
        hasher.finish()
    hasher.close()


def test_the_child_reports_a_missing_ram_file_as_its_end(tmp_path):
    hasher = digestproc.DigestProcess(verify.TargetDigest(PAGES, PAGE),
                                      str(tmp_path / "gone"), PAGE)
    with pytest.raises(digestproc.DigestProcessFailed):
        hasher.applied(0, 64)
        hasher.finish()
    hasher.close()


def test_a_memory_digest_on_shared_terms_takes_over_the_other_writers_totals():
    page = b"\x07" * PAGE
    writer = MemoryDigest(4, PAGE)
    writer.set_pages(2, page)
    shared = MemoryDigest(4, PAGE, terms=writer.terms)
    shared.take_over(writer.value(), writer.hashed)
    reference = MemoryDigest(4, PAGE)
    reference.set_pages(2, page)
    assert shared.value() == reference.value() and shared.hashed == 1
    with pytest.raises(ValueError):
        MemoryDigest(4, PAGE, terms=bytearray(10))


class FileHypervisor:
    """Just enough hypervisor for a TargetEngine whose RAM is a file."""

    page_size = PAGE

    def __init__(self, path):
        self.path = str(path)
        self.ram = memoryview(bytearray(PAGES * PAGE))

    def map_ram(self, name, writable=False):
        return self.ram

    def ram_file(self, name):
        return self.path


def test_the_engine_hashes_in_a_child_when_the_ram_is_a_file_else_on_a_thread(
        tmp_path, monkeypatch):
    path, _ = ram_file(tmp_path)
    engine = TargetEngine(FileHypervisor(path), "g", [None], Login(frames.PROTOCOL_VERSION, PAGES))
    hasher = engine._hasher(0, engine.hv.ram_file)
    assert isinstance(hasher, digestproc.DigestProcess)
    hasher.close()

    def cannot_start(*args, **kwargs):
        raise OSError("no processes left")

    monkeypatch.setattr(subprocess, "Popen", cannot_start)
    hasher = engine._hasher(0, engine.hv.ram_file)
    assert isinstance(hasher, verify.DigestWorker)
    hasher.close()
