"""Echo of decoded requests: what the decoder produces, the encoder writes back in canonical
form (C111, C112, C113, C119), checked with the real decoder and the shipped samples."""

from __future__ import annotations

from pathlib import Path


from agent.xmlapi import encode, model, resources
from agent.xmlapi.decode import decode_request
from agent.xmlapi.model import CommandResult, ObjectResult, Response
from tests.xmlapi.test_encode import checked, fixture

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "requests"


def echo(raw: bytes, **object_kw) -> bytes:
    """Answer every data of every command with its own Envelope echoed (the non-list form)."""
    request = decode_request(raw)
    assert isinstance(request, model.Request), request
    results = []
    for command in request.commands:
        if command.error is not None:
            results.append(CommandResult(command, error=command.error))
            continue
        data = command.data or [model.Data()]
        results.append(CommandResult(command, [ObjectResult(d.envelope, **object_kw)
                                               for d in data]))
    return checked(encode.encode_response(Response(request.version, results)))


MINIMAL_STOP = b"""<LDM_interface version=" 1.3 ">
  <cmd>
    <action> stop-domain </action>
    <options>-f</options>
    <data version="3.0">
      <Envelope>
        <Content xsi:type="VirtualSystem_type" id="web1"/>
      </Envelope>
    </data>
  </cmd>
</LDM_interface>"""


def test_minimal_request_is_echoed_in_canonical_form():
    """C111: undeclared prefixes, plain `id`, odd xsi:type case, no References and padding
    whitespace all come back as the canonical §3.9 bytes."""
    assert echo(MINIMAL_STOP) == fixture("stop-domain-f")


MIGRATE = b"""<LDM_interface version="1.3" xmlns:r="/var/opt/SUNWldom/CIM_ResourceAllocationSettingData" xmlns:g="/var/opt/SUNWldom/GenericProperty">
  <cmd><action>migrate-domain</action><options>-f</options>
    <data version="3.0"><Envelope><References><junk/></References>
      <Content ovf:id="web1"/>
      <Content ovf:id="web1"><Section xsi:type="ovf:ResourceAllocationSection_Type"><Item>
        <g:GenericProperty key="password">czNjcmV0IQ==</g:GenericProperty>
        <g:GenericProperty key="target"> sys2.example.com </g:GenericProperty>
        <r:OtherResourceType>ldom_info</r:OtherResourceType>
        <g:GenericProperty key="username">YWRtaW4=</g:GenericProperty>
      </Item></Section></Content></Envelope></data></cmd></LDM_interface>"""


def test_migrate_domain_echo_drops_password_and_reorders_item_children():
    """C113, C111: alias URIs and other prefixes, the type element last and the password first
    on input; the echo is the §7.2 success example exactly."""
    assert echo(MIGRATE) == fixture("migrate-domain-success")


def test_mixed_option_elements_echo_with_first_spelling():
    """C112: `option` then `options`, tokens joined with single spaces."""
    raw = (b'<LDM_interface version="1.3"><cmd><action>list-devices</action>'
           b"<option> -a </option><options>\n-B</options><data version=\"3.0\"/></cmd>"
           b"</LDM_interface>")
    data = echo(raw)
    assert b"<action>list-devices</action><option>-a -B</option><data" in data


def test_item_without_or_with_two_types_is_echoed_as_received():
    """The decoder's rtype "" form: no invented type element, repeated types kept, and the
    Item rules name the fault."""
    raw = (b'<LDM_interface version="1.3"><cmd><action>add-vcpu</action><data version="3.0">'
           b'<Envelope><Content ovf:id="d"><Section><Item>'
           b"<rasd:AllocationUnits>2</rasd:AllocationUnits></Item><Item>"
           b"<rasd:OtherResourceType>cpu</rasd:OtherResourceType>"
           b"<rasd:AllocationUnits>2</rasd:AllocationUnits>"
           b"<rasd:OtherResourceType>mau</rasd:OtherResourceType></Item>"
           b"</Section></Content></Envelope></data></cmd></LDM_interface>")
    data = echo(raw, ok=False, messages=["x"])
    assert (b"<Item><rasd:AllocationUnits>2</rasd:AllocationUnits></Item><Item>"
            b"<rasd:OtherResourceType>cpu</rasd:OtherResourceType>"
            b"<rasd:OtherResourceType>mau</rasd:OtherResourceType>"
            b"<rasd:AllocationUnits>2</rasd:AllocationUnits></Item>") in data
    request = decode_request(raw)
    none, two = request.commands[0].data[0].envelope.contents[0].items()
    assert resources.check_item("add-vcpu", none, setting=False) == [
        "Item has no rasd:OtherResourceType"]
    assert resources.check_item("add-vcpu", two, setting=False) == [
        "Item has more than one rasd:OtherResourceType"]


def test_every_sample_request_echoes_to_a_valid_response_without_password():
    """C119, C113: the echo of each shipped request (one per action) validates."""
    paths = sorted(SAMPLES.glob("*.xml"))
    assert len(paths) >= 63
    for path in paths:
        data = echo(path.read_bytes())
        assert b'key="password"' not in data, path.name


def test_sample_items_pass_the_item_rules_of_their_action():
    """The shipped requests are valid by the resource table (no false refusals)."""
    assert SAMPLES.is_dir(), f"{SAMPLES} is missing"
    for path in sorted(SAMPLES.glob("*.xml")):
        request = decode_request(path.read_bytes())
        for command in request.commands:
            setting = command.action.startswith("set-")
            for data in command.data:
                if data.envelope is None:
                    continue
                items = [i for c in data.envelope.contents for i in c.items()]
                items += [i for s in data.envelope.sections for i in s.items]
                for item in items:
                    assert item.rtype in resources.ACTION_RESOURCES[command.action], path.name
                    errors = resources.check_item(command.action, item, setting=setting)
                    assert errors == [], (path.name, errors)
