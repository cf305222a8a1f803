"""Canonical form of an incoming LDM document (spec ldm-xml §8.3, steps 1–10).

:func:`normalize` edits a parsed element (see :mod:`agent.xmlapi.parser`, which performs
steps 1 and 2) in place and moves its children up into the parser's wrapper element, which
carries exactly the six canonical namespace declarations of §0.4, in that order, and becomes
the canonical root; lxml then re-points every use of a
known namespace to the canonical prefix, so the tree serialises with those prefixes and
``getpath()`` yields the paths of §3.7. Every namespace style thus ends up byte-identical (C180).

Choices beyond the letter of §8.3, all of which only affect documents that fail anyway:

* the root is matched by local name whatever its namespace (§1.13), so it always becomes the
  unqualified ``LDM_interface``/``LDM_event``;
* any element in ``jabber:client`` is placed in no namespace, not only the structural ones, so
  an unknown element is reported as ``.../Item/Size`` rather than under a generated prefix;
* an element or attribute in a namespace outside §0.3 keeps its namespace and its prefix,
  declared where the request declared it (the only declarations left below the root);
* empty text is dropped, so ``<x></x>``, ``<x> </x>`` and ``<x/>`` all serialise as ``<x/>``;
* on ``Content`` and ``Section``, ``xsi:type`` is written first and ``ovf:id`` second, so
  attribute order in the request does not matter.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from lxml import etree

from agent.xmlapi.model import RESOURCE_ALLOCATION, VIRTUAL_HARDWARE, VIRTUAL_SYSTEM
from agent.xmlapi.parser import (
    BIND,
    GPROP,
    OVF,
    RASD,
    VSSD,
    WRAPPER_TAG,
    XSI,
    parse_element,
)

JABBER_CLIENT = "jabber:client"
CIM_COMMON = "./schemas/common"


# §0.3: every accepted spelling of a known namespace, mapped to its canonical URI.
ALIASES: dict[str, str] = {
    "/var/opt/SUNWldom/envelope": OVF,
    "/var/opt/SUNWldom/CIM_ResourceAllocationSettingData": RASD,
    "/var/opt/SUNWldom/CIM_VirtualSystemSettingData": VSSD,
    "/var/opt/SUNWldom/GenericProperty": GPROP,
    "/var/opt/SUNWldom/Binding": BIND,
    "/var/opt/SUNWldom/common": CIM_COMMON,
}

# Envelope-level structural names may also arrive in the ovf namespace (step 3). The other
# structural names only need jabber:client mapped to no namespace, which is done for every
# element (see the module docstring).
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
_CANONICAL_TYPES = frozenset("ovf:" + name for name in _TYPE_NAMES.values())
_DEFAULT_TYPE = {"Content": "ovf:" + VIRTUAL_SYSTEM, "Section": "ovf:" + VIRTUAL_HARDWARE}

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
    """Return the canonical form of an element from :func:`agent.xmlapi.parser.parse_element`.

    ``source`` is consumed: its descendants are edited in place and moved up into the
    parser's wrapper, which becomes the canonical root.
    """
    root = source.getparent()
    if root is None or root.tag != WRAPPER_TAG:
        raise ValueError("normalize() takes an element returned by parser.parse_element()")
    conflicts: list[tuple[etree._Element, str, str]] = []
    for element in source.iterdescendants():
        _fix_element(element, conflicts)
    local = source.tag.rpartition("}")[2]
    root.tag = local if local in ROOT_NAMES else _canonical_tag(source.tag)
    root.attrib.update(_canonical_attributes(source.attrib.items()))
    root.text = _significant(source.text)
    # Moving the children below the wrapper, which declares exactly the canonical namespaces,
    # makes lxml drop every lower declaration of those URIs and re-point their users to the
    # canonical prefixes.
    root.extend(list(source))
    root.remove(source)
    for child in root:
        # What is left below the root are declarations without users (aliases,
        # jabber:client); declarations of foreign namespaces still in use stay.
        etree.cleanup_namespaces(child)
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


def _fix_element(element: etree._Element, conflicts) -> None:
    """Steps 3–9 for one element below the root, in place (hot path: keep it lean)."""
    tag = element.tag
    if tag[0] == "{":
        canonical = _canonical_tag(tag)
        if canonical != tag:
            element.tag = tag = canonical
    if tag in _DEFAULT_TYPE:
        items = element.items()
        if not _already_typed(items, tag):
            _rewrite_attributes(element, _typed(_canonical_attributes(items), tag, element, conflicts))
    else:
        items = element.items()
        if items and _attributes_need_work(items):
            _rewrite_attributes(element, _canonical_attributes(items))
    # The parser already dropped whitespace between elements (remove_blank_text); what is
    # left is leaf text, whitespace-only leaf content, and text in mixed content.
    text = element.text
    if text is not None:
        stripped = text.strip(_XML_WHITESPACE)
        if not stripped or (tag == "data" and not len(element)):
            element.text = None  # step 8, and step 9 for an empty data
        elif stripped != text and not len(element) and _is_trimmed(tag):
            element.text = stripped
    tail = element.tail
    if tail is not None and not tail.strip(_XML_WHITESPACE):
        element.tail = None


def _already_typed(items: list[tuple[str, str]], tag: str) -> bool:
    """True for a Content or Section whose attributes are in canonical form already."""
    if not items or items[0][0] != _XSI_TYPE or items[0][1] not in _CANONICAL_TYPES:
        return False
    if tag == "Section":
        return len(items) == 1
    return len(items) == 2 and items[1][0] == _OVF_ID


def _attributes_need_work(items: list[tuple[str, str]]) -> bool:
    for name, value in items:
        if name[0] == "{":
            return True
        if name == "version" and value != value.strip(_XML_WHITESPACE):
            return True
    return False


def _rewrite_attributes(element: etree._Element, attributes: dict[str, str]) -> None:
    if list(attributes.items()) != element.items():
        element.attrib.clear()
        element.attrib.update(attributes)


def _canonical_attributes(items: list[tuple[str, str]]) -> dict[str, str]:
    """Attributes with canonical namespaces, trimmed versions, no schema locations."""
    attributes: dict[str, str] = {}
    for name, value in items:
        if name[0] == "{":
            name = _canonical_attribute_name(name)
            if name in _SCHEMA_LOCATIONS:
                continue  # step 6
        elif name == "version":
            value = value.strip(_XML_WHITESPACE)
        attributes[name] = value
    return attributes


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


@functools.lru_cache(maxsize=1024)
def _canonical_tag(tag: str) -> str:
    """The canonical Clark name for an element's Clark name (steps 3 and 4)."""
    if tag[0] != "{":
        return tag
    uri, _, local = tag[1:].partition("}")
    if uri == JABBER_CLIENT:
        return local
    uri = ALIASES.get(uri, uri)
    if uri == OVF and local in OVF_STRUCTURAL:
        return local
    return f"{{{uri}}}{local}"


@functools.lru_cache(maxsize=1024)
def _canonical_attribute_name(name: str) -> str:
    uri, _, local = name[1:].partition("}")
    return f"{{{ALIASES.get(uri, uri)}}}{local}"


def _is_trimmed(tag: str) -> bool:
    return tag in _TRIMMED or tag == _GENERIC_PROPERTY or tag.startswith(_RASD_PREFIX)


def _significant(text: str | None) -> str | None:
    """Whitespace-only text is dropped (step 8); other text is kept as written."""
    if text is None or not text.strip(_XML_WHITESPACE):
        return None
    return text
