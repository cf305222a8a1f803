"""The stream reader on its own (spec ldm-xml §1.3, §1.13)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.xmpp.reader import NEED_DATA, Element, Header, StreamEnd, StreamFault, StreamReader
from tests.xmpp.fakes import REGISTRATION

HEADER = b"<?xml version='1.0'?><stream:stream xml:lang=\"en\" version=\"1.0\" id=\"xmpp\">"
STREAM = (HEADER + b" <!-- keepalive -->\n"
          + b"<LDM_interface xmlns=\"\"><cmd><!-- c --><action>list-domain</action>"
            b"<data version=\"3.0\"><![CDATA[a<b]]>&amp;&#65;<!--x--></data></cmd></LDM_interface>"
          + b"<?xml version='1.0'?>"
          + b"<ovf:Envelope><rasd:Item a='&gt;'/></ovf:Envelope>"
          + REGISTRATION + b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"
          + b"</stream:stream>")


def events(reader: StreamReader) -> list:
    out = []
    while (event := reader.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def read_in_pieces(data: bytes, cuts: list[int]) -> list:
    reader = StreamReader(max_element=1 << 20, stanza_names=frozenset({"iq"}))
    out, last = [], 0
    for cut in sorted(set(cuts)) + [len(data)]:
        reader.feed(data[last:cut])
        last = cut
        out += events(reader)
    return out


def test_elements_are_exact_bytes_with_local_names():
    """C58, C60, C61, C62: undeclared prefixes, xmlns="", declarations and comments."""
    out = read_in_pieces(STREAM, [])
    assert isinstance(out[0], Header) and out[0].attrs["id"] == "xmpp"
    elements = [e for e in out if isinstance(e, Element)]
    assert [e.local for e in elements] == ["LDM_interface", "Envelope", "LDM_interface", "iq"]
    assert elements[2].raw == REGISTRATION
    assert elements[3].tree.child("ping") is not None
    assert isinstance(out[-1], StreamEnd)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_segmentation_gives_the_same_events(cuts):
    """§1.13: element boundaries do not depend on how the bytes were split."""
    assert read_in_pieces(STREAM, cuts) == read_in_pieces(STREAM, [])


def test_nothing_after_an_element_is_scanned_until_asked():
    """§1.5: after an element, the rest of the buffer is only reported as pending."""
    reader = StreamReader(max_element=1024)
    reader.feed(HEADER + b"<starttls/><!DOCTYPE evil>")
    assert isinstance(reader.next_event(), Header)
    assert reader.next_event().local == "starttls"
    assert reader.pending()


def test_fault_is_sticky():
    """§1.14: once broken, the reader keeps reporting the same condition."""
    reader = StreamReader(max_element=1024)
    reader.feed(HEADER + b"<a>&bogus;</a>")
    reader.next_event()
    for _ in range(2):
        with pytest.raises(StreamFault) as caught:
            reader.next_event()
        assert caught.value.condition == "xml-not-well-formed"


@pytest.mark.parametrize("data, condition", [
    (b"text", "bad-format"),
    (b"<stream:stream><a>x</b>", "xml-not-well-formed"),
    (b"<stream:stream></other>", "xml-not-well-formed"),
    (b"<stream:stream><a b='1' b='2'/>", "xml-not-well-formed"),
    (b"<stream:stream><!ELEMENT a ANY>", "restricted-xml"),
    (b"<stream:stream><a><?xml version='1.0'?></a>", "restricted-xml"),
    (b"<stream:stream><a><?pi?></a>", "restricted-xml"),
    (b"<stream:stream><a>x<!DOCTYPE></a>", "restricted-xml"),
    (b"<stream:stream><a>\x00</a>", "xml-not-well-formed"),
])
def test_faults(data, condition):
    """C63, C64: the stream errors the reader raises."""
    reader = StreamReader(max_element=1024)
    reader.feed(data)
    with pytest.raises(StreamFault) as caught:
        events(reader)
    assert caught.value.condition == condition


def test_large_document_is_scanned_quickly():
    """§1.13: a 1 MiB document of many small elements frames in one pass (bulk scanning)."""
    body = b"<Item><rasd:Address>00:14:4f:fa:00:01</rasd:Address></Item>" * 17000
    document = b"<LDM_interface>" + body + b"</LDM_interface>"
    reader = StreamReader(max_element=2 << 20)
    reader.feed(HEADER)
    reader.next_event()
    for start in range(0, len(document), 16384):
        reader.feed(document[start:start + 16384])
    element = reader.next_event()
    assert element.raw == document


def _outcome(data: bytes, piece: int) -> list:
    """Events (and the final stream-error condition) reading ``data`` ``piece`` bytes at a time."""
    reader = StreamReader(max_element=200, max_depth=4, stanza_names=frozenset({"iq"}))
    out: list = []
    try:
        for start in range(0, len(data), piece):
            reader.feed(data[start:start + piece])
            while (event := reader.next_event()) is not NEED_DATA:
                out.append(event)
    except StreamFault as fault:
        out.append(fault.condition)
    return out


@pytest.mark.parametrize("element", [
    b"<a>x</a>",
    b"<ovf:Envelope a='&gt;' b=\"2\"><rasd:Item/>t&amp;</ovf:Envelope>",
    b"<a><a>inner</a></a>",
    b"<a><a>inner</a>",
    b"<a><!-- </a> --></a>",
    b"<a><![CDATA[</a>]]></a>",
    b"<a>x</a ><a>y</a>",
    b"<a>x</a><a>y</a ><a>z</a>",
    b"<a><b><c><d>deep enough</d></c></b></a>",
    b"<a><b><c><d><e>too deep</e></d></c></b></a>",
    b"<a><b/><b/><b/><b/><b/></a>",
    b"<a>" + b"x" * 300 + b"</a>",
    b"<a><?pi?></a>",
    b"<a><!DOCTYPE x></a>",
    b"<a>&bogus;</a>",
    b"<a><b></a>",
    b"<a>\xff</a>",
    b"<\xc3\xa9l>\xc3\xa9</\xc3\xa9l>",
    b"<\xff>x</\xff>",
    b"<a b='1' b='2'>x</a>",
    b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
    b"<a>x</a>junk",
    b"<a>x</a></stream:stream>",
])
def test_whole_element_fast_path_agrees_with_tag_by_tag_scan(element):
    """§1.13, C63, C64, C65: a top-level element that arrives whole takes the reader's fast
    path; the events and the stream-error condition are those of the tag-by-tag scan (which
    is all a byte-at-a-time feed can use)."""
    data = HEADER + element
    assert _outcome(data, len(data)) == _outcome(data, 1)


def test_request_arriving_whole_skips_the_tag_by_tag_scan(monkeypatch):
    """§1.13: a request that arrived whole is framed by the fast path alone."""
    def no_scan(self):
        raise AssertionError("tag-by-tag scan used")

    monkeypatch.setattr(StreamReader, "_scan_inside", no_scan)
    reader = StreamReader(max_element=1 << 20)
    reader.feed(HEADER + REGISTRATION + REGISTRATION)
    out = events(reader)
    assert [e.raw for e in out[1:]] == [REGISTRATION, REGISTRATION]
