"""Request decoder: one ``LDM_interface`` element's bytes to a model value (spec ldm-xml §2.8).

Pipeline: parse (:mod:`agent.xmlapi.parser`), root name, version, normalise
(:mod:`agent.xmlapi.normalize`), validate (:mod:`agent.xmlapi.schema`), then build
:class:`~agent.xmlapi.model.Request` from the canonical tree. Document-level faults give a
:class:`~agent.xmlapi.model.DocumentFailure`; command-level faults set ``Command.error`` and
leave the other commands intact. Action names, flags, arguments and authorization are the
action layer's business; this module only splits the option text into tokens.

Item decoding: ``rasd:OtherResourceType`` becomes ``Item.rtype`` when the Item has exactly
one. Otherwise ``rtype`` is ``""`` and every ``rasd:OtherResourceType`` present stays in
``props`` under that key, so the action layer can tell a missing type (none in ``props``) from
a repeated one (two or more) and reject the Item at object level (§2.6).
"""

from __future__ import annotations

import re

from lxml import etree

from agent.xmlapi import messages
from agent.xmlapi.model import Command, Content, Data, DocumentFailure, Envelope, Item, Request, Section
from agent.xmlapi.normalize import normalize
from agent.xmlapi.parser import BIND, GPROP, OVF, RASD, XSI, ParseError, parse_element
from agent.xmlapi.schema import validate_request

DATA_VERSION = "3.0"
FALLBACK_VERSION = "1.0"  # echoed when the request has no readable version (§3.4)

_ORT = f"{{{RASD}}}OtherResourceType"
_RASD_PREFIX = f"{{{RASD}}}"
_GENERIC_PROPERTY = f"{{{GPROP}}}GenericProperty"
_BINDING = f"{{{BIND}}}Binding"
_OVF_ID = f"{{{OVF}}}id"
_XSI_TYPE = f"{{{XSI}}}type"

_XML_WHITESPACE = re.compile(r"[ \t\r\n]+")
_COMMAND_PATH = re.compile(r"^/LDM_interface/cmd(?:\[(\d+)\])?(?:/|$)")
# The version attribute of the root start tag, read without parsing (for parse errors).
_START_TAG = re.compile(rb"^\s*(?:<\?xml\s[^>]*\?>\s*)?<[^\s/>]+([^>]*)>")
_VERSION_ATTRIBUTE = re.compile(rb"""(?:^|\s)version\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def decode_request(
    raw: bytes, *, max_bytes: int = 1 << 20, max_depth: int = 32
) -> Request | DocumentFailure:
    """Decode one request document; never raises for bad input."""
    try:
        source = parse_element(raw, max_bytes=max_bytes, max_depth=max_depth)
    except ParseError as exc:
        return DocumentFailure(_version_from_start_tag(raw), messages.xml_parse_error(exc.description))

    local = source.tag.rpartition("}")[2]
    version = (source.get("version") or "").strip(" \t\r\n")
    if local != "LDM_interface":
        name = f"{source.prefix}:{local}" if source.prefix else local
        return DocumentFailure(version or FALLBACK_VERSION, messages.unexpected_element(name))
    if not version:
        return DocumentFailure(FALLBACK_VERSION, messages.MISSING_VERSION)
    if version not in messages.SUPPORTED_VERSIONS:
        return DocumentFailure(version, messages.unsupported_version(version))

    canonical = normalize(source)
    errors = [*validate_request(canonical.root), *canonical.problems]
    by_command: dict[int, tuple[str, str]] = {}
    for path, reason in errors:
        index = _command_index(path)
        if index is None:
            return DocumentFailure(version, messages.invalid_request(path, reason))
        by_command.setdefault(index, (path, reason))

    commands = [c for c in canonical.root if c.tag == "cmd"]
    if not commands:
        return DocumentFailure(version, messages.NO_CMD)
    decoded = []
    for number, element in enumerate(commands, start=1):
        error = by_command.get(number)
        decoded.append(_command(element, messages.invalid_request(*error) if error else None))
    return Request(version=version, commands=decoded)


def _command_index(path: str) -> int | None:
    """1-based index of the cmd a canonical path lies in, or None if it lies outside every cmd."""
    match = _COMMAND_PATH.match(path)
    if match is None:
        return None
    return int(match.group(1) or 1)


def _command(element: etree._Element, schema_error: str | None) -> Command:
    actions: list[str] = []
    options: list[etree._Element] = []
    arguments: str | None = None
    data_elements: list[etree._Element] = []
    for child in element:
        tag = child.tag
        if tag == "action":
            actions.append(child.text or "")
        elif tag == "option" or tag == "options":
            options.append(child)
        elif tag == "arguments" and arguments is None:
            arguments = child.text or ""
        elif tag == "data":
            data_elements.append(child)
    command = Command(
        action=actions[0] if actions else None,
        options=_tokens(" ".join(o.text or "" for o in options)) if options else [],
        option_tag=options[0].tag if options else None,
        arguments=arguments,
    )
    if not actions:
        command.error = messages.NO_ACTION
    elif len(actions) > 1:
        command.error = messages.REPEATED_ACTION
    elif schema_error:
        command.error = schema_error
    else:
        for data in data_elements:
            version = data.get("version", "")
            if version != DATA_VERSION:
                command.error = messages.unsupported_data_version(version)
                break
    if command.error is None:
        command.data = [_data(d) for d in data_elements] or [Data()]
    return command


def _tokens(text: str) -> list[str]:
    return [t for t in _XML_WHITESPACE.split(text) if t]


def _data(element: etree._Element) -> Data:
    envelope = next((c for c in element if c.tag == "Envelope"), None)
    if envelope is None:
        return Data()
    parts: list[Content | Section] = []
    for child in envelope:
        if child.tag == "Content":
            sections = [_section(s) for s in child if s.tag == "Section"]
            parts.append(Content(name=child.get(_OVF_ID, ""), sections=sections))
        elif child.tag == "Section":
            parts.append(_section(child))
    # An Envelope with neither Content nor Section is an empty data (§2.2).
    return Data(Envelope(parts)) if parts else Data()


def _section(element: etree._Element) -> Section:
    # Normalisation made every valid xsi:type "ovf:" + the canonical local name.
    type_name = element.get(_XSI_TYPE, "").rpartition(":")[2]
    return Section(type=type_name, items=[_item(i) for i in element if i.tag == "Item"])


def _item(element: etree._Element) -> Item:
    props: list[tuple[str, str]] = []
    bindings: list[Item] = []
    types: list[str] = []
    for child in element:
        tag = child.tag
        text = child.text or ""
        if tag == _ORT:
            types.append(text)
        elif tag == _GENERIC_PROPERTY:
            props.append((child.get("key", ""), text))
        elif tag == "uuid":
            props.append(("uuid", text))
        elif tag.startswith(_RASD_PREFIX):
            props.append(("rasd:" + tag[len(_RASD_PREFIX):], text))
        elif tag == _BINDING:
            bindings.extend(_item(i) for i in child if i.tag == "Item")
    if len(types) == 1:
        return Item(rtype=types[0], props=props, bindings=bindings)
    return Item(rtype="", props=[("rasd:OtherResourceType", t) for t in types] + props, bindings=bindings)


def _version_from_start_tag(raw: bytes) -> str:
    """The trimmed root ``version`` if the start tag can be read, else ``1.0`` (§3.8)."""
    tag = _START_TAG.match(raw[:4096])
    if tag:
        found = _VERSION_ATTRIBUTE.search(tag.group(1))
        if found:
            value = (found.group(1) if found.group(1) is not None else found.group(2))
            value = value.decode("utf-8", "replace").strip(" \t\r\n")
            if value:
                return value
    return FALLBACK_VERSION
