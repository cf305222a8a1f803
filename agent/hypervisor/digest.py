"""Memory and state digests of migration.md §10.7 (pure: buffers in, bytes out).

Page digest ``H(i, content)``: the first 16 bytes of BLAKE2b (64-byte output) over the
8-byte big-endian page index followed by the page. Memory digest: the XOR of ``H`` over
every page that is not all zero, so an all-zero memory has 16 zero bytes.

XOR makes the digest incremental: rewriting page ``i`` removes its old term and adds the
new one. :class:`MemoryDigest` keeps the term of every page (16 bytes each, 2 MiB per GiB
of 8 KiB pages) so that an update needs only the new content. Zero pages are detected
with ``bytes.startswith`` on the memoryview (a ``memcmp``, no copy) and never hashed.

Lives beside ``pagescan`` because both the simulated hypervisor (the source digest) and
the data plane (the target digest) use it.
"""

from __future__ import annotations

import hashlib

DIGEST_SIZE = 16
ZERO_DIGEST = bytes(DIGEST_SIZE)


def page_term(index: int, page) -> bytes:
    """``H(index, page)``: 16 bytes, whatever the page holds (zero pages included)."""
    h = hashlib.blake2b(index.to_bytes(8, "big"))
    h.update(page)
    return h.digest()[:DIGEST_SIZE]


def state_digest(blob: bytes) -> bytes:
    """The digest a ``VCPU`` or ``DEVICE`` record carries for its own bytes (§10.7)."""
    return hashlib.blake2b(blob).digest()[:DIGEST_SIZE]


class MemoryDigest:
    """The §10.7 digest of a memory of ``page_count`` pages, kept current page by page.

    Starts as the digest of an all-zero memory. Not thread-safe: one writer at a time.
    """

    CHUNK_PAGES = 64  # zero detection works on chunks of this many pages

    def __init__(self, page_count: int, page_size: int, terms=None, value: bytes = ZERO_DIGEST) -> None:
        """``terms``: a writable buffer of ``16 * page_count`` bytes holding the pages'
        terms (shared with another process), with ``value`` their XOR; a zeroed buffer of
        our own when omitted."""
        self.page_count = page_count
        self.page_size = page_size
        if terms is None:
            terms = bytearray(DIGEST_SIZE * page_count)
        elif len(terms) != DIGEST_SIZE * page_count:
            raise ValueError(f"{len(terms)} bytes of terms for {page_count} pages")
        self._terms = terms
        self._value = int.from_bytes(value, "big")
        self._zero_page = bytes(page_size)
        self._zero_terms = bytes(DIGEST_SIZE * self.CHUNK_PAGES)
        self._zero_chunk = bytes(page_size * self.CHUNK_PAGES)
        self.hashed = 0  # pages hashed so far (for cost figures)

    def value(self) -> bytes:
        """The memory digest now."""
        return self._value.to_bytes(DIGEST_SIZE, "big")

    @property
    def terms(self):
        """Every page's term, 16 bytes each in page order (the buffer itself: read only)."""
        return self._terms

    def take_over(self, value: bytes, hashed: int) -> None:
        """Another writer kept this digest's terms (a shared buffer): take its totals."""
        self._value = int.from_bytes(value, "big")
        self.hashed = hashed

    def set_pages(self, first: int, data, stride: int = 1) -> None:
        """Pages ``first``, ``first + stride``, ... now hold ``data`` (a whole number of
        pages, any buffer, one after another): a stream's pages are every Nth one."""
        view = memoryview(data).cast("B")
        ps = self.page_size
        count, rest = divmod(view.nbytes, ps)
        last = first + (count - 1) * stride
        if rest or first < 0 or stride < 1 or (count and last >= self.page_count):
            raise ValueError(f"pages {first}+{view.nbytes / ps:g} do not fit {self.page_count}")
        if stride == 1 and count > 1:
            # Whole chunks of zero pages are common (a fresh guest, round-0 holes): one
            # memcmp per chunk, and their terms are cleared without a per-page loop.
            chunk = self.CHUNK_PAGES
            zero_chunk = self._zero_chunk
            for k in range(0, count, chunk):
                n = min(chunk, count - k)
                part = view[k * ps : (k + n) * ps]
                if zero_chunk.startswith(part):
                    self.clear_pages(first + k, n)
                else:
                    self._hash_pages(first + k, part, n, 1)
            return
        self._hash_pages(first, view, count, stride)

    def _hash_pages(self, first: int, view: memoryview, count: int, stride: int) -> None:
        ps = self.page_size
        zero = self._zero_page
        terms = self._terms
        value = self._value
        for k in range(count):
            index = first + k * stride
            page = view[k * ps : (k + 1) * ps]
            at = index * DIGEST_SIZE
            old = int.from_bytes(terms[at : at + DIGEST_SIZE], "big")
            if zero.startswith(page):
                new_term = ZERO_DIGEST
            else:
                new_term = page_term(index, page)
                self.hashed += 1
            terms[at : at + DIGEST_SIZE] = new_term
            value ^= old ^ int.from_bytes(new_term, "big")
        self._value = value

    def clear_pages(self, first: int, count: int, stride: int = 1) -> None:
        """Pages ``first``, ``first + stride``, ... (``count`` of them) are now all zero:
        remove their terms."""
        if count < 0 or first < 0 or stride < 1 or (count and first + (count - 1) * stride
                                                      >= self.page_count):
            raise ValueError(f"pages {first}+{count} do not fit {self.page_count}")
        if stride > 1:
            terms = self._terms
            value = self._value
            for index in range(first, first + count * stride, stride):
                at = index * DIGEST_SIZE
                value ^= int.from_bytes(terms[at : at + DIGEST_SIZE], "big")
                terms[at : at + DIGEST_SIZE] = ZERO_DIGEST
            self._value = value
            return
        terms = self._terms
        blank = self._zero_terms
        chunk = len(blank)
        value = self._value
        end = (first + count) * DIGEST_SIZE
        for start in range(first * DIGEST_SIZE, end, chunk):
            stop = min(start + chunk, end)
            if blank.startswith(terms[start:stop]):
                continue  # already zero pages: the common case for round-0 ZERO runs
            for at in range(start, stop, DIGEST_SIZE):
                value ^= int.from_bytes(terms[at : at + DIGEST_SIZE], "big")
            terms[start:stop] = blank[: stop - start]
        self._value = value


def merge(digests: list[MemoryDigest]) -> MemoryDigest:
    """One digest of the pages that ``digests`` hold between them, each page's term in at
    most one of them (a transfer's per-stream digests: page i travels on stream i mod N)."""
    first = digests[0]
    if len(digests) == 1:
        return first
    merged = MemoryDigest(first.page_count, first.page_size)
    terms = 0
    for digest in digests:
        terms ^= int.from_bytes(digest._terms, "big")
        merged._value ^= digest._value
        merged.hashed += digest.hashed
    merged._terms[:] = terms.to_bytes(len(first._terms), "big")
    return merged


def memory_digest(ram, page_size: int) -> bytes:
    """The digest of a whole memory, by a full scan (tests, and hypervisors without a log)."""
    view = memoryview(ram).cast("B")
    digest = MemoryDigest(view.nbytes // page_size, page_size)
    digest.set_pages(0, view[: digest.page_count * page_size])
    return digest.value()
