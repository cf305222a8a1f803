"""Bulk scans over bitmaps and memory agree with the obvious per-page definitions."""

from __future__ import annotations

import mmap
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.hypervisor import pagescan

PAGE = 512


def naive_runs(pages: list[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for index, flag in enumerate(pages + [False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            runs.append((start, index - start))
            start = None
    return runs


@given(st.binary(max_size=300))
def test_dirty_runs_and_count_match_the_bits(bitmap):
    pages = [bool(bitmap[i >> 3] >> (i & 7) & 1) for i in range(len(bitmap) * 8)]
    assert pagescan.dirty_runs(bitmap) == naive_runs(pages)
    assert pagescan.dirty_count(bitmap) == sum(pages)
    assert pagescan.runs_to_bitmap(pagescan.dirty_runs(bitmap), len(bitmap) * 8) == bitmap


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 299), st.integers(0, PAGE - 1)), max_size=40))
def test_nonzero_page_runs_finds_exactly_the_non_zero_pages(pokes):
    npages = 300  # more than two chunks, so both the chunk and the page paths run
    ram = bytearray(npages * PAGE)
    for page, offset in pokes:
        ram[page * PAGE + offset] = 7
    pages = [any(ram[i * PAGE : (i + 1) * PAGE]) for i in range(npages)]
    assert pagescan.nonzero_page_runs(memoryview(ram), PAGE) == naive_runs(pages)


def test_allocated_page_runs_cover_every_written_page(tmp_path):
    path = tmp_path / "ram"
    npages = 4096
    with open(path, "w+b") as f:
        f.truncate(npages * 8192)
        mem = mmap.mmap(f.fileno(), 0)
        for page in (5, 6, 1000, 4095):
            mem[page * 8192] = 1
        mem.flush()
        runs = pagescan.allocated_page_runs(f.fileno(), 8192, npages)
        mem.close()
    covered = {p for first, count in runs for p in range(first, first + count)}
    assert {5, 6, 1000, 4095} <= covered
    assert len(covered) < npages // 4, "holes of a sparse file must be skipped"
    assert os.stat(path).st_blocks * 512 < npages * 8192 // 4
