"""Bulk scans over dirty bitmaps and guest memory, at C speed (no Python loop per page).

Bitmap convention, shared by every hypervisor backend: page ``i`` is bit ``i & 7`` (least
significant first) of byte ``i >> 3``.
"""

from __future__ import annotations

import os

_CHUNK_PAGES = 128


def dirty_count(bitmap: bytes) -> int:
    """Number of set bits."""
    return int.from_bytes(bitmap, "little").bit_count()


def dirty_runs(bitmap: bytes) -> list[tuple[int, int]]:
    """Runs of set bits as ``(first page, count)``, in ascending order."""
    value = int.from_bytes(bitmap, "little")
    if not value:
        return []
    # Binary formatting of an int is linear and in C; reversed, character i is page i.
    # Two str.find calls per run then walk it at memchr speed.
    bits = format(value, "b")[::-1]
    find = bits.find
    runs = []
    first = find("1")
    while first >= 0:
        end = find("0", first)
        if end < 0:
            end = len(bits)
        runs.append((first, end - first))
        first = find("1", end)
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
        # One copy per chunk; then bytes equality and startswith are plain memcmp calls
        # (memoryview equality compares item by item and is far slower).
        chunk = mem[page * page_size : (page + span) * page_size].tobytes()
        if span == _CHUNK_PAGES and chunk == zero_chunk:
            if start >= 0:
                runs.append((start, page - start))
                start = -1
            page += span
            continue
        for offset in range(span):
            if chunk.startswith(zero_page, offset * page_size):
                if start >= 0:
                    runs.append((start, page + offset - start))
                    start = -1
            elif start < 0:
                start = page + offset
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
