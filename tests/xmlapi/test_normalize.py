"""Normalisation of incoming documents to canonical form (spec ldm-xml §8.3)."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from agent.xmlapi import schema
from agent.xmlapi.normalize import canonical_bytes, normalize
from agent.xmlapi.parser import parse_element

CANONICAL_DECLARATIONS = (
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ovf="./schemas/envelope"'
    ' xmlns:rasd="./schemas/CIM_ResourceAllocationSettingData"'
    ' xmlns:vssd="./schemas/CIM_VirtualSystemSettingData"'
    ' xmlns:gprop="./schemas/GenericProperty" xmlns:bind="./schemas/Binding"'
)
ALIAS_DECLARATIONS = (
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ovf="/var/opt/SUNWldom/envelope"'
    ' xmlns:rasd="/var/opt/SUNWldom/CIM_ResourceAllocationSettingData"'
    ' xmlns:vssd="/var/opt/SUNWldom/CIM_VirtualSystemSettingData"'
    ' xmlns:gprop="/var/opt/SUNWldom/GenericProperty" xmlns:bind="/var/opt/SUNWldom/Binding"'
)

# The add-vcpu request of §2.9, in the canonical form this module must produce.
EXPECTED = (
    "<LDM_interface" + CANONICAL_DECLARATIONS + ' version="1.3"><cmd><action>add-vcpu</action>'
    '<data version="3.0"><Envelope><References/>'
    '<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="db2">'
    '<Section xsi:type="ovf:VirtualHardwareSection_Type"><Item>'
    "<rasd:OtherResourceType>cpu</rasd:OtherResourceType>"
    "<rasd:AllocationUnits>16</rasd:AllocationUnits>"
    '<gprop:GenericProperty key="wcore">2</gprop:GenericProperty>'
    "</Item></Section></Content></Envelope></data></cmd></LDM_interface>"
).encode()


def add_vcpu(declarations: str = CANONICAL_DECLARATIONS, *, p: dict[str, str] | None = None,
             content_attrs: str = 'xsi:type="ovf:VirtualSystem_Type" ovf:id="db2"',
             section_type: str = "ovf:VirtualHardwareSection_Type", sep: str = "") -> bytes:
    """The §2.9 add-vcpu request with the given namespace style (prefixes in ``p``)."""
    p = {"ovf": "ovf", "rasd": "rasd", "gprop": "gprop", "xsi": "xsi", **(p or {})}
    s = sep
    return (
        f'<LDM_interface version="1.3"{declarations}>{s}<cmd>{s}<action>add-vcpu</action>{s}'
        f'<data version="3.0">{s}<Envelope>{s}<References/>{s}'
        f"<Content {content_attrs}>{s}"
        f'<Section {p["xsi"]}:type="{section_type}">{s}<Item>{s}'
        f'<{p["rasd"]}:OtherResourceType>cpu</{p["rasd"]}:OtherResourceType>{s}'
        f'<{p["rasd"]}:AllocationUnits>16</{p["rasd"]}:AllocationUnits>{s}'
        f'<{p["gprop"]}:GenericProperty key="wcore">2</{p["gprop"]}:GenericProperty>{s}'
        f"</Item>{s}</Section>{s}</Content>{s}</Envelope>{s}</data>{s}</cmd>{s}</LDM_interface>"
    ).encode()


OTHER_PREFIXES = (
    ' xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns:o="./schemas/envelope"'
    ' xmlns:r="./schemas/CIM_ResourceAllocationSettingData" xmlns:g="/var/opt/SUNWldom/GenericProperty"'
)

STYLES = {
    "canonical URIs": add_vcpu(),
    "alias URIs": add_vcpu(ALIAS_DECLARATIONS),
    "no declarations": add_vcpu(""),
    "other prefixes": add_vcpu(OTHER_PREFIXES, p={"rasd": "r", "gprop": "g", "xsi": "i"},
                               content_attrs='i:type="o:VirtualSystem_Type" o:id="db2"'),
    "plain id": add_vcpu(content_attrs='xsi:type="ovf:VirtualSystem_Type" id="db2"'),
    "both ids equal": add_vcpu(content_attrs='ovf:id="db2" xsi:type="ovf:VirtualSystem_Type" id="db2"'),
    "_type spelling": add_vcpu(content_attrs='xsi:type="ovf:virtualsystem_type" ovf:id="db2"',
                               section_type="VIRTUALHARDWARESECTION_TYPE"),
    "types absent": add_vcpu(content_attrs='ovf:id="db2"', section_type="VirtualHardwareSection_Type"),
    "extra whitespace": add_vcpu(sep="\n   \t "),
    "jabber:client default": add_vcpu(' xmlns="jabber:client"'),
    "empty default": add_vcpu(' xmlns=""'),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_namespace_styles_normalise_byte_identically(style):
    """C180, C91: one request in many styles has one canonical serialisation."""
    assert canonical_bytes(STYLES[style]) == EXPECTED


def test_whitespace_inside_values_and_comments_do_not_change_the_canonical_form():
    """C180, C62: insignificant whitespace and comments are dropped; values are trimmed."""
    raw = add_vcpu().replace(b">16<", b"> \n16\t <").replace(b"<cmd>", b"<cmd><!-- note -->")
    raw = raw.replace(b'version="1.3"', b'version=" 1.3 "')
    assert canonical_bytes(raw) == EXPECTED


def test_envelope_level_elements_in_the_ovf_namespace_are_unqualified():
    """§8.3 step 3: Envelope, References, Content, Section, Item may come in the ovf namespace."""
    raw = (b'<LDM_interface version="1.3"><cmd><action>add-vcpu</action><data version="3.0">'
           b'<ovf:Envelope><ovf:References/><ovf:Content ovf:id="db2"><ovf:Section><ovf:Item>'
           b"<rasd:OtherResourceType>cpu</rasd:OtherResourceType>"
           b"<rasd:AllocationUnits>16</rasd:AllocationUnits>"
           b'<gprop:GenericProperty key="wcore">2</gprop:GenericProperty>'
           b"</ovf:Item></ovf:Section></ovf:Content></ovf:Envelope></data></cmd></LDM_interface>")
    assert canonical_bytes(raw) == EXPECTED


def test_prefixed_root_in_jabber_client_is_the_same_request():
    """C60: an LDM_interface with a declared prefix is the same request."""
    raw = add_vcpu(' xmlns:c="jabber:client"').replace(b"<LDM_interface", b"<c:LDM_interface")
    raw = raw.replace(b"</LDM_interface>", b"</c:LDM_interface>")
    assert canonical_bytes(raw) == EXPECTED


def test_root_carries_exactly_the_six_canonical_declarations_in_order():
    """§8.3 step 10, §0.4"""
    for raw in STYLES.values():
        start_tag = canonical_bytes(raw).split(b">", 1)[0].decode()
        declarations = re.findall(r' xmlns(?::\w+)?="[^"]*"', start_tag)
        assert "".join(declarations) == CANONICAL_DECLARATIONS


def test_descendant_redeclaring_a_canonical_prefix_with_an_alias_ends_canonical():
    """§8.3 steps 4 and 10: no declaration survives below the root for a known namespace."""
    raw = (b'<LDM_interface version="1.3"><cmd><action>a</action><data version="3.0"><Envelope>'
           b'<Content xmlns:ovf="/var/opt/SUNWldom/envelope" ovf:id="d"/>'
           b'<Section xmlns:x="./schemas/GenericProperty"><Item><x:GenericProperty key="k">v'
           b"</x:GenericProperty></Item></Section></Envelope></data></cmd></LDM_interface>")
    out = canonical_bytes(raw).decode()
    assert out.count("xmlns") == 6
    assert '<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="d"/>' in out
    assert '<gprop:GenericProperty key="k">v</gprop:GenericProperty>' in out


def test_schema_location_attributes_are_removed():
    """§8.3 step 6, §2.3"""
    raw = add_vcpu().replace(
        b'version="1.3"',
        b'version="1.3" xsi:schemaLocation="urn:a http://example.invalid/a.xsd"'
        b' xsi:noNamespaceSchemaLocation="http://example.invalid/b.xsd"')
    assert canonical_bytes(raw) == EXPECTED


def test_xsi_type_prefix_is_ignored_and_unknown_types_are_kept():
    """§8.3 step 7, C90"""
    raw = add_vcpu(content_attrs='xsi:type="whatever:VirtualSystem_TYPE" ovf:id="db2"')
    assert canonical_bytes(raw) == EXPECTED
    unknown = canonical_bytes(add_vcpu(content_attrs='xsi:type="ovf:Disk_Type" ovf:id="db2"'))
    assert b'<Content xsi:type="ovf:Disk_Type" ovf:id="db2">' in unknown


def test_values_are_trimmed_but_inner_whitespace_and_newlines_are_kept():
    """C98, §8.3 step 8"""
    raw = (b'<LDM_interface version="1.3"><cmd><action>\n set-variable \n</action>'
           b'<options> -a </options><data version="3.0"><Envelope><Content ovf:id="d"><Section>'
           b"<Item><rasd:OtherResourceType> var </rasd:OtherResourceType>"
           b'<gprop:GenericProperty key=" name "> line one\n  line two\t</gprop:GenericProperty>'
           b"<uuid> 0B8E5A54-3F7D-4C61-B2D9-6A1C0E7F4B23 </uuid>"
           b"</Item></Section></Content></Envelope></data></cmd></LDM_interface>")
    root = normalize(parse_element(raw)).root
    assert root.findtext("cmd/action") == "set-variable"
    assert root.findtext("cmd/options") == "-a"
    item = root.find("cmd/data/Envelope/Content/Section/Item")
    assert [(child.get("key"), child.text) for child in item] == [
        (None, "var"), (" name ", "line one\n  line two"), (None, "0B8E5A54-3F7D-4C61-B2D9-6A1C0E7F4B23")]


def test_whitespace_only_and_comment_only_data_become_empty():
    """C87, §8.3 steps 8 and 9; R9's whitespace-only data."""
    for inner in (b" ", b"\n\t ", b"<!-- nothing -->", b" <!-- a --> <!-- b --> ", b""):
        raw = (b'<LDM_interface version="1.1"><cmd><action>reg-domain-events</action>'
               b'<data version="3.0">' + inner + b"</data></cmd></LDM_interface>")
        assert canonical_bytes(raw).endswith(
            b'<cmd><action>reg-domain-events</action><data version="3.0"/></cmd></LDM_interface>')


def test_empty_values_have_one_canonical_spelling():
    """§8.3 step 8: an empty value is empty whichever way it is written."""
    forms = [b'<gprop:GenericProperty key="master"></gprop:GenericProperty>',
             b'<gprop:GenericProperty key="master"/>',
             b'<gprop:GenericProperty key="master">  </gprop:GenericProperty>']
    outputs = {canonical_bytes(b'<LDM_interface version="1.3"><cmd><action>a</action>'
                               b'<data version="3.0"><Envelope><Content ovf:id="d"><Section><Item>'
                               + form + b"</Item></Section></Content></Envelope></data></cmd>"
                               b"</LDM_interface>") for form in forms}
    assert len(outputs) == 1


def test_conflicting_id_and_ovf_id_is_a_problem_at_the_id_attribute():
    """C89, §8.3 step 5"""
    raw = add_vcpu(content_attrs='xsi:type="ovf:VirtualSystem_Type" ovf:id="db2" id="db3"')
    result = normalize(parse_element(raw))
    assert result.problems == [(
        "/LDM_interface/cmd/data/Envelope/Content/@id", 'id "db3" differs from ovf:id "db2"')]
    assert result.root.find("cmd/data/Envelope/Content").get("id") is None


def test_structural_element_in_a_foreign_namespace_fails_validation_with_its_path():
    """C182"""
    raw = (b'<LDM_interface version="1.3"><cmd><action>a</action></cmd>'
           b'<x:cmd xmlns:x="urn:other"><x:action>b</x:action></x:cmd></LDM_interface>')
    result = normalize(parse_element(raw))
    errors = schema.validate_request(result.root)
    assert [e.path for e in errors] == ["/LDM_interface/x:cmd"]


def test_foreign_namespace_inside_a_command_keeps_its_prefix_and_fails_there():
    """C182, §2.4: a known prefix redeclared with a foreign URI keeps that URI."""
    raw = (b'<LDM_interface version="1.3"><cmd><action>a</action><data version="3.0"><Envelope>'
           b'<Content ovf:id="d"><Section><Item xmlns:rasd="urn:not-cim">'
           b"<rasd:OtherResourceType>cpu</rasd:OtherResourceType></Item></Section></Content>"
           b"</Envelope></data></cmd></LDM_interface>")
    result = normalize(parse_element(raw))
    errors = schema.validate_request(result.root)
    assert errors[0].path == "/LDM_interface/cmd/data/Envelope/Content/Section/Item/rasd:OtherResourceType"
    assert b'xmlns:rasd="urn:not-cim"' in etree.tostring(result.root)


def test_unknown_element_in_the_stream_default_namespace_has_an_unprefixed_path():
    raw = add_vcpu(' xmlns="jabber:client"').replace(b"<Item>", b"<Item><Size>4</Size>")
    errors = schema.validate_request(normalize(parse_element(raw)).root)
    assert [e.path for e in errors] == ["/LDM_interface/cmd/data/Envelope/Content/Section/Item/Size"]


def test_normalize_only_takes_elements_from_the_parser():
    with pytest.raises(ValueError):
        normalize(etree.fromstring(b'<LDM_interface version="1.3"/>'))
