"""Bulk page scanning for the data plane: dirty bitmap -> runs, runs -> zero/data pieces.

Pure functions over buffers. The hot path avoids per-page Python work where it can:
the bitmap is decoded by the hypervisor package's bulk scanner (C-speed string searches);
zero detection compares a whole run of pages against a preallocated zero buffer with
``bytes.startswith``, which is a ``memcmp`` over the memoryview without copying, and
only looks at single pages inside a run that is not entirely zero. Holes of a sparse
RAM file (``cover``) are known zero and never read at all.

Bitmap convention (the hypervisor's dirty log): page ``i`` is bit ``i % 8`` of byte
``i // 8`` (least significant bit first).
"""

from __future__ import annotations

from collections.abc import Iterator

from agent.hypervisor import pagescan as hvscan


def dirty_runs(bitmap: bytes, page_count: int) -> list[tuple[int, int]]:
    """The set bits of ``bitmap`` as ascending ``(first_page, count)`` runs below ``page_count``."""
    return _clip(hvscan.dirty_runs(bitmap), page_count)


def _clip(runs: list[tuple[int, int]], page_count: int) -> list[tuple[int, int]]:
    while runs and runs[-1][0] + runs[-1][1] > page_count:
        first, count = runs.pop()
        if first < page_count:
            runs.append((first, page_count - first))
            break
    return runs


def coalesce(runs: list[tuple[int, int]], max_gap: int) -> list[tuple[int, int]]:
    """Merge runs separated by at most ``max_gap`` clean pages.

    Resending a clean page is harmless (it carries the current content) and costs less
    than a frame of its own: a scattered dirty set otherwise travels one page per frame.
    """
    if max_gap <= 0 or not runs:
        return runs
    merged = [runs[0]]
    for first, count in runs[1:]:
        last_first, last_count = merged[-1]
        if first - (last_first + last_count) <= max_gap:
            merged[-1] = (last_first, first + count - last_first)
        else:
            merged.append((first, count))
    return merged


def cover(extents: list[tuple[int, int]], page_count: int) -> list[tuple[bool, int, int]]:
    """Turn data extents into ``(is_hole, first, count)`` runs covering every page in order."""
    out: list[tuple[bool, int, int]] = []
    position = 0
    for first, count in extents:
        first = max(first, position)
        end = min(first + count, page_count) if count else first
        if first > position:
            out.append((True, position, first - position))
        if end > first:
            out.append((False, first, end - first))
        position = max(position, end)
    if position < page_count:
        out.append((True, position, page_count - position))
    return out


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
        if count == 1:
            # Most runs of a scattered final set are one page: one memcmp, no grouping
            # (4 of the source's 23 us per one-page frame went to the general path).
            yield self._zero_page.startswith(ram[first * ps : first * ps + ps]), first, 1
            return
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
