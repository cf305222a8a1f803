"""Encoder tests: responses and events byte-for-byte as the spec shows them, echo rules,
escaping, size limits, and schema validity of every document emitted (C105-C113, C119, C123,
C124, C52-C54)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from lxml import etree

from agent.paths import schemas_dir
from agent.xmlapi import encode, messages, model, resources
from agent.xmlapi.model import (Command, CommandResult, Content, Envelope, Item, ObjectResult,
                                Response, Section)

FIXTURES = Path(__file__).parent / "fixtures" / "encode"
_OVF = "./schemas/envelope"

ROOT_ATTRS = (' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ovf="./schemas/envelope"'
              ' xmlns:rasd="./schemas/CIM_ResourceAllocationSettingData"'
              ' xmlns:vssd="./schemas/CIM_VirtualSystemSettingData"'
              ' xmlns:gprop="./schemas/GenericProperty" xmlns:bind="./schemas/Binding">')


@functools.lru_cache(maxsize=None)
def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(schemas_dir() / name)))


def checked(data: bytes) -> bytes:
    """Assert what every emitted LDM document must satisfy (C52, C119) and return it."""
    assert not data.startswith(b"<?xml")
    assert b"<!--" not in data
    doc = etree.fromstring(data)
    for element in doc.iter():
        assert element.tail is None, f"text after {element.tag}"
        if len(element):
            assert element.text is None, f"text between children of {element.tag}"
    schema = _schema("event-v3.xsd" if doc.tag == "LDM_event" else "combined-v3.xsd")
    assert schema.validate(doc), schema.error_log
    return data


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.xml").read_bytes()


def response(version: str, *commands: CommandResult) -> bytes:
    return checked(encode.encode_response(Response(version, list(commands))))


def domain(name: str, *items: Item, section: str = model.VIRTUAL_HARDWARE) -> Envelope:
    sections = [Section(section, list(items))] if items else []
    return Envelope([Content(name, sections)])


# -- the spec's examples, byte for byte -----------------------------------------------------

def test_registration_response_matches_spec_bytes_and_stays_under_1024():
    """C54, C105, C106: the §3.9/§1.16 registration answer, exactly, in one compact document."""
    data = response("1.1", CommandResult(Command("reg-domain-events"), [ObjectResult(None)]))
    assert data == fixture("reg-domain-events")
    transcript = ('<LDM_interface version="1.1"' + ROOT_ATTRS +
                  "<cmd><action>reg-domain-events</action><data version=\"3.0\"><response>"
                  "<status>success</status></response></data><response><status>success</status>"
                  "</response></cmd><response><status>success</status></response></LDM_interface>")
    assert data == transcript.encode()
    assert len(data) < 1024


@pytest.mark.parametrize("action", ["reg-domain-events", "unreg-domain-events",
                                    "reg-resource-events", "unreg-resource-events",
                                    "reg-hardware-events", "unreg-hardware-events",
                                    "reg-all-events", "unreg-all-events"])
def test_every_registration_response_is_shorter_than_1024_bytes(action):
    """C54 (§1.12 rule 3), at the longest supported version string."""
    data = response("1.7", CommandResult(Command(action), [ObjectResult(None)]))
    assert len(data) < 1024


def test_stop_domain_echoes_options_spelling_and_canonical_content():
    """C111, C112: `options` spelling kept, Content with ovf:id and canonical xsi:type."""
    cmd = Command("stop-domain", options=["-f"], option_tag="options")
    data = response("1.3", CommandResult(cmd, [ObjectResult(domain("web1"))]))
    assert data == fixture("stop-domain-f")


def test_success_with_warning_keeps_every_level_success():
    """C108: a warning rides on a successful object response only."""
    item = Item("memory", [("rasd:AllocationUnits", "3000M")])
    obj = ObjectResult(domain("db2", item), messages=[
        messages.warning("memory size of db2 rounded up to 3072M")])
    data = response("1.3", CommandResult(Command("set-memory"), [obj]))
    assert data == fixture("set-memory-warning")


def test_object_failure_fails_command_and_overall_without_messages():
    """C109, C105: only the object response carries the error text."""
    objs = [ObjectResult(domain("web1")),
            ObjectResult(domain("web9"), ok=False, messages=[messages.unknown_domain("web9")])]
    data = response("1.3", CommandResult(Command("start-domain"), objs))
    assert data == fixture("start-domain-partial")


def test_command_level_failure_has_no_data_and_other_commands_still_answered():
    """C110: the failed cmd echoes its action and holds only its response."""
    failed = CommandResult(Command("list"), [ObjectResult(None)],
                           error=messages.unknown_action("list"))
    ok = CommandResult(Command("unreg-domain-events"), [ObjectResult(None)])
    data = response("1.3", failed, ok)
    assert data == fixture("unknown-action")


def test_schema_violation_is_reported_at_command_level():
    """C110, C118 (encoding side): the Invalid-request text in the cmd response."""
    error = messages.invalid_request("/LDM_interface/cmd/data/Envelope/Content/Section/Item/Size",
                                     "This element is not expected.")
    data = response("1.3", CommandResult(Command("add-memory"), error=error))
    assert data == fixture("schema-violation")


def test_document_level_failures_have_no_cmd():
    """C110, C106: the unsupported version is echoed; the parse error keeps the request version."""
    bad_version = Response("2.0", [CommandResult(Command("list-domain"))],
                           error=messages.unsupported_version("2.0"))
    assert checked(encode.encode_response(bad_version)) == fixture("unsupported-version")
    parse = Response("1.3", error=messages.xml_parse_error(
        "Namespace prefix foo on Extra is not defined, line 1, column 112"))
    data = checked(encode.encode_response(parse))
    assert data == fixture("parse-error")
    assert b"<cmd>" not in data


def _migrate_envelope(password: bool) -> Envelope:
    props = [("target", "sys2.example.com"), ("username", "YWRtaW4=")]
    if password:
        props.append(("password", "czNjcmV0IQ=="))
    return Envelope([Content("web1"), Content("web1", [Section(
        model.RESOURCE_ALLOCATION, [Item("ldom_info", props)])])])


def test_migrate_domain_echo_never_contains_the_password():
    """C113, C171 (encoding side): the password property is dropped even if handed in."""
    cmd = Command("migrate-domain", options=["-f"], option_tag="options")
    data = response("1.3", CommandResult(cmd, [ObjectResult(_migrate_envelope(password=True))]))
    assert data == fixture("migrate-domain-success")
    assert b"password" not in data and b"czNjcmV0IQ==" not in data


def test_dry_run_failure_lists_every_message_in_order():
    """C109: errors, then the closing summary line, in one failed object response."""
    env = Envelope([Content("db2"), Content("db2", [Section(model.RESOURCE_ALLOCATION, [
        Item("ldom_info", [("target", "sys2.example.com")])])])])
    lines = ["Unable to bind 24G memory region at real address 0x10000000",
             "Volume db2-data@svc-vds0 used by virtual disk datadisk does not exist on target "
             "machine sys2.example.com",
             "Domain Migration of LDom db2 would fail if attempted"]
    cmd = Command("migrate-domain", options=["-n"], option_tag="options")
    data = response("1.3", CommandResult(cmd, [ObjectResult(env, ok=False, messages=lines)]))
    assert data == fixture("migrate-domain-dry-run-failure")


# -- events --------------------------------------------------------------------------------

def test_domain_event_matches_spec_bytes():
    """C123, C124: the §4.3/§1.16 bind-domain event for web2, byte for byte."""
    data = checked(encode.encode_event(resources.domain_event("bind-domain", "web2")))
    assert data == fixture("event-bind-domain")
    transcript = ('<LDM_event version="1.1"' + ROOT_ATTRS +
                  '<cmd><action>bind-domain</action><data version="3.0"><Envelope><References/>'
                  '<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="web2"/></Envelope></data>'
                  "</cmd></LDM_event>")
    assert data == transcript.encode()


def test_resource_hardware_and_progress_events_match_spec_bytes():
    """C123 (and the §4.4-§4.6 layouts): one cmd, one data, no response, References first."""
    vnet = resources.resource_event("add-vnet", "web1", "network", {"vnet_name": "vnet1"})
    assert checked(encode.encode_event(vnet)) == fixture("event-add-vnet")
    sp = resources.hardware_event("add-spconfig", "two-guests")
    assert checked(encode.encode_event(sp)) == fixture("event-add-spconfig")
    progress = resources.progress_event(
        "web1", {"progress": 37, "status": "ongoing", "source": "ctl1.example.com"})
    assert checked(encode.encode_event(progress)) == fixture("event-migration-process")


@pytest.mark.parametrize("action", sorted(resources.DOMAIN_EVENTS))
def test_domain_event_with_64_character_name_is_shorter_than_1024(action):
    """C53: every domain event, with the longest legal domain name."""
    name = "d" * 64
    data = checked(encode.encode_event(resources.domain_event(action, name)))
    assert len(data) < 1024
    doc = etree.fromstring(data)
    assert doc.get("version") == "1.1"
    assert doc.find("cmd/data/Envelope/Content").get(f"{{{_OVF}}}id") == name
    assert doc.findall(".//response") == []


def test_progress_event_with_every_statistic_stays_under_2048():
    """§1.12 rule 3 SHOULD for progress events, with all event statistics filled in."""
    stats = {"progress": 100, "status": "failed", "source": "s" * 64,
             "migration-id": "3f0c1c9e-7d52-4a55-9b8e-0d7d2f6a1e11", "role": "source",
             "peer": "p" * 64, "peer-ldom": "l" * 64, "phase": "5", "outcome": "split-brain",
             "round": "30", "data-remaining": "8589934592", "expected-downtime": "300",
             "downtime": "512", "error": "e" * 200}
    data = checked(encode.encode_event(resources.progress_event("d" * 64, stats)))
    assert len(data) < 2048
    keys = [p.get("key") for p in etree.fromstring(data).iter("{./schemas/GenericProperty}*")]
    assert keys[:3] == ["progress", "status", "source"]


def test_event_version_is_1_1_whatever_the_request_version():
    """C123: the event root is fixed; nothing of a request leaks into it."""
    data = encode.encode_event(resources.domain_event("start-domain", "web1"))
    assert data.startswith(b'<LDM_event version="1.1"' + ROOT_ATTRS.encode())


# -- echo and structure rules --------------------------------------------------------------

def test_root_start_tag_is_exactly_the_canonical_one():
    """C106: version echoed, attributes in order, double quotes, single spaces."""
    data = response("1.5", CommandResult(Command("list-domain"), [ObjectResult(None)]))
    assert data.startswith(b'<LDM_interface version="1.5"' + ROOT_ATTRS.encode())


def test_option_element_spelling_and_joined_tokens_are_echoed():
    """C112: `option` spelling of the first element, tokens joined with one space; arguments
    echoed with single spaces."""
    cmd = Command("migrate-domain", options=["-n", "-f"], option_tag="option",
                  arguments="cidmap=2:6   mblockmap=0x1:0x2")
    data = response("1.3", CommandResult(cmd, error="x"))
    assert b"<option>-n -f</option><arguments>cidmap=2:6 mblockmap=0x1:0x2</arguments>" in data
    assert b"<options>" not in data


def test_command_without_action_echoes_nothing_but_its_response():
    """C110: a cmd that had no action gets no action element."""
    data = response("1.3", CommandResult(Command(None), error=messages.NO_ACTION))
    assert b"<cmd><response><status>failure</status><resp_msg>cmd has no action</resp_msg>" in data


def test_no_objects_list_answer_is_one_data_with_only_a_success_response():
    """C115 (encoding side): the empty-list form."""
    data = response("1.3", CommandResult(Command("list-domain"), [ObjectResult(None)]))
    assert b'<data version="3.0"><response><status>success</status></response></data>' in data


def test_per_domain_answer_of_dash_a_forms_has_one_data_per_domain():
    """C116 (encoding side): one data per affected domain with its Content and response."""
    objs = [ObjectResult(domain("ldg1")),
            ObjectResult(domain("ldg2"), ok=False, messages=["Domain ldg2 is active; x"])]
    cmd = Command("remove-domain", options=["-a"], option_tag="options")
    doc = etree.fromstring(response("1.3", CommandResult(cmd, objs)))
    datas = doc.findall("cmd/data")
    assert [d.find("Envelope/Content").get(f"{{{_OVF}}}id") for d in datas] == ["ldg1", "ldg2"]
    assert [d.findtext("response/status") for d in datas] == ["success", "failure"]
    assert doc.findtext("cmd/response/status") == "failure"
    assert doc.find("cmd/response/resp_msg") is None


def test_item_children_follow_the_spec_order_whatever_the_model_order():
    """§2.6 emission order (C111): type, uuid, AllocationUnits, Address, properties, bindings."""
    binding = Item("vsw", [("service_name", "svc-vsw0")])
    item = Item("network", [("vnet_name", "vnet1"), ("rasd:Address", "00:14:4f:f9:0a:12"),
                            ("rasd:Caption", "x"), ("uuid", "u"), ("id", "0")], [binding])
    env = domain("web1", item)
    data = encode.encode_envelope(env).decode()
    body = data[data.index("<Item>"):]
    order = re.findall(r"<(rasd:\w+|uuid|gprop:GenericProperty key=\"\w+\"|bind:Binding)", body)
    assert order == ["rasd:OtherResourceType", "uuid", "rasd:Address", "rasd:Caption",
                     'gprop:GenericProperty key="vnet_name"', 'gprop:GenericProperty key="id"',
                     "bind:Binding", "rasd:OtherResourceType",
                     'gprop:GenericProperty key="service_name"']


def test_empty_values_are_written_as_start_and_end_tags():
    """§6.19 example form: an unset key is `<gprop:GenericProperty key="k"></...>`."""
    data = encode.encode_envelope(domain("web1", Item("ldom_info", [("master", "")]),
                                         section=model.RESOURCE_ALLOCATION))
    assert b'<gprop:GenericProperty key="master"></gprop:GenericProperty>' in data


def test_password_is_never_written_in_events_either():
    """C113 holds for every emitted document."""
    env = domain("web1", Item("ldom_info", [("password", "czNj")]),
                 section=model.RESOURCE_ALLOCATION)
    data = encode.encode_event(model.Event(model.HARDWARE, "migration-process", env))
    assert b"password" not in data


def test_special_characters_are_escaped_and_read_back_unchanged():
    """§1.12 rule 2: text and attribute escaping keeps values intact for any reader."""
    name = 'a"b<c>&d'
    text = "x < y & z > w \"q\" 'r'\r\n\tend"
    obj = ObjectResult(domain(name, Item("var", [("name", "k"), ("value", text)])),
                       ok=False, messages=[text])
    data = checked(encode.encode_response(Response("1.3", [CommandResult(Command("x&y"), [obj])])))
    doc = etree.fromstring(data)
    assert doc.findtext("cmd/action") == "x&y"
    assert doc.find("cmd/data/Envelope/Content").get(f"{{{_OVF}}}id") == name
    assert doc.findtext("cmd/data/response/resp_msg") == text
    value = doc.find(".//{./schemas/GenericProperty}GenericProperty[@key='value']")
    assert value.text == text


_XML_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


@settings(max_examples=200, deadline=None)
@given(name=st.text(_XML_CHARS, max_size=20), value=st.text(_XML_CHARS, max_size=40))
def test_any_text_value_yields_well_formed_valid_output(name, value):
    """C119 for arbitrary values: output always parses and validates; legal XML text survives."""
    env = domain(name or "d", Item("var", [("name", "n"), ("value", value)]))
    data = checked(encode.encode_event(model.Event(model.RESOURCE, "set-variable", env)))
    doc = etree.fromstring(data)
    got = doc.find(".//{./schemas/GenericProperty}GenericProperty[@key='value']").text or ""
    legal = re.sub("[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", "\ufffd", value)
    assert got == legal


def test_lists_of_every_example_fixture_validate_against_the_schemas():
    """C119, C181: the expected bytes themselves are valid, so matching them is meaningful."""
    names = sorted(p.stem for p in FIXTURES.glob("*.xml"))
    assert len(names) == 18
    for name in names:
        checked(fixture(name))


def test_document_failure_value_is_encoded_as_the_overall_failure():
    """C110: the decoder's DocumentFailure needs no conversion by the caller."""
    failure = model.DocumentFailure("1.3", messages.NO_CMD)
    data = checked(encode.encode_response(failure))
    assert data.endswith(b"<response><status>failure</status><resp_msg>LDM_interface contains "
                         b"no cmd</resp_msg></response></LDM_interface>")


def test_response_problems_flags_misplaced_messages():
    """C108, C109: the lint that other rooms' tests can run on the Responses they build."""
    good = Response("1.3", [CommandResult(Command("x"), [
        ObjectResult(None, messages=["Warning: w", "Notice: n"]),
        ObjectResult(None, ok=False, messages=["e1", "e2", "Warning: w", "Summary line"])])])
    assert encode.response_problems(good) == []
    bad = Response("1.3", [CommandResult(Command("x"), [
        ObjectResult(None, messages=["oops"]),
        ObjectResult(None, ok=False),
        ObjectResult(None, ok=False, messages=["Warning: w", "e1"]),
        ObjectResult(None, ok=False, messages=["e1", "Notice: n", "e2", "summary"])])])
    assert encode.response_problems(bad) == [
        "cmd[1]/data[1]: success carries 'oops'",
        "cmd[1]/data[2]: failure without a leading error message",
        "cmd[1]/data[3]: failure without a leading error message",
        "cmd[1]/data[4]: error 'e2' after a warning or notice"]
