"""The bandwidth cap's pacer, driven by a simulated clock (M112, spec §10.5)."""

import random

import pytest

from agent.migration import ratelimit

MiB = 1 << 20


def simulate(rate, sizes, work_s):
    """A sender that is never the bottleneck: returns [(start, size)] on the fake clock."""
    pacer = ratelimit.Pacer(rate)
    now = 0.0
    starts = []
    for size, work in zip(sizes, work_s):
        now += pacer.delay(now, size)
        starts.append((now, size))
        now += work  # the time the write and the next frame's preparation take
    return starts


def worst_window(starts, window=1.0):
    """The most bytes started within any window of ``window`` seconds."""
    best = 0
    j = 0
    total = 0
    for i, (start, _) in enumerate(starts):
        while starts[j][0] < start - window + 1e-12:
            total -= starts[j][1]
            j += 1
        total += starts[i][1]
        best = max(best, total)
    return best


@pytest.mark.parametrize("rate", [10 * MiB, 64 * MiB, 300 * MiB])
def test_cap_holds_within_5_percent_over_every_1s_window(rate):
    """M112: frames sized by frame_pages keep every 1 s window within 5 % of the cap."""
    rng = random.Random(rate)
    pages = ratelimit.frame_pages(rate, 8192, 64)
    sizes = [rng.randint(1, pages) * 8192 for _ in range(4000)]
    work = [rng.uniform(0, 0.2) * size / rate for size in sizes]  # 5x faster than the cap
    starts = simulate(rate, sizes, work)
    assert worst_window(starts) <= 1.05 * rate
    elapsed = starts[-1][0] - starts[0][0]
    assert sum(size for _, size in starts[:-1]) / elapsed == pytest.approx(rate, rel=0.01)


def test_idle_time_earns_no_burst():
    """A sender that paused (waiting for an acknowledgement) does not come back with a burst."""
    pacer = ratelimit.Pacer(1000.0)
    assert pacer.delay(0.0, 100) == 0.0
    assert pacer.delay(5.0, 100) == 0.0  # long idle: no credit kept
    assert pacer.delay(5.0, 100) == pytest.approx(0.1)
    assert pacer.delay(5.0, 100) == pytest.approx(0.2)


def test_frame_size_shrinks_with_the_cap():
    assert ratelimit.frame_pages(0, 8192, 64) == 64  # no cap
    assert ratelimit.frame_pages(1000 * MiB, 8192, 64) == 64
    assert ratelimit.frame_pages(10 * MiB, 8192, 64) == 25  # 2 % of 10 MiB
    assert ratelimit.frame_pages(1000, 8192, 64) == 1  # never below one page


def test_cap_must_be_positive():
    with pytest.raises(ValueError):
        ratelimit.Pacer(0)
