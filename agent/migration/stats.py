"""Data-plane statistics, modelled on libvirt's job statistics (spec §10.10).

``StatsRecorder`` is the mutable accumulator the transfer thread updates; any thread may
call ``snapshot`` and gets an immutable ``MigrationStatistics`` whose counters are
mutually consistent (``data_total == data_processed + data_remaining``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class MigrationStatistics:
    """One consistent view of a transfer; progress events carry it."""

    role: str  # "source" or "target"
    status: str  # "ongoing", "done" or "failed"
    time_elapsed_ms: float
    round: int  # completed rounds (dirty syncs)
    memory_total: int
    memory_processed: int
    memory_remaining: int
    data_total: int
    data_processed: int
    data_remaining: int
    transferred: int  # payload bytes on the data channel (after zero elision and compression)
    constant_pages: int
    normal_pages: int
    normal_bytes: int
    page_size: int
    dirty_rate: float  # pages per second, last round
    throughput: float  # bytes per second, B of §10.5
    compression: str
    compression_ratio: float
    throttle: int
    downtime_budget_ms: float
    expected_downtime_ms: float | None
    downtime_ms: float | None
    switchover: str | None
    error: str | None

    def as_dict(self) -> dict[str, object]:
        """The statistics under the spec's key names (``memory-total``, ...)."""
        names = {
            "time_elapsed_ms": "time-elapsed",
            "downtime_budget_ms": "downtime-budget",
            "expected_downtime_ms": "expected-downtime",
            "downtime_ms": "downtime",
        }
        return {
            names.get(f.name, f.name.replace("_", "-")): getattr(self, f.name) for f in fields(self)
        }


class StatsRecorder:
    """Counters of one transfer; cheap to update in batches, safe to snapshot from any thread."""

    def __init__(
        self,
        role: str,
        memory_total: int,
        page_size: int,
        state_bytes: int,
        budget_ms: float,
        compression: str,
        clock: Callable[[], float],
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._started = clock()
        self.role = role
        self.memory_total = memory_total
        self.page_size = page_size
        self.state_bytes = state_bytes
        self.budget_ms = budget_ms
        self.compression = compression
        self.status = "ongoing"
        self.round = 0
        self.memory_processed = 0
        self.pending_pages = memory_total // page_size  # round 0 visits every page
        self.state_sent = 0
        self.transferred = 0
        self.constant_pages = 0
        self.normal_pages = 0
        self.normal_bytes = 0
        self.dirty_rate = 0.0
        self.throughput = 0.0
        self.throttle = 0
        self.expected_downtime_ms: float | None = None
        self.downtime_ms: float | None = None
        self.switchover: str | None = None
        self.error: str | None = None

    def pages(self, zero: bool, count: int, payload: int) -> None:
        """Account for a run of ``count`` pages handled (sent or, if zero, elided)."""
        with self._lock:
            self.memory_processed += count * self.page_size
            self.pending_pages = max(self.pending_pages - count, 0)
            self.transferred += payload
            if zero:
                self.constant_pages += count
            else:
                self.normal_pages += count
                self.normal_bytes += count * self.page_size

    def state(self, payload: int) -> None:
        with self._lock:
            self.state_sent += payload
            self.transferred += payload

    def round_end(self, round_number: int, dirty_pages: int, **values) -> None:
        """A dirty sync finished: ``dirty_pages`` now wait for the next round."""
        with self._lock:
            self.round = round_number + 1
            self.pending_pages = dirty_pages
            for name, value in values.items():
                setattr(self, name, value)

    def update(self, **values) -> None:
        with self._lock:
            for name, value in values.items():
                if not hasattr(self, name):
                    raise AttributeError(name)
                setattr(self, name, value)

    def snapshot(self) -> MigrationStatistics:
        with self._lock:
            state_remaining = max(self.state_bytes - self.state_sent, 0)
            memory_remaining = self.pending_pages * self.page_size
            data_processed = self.memory_processed + self.state_sent
            data_remaining = memory_remaining + state_remaining
            ratio = self.transferred / self.normal_bytes if self.normal_bytes else 1.0
            return MigrationStatistics(
                role=self.role,
                status=self.status,
                time_elapsed_ms=(self._clock() - self._started) * 1000.0,
                round=self.round,
                memory_total=self.memory_total,
                memory_processed=self.memory_processed,
                memory_remaining=memory_remaining,
                data_total=data_processed + data_remaining,
                data_processed=data_processed,
                data_remaining=data_remaining,
                transferred=self.transferred,
                constant_pages=self.constant_pages,
                normal_pages=self.normal_pages,
                normal_bytes=self.normal_bytes,
                page_size=self.page_size,
                dirty_rate=self.dirty_rate,
                throughput=self.throughput,
                compression=self.compression,
                compression_ratio=ratio,
                throttle=self.throttle,
                downtime_budget_ms=self.budget_ms,
                expected_downtime_ms=self.expected_downtime_ms,
                downtime_ms=self.downtime_ms,
                switchover=self.switchover,
                error=self.error,
            )
