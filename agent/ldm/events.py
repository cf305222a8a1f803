"""Events and outcomes: what a committed change reports back, as plain values.

An :class:`Event` names its category (``domain``, ``resource``, ``hardware``), the event
action (ldm-xml §4.3–§4.5), the domain it belongs to (``None`` for hardware events and for
``set-io`` on an unowned bus) and, for resource and hardware events, the resource type and
the identifying properties of the Item, keyed by their wire names (values are ints or str;
the codec formats them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DOMAIN = "domain"
RESOURCE = "resource"
HARDWARE = "hardware"


@dataclass(frozen=True)
class Event:
    """One event produced by a committed change."""

    category: str
    action: str
    domain: str | None
    rtype: str | None = None
    props: tuple[tuple[str, object], ...] = ()


@dataclass
class Outcome:
    """What a mutating call returns: its events (in order) and its warning/notice lines."""

    events: list[Event] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def extend(self, other: "Outcome") -> None:
        self.events.extend(other.events)
        self.messages.extend(other.messages)


def domain_event(action: str, domain: str) -> Event:
    """A domain event (§4.3)."""
    return Event(DOMAIN, action, domain)


def resource_event(action: str, domain: str | None, rtype: str, **props: object) -> Event:
    """A resource event (§4.4); ``props`` use wire keys, e.g. ``vnet_name``."""
    return Event(RESOURCE, action, domain, rtype, tuple(props.items()))


def allocation_event(action: str, domain: str, rtype: str, units: int) -> Event:
    """A resource event whose Item carries ``rasd:AllocationUnits`` (cpu, mau, memory)."""
    return Event(RESOURCE, action, domain, rtype, (("rasd:AllocationUnits", units),))


def hardware_event(action: str, spconfig: str) -> Event:
    """A hardware event for an SP configuration (§4.5)."""
    return Event(HARDWARE, action, None, "spconfig", (("spconfig_name", spconfig),))
