"""Hardened standalone parse of one top-level element's bytes (spec ldm-xml §2.8 step 2, §8.3 step 1).

The stream reader hands over one complete top-level element. It is parsed here as a document of
its own, with namespace processing, inside a synthetic wrapper element that declares the six
canonical prefixes, so that undeclared ``xsi ovf rasd vssd gprop bind`` prefixes resolve while
declarations inside the document still take precedence. No DTD is loaded, no entity is
expanded, nothing is fetched, and size, depth and element count are bounded.

The element is returned still inside that wrapper: the wrapper is the root of its document and
carries exactly the canonical declarations, so :mod:`agent.xmlapi.normalize` turns it into the
canonical root instead of building a new document (which costs more than the parse itself).

Any failure raises :class:`ParseError`, whose ``description`` completes the fixed text
``XML parse error: ...`` (§3.6); positions in it refer to the caller's bytes, not to the wrapper.
"""

from __future__ import annotations

import functools
import re

from lxml import etree

XSI = "http://www.w3.org/2001/XMLSchema-instance"
OVF = "./schemas/envelope"
RASD = "./schemas/CIM_ResourceAllocationSettingData"
VSSD = "./schemas/CIM_VirtualSystemSettingData"
GPROP = "./schemas/GenericProperty"
BIND = "./schemas/Binding"

# The six declarations of the emitted root (§0.4), in their emitted order.
CANONICAL_NAMESPACES: tuple[tuple[str, str], ...] = (
    ("xsi", XSI),
    ("ovf", OVF),
    ("rasd", RASD),
    ("vssd", VSSD),
    ("gprop", GPROP),
    ("bind", BIND),
)

DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_ELEMENTS = 100_000

WRAPPER_TAG = "ldmx-standalone-wrapper"
_WRAPPER_OPEN = (
    f"<{WRAPPER_TAG}"
    + "".join(f' xmlns:{prefix}="{uri}"' for prefix, uri in CANONICAL_NAMESPACES)
    + ">"
).encode()
_WRAPPER_CLOSE = f"</{WRAPPER_TAG}>".encode()

_BOM = b"\xef\xbb\xbf"
_XML_DECLARATION = re.compile(rb"<\?xml\s[^>]*?\?>")
_POSITION_SUFFIX = re.compile(r", line (\d+), column (\d+)$")
_XML_WHITESPACE = " \t\r\n"

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,  # §8.3 step 2, done while parsing so adjacent text merges
    remove_pis=True,
    remove_blank_text=True,  # most of §8.3 step 8, in C; normalize handles the rest
    collect_ids=False,
)


class ParseError(ValueError):
    """The bytes are not one namespace-well-formed element within the limits.

    ``description`` is the parser's (or the limit's) description, to be placed after
    ``XML parse error: ``.
    """

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def parse_element(
    raw: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> etree._Element:
    """Parse one top-level element's bytes and return that element.

    The element's parent is the synthetic wrapper (tag :data:`WRAPPER_TAG`), the root of the
    parsed document, which declares the six canonical prefixes and nothing else.

    Raises :class:`ParseError` for anything that is not exactly one namespace-well-formed
    element, for DTDs and entity declarations, and when a limit is exceeded.
    """
    if len(raw) > max_bytes:
        raise ParseError(f"document of {len(raw)} bytes exceeds the limit of {max_bytes} bytes")
    body, removed = _strip_prolog(raw)
    # A DOCTYPE cannot occur inside the wrapper anyway; saying so is clearer than the
    # parser's "invalid element name" and guarantees no declaration is ever looked at.
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ParseError("DOCTYPE and entity declarations are not allowed")
    try:
        wrapper = etree.fromstring(_WRAPPER_OPEN + body + _WRAPPER_CLOSE, _PARSER)
    except etree.XMLSyntaxError as exc:
        if "Excessive depth" in (exc.msg or ""):
            # libxml2's own hard stop (256 levels) fired before our lower limit could.
            raise ParseError(_depth_message(max_depth)) from None
        description = _describe(exc, len(_WRAPPER_OPEN) - removed)
        if WRAPPER_TAG in description:
            description = _describe_unwrapped(body, removed) or description
        raise ParseError(description) from None
    element = _only_child(wrapper)
    # Every element needs at least one "<", so their count bounds both the depth and the
    # number of elements; the tree is only walked when that bound exceeds a limit.
    bound = body.count(b"<")
    if bound > max_depth and _deeper_than(max_depth)(wrapper):
        raise ParseError(_depth_message(max_depth))
    if bound > max_elements:
        count = int(_COUNT_ELEMENTS(wrapper)) - 1
        if count > max_elements:
            raise ParseError(f"document has {count} elements, over the limit of {max_elements}")
    element.tail = None
    return element


def _strip_prolog(raw: bytes) -> tuple[bytes, int]:
    """Drop a leading BOM and XML declaration, which cannot stand inside the wrapper."""
    body = raw[len(_BOM):] if raw.startswith(_BOM) else raw
    match = _XML_DECLARATION.match(body)
    if match:
        body = body[match.end():]
    return body, len(raw) - len(body)


def _describe(exc: etree.XMLSyntaxError, first_line_shift: int) -> str:
    """The parser's message with the position it would have without the wrapper."""
    message = exc.msg or str(exc)
    match = _POSITION_SUFFIX.search(message)
    if match:
        message = message[: match.start()]
    line, column = exc.position if exc.position else (0, 0)
    if line == 1:
        column = max(column - first_line_shift, 1)
    if line:
        return f"{message}, line {line}, column {column}"
    return message


def _depth_message(max_depth: int) -> str:
    return f"element nesting exceeds the limit of {max_depth} levels"


def _describe_unwrapped(body: bytes, removed: int) -> str | None:
    """A truncated or over-closed element makes the parser name the wrapper; the same bytes
    parsed alone give a description in the caller's terms (error path only)."""
    try:
        etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        return _describe(exc, -removed)
    return None


def _only_child(wrapper: etree._Element) -> etree._Element:
    if len(wrapper) != 1:
        raise ParseError(f"expected exactly one top-level element, found {len(wrapper)}")
    element = wrapper[0]
    stray = (wrapper.text or "") + (element.tail or "")
    if stray.strip(_XML_WHITESPACE):
        raise ParseError("text outside the top-level element")
    return element


_COUNT_ELEMENTS = etree.XPath("count(//*)")


@functools.lru_cache(maxsize=8)
def _deeper_than(max_depth: int) -> etree.XPath:
    # The wrapper adds one level; an element max_depth + 1 levels below it is too deep.
    return etree.XPath("boolean(/*" + "/*" * (max_depth + 1) + ")")
