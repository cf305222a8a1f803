"""Bulk scans over dirty bitmaps and guest memory, at C speed (no Python loop per page).

Bitmap convention, shared by every hypervisor backend: page ``i`` is bit ``i & 7`` (least
significant first) of byte ``i >> 3``.
"""

from __future__ import annotations

import os
import re

_EXPAND = [bytes((value >> bit) & 1 for bit in range(8)) for value in range(256)]
_NONZERO_BYTES = re.compile(rb"[^\x00]+")
_ONES = re.compile(rb"\x01+")
_CHUNK_PAGES = 128


def dirty_count(bitmap: bytes) -> int:
    """Number of set bits."""
    return int.from_bytes(bitmap, "little").bit_count()


def dirty_runs(bitmap: bytes) -> list[tuple[int, int]]:
    """Runs of set bits as ``(first page, count)``, in ascending order."""
    runs = []
    # Runs cannot cross a zero byte, so each non-zero stretch is expanded on its own.
    for stretch in _NONZERO_BYTES.finditer(bitmap):
        base = stretch.start() * 8
        bits = b"".join(map(_EXPAND.__getitem__, stretch.group()))
        runs.extend((base + run.start(), run.end() - run.start()) for run in _ONES.finditer(bits))
    return runs


def runs_to_bitmap(runs: list[tuple[int, int]], npages: int) -> bytes:
    """The bitmap with exactly the pages of ``runs`` set (the inverse of ``dirty_runs``)."""
    value = 0
    for first, count in runs:
        value |= ((1 << count) - 1) << first
    return value.to_bytes(-(-npages // 8), "little")


def nonzero_page_runs(
    ram: memoryview, page_size: int, first: int = 0, stop: int | None = None
) -> list[tuple[int, int]]:
    """Runs of pages in ``[first, stop)`` holding at least one non-zero byte."""
    mem = memoryview(ram).cast("B")
    if stop is None:
        stop = len(mem) // page_size
    zero_page = bytes(page_size)
    zero_chunk = bytes(page_size * _CHUNK_PAGES)
    runs: list[tuple[int, int]] = []
    start = -1
    page = first
    while page < stop:
        span = min(_CHUNK_PAGES, stop - page)
        # Most memory is either untouched or fully used: test a whole chunk first.
        # (tobytes + bytes equality is a memcpy and a memcmp; memoryview equality is not.)
        chunk = mem[page * page_size : (page + span) * page_size]
        if span == _CHUNK_PAGES and chunk.tobytes() == zero_chunk:
            if start >= 0:
                runs.append((start, page - start))
                start = -1
            page += span
            continue
        for index in range(page, page + span):
            if mem[index * page_size : (index + 1) * page_size].tobytes() == zero_page:
                if start >= 0:
                    runs.append((start, index - start))
                    start = -1
            elif start < 0:
                start = index
        page += span
    if start >= 0:
        runs.append((start, stop - start))
    return runs


def allocated_page_runs(fd: int, page_size: int, npages: int) -> list[tuple[int, int]]:
    """Runs of pages of a sparse file that have storage; holes are known zero.

    Uses ``SEEK_DATA``/``SEEK_HOLE``; where the file system lacks them the whole file is
    one run, which is still correct (a superset).
    """
    size = npages * page_size
    runs = []
    offset = 0
    try:
        while offset < size:
            try:
                data = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: no data past offset
            hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
            first = data // page_size
            end = -(-hole // page_size)
            if runs and runs[-1][0] + runs[-1][1] >= first:
                prev = runs.pop()
                first = prev[0]
            runs.append((first, end - first))
            offset = end * page_size
    except (AttributeError, OSError):
        return [(0, npages)]
    return runs
