"""Reading the agent's answers: response and event documents to plain values for rendering.

A response (ldm-xml §3) becomes an :class:`Answer`: the overall status, every ``resp_msg`` in
document order, and one :class:`Result` per response ``data`` with its ``Envelope`` as
:mod:`agent.xmlapi.model` values. An event (§4) becomes an :class:`EventDoc`. Namespace
prefixes are resolved, so any spelling the agent uses is read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from agent.xmlapi import model

RASD = "./schemas/CIM_ResourceAllocationSettingData"
GPROP = "./schemas/GenericProperty"
BIND = "./schemas/Binding"
OVF = "./schemas/envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True,
                          load_dtd=False)


@dataclass
class Result:
    """One response ``data``: its objects and its object response."""

    envelope: model.Envelope | None
    ok: bool
    messages: list[str] = field(default_factory=list)

    def contents(self) -> list[model.Content]:
        return self.envelope.contents if self.envelope else []

    def items(self) -> list[model.Item]:
        """Items of the Sections directly under the Envelope."""
        return [it for s in (self.envelope.sections if self.envelope else []) for it in s.items]


@dataclass
class Answer:
    """A response document: overall status, every message in order, one result per data."""

    ok: bool
    messages: list[str]
    results: list[Result]

    def contents(self) -> list[model.Content]:
        """Every domain ``Content`` of every successful result, in order."""
        return [c for r in self.results if r.ok for c in r.contents()]


@dataclass
class EventDoc:
    """An ``LDM_event``: its action and its Envelope."""

    action: str
    envelope: model.Envelope


def parse_answer(document: bytes) -> Answer:
    """Read one ``LDM_interface`` response."""
    root = etree.fromstring(document, _PARSER)
    results = []
    for data in root.iterfind("cmd/data"):
        envelope = data.find("Envelope")
        results.append(Result(envelope=read_envelope(envelope) if envelope is not None else None,
                              ok=data.findtext("response/status") == "success",
                              messages=[m.text or "" for m in data.iterfind("response/resp_msg")]))
    return Answer(ok=root.findtext("response/status") == "success",
                  messages=[m.text or "" for m in root.iter("resp_msg")], results=results)


def parse_event(document: bytes) -> EventDoc:
    """Read one ``LDM_event``."""
    root = etree.fromstring(document, _PARSER)
    envelope = root.find("cmd/data/Envelope")
    return EventDoc(action=(root.findtext("cmd/action") or "").strip(),
                    envelope=read_envelope(envelope) if envelope is not None else model.Envelope())


def read_envelope(element: etree._Element) -> model.Envelope:
    """An ``Envelope`` element as model values (``bind:Binding`` Items kept)."""
    parts: list[model.Part] = []
    for child in element:
        local = etree.QName(child).localname
        if local == "Content":
            name = child.get(f"{{{OVF}}}id") or child.get("id") or ""
            parts.append(model.Content(name, [_section(s) for s in child
                                              if etree.QName(s).localname == "Section"]))
        elif local == "Section":
            parts.append(_section(child))
    return model.Envelope(parts)


def _section(element: etree._Element) -> model.Section:
    kind = (element.get(f"{{{XSI}}}type") or "").rpartition(":")[2] or model.VIRTUAL_HARDWARE
    return model.Section(kind, [_item(i) for i in element if etree.QName(i).localname == "Item"])


def _item(element: etree._Element) -> model.Item:
    it = model.Item("")
    for child in element:
        qname = etree.QName(child)
        text = (child.text or "").strip()
        if qname.namespace == RASD and qname.localname == "OtherResourceType":
            it.rtype = text
        elif qname.namespace == GPROP:
            it.props.append((child.get("key", ""), text))
        elif qname.namespace == RASD:
            it.props.append(("rasd:" + qname.localname, text))
        elif qname.localname == "uuid":
            it.props.append(("uuid", text))
        elif qname.namespace == BIND:
            it.bindings.extend(_item(i) for i in child if etree.QName(i).localname == "Item")
    return it


def ldom_info(content: model.Content) -> dict[str, str]:
    """The ``ldom_info`` properties of a domain, by key (empty if it has none)."""
    for it in content.items():
        if it.rtype == "ldom_info":
            return dict(it.props)
    return {}
