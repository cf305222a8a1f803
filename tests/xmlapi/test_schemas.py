"""The shipped XSDs (spec ldm-xml §8.1, §8.2) and the validator's (path, reason) errors (§3.7)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from agent.paths import schemas_dir
from agent.xmlapi import schema
from agent.xmlapi.normalize import normalize
from agent.xmlapi.parser import parse_element

FIXTURES = Path(__file__).parent / "fixtures" / "decode"
XS = "{http://www.w3.org/2001/XMLSchema}"

EXPECTED_NAMESPACES = {
    "combined-v3.xsd": None,
    "event-v3.xsd": None,
    "ovf-envelope.xsd": "./schemas/envelope",
    "ovf-core.xsd": "./schemas/envelope",
    "ovf-section.xsd": "./schemas/envelope",
    "cim-rasd.xsd": "./schemas/CIM_ResourceAllocationSettingData",
    "cim-vssd.xsd": "./schemas/CIM_VirtualSystemSettingData",
    "cim-common.xsd": "./schemas/common",
    "ldmd-property.xsd": "./schemas/GenericProperty",
    "ldmd-binding.xsd": "./schemas/Binding",
}

HEADER = (
    '<LDM_interface version="1.3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    ' xmlns:ovf="./schemas/envelope" xmlns:rasd="./schemas/CIM_ResourceAllocationSettingData"'
    ' xmlns:vssd="./schemas/CIM_VirtualSystemSettingData" xmlns:gprop="./schemas/GenericProperty"'
    ' xmlns:bind="./schemas/Binding">'
)


def canonical(body: str) -> etree._Element:
    """A canonical document made of HEADER + body."""
    return etree.fromstring(HEADER + body + "</LDM_interface>")


def errors(body: str) -> list[schema.SchemaError]:
    return schema.validate_request(canonical(body))


def schema_documents() -> dict[str, etree._ElementTree]:
    return {p.name: etree.parse(str(p)) for p in schemas_dir().glob("*")}


def test_schemas_directory_holds_exactly_the_ten_files_with_their_target_namespaces():
    """C177"""
    documents = schema_documents()
    assert set(documents) == set(EXPECTED_NAMESPACES)
    for name, document in documents.items():
        root = document.getroot()
        assert root.tag == XS + "schema", name
        assert root.get("targetNamespace") == EXPECTED_NAMESPACES[name], name


def test_no_schema_names_a_network_location_and_cim_rasd_imports_no_property_or_binding_schema():
    """C178"""
    for name, document in schema_documents().items():
        for ref in document.iter(XS + "import", XS + "include"):
            location = ref.get("schemaLocation")
            assert location in EXPECTED_NAMESPACES, (name, location)
            assert "://" not in location and "/" not in location
    rasd = schema_documents()["cim-rasd.xsd"]
    imported = {i.get("schemaLocation") for i in rasd.iter(XS + "import", XS + "include")}
    assert imported == {"cim-common.xsd"}


def test_entry_schemas_compile_with_lxml_without_network():
    """C178: loaded through the restricted resolver with no_network."""
    for name in (schema.REQUEST_SCHEMA, schema.EVENT_SCHEMA):
        assert isinstance(schema.load_schema(name), etree.XMLSchema)


def test_schemas_are_xsd_1_0_without_assertions():
    """§8.1: XSD 1.0 only, no xs:assert, no import of the XML namespace schema."""
    for name, document in schema_documents().items():
        assert not list(document.iter(XS + "assert", XS + "assertion")), name
        for ref in document.iter(XS + "import"):
            assert ref.get("namespace") != "http://www.w3.org/XML/1998/namespace", name


def test_loader_refuses_a_schema_outside_the_directory(tmp_path):
    """C178: the resolver serves only files of the schema directory, even existing ones."""
    inner = tmp_path / "schemas"
    inner.mkdir()
    for path in schemas_dir().glob("*.xsd"):
        shutil.copy(path, inner)
    shutil.copy(inner / "ldmd-binding.xsd", tmp_path / "ldmd-binding.xsd")
    entry = inner / "combined-v3.xsd"
    entry.write_text(entry.read_text().replace(
        'schemaLocation="ldmd-binding.xsd"', 'schemaLocation="../ldmd-binding.xsd"'))
    with pytest.raises(schema.SchemaLoadError):
        schema.load_schema("combined-v3.xsd", inner)


def test_loader_refuses_a_network_location(tmp_path):
    """C178"""
    for path in schemas_dir().glob("*.xsd"):
        shutil.copy(path, tmp_path)
    entry = tmp_path / "combined-v3.xsd"
    entry.write_text(entry.read_text().replace(
        'schemaLocation="ldmd-binding.xsd"', 'schemaLocation="http://127.0.0.1:9/ldmd-binding.xsd"'))
    with pytest.raises(schema.SchemaLoadError):
        schema.load_schema("combined-v3.xsd", tmp_path)


def test_compiled_schemas_are_loaded_once():
    assert schema.request_schema() is schema.request_schema()
    assert schema.event_schema() is schema.event_schema()


def test_status_other_than_success_or_failure_is_rejected():
    """C107, C179: a status is success or failure; anything else fails validation (every
    response the encoder builds is validated against this schema in test_encode)."""
    ok = errors("<cmd><action>a</action><response><status>failure</status></response></cmd>")
    bad = errors("<cmd><action>a</action><response><status>Success</status></response></cmd>")
    assert ok == []
    assert [e.path for e in bad] == ["/LDM_interface/cmd/response/status"]
    assert "success" in bad[0].reason and "failure" in bad[0].reason


def test_data_without_version_is_rejected():
    """C179"""
    bad = errors("<cmd><action>a</action><data/></cmd>")
    assert bad == [schema.SchemaError("/LDM_interface/cmd/data", "The attribute 'version' is required but missing.")]


@pytest.mark.parametrize("body", [
    '<cmd><data version="3.0"/><action>a</action></cmd>',
    '<cmd><action>a</action><arguments/><options>-f</options></cmd>',
    '<cmd><action>a</action><response><status>success</status></response><data version="3.0"/></cmd>',
    '<response><status>success</status></response><cmd><action>a</action></cmd>',
    '<cmd><action>a</action><data version="3.0"><response><status>success</status></response>'
    '<Envelope/></data></cmd>',
])
def test_elements_out_of_order_are_rejected(body):
    """C179"""
    assert errors(body)


def test_option_and_options_are_both_accepted_mixed_and_repeated():
    """C179, C83"""
    body = ("<cmd><action>a</action><option>-a</option><options>-b</options><option>-c</option>"
            '<arguments>x=1</arguments><data version="3.0"/></cmd>')
    assert errors(body) == []


def test_event_schema_requires_exactly_one_action_and_no_response():
    """§8.2: LDM_event has cmd 1..n with exactly one action and no response."""
    event = '<LDM_event version="1.1"><cmd><action>add-domain</action><data version="3.0"/></cmd></LDM_event>'
    assert schema.validate_event(etree.fromstring(event)) == []
    for bad in ('<LDM_event version="1.1"/>',
                '<LDM_event version="1.1"><cmd><data version="3.0"/></cmd></LDM_event>',
                '<LDM_event version="1.1"><cmd><action>x</action><response><status>success</status>'
                '</response></cmd></LDM_event>'):
        assert schema.validate_event(etree.fromstring(bad)), bad


def test_paths_use_canonical_prefixes_and_indexes_only_among_same_named_siblings():
    """C118, §3.7: /LDM_interface/cmd[2]/.../Item[3]/gprop:GenericProperty[2]"""
    item = "<Item><rasd:OtherResourceType>cpu</rasd:OtherResourceType></Item>"
    bad_item = ("<Item><rasd:OtherResourceType>cpu</rasd:OtherResourceType>"
                '<gprop:GenericProperty key="a">1</gprop:GenericProperty>'
                "<gprop:GenericProperty>2</gprop:GenericProperty></Item>")
    body = ('<cmd><action>a</action></cmd><cmd><action>b</action><data version="3.0"><Envelope>'
            '<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="d">'
            '<Section xsi:type="ovf:VirtualHardwareSection_Type">'
            + item + item + bad_item + "</Section></Content></Envelope></data></cmd>")
    assert errors(body) == [schema.SchemaError(
        "/LDM_interface/cmd[2]/data/Envelope/Content/Section/Item[3]/gprop:GenericProperty[2]",
        "The attribute 'key' is required but missing.")]


def test_offending_attribute_is_appended_to_the_path():
    """C118, §3.7: an attribute is named by appending /@name (canonical prefix if any)."""
    bad = errors('<cmd><action>a</action><data version="3.0"><Envelope>'
                 '<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="d" colour="red"/>'
                 "</Envelope></data></cmd>")
    assert bad == [schema.SchemaError("/LDM_interface/cmd/data/Envelope/Content/@colour",
                                      "The attribute 'colour' is not allowed.")]
    bad = errors('<cmd><action>a</action><data version="3.0"><Envelope>'
                 '<Content xsi:type="ovf:Bogus_Type" ovf:id="d"/></Envelope></data></cmd>')
    assert bad[0].path == "/LDM_interface/cmd/data/Envelope/Content/@xsi:type"
    assert "ovf:Bogus_Type" in bad[0].reason and "{" not in bad[0].reason


def test_unknown_item_child_reason_is_the_validators_message():
    """C118: the §3.9 example, Invalid request at .../Item/Size: This element is not expected."""
    bad = errors('<cmd><action>add-memory</action><data version="3.0"><Envelope>'
                 '<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="d">'
                 '<Section xsi:type="ovf:VirtualHardwareSection_Type"><Item>'
                 "<rasd:OtherResourceType>memory</rasd:OtherResourceType><Size>4G</Size>"
                 "</Item></Section></Content></Envelope></data></cmd>")
    assert bad == [schema.SchemaError("/LDM_interface/cmd/data/Envelope/Content/Section/Item/Size",
                                      "This element is not expected.")]


def test_item_wildcard_is_strict_for_property_and_binding_namespaces():
    """§8.1: unknown gprop/bind elements fail; bind:Binding holds exactly one Item."""
    def item(children: str) -> str:
        return ('<cmd><action>a</action><data version="3.0"><Envelope>'
                '<Section xsi:type="ovf:VirtualHardwareSection_Type"><Item>'
                + children + "</Item></Section></Envelope></data></cmd>")
    good_binding = "<bind:Binding><Item><rasd:OtherResourceType>cpu</rasd:OtherResourceType></Item></bind:Binding>"
    assert errors(item(good_binding + "<uuid>u</uuid><rasd:Caption>c</rasd:Caption>")) == []
    assert errors(item("<gprop:Other>x</gprop:Other>"))
    assert errors(item("<bind:Binding/>"))
    assert errors(item("<bind:Binding><Item/><Item/></bind:Binding>"))
    assert errors(item("<vssd:Caption>x</vssd:Caption>"))


def test_abstract_content_and_section_need_a_concrete_type():
    body = ('<cmd><action>a</action><data version="3.0"><Envelope><Content ovf:id="d"/>'
            "</Envelope></data></cmd>")
    assert errors(body)[0].path == "/LDM_interface/cmd/data/Envelope/Content"


def test_references_accepts_any_content_and_attributes():
    """C88: content inside References is ignored by the schema."""
    body = ('<cmd><action>a</action><data version="3.0"><Envelope>'
            '<References a="1" ovf:b="2">text<x:y xmlns:x="urn:x" b="2"/><z/></References>'
            "</Envelope></data></cmd>")
    assert errors(body) == []


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("resp-*.xml")), ids=lambda p: p.stem)
def test_every_response_example_of_the_spec_validates_as_written(path):
    """C181"""
    assert schema.validate_request(etree.parse(str(path)).getroot()) == []


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("event-*.xml")), ids=lambda p: p.stem)
def test_every_event_example_of_the_spec_validates_as_written(path):
    """C181"""
    assert schema.validate_event(etree.parse(str(path)).getroot()) == []


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("req-*.xml")), ids=lambda p: p.stem)
def test_every_request_example_of_the_spec_validates_after_normalisation(path):
    """C181"""
    canonical_tree = normalize(parse_element(path.read_bytes()))
    assert canonical_tree.problems == []
    assert schema.validate_request(canonical_tree.root) == []


def test_fixtures_cover_every_xml_example_of_the_spec():
    """C181: the fixture set is the spec's example set (24 documents; the bare <response>
    fragment of §3.1 is not a document)."""
    spec_examples = 24
    assert len(list(FIXTURES.glob("*.xml"))) == spec_examples


def test_xmlschema_agrees_and_gives_readable_paths(xmlschema_request):
    """§8.4: xmlschema serves diagnostics; its unknown-xsi:type exception is separate."""
    tool = xmlschema_request
    for path in sorted(FIXTURES.glob("resp-*.xml")):
        assert tool.is_valid(str(path)), path.name
    bad = (HEADER + '<cmd><action>a</action><data version="3.0"><Envelope>'
           '<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="d">'
           '<Section xsi:type="ovf:VirtualHardwareSection_Type"><Item><Size/></Item></Section>'
           "</Content></Envelope></data></cmd></LDM_interface>")
    found = list(tool.iter_errors(bad))
    assert [e.path for e in found] == ["/LDM_interface/cmd/data/Envelope/Content/Section/Item"]
    assert "Size" in found[0].reason
    unknown_type = (HEADER + '<cmd><action>a</action><data version="3.0"><Envelope>'
                    '<Content xsi:type="ovf:Bogus" ovf:id="d"/></Envelope></data></cmd></LDM_interface>')
    with pytest.raises(xmlschema.XMLSchemaException):
        list(tool.iter_errors(unknown_type))


def test_reason_never_contains_clark_names_for_known_namespaces():
    bad = errors('<cmd><action>a</action><data version="3.0"><Envelope>'
                 '<Section xsi:type="ovf:VirtualHardwareSection_Type"><Item>'
                 '<gprop:GenericProperty key="k" z="1">v</gprop:GenericProperty>'
                 "</Item></Section></Envelope></data></cmd>")
    assert bad[0].path.endswith("/Item/gprop:GenericProperty/@z")
    assert not re.search(r"\{\./schemas/", bad[0].reason)
