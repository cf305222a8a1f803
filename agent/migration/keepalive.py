"""Control-channel keepalives and peer-loss detection (migration.md §9.1, M98).

Sans-IO: :class:`Keepalive` only keeps times. The driver tells it when bytes went out
(:meth:`Keepalive.sent`) and came in (:meth:`Keepalive.received`), and asks it on a timer
(:meth:`Keepalive.tick`) what to do now: send a keepalive (the side has sent nothing for one
``migration_keepalive_interval``), declare the peer lost (nothing has come in for
``interval × migration_keepalive_count``), or nothing.

The keepalive itself is a single space between top-level elements of the XMPP stream, which
both stream readers skip (ldm-xml §1.3; ``agent/xmpp/reader.py`` and ``peer.ControlProtocol``).

:func:`watch` is the small Twisted driver both sides use.
"""

from __future__ import annotations

from twisted.internet import task

SEND, LOST = "send", "lost"
KEEPALIVE = b" "


class Keepalive:
    """When to send a keepalive and when the peer counts as lost."""

    def __init__(self, interval: float, count: int, now: float) -> None:
        if interval <= 0 or count < 1:
            raise ValueError("keepalive interval must be positive and count at least 1")
        self.interval = interval
        self.count = count
        self.last_sent = now
        self.last_received = now

    @property
    def silence_limit(self) -> float:
        """Seconds without traffic from the peer after which it is lost."""
        return self.interval * self.count

    def sent(self, now: float) -> None:
        self.last_sent = now

    def received(self, now: float) -> None:
        self.last_received = now

    def tick(self, now: float) -> str | None:
        """:data:`LOST`, :data:`SEND` (the caller then writes and calls :meth:`sent`), or None."""
        if now - self.last_received >= self.silence_limit:
            return LOST
        if now - self.last_sent >= self.interval:
            return SEND
        return None


def watch(reactor, state: Keepalive, write, lose, check_every: float | None = None,
          refresh=None):
    """Run ``state`` on ``reactor``: ``write(KEEPALIVE)`` when due, ``lose()`` once when silent.

    Returns the started LoopingCall; the caller stops it when the migration is no longer
    open. The check runs four times an interval, so a loss is seen at most a quarter
    interval after ``interval × count`` of silence. ``refresh``, if given, runs before each
    check (to copy traffic times into ``state``); when it returns False the watch ends.
    """
    loop: task.LoopingCall

    def check() -> None:
        if refresh is not None and not refresh():
            loop.stop()
            return
        now = reactor.seconds()
        action = state.tick(now)
        if action == LOST:
            loop.stop()
            lose()
        elif action == SEND:
            write(KEEPALIVE)
            state.sent(now)

    loop = task.LoopingCall(check)
    loop.clock = reactor
    loop.start(check_every or state.interval / 4, now=False)
    return loop
