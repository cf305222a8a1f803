"""Canonical form of an incoming LDM document (spec ldm-xml §8.3, steps 1–10).

:func:`normalize` rebuilds a parsed element (see :mod:`agent.xmlapi.parser`, which performs
steps 1 and 2) as a new tree whose root carries exactly the six canonical namespace
declarations of §0.4, in that order, so that the tree serialises with the canonical prefixes
and ``getpath()`` yields the paths of §3.7. Rebuilding, rather than editing in place, is what
lets every namespace style end up byte-identical (C180).

Choices beyond the letter of §8.3, all of which only affect documents that fail anyway:

* the root is matched by local name whatever its namespace (§1.13), so it always becomes the
  unqualified ``LDM_interface``/``LDM_event``;
* any element in ``jabber:client`` is placed in no namespace, not only the structural ones, so
  an unknown element is reported as ``.../Item/Size`` rather than under a generated prefix;
* an element or attribute in a namespace outside §0.3 keeps its namespace and its original
  prefix, declared on that element (the only case where a declaration appears below the root);
* empty text is dropped, so ``<x></x>``, ``<x> </x>`` and ``<x/>`` all serialise as ``<x/>``;
* on ``Content`` and ``Section``, ``xsi:type`` is written first and ``ovf:id`` second, so
  attribute order in the request does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from agent.xmlapi.model import RESOURCE_ALLOCATION, VIRTUAL_HARDWARE, VIRTUAL_SYSTEM
from agent.xmlapi.parser import (
    BIND,
    CANONICAL_NAMESPACES,
    GPROP,
    OVF,
    RASD,
    VSSD,
    XSI,
    parse_element,
)

JABBER_CLIENT = "jabber:client"
CIM_COMMON = "./schemas/common"

CANONICAL_NSMAP: dict[str, str] = dict(CANONICAL_NAMESPACES)

# §0.3: every accepted spelling of a known namespace, mapped to its canonical URI.
ALIASES: dict[str, str] = {
    "/var/opt/SUNWldom/envelope": OVF,
    "/var/opt/SUNWldom/CIM_ResourceAllocationSettingData": RASD,
    "/var/opt/SUNWldom/CIM_VirtualSystemSettingData": VSSD,
    "/var/opt/SUNWldom/GenericProperty": GPROP,
    "/var/opt/SUNWldom/Binding": BIND,
    "/var/opt/SUNWldom/common": CIM_COMMON,
}

STRUCTURAL = frozenset({
    "LDM_interface", "LDM_event", "cmd", "action", "option", "options", "arguments", "data",
    "response", "status", "resp_msg", "uuid",
})
# Envelope-level structural names may also arrive in the ovf namespace.
OVF_STRUCTURAL = frozenset({"Envelope", "References", "Content", "Section", "Item"})
ROOT_NAMES = frozenset({"LDM_interface", "LDM_event"})

# Unqualified elements whose text is trimmed (step 8); rasd:* and gprop:GenericProperty too.
_TRIMMED = frozenset({"action", "option", "options", "arguments", "status", "resp_msg", "uuid"})
_GENERIC_PROPERTY = f"{{{GPROP}}}GenericProperty"
_RASD_PREFIX = f"{{{RASD}}}"

_XSI_TYPE = f"{{{XSI}}}type"
_OVF_ID = f"{{{OVF}}}id"
_SCHEMA_LOCATIONS = frozenset({f"{{{XSI}}}schemaLocation", f"{{{XSI}}}noNamespaceSchemaLocation"})
_TYPE_NAMES = {name.lower(): name for name in (VIRTUAL_SYSTEM, RESOURCE_ALLOCATION, VIRTUAL_HARDWARE)}
_DEFAULT_TYPE = {"Content": "ovf:" + VIRTUAL_SYSTEM, "Section": "ovf:" + VIRTUAL_HARDWARE}

_CANONICAL_PREFIXES = frozenset(CANONICAL_NSMAP)
_XML_WHITESPACE = " \t\r\n"


@dataclass
class Canonical:
    """A canonical tree and the problems normalisation itself found.

    ``problems`` are (path, reason) pairs in the same form as schema errors; today the only
    one is a ``Content`` whose ``id`` and ``ovf:id`` differ (§8.3 step 5), reported at the
    ``id`` attribute, which the canonical tree no longer carries.
    """

    root: etree._Element
    problems: list[tuple[str, str]] = field(default_factory=list)


def normalize(source: etree._Element) -> Canonical:
    """Return the canonical form of a parsed LDM document (comments and PIs already gone)."""
    local = etree.QName(source).localname
    tag = local if local in ROOT_NAMES else _element_tag(source)
    root = etree.Element(tag, nsmap=CANONICAL_NSMAP)
    conflicts: list[tuple[etree._Element, str, str]] = []
    _copy_attributes(source, root, tag, conflicts)
    _copy_content(source, root, tag, conflicts)
    tree = root.getroottree()
    problems = [
        (f"{tree.getpath(element)}/@id", f'id "{plain}" differs from ovf:id "{qualified}"')
        for element, plain, qualified in conflicts
    ]
    return Canonical(root, problems)


def canonical_bytes(raw: bytes) -> bytes:
    """Parse and normalise one document's bytes; return the canonical serialisation."""
    return serialize(normalize(parse_element(raw)).root)


def serialize(root: etree._Element) -> bytes:
    """UTF-8 bytes of a canonical tree, without XML declaration."""
    return etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def _copy_content(source: etree._Element, target: etree._Element, tag: str, conflicts) -> None:
    """Copy text and child elements of ``source`` below ``target`` (steps 3, 4, 8, 9)."""
    if len(source):
        target.text = _significant(source.text)
        for child in source:
            child_tag = _element_tag(child)
            element = etree.SubElement(target, child_tag, nsmap=_own_declaration(child, child_tag))
            _copy_attributes(child, element, child_tag, conflicts)
            _copy_content(child, element, child_tag, conflicts)
            element.tail = _significant(child.tail)
    elif tag == "data":
        return  # step 9: an empty data has no content at all
    elif _is_trimmed(tag):
        target.text = (source.text or "").strip(_XML_WHITESPACE) or None
    else:
        target.text = _significant(source.text)


def _copy_attributes(source: etree._Element, target: etree._Element, tag: str, conflicts) -> None:
    """Copy attributes with canonical namespaces (steps 4–7)."""
    attributes: dict[str, str] = {}
    for name, value in source.attrib.items():
        name = _attribute_name(name)
        if name in _SCHEMA_LOCATIONS:
            continue  # step 6
        if name == "version":
            value = value.strip(_XML_WHITESPACE)
        attributes[name] = value
    if tag in _DEFAULT_TYPE:
        attributes = _typed(attributes, tag, target, conflicts)
    for name, value in attributes.items():
        target.set(name, value)


def _typed(attributes: dict[str, str], tag: str, target, conflicts) -> dict[str, str]:
    """Content and Section: canonical xsi:type first, then (Content) ovf:id (steps 5, 7)."""
    ordered = {_XSI_TYPE: _canonical_type(attributes.pop(_XSI_TYPE, None), tag)}
    if tag == "Content" and "id" in attributes:
        plain = attributes.pop("id")
        qualified = attributes.get(_OVF_ID, plain)
        if qualified != plain:
            conflicts.append((target, plain, qualified))
        attributes[_OVF_ID] = qualified
    if _OVF_ID in attributes:
        ordered[_OVF_ID] = attributes.pop(_OVF_ID)
    ordered.update(attributes)
    return ordered


def _canonical_type(value: str | None, tag: str) -> str:
    if value is None:
        return _DEFAULT_TYPE[tag]
    local = value.strip(_XML_WHITESPACE).rpartition(":")[2]
    name = _TYPE_NAMES.get(local.lower())
    return "ovf:" + name if name else value  # an unknown type is kept and fails validation


def _element_tag(element: etree._Element) -> str:
    """The canonical Clark name of an element (steps 3 and 4)."""
    qname = etree.QName(element)
    uri, local = qname.namespace, qname.localname
    if uri is None or uri == JABBER_CLIENT:
        return local
    uri = ALIASES.get(uri, uri)
    if uri == OVF and local in OVF_STRUCTURAL:
        return local
    return f"{{{uri}}}{local}"


def _attribute_name(name: str) -> str:
    if name[0] != "{":
        return name
    uri, _, local = name[1:].partition("}")
    return f"{{{ALIASES.get(uri, uri)}}}{local}"


def _own_declaration(source: etree._Element, tag: str) -> dict[str, str] | None:
    """Keep the request's prefix for a namespace the canonical root does not declare."""
    if tag[0] != "{":
        return None
    uri = tag[1:].partition("}")[0]
    if uri in CANONICAL_NSMAP.values():
        return None
    prefix = source.prefix
    if prefix is None or prefix in _CANONICAL_PREFIXES:
        return None  # let lxml pick a fresh prefix rather than shadow a canonical one
    return {prefix: uri}


def _is_trimmed(tag: str) -> bool:
    return tag in _TRIMMED or tag == _GENERIC_PROPERTY or tag.startswith(_RASD_PREFIX)


def _significant(text: str | None) -> str | None:
    """Whitespace-only text is dropped (step 8); other text is kept as written."""
    if text is None or not text.strip(_XML_WHITESPACE):
        return None
    return text
