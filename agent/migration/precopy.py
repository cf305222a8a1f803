"""Pre-copy convergence logic (sans-IO): when to switch over, throttle, or give up.

The driver reports each finished round (what it sent, how long it took, how many pages
the dirty sync returned) and gets back a ``Decision``. Nothing here reads a clock: every
time comes in the ``RoundReport``, so tests drive the logic with a simulated clock.

Rules (spec §10.5, §10.6):

* expected downtime = R / B + O, where R is the dirty bytes (scaled by the last round's
  compression ratio) plus the vCPU state size, B the payload bandwidth measured over the
  last round (extended back over earlier rounds until the window covers 100 ms; never
  above the bandwidth cap), and O
  twice the control round trip plus a fixed resume overhead;
* switch over when the dirty set is empty or the expected downtime fits the budget
  (with ``settle_ms``, beyond the spec: not while a further round still halves the
  dirty set and the expected downtime is above ``settle_ms``);
* auto-converge: a round k >= 1 whose dirty volume did not shrink below half of what the
  round sent counts as stalled; every second stalled round raises the throttle
  (20 %, then +10 points, at most 99 %);
* round cap, completion timeout and progress timeout run the timeout action
  (``abort`` or ``force``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

CONTINUE = "continue"
SWITCH = "switch"
ABORT = "abort"

SWITCH_BUDGET = "budget"
SWITCH_EMPTY = "empty"
SWITCH_FORCED = "forced"

TIMEOUT_ABORT = "abort"
TIMEOUT_FORCE = "force"

GIB = 1 << 30


def default_timeout_s(memory_bytes: int) -> float:
    """The completion timeout: the larger of 120 s and 800 s per started GiB."""
    return float(max(120, 800 * math.ceil(memory_bytes / GIB)))


@dataclass(frozen=True)
class PrecopyConfig:
    """Tuning of the convergence logic (Appendix B names in comments)."""

    downtime_budget_ms: float = 300.0  # migration_max_downtime
    max_rounds: int = 30  # migration_max_rounds, round 0 included
    timeout_s: float | None = None  # timeout=; None means default_timeout_s(memory)
    progress_timeout_s: float = 150.0  # migration_progress_timeout
    timeout_action: str = TIMEOUT_ABORT  # migration_timeout_action
    auto_converge: bool = True  # migration_auto_converge
    throttle_initial: int = 20
    throttle_increment: int = 10
    throttle_max: int = 99
    stall_rounds: int = 2  # stalled rounds per throttle step
    stall_ratio: float = 0.5  # dirtied / sent above which a round counts as stalled
    resume_overhead_ms: float = 5.0
    control_rtt_ms: float = 0.0
    bandwidth_window_s: float = 0.1
    max_bandwidth: int = 0  # migration_max_bandwidth, bytes/s; 0 = unlimited (§10.5)
    # Beyond the spec, off by default: when the budget is met but the expected downtime
    # is above settle_ms and the last round at least halved the dirty set, one more
    # (short) round is cheaper than the pause it saves.
    settle_ms: float | None = None

    def __post_init__(self) -> None:
        if self.timeout_action not in (TIMEOUT_ABORT, TIMEOUT_FORCE):
            raise ValueError(f"timeout action must be abort or force, not {self.timeout_action!r}")
        if self.max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        if self.downtime_budget_ms <= 0:
            raise ValueError("the downtime budget must be positive")
        if self.max_bandwidth < 0:
            raise ValueError("the bandwidth cap must be 0 (unlimited) or positive")


@dataclass(frozen=True)
class RoundReport:
    """What one round did, as the driver measured it."""

    round: int
    started: float  # seconds, on the injected clock
    ended: float  # after the dirty sync (and the target's acknowledgement)
    payload_bytes: int  # written to the data channel, after zero elision and compression
    raw_data_bytes: int  # raw bytes of the non-zero pages sent (for the compression ratio)
    pages_handled: int  # pages sent in the round, zero pages included
    dirty_pages: int  # size of the dirty set the sync at the end of the round returned


@dataclass(frozen=True)
class Decision:
    """The outcome of ``Convergence.round_finished``."""

    action: str  # CONTINUE, SWITCH or ABORT
    reason: str  # switch-over cause, or the non-convergence reason for ABORT, or ""
    expected_downtime_ms: float
    bandwidth: float  # bytes per second
    throttle: int  # percent to apply before the next round (or kept during stop-and-copy)
    dirty_rate: float  # pages per second dirtied during the round


@dataclass
class Convergence:
    """Decides, round after round, how a pre-copy ends."""

    config: PrecopyConfig
    page_size: int
    memory_bytes: int
    state_bytes: int
    started: float  # start of phase 3, on the same clock as the reports
    throttle: int = 0
    _stalls: int = 0
    _history: list[tuple[float, int]] = field(default_factory=list)  # (duration, payload)
    _best_remaining: int | None = None
    _best_at: float = 0.0
    _ratio: float = 1.0

    @property
    def timeout_s(self) -> float:
        if self.config.timeout_s is not None:
            return self.config.timeout_s
        return default_timeout_s(self.memory_bytes)

    def bandwidth(self) -> float:
        """Payload bytes per second over the latest rounds covering the window."""
        duration = 0.0
        payload = 0
        for round_duration, round_payload in reversed(self._history):
            duration += round_duration
            payload += round_payload
            if duration >= self.config.bandwidth_window_s:
                break
        if duration <= 0 or payload <= 0:
            return float(self.config.max_bandwidth)
        measured = payload / duration
        if self.config.max_bandwidth:
            return min(measured, float(self.config.max_bandwidth))  # B is the capped rate
        return measured

    def expected_downtime_ms(self, dirty_pages: int) -> float:
        """R / B + O for a dirty set of ``dirty_pages`` pages."""
        remaining = dirty_pages * self.page_size * self._ratio + self.state_bytes
        overhead = 2 * self.config.control_rtt_ms + self.config.resume_overhead_ms
        bandwidth = self.bandwidth()
        if bandwidth <= 0:
            return math.inf if remaining else overhead
        return remaining / bandwidth * 1000.0 + overhead

    def round_finished(self, report: RoundReport) -> Decision:
        """Account for a finished round and decide what comes next."""
        duration = max(report.ended - report.started, 0.0)
        self._history.append((duration, report.payload_bytes))
        if report.raw_data_bytes:
            self._ratio = report.payload_bytes / report.raw_data_bytes
            self._ratio = min(self._ratio, 1.0) if self._ratio > 0 else 1.0
        dirty_rate = report.dirty_pages / duration if duration > 0 else 0.0
        expected = self.expected_downtime_ms(report.dirty_pages)

        def decide(action: str, reason: str) -> Decision:
            return Decision(action, reason, expected, self.bandwidth(), self.throttle, dirty_rate)

        if report.dirty_pages == 0:
            return decide(SWITCH, SWITCH_EMPTY)
        if expected <= self.config.downtime_budget_ms:
            if not self._worth_another_round(report, expected):
                return decide(SWITCH, SWITCH_BUDGET)
            self._limit_reached(report)  # keeps the progress bookkeeping current
            return decide(CONTINUE, "")
        limit = self._limit_reached(report)
        if limit:
            if self.config.timeout_action == TIMEOUT_FORCE:
                return decide(SWITCH, SWITCH_FORCED)
            return decide(ABORT, limit)
        self._update_throttle(report)
        return decide(CONTINUE, "")

    def _worth_another_round(self, report: RoundReport, expected: float) -> bool:
        settle = self.config.settle_ms
        if settle is None or expected <= settle:
            return False
        converging = 2 * report.dirty_pages <= report.pages_handled
        return converging and report.round + 2 < self.config.max_rounds

    def _limit_reached(self, report: RoundReport) -> str:
        remaining = report.dirty_pages
        if self._best_remaining is None or remaining < self._best_remaining:
            self._best_remaining = remaining
            self._best_at = report.ended
        if report.round + 1 >= self.config.max_rounds:
            return f"the limit of {self.config.max_rounds} rounds was reached"
        if report.ended - self.started >= self.timeout_s:
            return f"the timeout of {_seconds(self.timeout_s)} seconds was reached"
        if report.ended - self._best_at >= self.config.progress_timeout_s:
            return f"no progress for {_seconds(self.config.progress_timeout_s)} seconds"
        return ""

    def _update_throttle(self, report: RoundReport) -> None:
        if not self.config.auto_converge or report.round < 1:
            return
        dirtied = report.dirty_pages * self.page_size
        handled = report.pages_handled * self.page_size
        if dirtied <= self.config.stall_ratio * handled:
            return
        self._stalls += 1
        if self._stalls < self.config.stall_rounds:
            return
        self._stalls = 0
        if self.throttle == 0:
            self.throttle = self.config.throttle_initial
        else:
            raised = self.throttle + self.config.throttle_increment
            self.throttle = min(self.config.throttle_max, raised)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def non_convergence_message(ldom: str, reason: str) -> str:
    """The operator's text for an aborted, non-converging migration (spec §10.6)."""
    return f"Migration of domain {ldom} did not converge: {reason}"
