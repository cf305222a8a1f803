"""The §10.7 digests: page terms, the XOR algebra, the source's digest log, the target's
check (migration.md §10.7; M113 is proved end to end in ``test_dataplane_digest.py``)."""

import hashlib
import os

import pytest

from agent.hypervisor.digest import (ZERO_DIGEST, MemoryDigest, memory_digest, page_term,
                                     state_digest)
from agent.hypervisor.sim.digestlog import DigestKeeper, DigestLog
from agent.migration import messages, verify

PAGE = 8192


def term(index: int, page: bytes) -> int:
    """H(i, content) written out from the spec's words, as an int for XOR."""
    whole = hashlib.blake2b(index.to_bytes(8, "big") + page).digest()
    return int.from_bytes(whole[:16], "big")


def test_page_term_is_the_first_16_bytes_of_blake2b_over_index_then_page():
    """§10.7: H(i, content); the index is 8 bytes, big-endian, before the content."""
    page = os.urandom(PAGE)
    assert int.from_bytes(page_term(5, page), "big") == term(5, page)
    assert page_term(5, page) != page_term(6, page)  # the index is part of the hash


def test_memory_digest_is_the_xor_of_the_non_zero_pages_terms():
    pages = [os.urandom(PAGE), bytes(PAGE), os.urandom(PAGE), bytes(PAGE)]
    expected = term(0, pages[0]) ^ term(2, pages[2])
    assert memory_digest(b"".join(pages), PAGE) == expected.to_bytes(16, "big")


def test_all_zero_memory_has_the_zero_digest_and_zero_pages_add_nothing():
    assert memory_digest(bytes(8 * PAGE), PAGE) == ZERO_DIGEST
    digest = MemoryDigest(8, PAGE)
    digest.set_pages(3, bytes(PAGE))
    assert digest.value() == ZERO_DIGEST and digest.hashed == 0


def test_replacing_a_page_term_equals_a_recomputation():
    """The incremental rule: remove the old term, add the new one."""
    ram = bytearray(os.urandom(16 * PAGE))
    digest = MemoryDigest(16, PAGE)
    digest.set_pages(0, ram)
    for index, content in ((4, os.urandom(PAGE)), (4, os.urandom(PAGE)), (9, bytes(PAGE)),
                           (0, os.urandom(2 * PAGE))):
        ram[index * PAGE:index * PAGE + len(content)] = content
        digest.set_pages(index, content)
        assert digest.value() == memory_digest(ram, PAGE)


def test_clearing_pages_removes_their_terms():
    ram = bytearray(os.urandom(8 * PAGE))
    digest = MemoryDigest(8, PAGE)
    digest.set_pages(0, ram)
    digest.clear_pages(2, 3)
    ram[2 * PAGE:5 * PAGE] = bytes(3 * PAGE)
    assert digest.value() == memory_digest(ram, PAGE)
    digest.clear_pages(0, 8)
    assert digest.value() == ZERO_DIGEST


def test_pages_outside_the_memory_are_refused():
    digest = MemoryDigest(4, PAGE)
    with pytest.raises(ValueError):
        digest.set_pages(3, bytes(2 * PAGE))
    with pytest.raises(ValueError):
        digest.set_pages(0, bytes(PAGE + 1))
    with pytest.raises(ValueError):
        digest.clear_pages(2, 3)


class LoggedMemory:
    """A guest's memory and dirty log, as the digest log sees them."""

    def __init__(self, pages: int) -> None:
        self.ram = bytearray(os.urandom(pages * PAGE))
        self.bits = 0

    def write(self, index: int, content: bytes) -> None:
        self.ram[index * PAGE:(index + 1) * PAGE] = content
        self.bits |= 1 << index

    def fetch(self) -> bytes:
        taken, self.bits = self.bits, 0
        return taken.to_bytes(len(self.ram) // PAGE // 8, "little")


def test_digest_log_rehashes_only_written_pages_and_matches_a_full_scan():
    """§10.7 source side: the digest read at suspend equals a scan, without one."""
    memory = LoggedMemory(64)
    log = DigestLog()
    read = lambda: log.read("g", memory.fetch, lambda: memoryview(memory.ram), PAGE)  # noqa: E731
    assert read() == memory_digest(memory.ram, PAGE)  # first read: the full scan
    memory.write(7, os.urandom(PAGE))
    memory.write(8, bytes(PAGE))
    log.sync("g", memory.fetch)  # the migration's dirty sync takes the bits first
    memory.write(40, os.urandom(PAGE))
    assert read() == memory_digest(memory.ram, PAGE)
    assert log._guests["g"].digest.hashed == 64 + 2  # 7 and 40; 8 is zero now


def test_a_digest_read_never_hides_a_write_from_the_next_dirty_sync():
    memory = LoggedMemory(16)
    log = DigestLog()
    log.read("g", memory.fetch, lambda: memoryview(memory.ram), PAGE)
    memory.write(3, os.urandom(PAGE))
    log.read("g", memory.fetch, lambda: memoryview(memory.ram), PAGE)  # takes bit 3
    synced = int.from_bytes(log.sync("g", memory.fetch), "little")
    assert synced == 1 << 3
    assert log.sync("g", memory.fetch) == bytes(2)  # handed over once only


def test_target_check_passes_on_equal_digests_and_fails_on_a_state_mismatch():
    """§10.7: the target compares the memory digest and every state digest."""
    ram = memoryview(bytearray(4 * PAGE))
    target = verify.TargetDigest(4, PAGE)
    ram[PAGE:2 * PAGE] = os.urandom(PAGE)
    target.applied(1, ram[PAGE:2 * PAGE])
    totals = verify.end_fields(memory_digest(ram, PAGE), b"vcpu")
    verdict = target.check(ram, totals, b"vcpu", compare=True)
    assert verdict.matches and verdict.compared
    with pytest.raises(verify.VerificationFailed, match=messages.DIGEST_MISMATCH):
        target.check(ram, totals, b"vcpu, changed", compare=True)
    assert not target.check(ram, totals, b"other", compare=False).matches  # off: logged only
    assert totals[verify.VCPU_KEY] == state_digest(b"vcpu").hex()


def test_a_reported_write_after_apply_is_rehashed_at_the_check():
    ram = memoryview(bytearray(os.urandom(4 * PAGE)))
    target = verify.TargetDigest(4, PAGE)
    target.applied(0, ram)
    totals = verify.end_fields(memory_digest(ram, PAGE), b"")
    ram[2 * PAGE + 5] ^= 0xFF
    target.written(2 * PAGE + 5)
    with pytest.raises(verify.VerificationFailed):
        target.check(ram, totals, b"", compare=True)


def test_strided_updates_equal_a_full_scan():
    """§10.1 + §10.7: a stream's frame covers every Nth page; setting and clearing pages
    by stride gives the digest of the memory as it then stands."""
    ram = bytearray(os.urandom(12 * PAGE))
    digest = MemoryDigest(12, PAGE)
    digest.set_pages(0, ram)
    fresh = [os.urandom(PAGE) for _ in range(3)]
    for k, page in enumerate(fresh):  # pages 1, 4, 7 on stream 1 of 3
        ram[(1 + 3 * k) * PAGE:(2 + 3 * k) * PAGE] = page
    digest.set_pages(1, b"".join(fresh), stride=3)
    assert digest.value() == memory_digest(ram, PAGE)
    for index in (2, 5, 8, 11):
        ram[index * PAGE:(index + 1) * PAGE] = bytes(PAGE)
    digest.clear_pages(2, 4, stride=3)
    assert digest.value() == memory_digest(ram, PAGE)
    with pytest.raises(ValueError):
        digest.clear_pages(2, 5, stride=3)  # page 14 does not exist


@pytest.mark.parametrize("streams", [1, 2, 3])
def test_per_stream_target_digests_xor_to_the_memory_digest(streams):
    """§10.7 with N streams (M108: page i on stream i mod N): one digest per stream, no
    lock, and their XOR is the memory digest; a reported write is routed to the stream
    that owns the page."""
    pages = 10
    ram = memoryview(bytearray(os.urandom(pages * PAGE)))
    digests = verify.StreamDigests(streams, pages, PAGE)
    for index in range(pages):
        digests[index % streams].applied(index, ram[index * PAGE:(index + 1) * PAGE])
    totals = verify.end_fields(memory_digest(ram, PAGE), b"v")
    assert digests.check(ram, totals, b"v", compare=True).matches
    ram[7 * PAGE + 1] ^= 0x5A
    digests.written(7 * PAGE + 1)  # reported: re-hashed into stream 7 mod N's digest
    with pytest.raises(verify.VerificationFailed):
        digests.check(ram, totals, b"v", compare=True)
    assert digests.value(ram) == memory_digest(ram, PAGE)
    assert digests[7 % streams].value(ram) != bytes(16)


def test_a_digest_mismatch_shows_the_verification_line():
    """Appendix A / F19: the operator's line names the target domain and machine."""
    error = "target reported: " + messages.digest_mismatch("aa", "bb", "cc", "cc")
    line = messages.transfer_failure(error, "ldg1", "127.0.0.1", True, "ldg-web", "system2")
    assert line == "Memory verification of domain ldg-web failed on target machine system2"


def test_zero_chunks_and_mixed_chunks_give_the_scan_digest():
    """The zero-chunk fast path of ``set_pages`` clears terms and hashes the rest alike."""
    ram = bytearray(200 * PAGE)
    for index in (0, 63, 64, 130, 199):
        ram[index * PAGE:(index + 1) * PAGE] = os.urandom(PAGE)
    digest = MemoryDigest(200, PAGE)
    digest.set_pages(0, ram)
    assert digest.value() == memory_digest(ram, PAGE) and digest.hashed == 5
    ram[64 * PAGE:65 * PAGE] = bytes(PAGE)  # a chunk that held data is all zero now
    ram[130 * PAGE:131 * PAGE] = bytes(PAGE)
    digest.set_pages(64, ram[64 * PAGE:192 * PAGE])
    assert digest.value() == memory_digest(ram, PAGE)


def test_a_long_first_scan_of_one_guest_does_not_hold_up_dirty_syncs():
    """The keeper's first full scan must not stall a migration's round-end sync (§10.2)."""
    memory = LoggedMemory(16)
    other = LoggedMemory(16)
    log = DigestLog()
    log.read("g", memory.fetch, lambda: memoryview(memory.ram), PAGE)
    log.read("h", other.fetch, lambda: memoryview(other.ram), PAGE)
    memory.write(2, os.urandom(PAGE))
    with log._guests["g"].hashing:  # as if a read of "g" were hashing right now
        assert int.from_bytes(log.sync("g", memory.fetch), "little") == 1 << 2
        assert log.sync("h", other.fetch) == bytes(2)


def test_the_digest_worker_hashes_in_order_and_ends_with_the_memory_as_it_stands():
    """§10.7 target side off the receiving thread: a page rewritten by a later record
    (before the worker reached the earlier one) still ends with its final term."""
    pages = 32
    ram = bytearray(pages * PAGE)
    target = verify.TargetDigest(pages, PAGE)
    worker = verify.DigestWorker(target, memoryview(ram), PAGE)
    try:
        for round_number in range(3):
            for first in range(0, pages, 4):
                ram[first * PAGE:(first + 4) * PAGE] = os.urandom(4 * PAGE)
                worker.applied(first, 4)
        ram[8 * PAGE:12 * PAGE] = bytes(4 * PAGE)
        worker.cleared(8, 4)
        worker.finish()
        assert target.value(memoryview(ram)) == memory_digest(ram, PAGE)
    finally:
        worker.close()
    worker.close()  # twice is harmless


def test_a_digest_worker_failure_is_raised_at_finish_not_lost():
    target = verify.TargetDigest(4, PAGE)
    worker = verify.DigestWorker(target, memoryview(bytearray(4 * PAGE)), PAGE)
    try:
        worker.cleared(3, 2)  # pages 3 and 4: the memory has 4
        with pytest.raises(ValueError):
            worker.finish()
    finally:
        worker.close()


def test_the_digest_keeper_reads_each_followed_guest_until_it_is_gone():
    """The hypervisor keeps a running guest's digest current from its start (§10.7)."""
    import threading

    reads: list[str] = []
    gone = {"b"}
    seen = threading.Event()

    def read(name: str) -> bytes:
        reads.append(name)
        if name == "a" and reads.count("a") >= 2:
            seen.set()
        if name in gone:
            raise OSError("guest b is not running")
        return ZERO_DIGEST

    keeper = DigestKeeper(read, interval=0.01)
    keeper.follow("a")
    keeper.follow("b")
    assert seen.wait(5)
    assert reads.count("b") == 1  # a failed read ends the following
    keeper.unfollow("a")
    count = len(reads)
    threading.Event().wait(0.1)
    assert len(reads) <= count + 1  # at most the read that was under way


@pytest.mark.parametrize("streams", [1, 3])
def test_merged_stream_digests_carry_every_page_term(streams):
    """What the target hands to its hypervisor after a transfer (so the migrated guest is
    not scanned again): one digest whose later updates still equal a full scan."""
    pages = 12
    ram = bytearray(os.urandom(pages * PAGE))
    digests = verify.StreamDigests(streams, pages, PAGE)
    for index in range(pages):
        digests[index % streams].applied(index, ram[index * PAGE:(index + 1) * PAGE])
    merged = digests.merged(memoryview(ram))
    assert merged.value() == memory_digest(ram, PAGE)
    ram[5 * PAGE:6 * PAGE] = os.urandom(PAGE)  # the guest runs and writes page 5
    merged.set_pages(5, ram[5 * PAGE:6 * PAGE])
    assert merged.value() == memory_digest(ram, PAGE)
