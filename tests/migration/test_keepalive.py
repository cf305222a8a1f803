"""Control-channel keepalives and peer loss (migration.md §9.1, M98): the sans-IO timer and
its Twisted driver on a fake clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from agent.migration.keepalive import KEEPALIVE, LOST, SEND, Keepalive, watch


def test_sends_after_a_silent_interval_and_not_before():
    """M98: a keepalive is due only when this side has sent nothing for one interval."""
    k = Keepalive(5.0, 3, now=0.0)
    assert k.tick(4.9) is None
    assert k.tick(5.0) == SEND
    k.sent(5.0)
    assert k.tick(9.0) is None
    k.sent(9.0)  # a request went out: no keepalive needed until 14 s
    k.received(9.0)
    assert k.tick(13.9) is None
    assert k.tick(14.0) == SEND


def test_peer_lost_after_interval_times_count_without_traffic():
    """M98: interval × count (5 s × 3) without anything from the peer is a lost peer; any
    traffic, keepalives included, restarts the count."""
    k = Keepalive(5.0, 3, now=0.0)
    k.received(10.0)
    assert k.tick(24.9) != LOST
    assert k.tick(25.0) == LOST
    assert k.silence_limit == 15.0


@pytest.mark.parametrize("interval, count", [(0, 3), (-1, 3), (5, 0)])
def test_rejects_meaningless_settings(interval, count):
    with pytest.raises(ValueError):
        Keepalive(interval, count, now=0.0)


def test_driver_writes_keepalives_then_declares_loss_once():
    """M98: on a clock, a silent peer gets keepalives every interval and is declared lost
    within interval × count plus a quarter interval, exactly once; the loop then stops."""
    clock = Clock()
    state = Keepalive(1.0, 3, clock.seconds())
    written, lost = [], []
    loop = watch(clock, state, written.append, lambda: lost.append(clock.seconds()))
    for _ in range(11):
        clock.advance(0.25)
    assert written == [KEEPALIVE, KEEPALIVE] and lost == []
    clock.advance(0.25)  # t = 3.0
    assert lost == [3.0]
    clock.advance(5.0)
    assert lost == [3.0] and not loop.running


def test_driver_keeps_a_talking_peer():
    """M98: a peer whose traffic arrives is never declared lost."""
    clock = Clock()
    state = Keepalive(1.0, 3, clock.seconds())
    lost = []
    watch(clock, state, lambda _: None, lambda: lost.append(True))
    for _ in range(40):
        clock.advance(0.25)
        state.received(clock.seconds())
    assert lost == []


def test_refresh_false_ends_the_watch():
    """The watch ends when the migration is no longer open (refresh returns False)."""
    clock = Clock()
    state = Keepalive(1.0, 3, clock.seconds())
    open_ = [True]
    written, lost = [], []
    loop = watch(clock, state, written.append, lambda: lost.append(1), refresh=lambda: open_[0])
    open_[0] = False
    clock.advance(10)
    assert not loop.running and lost == [] and written == []
