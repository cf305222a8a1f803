"""Request decoding: error levels and the decoded commands (spec ldm-xml §2, §3.7, §3.8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from agent.xmlapi import messages
from agent.xmlapi.decode import decode_request
from agent.xmlapi.model import (
    RESOURCE_ALLOCATION,
    VIRTUAL_HARDWARE,
    Content,
    Data,
    DocumentFailure,
    Request,
    Section,
)

FIXTURES = Path(__file__).parent / "fixtures" / "decode"


def request(*commands: str, version: str = "1.3", root_attrs: str = "") -> bytes:
    return (f'<LDM_interface version="{version}"{root_attrs}>' + "".join(commands)
            + "</LDM_interface>").encode()


def cmd(inner: str) -> str:
    return f"<cmd>{inner}</cmd>"


def domain_data(name: str = "web1", content_attrs: str = "", body: str = "") -> str:
    return (f'<data version="3.0"><Envelope><References/>'
            f'<Content ovf:id="{name}"{content_attrs}>{body}</Content></Envelope></data>')


def decoded(raw: bytes) -> Request:
    result = decode_request(raw)
    assert isinstance(result, Request), result
    return result


def failure(raw: bytes) -> DocumentFailure:
    result = decode_request(raw)
    assert isinstance(result, DocumentFailure), result
    return result


# -- document level ------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", " 1.5\n"])
def test_supported_versions_are_accepted_and_kept_trimmed(version):
    """C78"""
    result = decoded(request(cmd("<action>list-domain</action>"), version=version))
    assert result.version == version.strip()


@pytest.mark.parametrize("version", ["2.0", "1.8", "1", "v1.3", "1.3.0"])
def test_unsupported_version_fails_the_document_with_the_fixed_text(version):
    """C79, §3.6"""
    result = failure(request(cmd("<action>stop-domain</action>"), version=version))
    assert result.version == version
    assert result.message == (f'Unsupported LDM_interface version "{version}"; supported versions'
                              " are 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7")


@pytest.mark.parametrize("raw", [b"<LDM_interface><cmd><action>a</action></cmd></LDM_interface>",
                                 b'<LDM_interface version="  "><cmd/></LDM_interface>'])
def test_missing_version_fails_the_document_with_the_fixed_text(raw):
    """C79, §3.6"""
    result = failure(raw)
    assert result == DocumentFailure("1.0", "Missing LDM_interface version; supported versions are"
                                            " 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7")


def test_unknown_root_element_fails_the_document_naming_it():
    """C77"""
    assert failure(b'<LDM_event version="1.1"><cmd><action>a</action></cmd></LDM_event>') == \
        DocumentFailure("1.1", "Unexpected element LDM_event; expected LDM_interface")
    assert failure(b'<foo:bar xmlns:foo="urn:x"/>') == \
        DocumentFailure("1.0", "Unexpected element foo:bar; expected LDM_interface")


def test_request_without_cmd_fails_the_document():
    """C80"""
    assert failure(request()) == DocumentFailure("1.3", "LDM_interface contains no cmd")


def test_unknown_attribute_on_the_root_fails_the_document():
    """C92"""
    result = failure(request(cmd("<action>list-domain</action>"), root_attrs=' colour="red"'))
    assert result.message == messages.invalid_request(
        "/LDM_interface/@colour", "The attribute 'colour' is not allowed.")


def test_schema_error_outside_every_cmd_fails_the_document():
    """C118"""
    result = failure(request(cmd("<action>a</action>"), "<extra/>"))
    assert result.version == "1.3"
    assert result.message.startswith("Invalid request at /LDM_interface/extra: ")


def test_undeclared_unknown_prefix_is_an_xml_parse_error_with_the_version_echoed():
    """C59, §3.8: the standalone parse fails; the version is read from the start tag."""
    raw = b'<LDM_interface version="1.3">\n  <foo:Extra/></LDM_interface>'
    with pytest.raises(etree.XMLSyntaxError) as plain:  # the same bytes parsed on their own
        etree.fromstring(raw)
    assert plain.value.position == (2, 13)
    assert failure(raw) == DocumentFailure(
        "1.3", "XML parse error: Namespace prefix foo on Extra is not defined, line 2, column 13")
    one_line = b'<LDM_interface version="1.3"><foo:Extra/></LDM_interface>'
    with pytest.raises(etree.XMLSyntaxError) as plain:
        etree.fromstring(one_line)
    line, column = plain.value.position
    assert failure(one_line).message == (
        f"XML parse error: Namespace prefix foo on Extra is not defined, line {line}, column {column}")


def test_parse_error_without_readable_version_echoes_1_0():
    """§3.4, §3.8"""
    assert failure(b"<LDM_interface><a:b/></LDM_interface>").version == "1.0"
    assert failure(b"<LDM_interface version='1.2' version='1.2'/>").message.startswith(
        "XML parse error: ")
    assert failure(b"not xml at all").version == "1.0"


def test_duplicate_attribute_after_prefix_resolution_is_a_parse_error():
    """§3.7: duplicate attribute after prefix resolution is not namespace-well-formed."""
    raw = (b'<LDM_interface version="1.3" xmlns:o="./schemas/envelope"><cmd><action>a</action>'
           b'<data version="3.0"><Envelope><Content ovf:id="a" o:id="a"/></Envelope></data>'
           b"</cmd></LDM_interface>")
    assert failure(raw).message.startswith("XML parse error: ")


def test_undeclared_known_prefixes_are_accepted():
    """C58"""
    raw = FIXTURES.joinpath("req-stop-domain-minimal.xml").read_bytes()
    result = decoded(raw)
    assert result.commands[0].action == "stop-domain"
    assert result.commands[0].data[0].envelope.contents[0].name == "web1"


# -- command level -------------------------------------------------------------------------

def test_missing_and_repeated_action_fail_only_that_command():
    """C81"""
    result = decoded(request(cmd('<data version="3.0"/>'),
                             cmd("<action>a</action><action>b</action>"),
                             cmd("<action>list-domain</action>")))
    assert [c.error for c in result.commands] == [messages.NO_ACTION, messages.REPEATED_ACTION, None]
    assert result.commands[2].data == [Data()]


def test_schema_error_inside_a_cmd_fails_that_command_with_its_path():
    """C118, §3.9 example"""
    bad = cmd("<action>add-memory</action>" + domain_data(
        "db2", body="<Section><Item><rasd:OtherResourceType>memory</rasd:OtherResourceType>"
                    "<Size>4G</Size></Item></Section>"))
    result = decoded(request(cmd("<action>list-domain</action>"), bad))
    first, second = result.commands
    assert first.error is None
    assert second.error == ("Invalid request at /LDM_interface/cmd[2]/data/Envelope/Content/Section"
                            "/Item/Size: This element is not expected.")
    assert second.action == "add-memory"
    assert second.data == []


@pytest.mark.parametrize("version", ["3.1", "2.0", ""])
def test_data_version_other_than_3_0_fails_the_command(version):
    """C86"""
    result = decoded(request(cmd(f'<action>list-domain</action><data version="{version}"/>'),
                             cmd("<action>list-domain</action>")))
    assert result.commands[0].error == messages.unsupported_data_version(version)
    assert result.commands[1].error is None


def test_data_without_version_fails_the_command():
    """C86"""
    result = decoded(request(cmd("<action>list-domain</action><data/>")))
    assert result.commands[0].error == messages.invalid_request(
        "/LDM_interface/cmd/data", "The attribute 'version' is required but missing.")


def test_data_version_is_trimmed():
    """§2.3"""
    assert decoded(request(cmd('<action>a</action><data version=" 3.0 "/>'))).commands[0].error is None


def test_conflicting_ids_fail_the_command_and_equal_ids_are_accepted():
    """C89"""
    result = decoded(request(
        cmd("<action>start-domain</action>" + domain_data("web1", ' id="web2"')),
        cmd("<action>start-domain</action>" + domain_data("web1", ' id="web1"')),
        cmd('<action>start-domain</action><data version="3.0"><Envelope><Content id="web3"/>'
            "</Envelope></data>")))
    assert result.commands[0].error == messages.invalid_request(
        "/LDM_interface/cmd[1]/data/Envelope/Content/@id", 'id "web2" differs from ovf:id "web1"')
    assert result.commands[1].data[0].envelope.contents[0].name == "web1"
    assert result.commands[2].data[0].envelope.contents[0].name == "web3"


def test_unknown_xsi_type_fails_the_command_and_case_variants_are_accepted():
    """C90"""
    result = decoded(request(
        cmd("<action>a</action>" + domain_data("d", ' xsi:type="ovf:Disk_Type"')),
        cmd("<action>a</action>" + domain_data(
            "d", ' xsi:type="virtualsystem_type"',
            '<Section xsi:type="ovf:resourceallocationsection_TYPE"/>'))))
    assert result.commands[0].error.startswith(
        "Invalid request at /LDM_interface/cmd[1]/data/Envelope/Content/@xsi:type: ")
    assert result.commands[1].data[0].envelope.contents[0].sections == [Section(RESOURCE_ALLOCATION)]


def test_unknown_attribute_inside_a_cmd_fails_that_command():
    """C92"""
    result = decoded(request(cmd('<action>a</action><data version="3.0" mode="x"/>'),
                             cmd("<action>b</action>")))
    assert result.commands[0].error == messages.invalid_request(
        "/LDM_interface/cmd[1]/data/@mode", "The attribute 'mode' is not allowed.")
    assert result.commands[1].error is None


# -- decoded content -----------------------------------------------------------------------

def test_options_are_split_on_whitespace_across_mixed_repeated_elements():
    """C83: both spellings, repeated and mixed, concatenated in order; first spelling kept."""
    command = decoded(request(cmd(
        "<action> remove-spconfig </action><options> -r\n\tcfg1 </options>"
        "<option>-f</option><options></options><option>x  y</option>"))).commands[0]
    assert command.action == "remove-spconfig"
    assert command.options == ["-r", "cfg1", "-f", "x", "y"]
    assert command.option_tag == "options"
    assert decoded(request(cmd("<action>a</action><option>-n</option>"))).commands[0].option_tag == "option"


def test_combined_flags_are_passed_on_as_one_token():
    """C84 is the action layer's; the decoder keeps -nf whole so it can name it."""
    assert decoded(request(cmd("<action>a</action><options>-nf</options>"))).commands[0].options == ["-nf"]


def test_arguments_text_is_kept_and_absent_arguments_are_none():
    """§2.5"""
    raw = FIXTURES.joinpath("req-migrate-domain-cert.xml").read_bytes()
    command = decoded(raw).commands[0]
    assert command.arguments == "cidmap=2:6 mblockmap=0x410000000:0x810000000"
    assert command.options == ["-c"]
    assert decoded(request(cmd("<action>a</action><arguments> </arguments>"))).commands[0].arguments == ""
    assert decoded(request(cmd("<action>a</action>"))).commands[0].arguments is None


@pytest.mark.parametrize("data", [
    "", '<data version="3.0"/>', '<data version="3.0"> </data>', '<data version="3.0"></data>',
    '<data version="3.0"><!-- none --></data>', '<data version="3.0"><Envelope/></data>',
    '<data version="3.0"><Envelope><References>x<y/></References></Envelope></data>',
])
def test_every_form_of_empty_data_decodes_to_one_empty_data(data):
    """C87, C88, §2.2"""
    command = decoded(request(cmd("<action>list-domain</action>" + data))).commands[0]
    assert command.error is None
    assert command.data == [Data()]


def test_minimal_client_registration_is_accepted():
    """R9 of §1.15 (C73 decode side): version 1.1, runs of spaces, whitespace-only data."""
    raw = (b'<LDM_interface version="1.1">   <cmd>      <action>reg-domain-events</action>'
           b'      <data version="3.0"> </data>   </cmd></LDM_interface>')
    assert decoded(raw) == Request("1.1", [
        decoded(request(cmd("<action>reg-domain-events</action>"), version="1.1")).commands[0]])
    assert decoded(raw).commands[0].data == [Data()]


def test_envelope_without_references_is_accepted():
    """C88"""
    raw = request(cmd('<action>stop-domain</action><data version="3.0"><Envelope>'
                      '<Content ovf:id="web1"/></Envelope></data>'))
    assert decoded(raw).commands[0].data[0].envelope.contents == [Content("web1")]


def test_items_decode_with_type_properties_in_order_and_bindings():
    """C93, C96 (bindings kept apart), §2.6, model.py key spelling."""
    body = ('<Section xsi:type="ovf:VirtualHardwareSection_Type"><Item>'
            '<gprop:GenericProperty key="vnet_name">vnet1</gprop:GenericProperty>'
            "<rasd:Address>00:14:4F:F9:3A:01</rasd:Address>"
            "<rasd:OtherResourceType> network </rasd:OtherResourceType>"
            '<bind:Binding><Item><rasd:OtherResourceType>network</rasd:OtherResourceType>'
            '<gprop:GenericProperty key="peer">p</gprop:GenericProperty></Item></bind:Binding>'
            "<uuid>u-1</uuid><rasd:Caption/>"
            "</Item></Section>")
    command = decoded(request(cmd("<action>add-vnet</action>" + domain_data("web1", body=body)))).commands[0]
    item = command.data[0].envelope.contents[0].sections[0].items[0]
    assert item.rtype == "network"
    assert item.props == [("vnet_name", "vnet1"), ("rasd:Address", "00:14:4F:F9:3A:01"),
                          ("uuid", "u-1"), ("rasd:Caption", "")]
    assert [(b.rtype, b.props) for b in item.bindings] == [("network", [("peer", "p")])]


def test_item_without_exactly_one_resource_type_is_left_for_the_action_layer():
    """C94 (decode side): rtype "" and the types found stay visible in props."""
    body = ("<Section><Item><rasd:AllocationUnits>4</rasd:AllocationUnits></Item>"
            "<Item><rasd:OtherResourceType>cpu</rasd:OtherResourceType>"
            "<rasd:OtherResourceType>mau</rasd:OtherResourceType></Item></Section>")
    command = decoded(request(cmd("<action>add-vcpu</action>" + domain_data("d", body=body)))).commands[0]
    missing, repeated = command.data[0].envelope.contents[0].sections[0].items
    assert (missing.rtype, missing.keys()) == ("", ["rasd:AllocationUnits"])
    assert repeated.rtype == ""
    assert repeated.props == [("rasd:OtherResourceType", "cpu"), ("rasd:OtherResourceType", "mau")]


def test_repeated_keys_are_kept_for_the_action_layer_to_reject():
    """C95 (decode side)"""
    body = ("<Section><Item><rasd:OtherResourceType>var</rasd:OtherResourceType>"
            '<gprop:GenericProperty key="name">a</gprop:GenericProperty>'
            '<gprop:GenericProperty key="name">b</gprop:GenericProperty></Item></Section>')
    command = decoded(request(cmd("<action>add-variable</action>" + domain_data("d", body=body)))).commands[0]
    assert command.data[0].envelope.contents[0].items()[0].keys() == ["name", "name"]


def test_envelope_parts_keep_document_order_and_section_types():
    """§2.1: Content and Section in any mix under Envelope; migrate-domain's two Contents."""
    command = decoded(FIXTURES.joinpath("req-migrate-domain.xml").read_bytes()).commands[0]
    source, target = command.data[0].envelope.parts
    assert (source.name, source.sections) == ("web1", [])
    assert target.name == "web1" and target.sections[0].type == RESOURCE_ALLOCATION
    assert target.sections[0].items[0].get("password") == "czNjcmV0IQ=="
    mixed = decoded(request(cmd(
        '<action>a</action><data version="3.0"><Envelope><Section/><Content ovf:id="x"/>'
        "<Section/></Envelope></data>"))).commands[0]
    kinds = [type(p).__name__ for p in mixed.data[0].envelope.parts]
    assert kinds == ["Section", "Content", "Section"]
    assert mixed.data[0].envelope.sections[0].type == VIRTUAL_HARDWARE


def test_two_command_example_decodes_both_commands_in_order():
    """§2.9; C104 (decode side): commands and data keep their order."""
    result = decoded(FIXTURES.joinpath("req-two-commands-vdisk.xml").read_bytes())
    assert [c.action for c in result.commands] == ["add-vdiskserverdevice", "add-vdisk"]
    volume = result.commands[0].data[0].envelope.sections[0].items[0]
    assert volume.rtype == "vds_volume"
    assert volume.keys() == ["vol_name", "service_name", "block_dev", "vol_opts"]


def test_several_data_elements_each_decode():
    result = decoded(request(cmd("<action>start-domain</action>" + domain_data("a")
                                 + domain_data("b") + '<data version="3.0"/>')))
    data = result.commands[0].data
    assert [d.envelope.contents[0].name if d.envelope else None for d in data] == ["a", "b", None]


def test_response_elements_sent_by_a_client_are_ignored():
    """§2.2: response in requests is ignored."""
    raw = request(cmd('<action>a</action><data version="3.0"><response><status>success</status>'
                      "</response></data><response><status>failure</status></response>"),
                  "<response><status>success</status></response>")
    assert decoded(raw).commands[0].data == [Data()]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("req-*.xml")), ids=lambda p: p.stem)
def test_every_request_example_of_the_spec_decodes_without_error(path):
    """C181 (decode side)"""
    result = decoded(path.read_bytes())
    assert all(c.error is None for c in result.commands)
