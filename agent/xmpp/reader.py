"""Incoming XMPP stream reader: finds top-level element boundaries (spec ldm-xml §1.3, §1.13).

Sans-IO: feed it bytes with :meth:`StreamReader.feed`, pull events with
:meth:`StreamReader.next_event` until it returns :data:`NEED_DATA`. Nothing is scanned before it
is asked for, so a caller that stops pulling (after ``<starttls/>`` or ``</auth>``) can ask
:meth:`StreamReader.pending` whether the peer pipelined bytes, and then drop the reader whole;
there are no callbacks to disconnect.

Boundaries are found by literal tag names, without namespace processing, with C-speed searches
(``bytes.find`` and compiled regular expressions) per tag rather than per byte. A complete
top-level element is then checked for well-formedness by expat in non-namespace mode (undefined
entities, bad characters, invalid UTF-8, duplicate attributes), so undeclared prefixes never break
the stream. Problems are raised as :class:`StreamFault` carrying the stream-error condition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.parsers import expat

__all__ = [
    "NEED_DATA",
    "Element",
    "Header",
    "Node",
    "StreamEnd",
    "StreamFault",
    "StreamReader",
]

STREAM_NS = "http://etherx.jabber.org/streams"
CLIENT_NS = "jabber:client"

_NAME = rb"[^\s/>\"'=<&]+"
_TAG_NAME = rb"[^\s/>\"'=<&!?][^\s/>\"'=<&]*"  # never '<!' or '<?' markup
_TAG = re.compile(
    rb"<(" + _TAG_NAME + rb")((?:\s+" + _NAME + rb"\s*=\s*(?:\"[^\"<]*\"|'[^'<]*'))*)\s*(/?)>"
)
# A tag whose closing '>' (outside quotes) has arrived; if _TAG does not match it, it is broken.
_TAG_END = re.compile(rb"<(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")
# Fast path inside an element: text up to the next plain start, empty or end tag.
_TOKEN = re.compile(
    rb"[^<]*<(/?)(" + _TAG_NAME + rb")((?:\s+" + _NAME + rb"\s*=\s*(?:\"[^\"<]*\"|'[^'<]*'))*)\s*(/?)>"
)
_END_TAG = re.compile(rb"</(" + _NAME + rb")\s*>")
_END_TAG_END = re.compile(rb"</[^>]*>")
_SPACE = re.compile(rb"[ \t\r\n]*")
_XML_DECL = re.compile(rb"<\?xml[ \t\r\n?]")
_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([^\"']*)[\"']")
_RESTRICTED = (b"<!DOCTYPE", b"<!ENTITY", b"<!ELEMENT", b"<!ATTLIST", b"<!NOTATION")
_BOM = b"\xef\xbb\xbf"


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()
"""Returned by :meth:`StreamReader.next_event` when more bytes are needed."""


class StreamFault(Exception):
    """The stream is broken; ``condition`` is the stream-error condition to send (§1.14)."""

    def __init__(self, condition: str, detail: str = "") -> None:
        super().__init__(f"{condition}: {detail}" if detail else condition)
        self.condition = condition


@dataclass(frozen=True)
class Node:
    """A small parsed element (only built for stream-level stanzas such as ``iq``)."""

    qname: str
    attrs: dict[str, str]
    text: str = ""
    children: tuple["Node", ...] = ()

    @property
    def local(self) -> str:
        """The name without its prefix."""
        return self.qname.rpartition(":")[2]

    def child(self, local: str) -> "Node | None":
        """The first child with this local name, if any."""
        for node in self.children:
            if node.local == local:
                return node
        return None


@dataclass(frozen=True)
class Header:
    """A client stream header that passed the checks of §1.3."""

    qname: str
    attrs: dict[str, str]


@dataclass(frozen=True)
class Element:
    """One complete top-level element: its exact bytes, names and (for stanzas) a small tree."""

    raw: bytes
    qname: str
    local: str
    tree: Node | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StreamEnd:
    """The client's closing ``</stream:stream>`` tag."""


def check_header(qname: str, attrs: dict[str, str], encoding: str | None) -> str | None:
    """Return the stream-error condition for a bad client header, or None (§1.3, in order)."""
    prefix, _, local = qname.rpartition(":")
    if local != "stream":
        return "bad-format"
    if prefix and attrs.get("xmlns:" + prefix, STREAM_NS) != STREAM_NS:
        return "invalid-namespace"
    if attrs.get("xmlns", CLIENT_NS) != CLIENT_NS:
        return "invalid-namespace"
    if encoding is not None and encoding.lower() not in ("utf-8", "utf8"):
        return "unsupported-encoding"
    version = attrs.get("version")
    if version is not None and version.partition(".")[0].strip() != "1":
        return "unsupported-version"
    return None


class _TreeBuilder:
    """expat callbacks collecting a small tree."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, dict[str, str], list[str], list[Node]]] = []
        self.root: Node | None = None

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.stack.append((name, attrs, [], []))

    def end(self, name: str) -> None:
        qname, attrs, text, children = self.stack.pop()
        node = Node(qname, attrs, "".join(text), tuple(children))
        if self.stack:
            self.stack[-1][3].append(node)
        else:
            self.root = node

    def chars(self, data: str) -> None:
        if self.stack:
            self.stack[-1][2].append(data)


def _reject(*_args: object) -> None:
    raise StreamFault("restricted-xml", "declaration")


def parse_standalone(raw: bytes, build_tree: bool) -> Node | None:
    """Check one element for well-formedness with expat (no namespaces); maybe build a tree.

    Raises :class:`StreamFault` with ``xml-not-well-formed`` (or ``restricted-xml`` for a
    declaration, which the boundary scanner normally catches first).
    """
    parser = expat.ParserCreate("UTF-8")
    parser.StartDoctypeDeclHandler = _reject
    parser.EntityDeclHandler = _reject
    parser.ProcessingInstructionHandler = _reject
    builder = None
    if build_tree:  # only stanzas; an LDM document is only checked (the hot path)
        builder = _TreeBuilder()
        parser.buffer_text = True
        parser.StartElementHandler = builder.start
        parser.EndElementHandler = builder.end
        parser.CharacterDataHandler = builder.chars
    try:
        parser.Parse(raw, True)
    except expat.ExpatError as exc:
        raise StreamFault("xml-not-well-formed", str(exc)) from None
    return builder.root if builder is not None else None


class StreamReader:
    """Splits one XML stream (from one stream header onwards) into top-level elements.

    ``max_element`` (bytes of one top-level element) and ``max_depth`` (nesting inside a
    top-level element, which itself is level 1) may be changed between calls; exceeding them
    raises ``policy-violation``. ``stanza_names`` lists the local names for which a small
    :class:`Node` tree is built.
    """

    def __init__(self, *, max_element: int, max_depth: int = 32,
                 stanza_names: frozenset[str] = frozenset()) -> None:
        self.max_element = max_element
        self.max_depth = max_depth
        self.stanza_names = stanza_names
        self._buf = bytearray()
        self._pos = 0
        self._start: int | None = None  # offset of the current top-level element's '<'
        self._stack: list[bytes] = []
        self._header: bytes | None = None
        self._encoding: str | None = None
        self._fault: StreamFault | None = None
        self._end_after_header = False
        self._at_start = True

    def feed(self, data: bytes) -> None:
        """Append received bytes (nothing is parsed until :meth:`next_event`)."""
        self._buf += data

    def pending(self) -> bool:
        """True when bytes after the last returned event have been received."""
        return len(self._buf) > 0

    def next_event(self) -> Header | Element | StreamEnd | _NeedData:
        """Return the next event or :data:`NEED_DATA`; raise :class:`StreamFault` on errors."""
        if self._fault is not None:
            raise self._fault
        try:
            return self._next()
        except StreamFault as fault:
            self._fault = fault
            raise

    # -- scanning -------------------------------------------------------------------------

    def _next(self) -> Header | Element | StreamEnd | _NeedData:
        if self._end_after_header:
            self._end_after_header = False
            return StreamEnd()
        if self._at_start:
            if len(self._buf) < 3 and _BOM.startswith(bytes(self._buf)):
                return NEED_DATA
            if self._buf.startswith(_BOM):
                del self._buf[:3]
            self._at_start = False
        while True:
            if self._start is None:
                result = self._scan_between()
            else:
                result = self._scan_inside()
            if result is not None:
                return result

    def _limit(self, begin: int) -> None:
        if len(self._buf) - begin > self.max_element:
            raise StreamFault("policy-violation", "element too large")

    def _consume(self, end: int) -> None:
        del self._buf[:end]
        self._pos = 0

    def _need(self, begin: int) -> _NeedData:
        self._limit(begin)
        return NEED_DATA

    def _scan_between(self) -> Header | Element | StreamEnd | _NeedData | None:
        """Between top-level elements (or before the header): one step, None to continue."""
        buf = self._buf
        pos = _SPACE.match(buf, 0).end()
        if pos:
            self._consume(pos)
        if not buf:
            return NEED_DATA
        if buf[0] != 0x3C:  # text outside any element
            raise StreamFault("bad-format", "text between top-level elements")
        if len(buf) < 2:
            return NEED_DATA
        second = buf[1]
        if second == 0x3F:  # '<?'
            return self._skip_declaration()
        if second == 0x21:  # '<!'
            return self._skip_markup_declaration(top_level=True)
        if second == 0x2F:  # '</'
            return self._top_level_end_tag()
        match = _TAG.match(buf, 0)
        if match is None:
            return self._broken_or_incomplete_tag(0)
        if self._header is None:
            return self._read_header(match)
        self._start = 0
        if match.group(3):
            return self._complete(match.end())
        whole = self._whole_element(match)
        if whole is not None:
            return whole
        self._stack.append(match.group(1))
        self._check_depth()
        self._pos = match.end()
        return None

    def _skip_declaration(self) -> _NeedData | None:
        end = self._buf.find(b"?>", 2)
        if not _XML_DECL.match(self._buf, 0):
            if len(self._buf) < 6 and b"<?xml ".startswith(bytes(self._buf)):
                return self._need(0)
            raise StreamFault("restricted-xml", "processing instruction")
        if end < 0:
            return self._need(0)
        if self._header is None:
            found = _ENCODING.search(self._buf, 0, end)
            if found:
                self._encoding = found.group(1).decode("ascii", "replace")
        self._consume(end + 2)
        return None

    def _skip_markup_declaration(self, top_level: bool) -> _NeedData | None:
        """'<!' at self._pos: comment, CDATA, or a forbidden declaration."""
        buf, pos = self._buf, self._pos if not top_level else 0
        head = bytes(buf[pos:pos + 10])
        if head.startswith(b"<!--"):
            end = buf.find(b"-->", pos + 4)
            if end < 0:
                return self._need(pos if top_level else self._start)
            end += 3
        elif head.startswith(b"<![CDATA["):
            end = buf.find(b"]]>", pos + 9)
            if end < 0:
                return self._need(pos if top_level else self._start)
            end += 3
        elif any(head.startswith(word) for word in _RESTRICTED):
            raise StreamFault("restricted-xml", "declaration")
        elif any(word.startswith(head) for word in _RESTRICTED + (b"<!--", b"<![CDATA[")):
            return self._need(pos if top_level else self._start)
        else:
            raise StreamFault("xml-not-well-formed", "bad markup declaration")
        if top_level:
            self._consume(end)
        else:
            self._pos = end
        return None

    def _top_level_end_tag(self) -> StreamEnd | _NeedData:
        match = _END_TAG.match(self._buf, 0)
        if match is None:
            if _END_TAG_END.match(self._buf, 0):
                raise StreamFault("xml-not-well-formed", "bad end tag")
            return self._need(0)
        if self._header is None or match.group(1) != self._header:
            raise StreamFault("xml-not-well-formed", "unexpected end tag")
        self._consume(match.end())
        return StreamEnd()

    def _broken_or_incomplete_tag(self, pos: int) -> _NeedData:
        if _TAG_END.match(self._buf, pos):
            raise StreamFault("xml-not-well-formed", "broken tag")
        return self._need(pos if self._start is None else self._start)

    def _read_header(self, match: re.Match[bytes]) -> Header:
        raw = match.group(0)
        qname_bytes = match.group(1)
        # Closing the start tag synthetically lets expat decode the attribute values.
        node = parse_standalone(raw if match.group(3) else raw + b"</" + qname_bytes + b">",
                                build_tree=True)
        assert node is not None
        condition = check_header(node.qname, node.attrs, self._encoding)
        if condition is not None:
            raise StreamFault(condition, "stream header")
        self._header = qname_bytes
        self._end_after_header = bool(match.group(3))
        self._consume(match.end())
        return Header(node.qname, node.attrs)

    def _check_depth(self) -> None:
        if len(self._stack) > self.max_depth:
            raise StreamFault("policy-violation", "nesting too deep")

    def _scan_inside(self) -> Element | _NeedData | None:
        """Inside a top-level element: consume plain tags in a tight loop (the hot path)."""
        buf, stack, start = self._buf, self._stack, self._start
        assert start is not None
        token = _TOKEN.match
        limit = start + self.max_element
        max_depth = self.max_depth
        pos = self._pos
        while True:
            match = token(buf, pos)
            if match is None:
                self._pos = pos
                return self._scan_inside_slow()
            pos = match.end()
            if pos > limit:
                raise StreamFault("policy-violation", "element too large")
            if match.group(1):
                if match.group(3) or match.group(4):
                    raise StreamFault("xml-not-well-formed", "bad end tag")
                if match.group(2) != stack[-1]:
                    raise StreamFault("xml-not-well-formed", "mismatched end tag")
                stack.pop()
                if not stack:
                    return self._complete(pos)
            elif not match.group(4):
                stack.append(match.group(2))
                if len(stack) > max_depth:
                    raise StreamFault("policy-violation", "nesting too deep")

    def _scan_inside_slow(self) -> Element | _NeedData | None:
        """Inside a top-level element: handle the next markup the fast path did not take."""
        buf = self._buf
        start = self._start
        assert start is not None
        pos = buf.find(b"<", self._pos)
        if pos < 0:
            self._pos = len(buf)
            return self._need(start)
        if pos - start > self.max_element:
            raise StreamFault("policy-violation", "element too large")
        self._pos = pos
        if len(buf) < pos + 2:
            return self._need(start)
        second = buf[pos + 1]
        if second == 0x21:  # '<!'
            return self._skip_markup_declaration(top_level=False)
        if second == 0x3F:  # '<?' inside an element is never a skippable declaration
            raise StreamFault("restricted-xml", "processing instruction")
        if second == 0x2F:  # '</'
            match = _END_TAG.match(buf, pos)
            if match is None:
                if _END_TAG_END.match(buf, pos):
                    raise StreamFault("xml-not-well-formed", "bad end tag")
                return self._need(start)
            if match.group(1) != self._stack[-1]:
                raise StreamFault("xml-not-well-formed", "mismatched end tag")
            self._stack.pop()
            if not self._stack:
                return self._complete(match.end())
            self._pos = match.end()
            return None
        match = _TAG.match(buf, pos)
        if match is None:
            return self._broken_or_incomplete_tag(pos)
        if not match.group(3):
            self._stack.append(match.group(1))
            self._check_depth()
        self._pos = match.end()
        return None

    def _whole_element(self, start_tag: re.Match[bytes]) -> Element | None:
        """Fast path for a top-level element that has fully arrived (the usual request).

        The first ``</qname>`` after the start tag ends the candidate; expat then decides. A
        candidate that expat accepts as one whole element is exactly the element the
        tag-by-tag scan would find (nothing but the root's own end tag can close it). Every
        other case (not arrived yet, over the size limit, more start tags than the depth
        limit, or anything expat rejects) returns None, and the tag-by-tag scan runs as if
        this had not been tried, so it alone decides which stream error applies.
        """
        buf = self._buf
        qname = start_tag.group(1)
        end = buf.find(b"</" + qname + b">", start_tag.end())
        if end < 0:
            return None
        end += len(qname) + 3
        if end > self.max_element:
            return None
        # Each nesting level needs a start tag, so this bounds the depth from above.
        start_tags = (buf.count(b"<", 0, end) - buf.count(b"</", 0, end)
                      - buf.count(b"<!", 0, end) - buf.count(b"<?", 0, end))
        if start_tags > self.max_depth:
            return None
        raw = bytes(buf[:end])
        try:
            element = self._element(raw, qname)
        except StreamFault:
            return None
        self._start = None
        self._consume(end)
        return element

    def _complete(self, end: int) -> Element:
        start = self._start
        assert start is not None
        if end - start > self.max_element:
            raise StreamFault("policy-violation", "element too large")
        raw = bytes(self._buf[start:end])
        self._start = None
        self._stack.clear()
        self._consume(end)
        qname_match = _TAG.match(raw)
        assert qname_match is not None
        return self._element(raw, qname_match.group(1))

    def _element(self, raw: bytes, qname_bytes: bytes) -> Element:
        """Check one complete top-level element with expat and describe it."""
        try:
            qname = qname_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise StreamFault("xml-not-well-formed", "invalid UTF-8") from None
        local = qname.rpartition(":")[2]
        tree = parse_standalone(raw, build_tree=local in self.stanza_names)
        return Element(raw, qname, local, tree)
