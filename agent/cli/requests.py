"""Request documents of the ``ldmx`` CLI: model values to the bytes of one ``LDM_interface``.

The CLI speaks the XML interface like any other client (spec ldm-xml §2). A sub-command
describes its objects with :mod:`agent.xmlapi.model` values (a domain ``Content`` with Items,
or Items in a ``Section`` directly under the ``Envelope``); :func:`request` writes the document.
Unlike the agent's response encoder this writer keeps every property, ``password`` included:
the ``migrate-domain`` request must carry it (ldm-xml §7.1).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from agent.xmlapi import model
from agent.xmlapi.encode import escape_attr, escape_text, root_start
from agent.xmlapi.resources import RESOURCES

VERSION = "1.3"
DATA_VERSION = "3.0"

Props = Iterable[tuple[str, str]]


def item(rtype: str, props: Props = ()) -> model.Item:
    """One resource Item with its properties in the given order."""
    return model.Item(rtype, list(props))


def section_type(rtype: str) -> str:
    """The Section type a resource is emitted in (ldm-xml §6.0)."""
    resource = RESOURCES.get(rtype)
    return resource.section if resource else model.VIRTUAL_HARDWARE


def sections_for(items: Sequence[model.Item]) -> list[model.Section]:
    """Items grouped into Sections of their canonical types, in order of first appearance."""
    sections: dict[str, model.Section] = {}
    for it in items:
        kind = section_type(it.rtype)
        sections.setdefault(kind, model.Section(kind)).items.append(it)
    return list(sections.values())


def domain(name: str, items: Sequence[model.Item] = ()) -> model.Envelope:
    """An Envelope naming one domain, with its resource Items."""
    return model.Envelope([model.Content(name, sections_for(items))])


def unowned(items: Sequence[model.Item]) -> model.Envelope:
    """An Envelope with Items identified without a domain (a Section under the Envelope)."""
    return model.Envelope(list(sections_for(items)))


def request(action: str, data: Sequence[model.Envelope | None], *, options: Sequence[str] = (),
            arguments: Sequence[str] = ()) -> bytes:
    """One request with one command; ``None`` in ``data`` is an empty data."""
    out = [root_start("LDM_interface", VERSION), "<cmd>", f"<action>{escape_text(action)}</action>"]
    if options:
        out.append(f"<options>{escape_text(' '.join(options))}</options>")
    if arguments:
        out.append(f"<arguments>{escape_text(' '.join(arguments))}</arguments>")
    for envelope in data or [None]:
        if envelope is None:
            out.append(f'<data version="{DATA_VERSION}"/>')
        else:
            out.append(f'<data version="{DATA_VERSION}">')
            _envelope(out, envelope)
            out.append("</data>")
    out.append("</cmd></LDM_interface>")
    return "".join(out).encode("utf-8")


def _envelope(out: list[str], envelope: model.Envelope) -> None:
    out.append("<Envelope><References/>")
    for part in envelope.parts:
        if isinstance(part, model.Content):
            out.append(f'<Content xsi:type="ovf:{model.VIRTUAL_SYSTEM}" '
                       f'ovf:id="{escape_attr(part.name)}">')
            for section in part.sections:
                _section(out, section)
            out.append("</Content>")
        else:
            _section(out, part)
    out.append("</Envelope>")


def _section(out: list[str], section: model.Section) -> None:
    out.append(f'<Section xsi:type="ovf:{section.type}">')
    for it in section.items:
        _item(out, it)
    out.append("</Section>")


def _item(out: list[str], it: model.Item) -> None:
    out.append(f"<Item><rasd:OtherResourceType>{escape_text(it.rtype)}</rasd:OtherResourceType>")
    # Elements first (uuid, rasd:*), then generic properties (ldm-xml §2.6).
    for key, value in it.props:
        if key == "uuid" or key.startswith("rasd:"):
            out.append(f"<{key}>{escape_text(value)}</{key}>")
    for key, value in it.props:
        if not (key == "uuid" or key.startswith("rasd:")):
            out.append(f'<gprop:GenericProperty key="{escape_attr(key)}">'
                       f"{escape_text(value)}</gprop:GenericProperty>")
    out.append("</Item>")
