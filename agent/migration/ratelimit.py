"""The data channel's bandwidth cap (spec §10.5, M112), sans-IO: no clock, no sleeping.

``Pacer.delay(now, size)`` says how long to wait before ``size`` payload bytes may be
written. Frame i starts no earlier than frame i-1's start plus its size / rate, so over
any window of T seconds at most ``rate * T`` bytes plus one frame go out. Idle time earns
no credit (a paused sender does not come back with a burst). The driver reads the clock,
sleeps, and keeps frames small against the rate (``frame_pages``) so that the one-frame
excess stays within the 5 % the spec allows over a 1 s window.
"""

from __future__ import annotations

import threading

FRAME_SHARE = 0.02  # one frame at most 2 % of a second's allowance


class Pacer:
    """Spaces payload writes so that their rate never exceeds ``rate`` bytes per second."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("a bandwidth cap must be positive")
        self.rate = float(rate)
        self._next: float | None = None  # earliest start of the next write
        self._lock = threading.Lock()  # several streams share one cap

    def delay(self, now: float, size: int) -> float:
        """Seconds to wait from ``now`` before writing ``size`` bytes (and book them)."""
        with self._lock:
            start = now if self._next is None or self._next < now else self._next
            self._next = start + size / self.rate
            return start - now


def frame_pages(rate: float, page_size: int, max_pages: int) -> int:
    """Pages per PAGES frame under a cap of ``rate`` bytes/s (``rate`` 0: no cap)."""
    if rate <= 0:
        return max_pages
    return max(1, min(max_pages, int(rate * FRAME_SHARE) // page_size))
