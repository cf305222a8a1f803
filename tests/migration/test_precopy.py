"""Convergence logic with a simulated clock and dirty model (spec §10.5, §10.6; M109-M111)."""

import pytest

from agent.migration import precopy
from agent.migration.precopy import (
    ABORT, CONTINUE, SWITCH, Convergence, PrecopyConfig, RoundReport,
)

PAGE = 8192
MIB = 1 << 20


class SimulatedTransfer:
    """A link of fixed bandwidth and a guest dirtying pages at a fixed rate.

    Each round sends the previous round's dirty set; the pages dirtied while it is sent
    (rate x duration, capped at the working set, reduced by the throttle) form the next.
    """

    def __init__(self, memory, bandwidth, dirty_rate, working_set, config=None, state=4096):
        self.bandwidth = bandwidth  # bytes/s
        self.dirty_rate = dirty_rate  # pages/s unthrottled
        self.working_set = working_set  # pages
        self.pages = memory // PAGE
        self.now = 0.0
        self.conv = Convergence(config or PrecopyConfig(), PAGE, memory, state, started=0.0)
        self.decisions = []

    def run(self, max_rounds=200):
        to_send = self.pages
        for number in range(max_rounds):
            start = self.now
            duration = to_send * PAGE / self.bandwidth
            self.now += duration
            rate = self.dirty_rate * (100 - self.conv.throttle) / 100
            dirty = min(int(rate * duration), self.working_set)
            decision = self.conv.round_finished(
                RoundReport(number, start, self.now, to_send * PAGE, to_send * PAGE, to_send, dirty))
            self.decisions.append(decision)
            if decision.action != CONTINUE:
                return decision
            to_send = dirty
        raise AssertionError("the logic never ended the pre-copy")


def test_idle_guest_switches_over_when_the_dirty_set_is_empty():
    sim = SimulatedTransfer(1 << 30, 1000 * MIB, dirty_rate=0, working_set=0)
    decision = sim.run()
    assert (decision.action, decision.reason) == (SWITCH, precopy.SWITCH_EMPTY)
    assert len(sim.decisions) == 1


def test_switches_over_at_the_first_round_whose_expected_downtime_fits_the_budget():
    """M109: phase 4 starts at the first round end where expected downtime <= budget."""
    sim = SimulatedTransfer(1 << 30, 1000 * MIB, dirty_rate=60000, working_set=100000)
    decision = sim.run()
    assert (decision.action, decision.reason) == (SWITCH, precopy.SWITCH_BUDGET)
    assert decision.expected_downtime_ms <= 300
    assert all(d.expected_downtime_ms > 300 for d in sim.decisions[:-1])
    assert len(sim.decisions) > 1


def test_expected_downtime_is_remaining_bytes_over_bandwidth_plus_overhead():
    config = PrecopyConfig(control_rtt_ms=2.0, resume_overhead_ms=5.0)
    conv = Convergence(config, PAGE, 1 << 30, state_bytes=8192, started=0.0)
    conv.round_finished(RoundReport(0, 0.0, 1.0, 100 * MIB, 100 * MIB, 12800, 25600))
    # 25600 pages = 200 MiB at 100 MiB/s = 2 s, plus the state page, plus 2 x 2 ms + 5 ms.
    expected = (200 * MIB + 8192) / (100 * MIB) * 1000 + 9.0
    assert conv.expected_downtime_ms(25600) == pytest.approx(expected)


def test_the_budget_is_configurable():
    tight = SimulatedTransfer(1 << 30, 1000 * MIB, 60000, 100000, PrecopyConfig(downtime_budget_ms=30))
    loose = SimulatedTransfer(1 << 30, 1000 * MIB, 60000, 100000, PrecopyConfig(downtime_budget_ms=300))
    assert tight.run().expected_downtime_ms <= 30
    assert loose.run().expected_downtime_ms <= 300
    assert len(tight.decisions) > len(loose.decisions)


def test_bandwidth_window_extends_over_short_rounds():
    conv = Convergence(PrecopyConfig(), PAGE, 1 << 30, 0, started=0.0)
    conv.round_finished(RoundReport(0, 0.0, 0.08, 80 * MIB, 80 * MIB, 10240, 100))
    conv.round_finished(RoundReport(1, 0.08, 0.10, 2 * MIB, 2 * MIB, 100, 100))
    # The last round lasted 20 ms: the window reaches back over round 0 (100 ms, 82 MiB).
    assert conv.bandwidth() == pytest.approx(82 * MIB / 0.10)


def test_throttle_schedule_starts_at_20_and_climbs_by_10_up_to_99():
    """M110: the throttle rises after every second stalled round: 20, 30, ... 90, 99."""
    config = PrecopyConfig(max_rounds=40, timeout_s=10**9, progress_timeout_s=10**9)
    sim = SimulatedTransfer(1 << 30, 100 * MIB, dirty_rate=10**9, working_set=60000, config=config)
    decision = sim.run(max_rounds=60)
    assert decision.action == ABORT
    throttles = [d.throttle for d in sim.decisions]
    steps = sorted(set(throttles))
    assert steps == [0, 20, 30, 40, 50, 60, 70, 80, 90, 99]
    # Round 0 never counts; rounds 1 and 2 stall, so the throttle is 20 after round 2.
    assert throttles[:4] == [0, 0, 20, 20]
    assert throttles[4] == 30


def test_throttle_converges_a_guest_that_would_not_converge_alone():
    config = PrecopyConfig(max_rounds=200, timeout_s=10**9, progress_timeout_s=10**9)
    sim = SimulatedTransfer(1 << 30, 400 * MIB, dirty_rate=80000, working_set=60000, config=config)
    decision = sim.run()
    assert decision.action == SWITCH and decision.reason == precopy.SWITCH_BUDGET
    assert decision.throttle >= 20


def test_no_throttle_when_auto_converge_is_off():
    config = PrecopyConfig(auto_converge=False, max_rounds=10)
    sim = SimulatedTransfer(1 << 30, 100 * MIB, dirty_rate=10**9, working_set=60000, config=config)
    sim.run()
    assert {d.throttle for d in sim.decisions} == {0}


def test_round_cap_aborts_with_the_operator_reason():
    """M111: the round cap runs the timeout action (abort by default)."""
    config = PrecopyConfig(auto_converge=False, max_rounds=5)
    sim = SimulatedTransfer(1 << 30, 100 * MIB, dirty_rate=10**9, working_set=60000, config=config)
    decision = sim.run()
    assert decision.action == ABORT
    assert len(sim.decisions) == 5
    assert precopy.non_convergence_message("ldg1", decision.reason) == (
        "Migration of domain ldg1 did not converge: the limit of 5 rounds was reached")


def test_round_cap_with_force_switches_over_and_says_forced():
    config = PrecopyConfig(auto_converge=False, max_rounds=5, timeout_action="force")
    sim = SimulatedTransfer(1 << 30, 100 * MIB, dirty_rate=10**9, working_set=60000, config=config)
    decision = sim.run()
    assert (decision.action, decision.reason) == (SWITCH, precopy.SWITCH_FORCED)
    assert decision.expected_downtime_ms > 300


def test_completion_timeout_counts_from_the_start_of_phase_3():
    config = PrecopyConfig(auto_converge=False, timeout_s=30, max_rounds=1000)
    sim = SimulatedTransfer(1 << 30, 100 * MIB, dirty_rate=10**9, working_set=60000, config=config)
    decision = sim.run(max_rounds=1000)
    assert decision.action == ABORT
    assert decision.reason == "the timeout of 30 seconds was reached"
    assert 30 <= sim.now < 30 + 5  # one round of 60000 pages takes 4.7 s


def test_progress_timeout_fires_when_remaining_memory_stops_reaching_new_minima():
    config = PrecopyConfig(auto_converge=False, progress_timeout_s=20, max_rounds=1000,
                           timeout_s=10**6)
    sim = SimulatedTransfer(1 << 30, 100 * MIB, dirty_rate=10**9, working_set=60000, config=config)
    decision = sim.run(max_rounds=1000)
    assert decision.reason == "no progress for 20 seconds"


def test_default_completion_timeout_scales_with_memory():
    assert precopy.default_timeout_s(512 << 20) == 800
    assert precopy.default_timeout_s(1 << 30) == 800
    assert precopy.default_timeout_s((1 << 30) + 1) == 1600
    assert precopy.default_timeout_s(0) == 120


def test_invalid_configuration_is_refused():
    with pytest.raises(ValueError):
        PrecopyConfig(timeout_action="maybe")
    with pytest.raises(ValueError):
        PrecopyConfig(max_rounds=0)


def test_settle_keeps_iterating_while_rounds_still_halve_the_dirty_set():
    """Beyond the spec (settle_ms): a web-like guest ends with a far shorter pause."""
    plain = SimulatedTransfer(1 << 30, 300 * MIB, dirty_rate=2048, working_set=8192)
    settled = SimulatedTransfer(1 << 30, 300 * MIB, dirty_rate=2048, working_set=8192,
                                config=PrecopyConfig(settle_ms=20))
    first = plain.run()
    second = settled.run()
    assert first.reason == second.reason == precopy.SWITCH_BUDGET
    assert 20 < first.expected_downtime_ms <= 300
    assert second.expected_downtime_ms <= 20
    assert len(settled.decisions) > len(plain.decisions)


def test_settle_does_not_delay_a_guest_whose_dirty_set_stopped_shrinking():
    config = PrecopyConfig(settle_ms=1)
    sim = SimulatedTransfer(1 << 30, 300 * MIB, dirty_rate=10**9, working_set=3000, config=config)
    decision = sim.run()
    assert decision.reason == precopy.SWITCH_BUDGET
    assert len(sim.decisions) <= 3


def test_with_a_bandwidth_cap_b_is_the_capped_rate():
    """§10.5: with a cap, B is the capped rate, so the expected downtime uses it."""
    conv = Convergence(PrecopyConfig(max_bandwidth=10 * MIB), PAGE, 1 << 30, 0, started=0.0)
    conv.round_finished(RoundReport(0, 0.0, 1.0, 100 * MIB, 100 * MIB, 12800, 1280))
    assert conv.bandwidth() == 10 * MIB  # measured 100 MiB/s (a burst), capped at 10
    assert conv.expected_downtime_ms(1280) == pytest.approx(10 * MIB / (10 * MIB) * 1000 + 5)
    slow = Convergence(PrecopyConfig(max_bandwidth=10 * MIB), PAGE, 1 << 30, 0, started=0.0)
    slow.round_finished(RoundReport(0, 0.0, 1.0, 4 * MIB, 4 * MIB, 512, 1))
    assert slow.bandwidth() == 4 * MIB  # a link slower than the cap: what it delivered


def test_a_negative_bandwidth_cap_is_refused():
    with pytest.raises(ValueError):
        PrecopyConfig(max_bandwidth=-1)
