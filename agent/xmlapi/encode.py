"""Response and event encoder: model values to the exact bytes the agent writes (spec ldm-xml §0.4, §1.12, §3, §4.2).

Output is compact (no declaration, no whitespace between elements), UTF-8, with the fixed root
start tag of §0.4 and Item children in the order of §2.6. Strings are joined directly rather
than built through a tree: the structure is fixed and small, and this is several times faster
than lxml serialisation for the same document (measured, see the room's report).

The ``password`` property is never written, whatever the caller hands in (§3.4, C113).
"""

from __future__ import annotations

import re

from agent.xmlapi import model

_NAMESPACES = (
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    ' xmlns:ovf="./schemas/envelope"'
    ' xmlns:rasd="./schemas/CIM_ResourceAllocationSettingData"'
    ' xmlns:vssd="./schemas/CIM_VirtualSystemSettingData"'
    ' xmlns:gprop="./schemas/GenericProperty"'
    ' xmlns:bind="./schemas/Binding"'
)

EVENT_VERSION = "1.1"
DATA_VERSION = "3.0"
NEVER_EMITTED = frozenset({"password"})

_SUCCESS = "<response><status>success</status></response>"
_FAILURE = "<response><status>failure</status></response>"

# Characters XML 1.0 cannot carry at all; replaced so that output always stays well-formed.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _clean(text: str) -> str:
    if _NOT_XML.search(text):
        text = _NOT_XML.sub("\ufffd", text)
    return text


def escape_text(text: str) -> str:
    """Escape character data (``&``, ``<``, ``>``; a carriage return as a reference so it survives)."""
    text = _clean(text)
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def escape_attr(text: str) -> str:
    """Escape a double-quoted attribute value (whitespace controls as references, §1.12 rule 2)."""
    text = escape_text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#9;")
    return text


def root_start(tag: str, version: str) -> str:
    """The root start tag of §0.4 for ``LDM_interface`` or ``LDM_event``."""
    return f'<{tag} version="{escape_attr(version)}"{_NAMESPACES}>'


# -- Envelope ------------------------------------------------------------------------------

def _prop_rank(key: str) -> int:
    # §2.6 child order: uuid, rasd:AllocationUnits, rasd:Address, other rasd:*, properties.
    if key == "uuid":
        return 0
    if key == "rasd:AllocationUnits":
        return 1
    if key == "rasd:Address":
        return 2
    if key.startswith("rasd:"):
        return 3
    return 4


def _item(out: list[str], item: model.Item) -> None:
    out.append("<Item>")
    if item.rtype is not None:
        out.append(f"<rasd:OtherResourceType>{escape_text(item.rtype)}</rasd:OtherResourceType>")
    props = [(k, v) for k, v in item.props if k not in NEVER_EMITTED]
    if any(_prop_rank(k) < 4 for k, _ in props):
        props.sort(key=lambda kv: _prop_rank(kv[0]))  # stable: keeps the caller's order within a rank
    for key, value in props:
        if key == "uuid" or key.startswith("rasd:"):
            out.append(f"<{key}>{escape_text(value)}</{key}>")
        else:
            out.append(f'<gprop:GenericProperty key="{escape_attr(key)}">'
                       f"{escape_text(value)}</gprop:GenericProperty>")
    for inner in item.bindings:
        out.append("<bind:Binding>")
        _item(out, inner)
        out.append("</bind:Binding>")
    out.append("</Item>")


def _section(out: list[str], section: model.Section) -> None:
    start = f'<Section xsi:type="ovf:{escape_attr(section.type)}"'
    if not section.items:
        out.append(start + "/>")
        return
    out.append(start + ">")
    for item in section.items:
        _item(out, item)
    out.append("</Section>")


def _content(out: list[str], content: model.Content) -> None:
    start = f'<Content xsi:type="ovf:{model.VIRTUAL_SYSTEM}" ovf:id="{escape_attr(content.name)}"'
    if not content.sections:
        out.append(start + "/>")
        return
    out.append(start + ">")
    for section in content.sections:
        _section(out, section)
    out.append("</Content>")


def _envelope(out: list[str], envelope: model.Envelope) -> None:
    out.append("<Envelope><References/>")
    for part in envelope.parts:
        if isinstance(part, model.Content):
            _content(out, part)
        else:
            _section(out, part)
    out.append("</Envelope>")


def encode_envelope(envelope: model.Envelope) -> bytes:
    """The compact ``Envelope`` element alone (for tests and tools)."""
    out: list[str] = []
    _envelope(out, envelope)
    return "".join(out).encode("utf-8")


# -- responses -----------------------------------------------------------------------------

def _response(out: list[str], ok: bool, messages: list[str] | tuple[str, ...] = ()) -> None:
    if not messages:
        out.append(_SUCCESS if ok else _FAILURE)
        return
    out.append("<response><status>success</status>" if ok
               else "<response><status>failure</status>")
    for text in messages:
        out.append(f"<resp_msg>{escape_text(text)}</resp_msg>")
    out.append("</response>")


def _echo(out: list[str], command: model.Command) -> None:
    if command.action is not None:
        out.append(f"<action>{escape_text(command.action)}</action>")
    if command.options or command.option_tag is not None:
        tag = command.option_tag or "options"
        if tag not in ("option", "options"):
            raise ValueError(f"option_tag must be 'option' or 'options', not {tag!r}")
        out.append(f"<{tag}>{escape_text(' '.join(command.options))}</{tag}>")
    if command.arguments is not None:
        out.append(f"<arguments>{escape_text(' '.join(command.arguments.split()))}</arguments>")


def _command(out: list[str], result: model.CommandResult) -> None:
    out.append("<cmd>")
    _echo(out, result.command)
    if result.error is not None:
        # A command-level failure carries no data (§3.4).
        _response(out, False, [result.error])
    else:
        for obj in result.objects:
            out.append(f'<data version="{DATA_VERSION}">')
            if obj.envelope is not None:
                _envelope(out, obj.envelope)
            _response(out, obj.ok, obj.messages)
            out.append("</data>")
        _response(out, result.ok)
    out.append("</cmd>")


def encode_response(resp: model.Response) -> bytes:
    """The complete ``LDM_interface`` response document, ready for one write (§1.12)."""
    out = [root_start("LDM_interface", resp.version)]
    if resp.error is not None:
        # A document-level failure has no cmd, only the overall response (§3.4).
        _response(out, False, [resp.error])
    else:
        for result in resp.commands:
            _command(out, result)
        _response(out, resp.ok)
    out.append("</LDM_interface>")
    return "".join(out).encode("utf-8")


# -- events --------------------------------------------------------------------------------

def encode_event(ev: model.Event) -> bytes:
    """The complete ``LDM_event`` document (§4.2): version 1.1, one cmd, one data, no response."""
    out = [root_start("LDM_event", EVENT_VERSION), "<cmd>",
           f"<action>{escape_text(ev.action)}</action>", f'<data version="{DATA_VERSION}">']
    _envelope(out, ev.envelope)
    out.append("</data></cmd></LDM_event>")
    return "".join(out).encode("utf-8")
