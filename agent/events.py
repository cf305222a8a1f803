"""The event bus: sessions subscribe by category; each event is encoded once and fanned out.

Delivery is synchronous into each session's sink (which queues without blocking), so events
caused by a request reach every registered session before that request's response is written
(spec ldm-xml §1.12 rule 5, §4.7).
"""

from __future__ import annotations

from typing import Callable, Protocol

from agent.xmlapi.model import Event


class Subscriber(Protocol):
    """A session as the bus sees it: its switches and where its documents go."""

    switches: set[str]

    def deliver(self, document: bytes) -> None: ...


class EventBus:
    """Fans events out to the subscribers whose switch for the event's category is on."""

    def __init__(self, encode: Callable[[Event], bytes]) -> None:
        self._encode = encode
        self._subscribers: list[Subscriber] = []
        self.published = 0

    def attach(self, sub: Subscriber) -> None:
        self._subscribers.append(sub)

    def detach(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` once to every matching subscriber."""
        self.published += 1
        document = None
        for sub in list(self._subscribers):
            if event.category in sub.switches:
                if document is None:
                    document = self._encode(event)
                sub.deliver(document)

    def __len__(self) -> int:
        return len(self._subscribers)
