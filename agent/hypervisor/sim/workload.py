"""Workload profiles: which pages a simulated guest writes, and how fast.

Each profile is a dirty rate (MiB/s of pages written) over a working set (a share of the
data pages). ``web`` follows the classic pre-copy papers' web-server case: a small hot set
rewritten often, so the dirty set stays small and pre-copy converges. ``diabolical`` writes
faster than a loopback link copies, across all of memory, so pre-copy alone never
converges and only throttling or a forced switch-over ends a migration.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MIB = 1 << 20


@dataclass(frozen=True)
class Profile:
    """A named rate and working set."""

    name: str
    rate_mib_s: float
    working_set: float  # share of the data pages
    sequential: bool


PROFILES = {
    p.name: p
    for p in (
        Profile("idle", 0.25, 1 / 64, False),
        Profile("web", 16.0, 1 / 16, False),
        Profile("db", 64.0, 1 / 2, False),
        Profile("stream", 256.0, 1.0, True),
        Profile("diabolical", 640.0, 1.0, False),
    )
}

# Longest stretch of running time one burst may make up for: after a stall the writer
# does not try to catch up, as a real guest would not.
_MAX_CATCH_UP_S = 0.02


class Pacer:
    """Turns running time into a number of page writes (a token bucket)."""

    def __init__(self, pages_per_s: float) -> None:
        self.pages_per_s = pages_per_s
        self._credit = 0.0

    def due(self, running_s: float) -> int:
        """Pages to write for ``running_s`` seconds of vCPU time."""
        self._credit += self.pages_per_s * min(running_s, _MAX_CATCH_UP_S)
        count = int(self._credit)
        self._credit -= count
        return count


class PagePicker:
    """Chooses the pages of each burst within the working set."""

    def __init__(self, profile: Profile, first_page: int, data_pages: int, seed: int) -> None:
        self.first_page = first_page
        self.size = max(1, int(data_pages * profile.working_set))
        self.sequential = profile.sequential
        self.cursor = 0
        self._rng = random.Random(seed)

    def pick(self, count: int) -> list[int]:
        """The next ``count`` page indexes (repeats allowed for random profiles)."""
        base = self.first_page
        if self.sequential:
            start = self.cursor
            self.cursor = (start + count) % self.size
            return [base + (start + i) % self.size for i in range(count)]
        pick = self._rng.randrange
        size = self.size
        return [base + pick(size) for _ in range(count)]


def profile(name: str) -> Profile:
    """The profile called ``name``, or ValueError listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown workload {name!r}; known: {', '.join(PROFILES)}"
        ) from None


def pages_per_second(prof: Profile, page_size: int) -> float:
    return prof.rate_mib_s * MIB / page_size
