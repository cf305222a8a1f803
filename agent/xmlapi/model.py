"""Typed values for LDM documents: what the decoder produces and the encoder consumes.

These classes carry no XML. The decoder (``agent.xmlapi.decode``) turns a canonical
``LDM_interface`` request into a :class:`Request` (or a :class:`DocumentFailure`); the action
layer answers with a :class:`Response`; the encoder (``agent.xmlapi.encode``) writes it out.
Events are :class:`Event` values.

Property keys inside an :class:`Item` are spelled as on the wire: ``"uuid"`` for the
unprefixed element, ``"rasd:AllocationUnits"``/``"rasd:Address"`` (and any other ``rasd:``
element) for CIM elements, and the bare ``key`` attribute for ``gprop:GenericProperty``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

# Canonical local names of the section types (emitted with the ``ovf:`` prefix).
RESOURCE_ALLOCATION = "ResourceAllocationSection_Type"
VIRTUAL_HARDWARE = "VirtualHardwareSection_Type"
VIRTUAL_SYSTEM = "VirtualSystem_Type"


@dataclass
class Item:
    """One resource: its ``rasd:OtherResourceType`` and its properties in document order."""

    rtype: str
    props: list[tuple[str, str]] = field(default_factory=list)
    bindings: list["Item"] = field(default_factory=list)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value of the first property named ``key``, or ``default``."""
        for k, v in self.props:
            if k == key:
                return v
        return default

    def keys(self) -> list[str]:
        """Property keys in document order (duplicates kept, so callers can detect them)."""
        return [k for k, _ in self.props]


@dataclass
class Section:
    """A ``Section``: its canonical type local name and its Items."""

    type: str = VIRTUAL_HARDWARE
    items: list[Item] = field(default_factory=list)


@dataclass
class Content:
    """One domain (``Content ovf:id=NAME``) and its sections."""

    name: str
    sections: list[Section] = field(default_factory=list)

    def items(self) -> list[Item]:
        """Every Item of every section, in order."""
        return [it for s in self.sections for it in s.items]


Part = Union[Content, Section]


@dataclass
class Envelope:
    """An ``Envelope``: ``Content`` and ``Section`` children in document order.

    ``References`` is always emitted empty and is not modelled.
    """

    parts: list[Part] = field(default_factory=list)

    @property
    def contents(self) -> list[Content]:
        return [p for p in self.parts if isinstance(p, Content)]

    @property
    def sections(self) -> list[Section]:
        """Sections placed directly under the Envelope."""
        return [p for p in self.parts if isinstance(p, Section)]


@dataclass
class Data:
    """One request ``data``; ``envelope`` is None for an empty data (§2.2)."""

    envelope: Envelope | None = None


@dataclass
class Command:
    """One request ``cmd`` as decoded.

    ``error`` is set when decoding already found the command at fault (schema violation,
    bad data version, missing or repeated action); the action layer then answers it with a
    command-level failure without looking further. ``options`` are the whitespace-split tokens
    of all option elements; ``option_tag`` is the spelling of the first one (for the echo).
    """

    action: str | None = None
    options: list[str] = field(default_factory=list)
    option_tag: str | None = None
    arguments: str | None = None
    data: list[Data] = field(default_factory=list)
    error: str | None = None


@dataclass
class Request:
    """A decoded ``LDM_interface`` request."""

    version: str
    commands: list[Command]


@dataclass
class DocumentFailure:
    """A request failing as a whole (§3.7): answered by an overall failure with ``message``."""

    version: str
    message: str


@dataclass
class ObjectResult:
    """The answer for one response ``data``.

    ``envelope`` None means the ``data`` holds only the object response. ``messages`` holds
    errors first, then ``Warning: ``/``Notice: `` lines (§3.3).
    """

    envelope: Envelope | None
    ok: bool = True
    messages: list[str] = field(default_factory=list)


@dataclass
class CommandResult:
    """The answer for one ``cmd``: either a command-level ``error`` or per-object results."""

    command: Command
    objects: list[ObjectResult] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(o.ok for o in self.objects)


@dataclass
class Response:
    """The answer for one request document; ``error`` set means a document-level failure."""

    version: str
    commands: list[CommandResult] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.commands)


# Event categories (§4.7): which registration switch lets an event through.
DOMAIN = "domain"
RESOURCE = "resource"
HARDWARE = "hardware"  # progress events travel under the hardware switch too


@dataclass
class Event:
    """An ``LDM_event``: its category, its action name and its Envelope."""

    category: str
    action: str
    envelope: Envelope
