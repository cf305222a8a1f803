"""Response and event encoder: model values to the exact bytes the agent writes.

Spec ldm-xml §0.4, §1.12, §3, §4.2. Output is compact (no declaration, no whitespace between
elements), UTF-8, with the fixed root start tag of §0.4 and Item children in the order of §2.6.
Strings are joined directly rather than built through a tree: the structure is fixed and
small, and this is several times faster than lxml serialisation of the same document
(measured, see the room's report).

The ``password`` property is never written, whatever the caller hands in (§3.4, C113).
"""

from __future__ import annotations

import re

from agent.xmlapi import messages, model

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
# One search tells whether a value needs any work; almost none do.
_TEXT_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ATTR_SPECIAL = re.compile("[&<>\"\n\t\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def escape_text(text: str) -> str:
    """Escape character data: ``&``, ``<``, ``>``, and a carriage return as a reference."""
    if _TEXT_SPECIAL.search(text) is None:
        return text
    text = _NOT_XML.sub("\ufffd", text)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def escape_attr(text: str) -> str:
    """Escape a double-quoted attribute value (whitespace controls as references, §1.12 rule 2)."""
    if _ATTR_SPECIAL.search(text) is None:
        return text
    return (escape_text(text).replace('"', "&quot;").replace("\n", "&#10;")
            .replace("\t", "&#9;"))


def root_start(tag: str, version: str) -> str:
    """The root start tag of §0.4 for ``LDM_interface`` or ``LDM_event``."""
    return f'<{tag} version="{escape_attr(version)}"{_NAMESPACES}>'


# -- Envelope ------------------------------------------------------------------------------

_RANK = {"rasd:OtherResourceType": -1, "uuid": 0, "rasd:AllocationUnits": 1, "rasd:Address": 2}


def _prop_rank(key: str) -> int:
    # §2.6 child order: type, uuid, rasd:AllocationUnits, rasd:Address, other rasd:*, properties.
    # A type found among the properties is the decoder's echo of an Item with no or several
    # types (rtype ""); it is written back as it came.
    rank = _RANK.get(key)
    if rank is None:
        rank = 3 if key.startswith("rasd:") else 4
    return rank


# Per property key: its rank and the markup around its value. Keys come from a small fixed
# vocabulary, so this is computed once per key (the hot path of every list response).
_KEY_MARKUP: dict[str, tuple[int, str, str]] = {}


def _markup(key: str) -> tuple[int, str, str]:
    found = _KEY_MARKUP.get(key)
    if found is None:
        if key == "uuid" or key.startswith("rasd:"):
            found = (_prop_rank(key), f"<{key}>", f"</{key}>")
        else:
            found = (_prop_rank(key), f'<gprop:GenericProperty key="{escape_attr(key)}">',
                     "</gprop:GenericProperty>")
        if len(_KEY_MARKUP) < 4096:  # bounded: keys normally come from the §6 tables
            _KEY_MARKUP[key] = found
    return found


def _item(out: list[str], item: model.Item) -> None:
    out.append("<Item>")
    if item.rtype:
        out.append(f"<rasd:OtherResourceType>{escape_text(item.rtype)}</rasd:OtherResourceType>")
    props = item.props
    if any(k in NEVER_EMITTED for k, _ in props):
        props = [(k, v) for k, v in props if k not in NEVER_EMITTED]
    marks = [_markup(k) for k, _ in props]
    ranks = [m[0] for m in marks]
    if ranks != sorted(ranks):
        # Stable: the caller's order is kept within a rank (the §6 output order of properties).
        order = sorted(range(len(ranks)), key=ranks.__getitem__)
        props = [props[i] for i in order]
        marks = [marks[i] for i in order]
    for (_, value), (_, start, end) in zip(props, marks):
        out.append(start + escape_text(value) + end)
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

def _response(out: list[str], ok: bool, lines: list[str] | tuple[str, ...] = ()) -> None:
    if not lines:
        out.append(_SUCCESS if ok else _FAILURE)
        return
    out.append("<response><status>success</status>" if ok
               else "<response><status>failure</status>")
    for text in lines:
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


def encode_response(resp: model.Response | model.DocumentFailure) -> bytes:
    """The complete ``LDM_interface`` response document, ready for one write (§1.12).

    A :class:`model.DocumentFailure` is answered as the overall failure it stands for.
    """
    if isinstance(resp, model.DocumentFailure):
        resp = model.Response(resp.version, error=resp.message)
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


def _is_remark(text: str) -> bool:
    return text.startswith((messages.WARNING_PREFIX, messages.NOTICE_PREFIX))


def response_problems(resp: model.Response) -> list[str]:
    """Ways ``resp`` breaks the message rules of §3.2-§3.3 (C108, C109); empty when sound.

    The encoder writes whatever it is given; this lets the layers that build responses check
    their results in tests: a successful object carries only warnings and notices, a failed
    one at least one error first, with warnings and notices after the errors (only the last
    line, an action's closing summary, may follow them).
    """
    problems = []
    for c, result in enumerate(resp.commands, 1):
        for d, obj in enumerate(result.objects if result.error is None else (), 1):
            where = f"cmd[{c}]/data[{d}]"
            if obj.ok:
                problems += [f"{where}: success carries {m!r}" for m in obj.messages
                             if not _is_remark(m)]
                continue
            if not obj.messages or _is_remark(obj.messages[0]):
                problems.append(f"{where}: failure without a leading error message")
            body = obj.messages[:-1]
            first_remark = next((i for i, m in enumerate(body) if _is_remark(m)), len(body))
            problems += [f"{where}: error {m!r} after a warning or notice"
                         for m in body[first_remark:] if not _is_remark(m)]
    return problems


# -- events --------------------------------------------------------------------------------

def encode_event(ev: model.Event) -> bytes:
    """The complete ``LDM_event`` document (§4.2): version 1.1, one cmd, one data, no response."""
    out = [root_start("LDM_event", EVENT_VERSION), "<cmd>",
           f"<action>{escape_text(ev.action)}</action>", f'<data version="{DATA_VERSION}">']
    _envelope(out, ev.envelope)
    out.append("</data></cmd></LDM_event>")
    return "".join(out).encode("utf-8")
