"""The hardened parse: hostile documents are refused before anything is expanded or fetched
(spec ldm-xml §1.13 limits, §2.8 step 2, §8.3 step 1)."""

from __future__ import annotations

import time

import pytest

from agent.xmlapi.decode import decode_request
from agent.xmlapi.model import DocumentFailure, Request
from agent.xmlapi.parser import OVF, ParseError, parse_element

# Not a speed target (those live in tools/bench/): only a guard so that a regression that
# starts expanding entities or walking huge trees fails instead of hanging the suite.
HANG_GUARD_SECONDS = 5.0

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE LDM_interface [\n <!ENTITY lol "lol">\n'
    + b"".join(
        b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10))
    + b']>\n<LDM_interface version="1.3"><cmd><action>&lol9;</action></cmd></LDM_interface>'
)
EXTERNAL_ENTITY = (
    b'<!DOCTYPE LDM_interface [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<LDM_interface version="1.3"><cmd><action>&xxe;</action></cmd></LDM_interface>'
)


def rejected(raw: bytes, **limits) -> str:
    """Decode ``raw``; return the failure message, checking it fails fast at document level."""
    started = time.perf_counter()
    result = decode_request(raw, **limits)
    assert time.perf_counter() - started < HANG_GUARD_SECONDS
    assert isinstance(result, DocumentFailure), result
    assert result.message.startswith("XML parse error: ")
    return result.message


def nested(depth: int) -> bytes:
    inner = b"<a>" * (depth - 1) + b"</a>" * (depth - 1)
    return b'<LDM_interface version="1.3">' + inner + b"</LDM_interface>"


def test_billion_laughs_is_refused_without_expansion():
    message = rejected(BILLION_LAUGHS)
    assert message == "XML parse error: DOCTYPE and entity declarations are not allowed"
    assert "lollol" not in message


def test_external_entity_is_refused_and_nothing_is_read():
    message = rejected(EXTERNAL_ENTITY)
    assert message == "XML parse error: DOCTYPE and entity declarations are not allowed"
    assert "root:" not in message


def test_undefined_entity_reference_is_a_parse_error_not_a_lookup():
    """C64 (decode side): only the predefined entities and character references exist."""
    message = rejected(b'<LDM_interface version="1.3"><cmd><action>&xxe;</action></cmd></LDM_interface>')
    assert "Entity 'xxe' not defined" in message
    ok = decode_request(b'<LDM_interface version="1.3"><cmd><action>a&amp;b&#x2d;&#99;</action>'
                        b"</cmd></LDM_interface>")
    assert isinstance(ok, Request) and ok.commands[0].action == "a&b-c"


def test_xinclude_is_not_processed():
    raw = (b'<LDM_interface version="1.3"><cmd><action>a</action>'
           b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>'
           b"</cmd></LDM_interface>")
    result = decode_request(raw)
    assert isinstance(result, Request)
    assert result.commands[0].error.startswith("Invalid request at /LDM_interface/cmd/xi:include: ")
    assert "root:" not in result.commands[0].error


def test_ten_thousand_deep_nesting_is_refused():
    """C65 (decode side)"""
    assert rejected(nested(10_000)) == "XML parse error: element nesting exceeds the limit of 32 levels"


def test_depth_limit_is_exact():
    """C65 (decode side): 32 levels pass the parse, 33 do not."""
    within = decode_request(nested(32))  # passes the parse; the schema then refuses <a>
    assert within.message.startswith("Invalid request at /LDM_interface/a: ")
    assert rejected(nested(33)) == "XML parse error: element nesting exceeds the limit of 32 levels"
    assert rejected(nested(9), max_depth=8).endswith("the limit of 8 levels")


def test_document_over_the_size_limit_is_refused_before_parsing():
    """C65 (decode side): 1 MiB by default."""
    filler = b"<option>-f</option>" * ((1 << 20) // 19 + 1)
    raw = b'<LDM_interface version="1.3"><cmd><action>a</action>' + filler + b"</cmd></LDM_interface>"
    assert len(raw) > 1 << 20
    message = rejected(raw)
    assert message == f"XML parse error: document of {len(raw)} bytes exceeds the limit of 1048576 bytes"
    small = b'<LDM_interface version="1.3"><cmd><action>a</action></cmd></LDM_interface>'
    assert rejected(small, max_bytes=20).endswith("exceeds the limit of 20 bytes")


def test_element_count_limit():
    raw = b"<r>" + b"<a/>" * 20 + b"</r>"
    assert len(parse_element(raw, max_elements=21)) == 20
    with pytest.raises(ParseError) as caught:
        parse_element(raw, max_elements=20)
    assert caught.value.description == "document has 21 elements, over the limit of 20"


def test_large_but_legal_document_is_accepted():
    items = b"".join(
        b'<Item><rasd:OtherResourceType>var</rasd:OtherResourceType>'
        b'<gprop:GenericProperty key="name">v%d</gprop:GenericProperty></Item>' % i
        for i in range(3000))
    raw = (b'<LDM_interface version="1.3"><cmd><action>add-variable</action><data version="3.0">'
           b'<Envelope><Content ovf:id="d"><Section>' + items
           + b"</Section></Content></Envelope></data></cmd></LDM_interface>")
    result = decode_request(raw)
    assert isinstance(result, Request)
    assert len(result.commands[0].data[0].envelope.contents[0].items()) == 3000


def test_invalid_utf8_is_a_parse_error():
    assert rejected(b'<LDM_interface version="1.3"><cmd><action>\xff\xfe</action></cmd></LDM_interface>')


def test_exactly_one_top_level_element_is_required():
    with pytest.raises(ParseError, match="exactly one top-level element, found 2"):
        parse_element(b"<a/><b/>")
    with pytest.raises(ParseError, match="text outside"):
        parse_element(b"<a/>trailing")
    with pytest.raises(ParseError, match="found 0"):
        parse_element(b"   ")


def test_leading_xml_declaration_is_accepted():
    """C61 (decode side)"""
    element = parse_element(b"<?xml version='1.0' encoding='UTF-8'?>\n<LDM_interface version=\"1.3\"/>")
    assert element.tag == "LDM_interface"


def test_processing_instructions_and_comments_are_dropped_while_parsing():
    """§8.3 step 2"""
    element = parse_element(b"<a><?pi x?><!-- c --><b>x<!-- c -->y</b></a>")
    assert [child.tag for child in element] == ["b"]
    assert element[0].text == "xy"


def test_known_prefixes_resolve_and_document_declarations_take_precedence():
    """§8.3 step 1, C58"""
    element = parse_element(b"<a><ovf:b/><c xmlns:ovf='urn:mine'><ovf:d/></c></a>")
    assert element[0].tag == f"{{{OVF}}}b"
    assert element[1][0].tag == "{urn:mine}d"


@pytest.mark.parametrize("raw", [b'<LDM_interface version="1.3"><cmd>',
                                 b'<?xml version="1.0"?><LDM_interface version="1.3"/></x>',
                                 b"</x>"])
def test_descriptions_speak_of_the_callers_bytes_not_of_the_wrapper(raw):
    """§3.8: the description is the parser's, about the element as sent."""
    message = rejected(raw)
    assert "wrapper" not in message
    assert ", line 1, column " in message


def test_end_tags_hidden_in_a_comment_do_not_hide_the_depth():
    """The cheap pre-check must never undercount: 33 levels plus many '</' in a comment."""
    raw = nested(33).replace(b"<a>", b"<a><!--" + b"</" * 100 + b"-->", 1)
    assert rejected(raw) == "XML parse error: element nesting exceeds the limit of 32 levels"
