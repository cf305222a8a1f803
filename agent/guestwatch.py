"""Notices guests that died on their own and tells the manager (thin Twisted shell).

The hypervisor reports each dead guest once (``poll_dead``); the manager turns it into the
domain's halt (state bound, its slaves' failure policy applied) and the events go out to the
registered sessions like those of any request.
"""

from __future__ import annotations

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from agent.actions.handlers.events import translate
from agent.ldm.errors import LdmError

log = Logger()


class GuestWatch:
    """Polls the hypervisor for dead guests every ``interval`` seconds."""

    def __init__(self, hypervisor, manager, publish, clock, interval: float = 1.0) -> None:
        self.hypervisor = hypervisor
        self.manager = manager
        self.publish = publish
        self.loop = LoopingCall(self.poll)
        self.loop.clock = clock
        self.interval = interval

    def start(self) -> None:
        self.loop.start(self.interval, now=True).addErrback(
            lambda f: log.failure("guest watch stopped", f))

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()

    def poll(self) -> None:
        for name in self.hypervisor.poll_dead():
            if name not in self.manager.domains:
                continue
            try:
                outcome = self.manager.guest_halted(name)
            except LdmError as e:
                log.info("guest {name} exited; nothing to change: {why}", name=name, why=str(e))
                continue
            log.warn("guest of domain {name} exited unexpectedly; the domain is now bound", name=name)
            for event in translate(outcome.events):
                self.publish(event)
