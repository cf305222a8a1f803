"""Bulk page scanning for the data plane: dirty bitmap -> runs, runs -> zero/data pieces.

Pure functions over buffers. The hot path avoids per-page Python work where it can:
the bitmap is skipped a whole zero byte-span at a time (a regular expression runs at C
speed) and decoded 512 bits at a time with integer bit tricks; zero detection compares
a whole run of pages against a preallocated zero buffer with ``bytes.startswith``, which
is a ``memcmp`` over the memoryview without copying, and only looks at single pages
inside a run that is not entirely zero.

Bitmap convention (the hypervisor's dirty log): page ``i`` is bit ``i % 8`` of byte
``i // 8`` (least significant bit first).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_NONZERO_SPAN = re.compile(rb"[^\x00]+")
_DECODE_BYTES = 64  # 512 pages per integer: small enough for cheap shifts


def dirty_runs(bitmap: bytes | bytearray | memoryview, page_count: int) -> list[tuple[int, int]]:
    """Return the set bits of ``bitmap`` as ascending, coalesced ``(first_page, count)`` runs.

    Bits at or beyond ``page_count`` are ignored.
    """
    runs: list[tuple[int, int]] = []
    data = bytes(bitmap)
    for match in _NONZERO_SPAN.finditer(data):
        span_start, span_end = match.span()
        for offset in range(span_start, span_end, _DECODE_BYTES):
            piece = data[offset : min(offset + _DECODE_BYTES, span_end)]
            _decode_piece(int.from_bytes(piece, "little"), offset * 8, runs)
    return _clip(runs, page_count)


def _decode_piece(bits: int, base: int, runs: list[tuple[int, int]]) -> None:
    while bits:
        skip = (bits & -bits).bit_length() - 1
        bits >>= skip
        ones = (bits ^ (bits + 1)).bit_length() - 1  # trailing one bits
        start = base + skip
        if runs and runs[-1][0] + runs[-1][1] == start:
            runs[-1] = (runs[-1][0], runs[-1][1] + ones)
        else:
            runs.append((start, ones))
        bits >>= ones
        base = start + ones


def _clip(runs: list[tuple[int, int]], page_count: int) -> list[tuple[int, int]]:
    while runs and runs[-1][0] + runs[-1][1] > page_count:
        first, count = runs.pop()
        if first < page_count:
            runs.append((first, page_count - first))
            break
    return runs


def run_pages(runs: list[tuple[int, int]]) -> int:
    """Total number of pages in ``runs``."""
    return sum(count for _, count in runs)


class ZeroScanner:
    """Splits runs of guest RAM into zero pieces and data pieces of bounded size."""

    def __init__(self, ram: memoryview, page_size: int, max_pages: int) -> None:
        if ram.nbytes % page_size:
            raise ValueError("RAM size is not a multiple of the page size")
        self.ram = ram
        self.page_size = page_size
        self.max_pages = max_pages
        self._zero_chunk = bytes(page_size * max_pages)
        self._zero_page = self._zero_chunk[:page_size]

    def pieces(self, first: int, count: int) -> Iterator[tuple[bool, int, int]]:
        """Yield ``(is_zero, first_page, count)`` covering the run in ascending order.

        Data pieces hold at most ``max_pages`` pages; adjacent zero pages are merged into
        one piece of any length.
        """
        ps = self.page_size
        ram = self.ram
        zero_first = -1  # start of the zero piece being accumulated
        end = first + count
        chunk_start = first
        while chunk_start < end:
            chunk_end = min(chunk_start + self.max_pages, end)
            chunk = ram[chunk_start * ps : chunk_end * ps]
            if self._zero_chunk.startswith(chunk):
                if zero_first < 0:
                    zero_first = chunk_start
            else:
                flags = self._page_flags(chunk, chunk_end - chunk_start)
                for is_zero, offset, length in _group(flags):
                    page = chunk_start + offset
                    if is_zero:
                        if zero_first < 0:
                            zero_first = page
                        continue
                    if zero_first >= 0:
                        yield True, zero_first, page - zero_first
                        zero_first = -1
                    yield False, page, length
            chunk_start = chunk_end
        if zero_first >= 0:
            yield True, zero_first, end - zero_first

    def _page_flags(self, chunk: memoryview, pages: int) -> list[bool]:
        zero = self._zero_page
        ps = self.page_size
        return [zero.startswith(chunk[i : i + ps]) for i in range(0, pages * ps, ps)]


def _group(flags: list[bool]) -> Iterator[tuple[bool, int, int]]:
    """Group consecutive equal flags into ``(flag, offset, length)``."""
    if True not in flags:  # the common case for touched memory: one data piece
        yield False, 0, len(flags)
        return
    start = 0
    for i in range(1, len(flags) + 1):
        if i == len(flags) or flags[i] != flags[start]:
            yield flags[start], start, i - start
            start = i
