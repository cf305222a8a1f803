"""The XML migrate-domain request (ldm-xml §7.1, migration.md §5.6): decoded from real
documents, checked at command level by the dispatcher and at object level here."""

import base64
from pathlib import Path

import pytest

from agent.actions.dispatch import CommandError, parse_options
from agent.actions.table import ACTIONS
from agent.migration.request import parse_migrate_data, parse_operands, parse_target
from agent.xmlapi.decode import decode_request

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "requests"
NS = ('xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ovf="./schemas/envelope" '
      'xmlns:rasd="./schemas/CIM_ResourceAllocationSettingData" '
      'xmlns:gprop="./schemas/GenericProperty"')


def b64(text):
    return base64.b64encode(text.encode()).decode()


def document(props, *, options="", arguments="", source="web1", target="web1",
             first_section=False, contents=2):
    item = "".join(f'<gprop:GenericProperty key="{k}">{v}</gprop:GenericProperty>'
                   for k, v in props)
    section = ('<Section xsi:type="ovf:ResourceAllocationSection_Type"><Item>'
               f'<rasd:OtherResourceType>ldom_info</rasd:OtherResourceType>{item}</Item></Section>')
    first = f'<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="{source}">'
    first += (section if first_section else "") + "</Content>"
    second = f'<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="{target}">{section}</Content>'
    body = [first, second, second][:contents]
    opts = f"<options>{options}</options>" if options else ""
    args = f"<arguments>{arguments}</arguments>" if arguments else ""
    return (f'<LDM_interface version="1.3" {NS}><cmd><action>migrate-domain</action>{opts}{args}'
            f'<data version="3.0"><Envelope><References/>{"".join(body)}</Envelope></data>'
            f'</cmd></LDM_interface>').encode()


def parse(raw, session_user="operator"):
    """Decode, run the dispatcher's option checks, then the object-level parse."""
    decoded = decode_request(raw)
    command = decoded.commands[0]
    assert command.error is None, command.error
    opts = parse_options(ACTIONS["migrate-domain"], command)
    return parse_migrate_data(command.data[0], set(opts.flags), opts.arguments, session_user)


CREDS = [("target", "sys2.example.com"), ("username", "YWRtaW4="), ("password", "czNjcmV0IQ==")]


def test_the_spec_example_gives_host_user_password_and_force():
    # §7.1 first example, C166
    req = parse(document(CREDS, options="-f"))
    assert (req.source, req.target_host, req.target_port, req.target_name) == (
        "web1", "sys2.example.com", None, "web1")
    assert (req.user, req.password) == ("admin", "s3cret!")
    assert (req.force, req.dry_run, req.cert_mode) == (True, False, False)


def test_the_shipped_sample_request_parses():
    req = parse((SAMPLES / "migrate-domain.xml").read_bytes())
    assert (req.source, req.target_host, req.user, req.password) == (
        "ldg1", "127.0.0.1", "root", "ldmx-demo")


def test_certificate_mode_with_rename_port_and_maps():
    # §7.1 second example
    raw = document([("target", "192.0.2.20:6482")], options="-c", target="web1-new",
                   arguments="cidmap=2:6 mblockmap=0x410000000:0x810000000")
    req = parse(raw)
    assert (req.target_host, req.target_port, req.target_name) == ("192.0.2.20", 6482, "web1-new")
    assert (req.user, req.password, req.cert_mode) == (None, None, True)
    assert req.cidmap == ((2, 6),) and req.mblockmap == ((0x410000000, 0x810000000),)


def test_without_username_the_session_user_is_used():
    # C167
    req = parse(document([("target", "h"), ("password", b64("pw"))]), session_user="alice")
    assert req.user == "alice"


@pytest.mark.parametrize("raw, message", [
    (document(CREDS, contents=1),
     "migrate-domain takes exactly two Contents: the source domain, then the target"),
    (document(CREDS, contents=3),
     "migrate-domain takes exactly two Contents: the source domain, then the target"),
    (document(CREDS, first_section=True),
     "The first Content of migrate-domain names the source domain and has no Section"),
    (document(CREDS[1:]), "migrate-domain requires property target of resource ldom_info"),
])
def test_layout_errors_fail_at_object_level(raw, message):
    # C165
    with pytest.raises(ValueError, match=f"^{message}$"):
        parse(raw)


def test_invalid_base64_fails_without_echoing_the_secret():
    # C166, M40
    with pytest.raises(ValueError) as info:
        parse(document([("target", "h"), ("password", "not*base64")]))
    assert "not*base64" not in str(info.value)
    assert "password" in str(info.value)


@pytest.mark.parametrize("props", [CREDS, [("target", "h"), ("username", b64("root"))],
                                   [("target", "h"), ("password", b64("x"))]])
def test_credentials_with_c_fail_at_object_level(props):
    # C168, M33
    with pytest.raises(ValueError, match="^Option -c cannot be used with a user name or password$"):
        parse(document(props, options="-c"))


def test_a_missing_password_without_c_fails_at_object_level():
    # C168
    with pytest.raises(ValueError, match="^A target password is required$"):
        parse(document([("target", "h"), ("username", b64("root"))]))


@pytest.mark.parametrize("options", ["-p", "-s", "-x", "-nf", "-n -n"])
def test_other_flags_fail_at_command_level(options):
    # C169
    command = decode_request(document(CREDS, options=options)).commands[0]
    with pytest.raises(CommandError):
        parse_options(ACTIONS["migrate-domain"], command)


@pytest.mark.parametrize("arguments, ok", [
    ("cidmap=1:2 mblockmap=0:0 max-downtime=300 max-bandwidth=1G max-rounds=5 timeout=60 "
     "on-timeout=force auto-converge=off compression=none", True),
    ("max-downtime=300 max-downtime=200", False),
    ("speed=9", False),
    ("cidmap", False),
])
def test_arguments_are_the_named_operands_each_at_most_once(arguments, ok):
    # C170
    command = decode_request(document(CREDS, arguments=arguments)).commands[0]
    if ok:
        assert len(parse_options(ACTIONS["migrate-domain"], command).arguments) == 9
    else:
        with pytest.raises(CommandError):
            parse_options(ACTIONS["migrate-domain"], command)


def test_the_password_never_appears_in_repr_or_the_check_view():
    # M40, §4.6
    req = parse(document(CREDS))
    assert "s3cret" not in repr(req) and "s3cret" not in str(req)
    assert "s3cret" not in repr(req.view()) and "czNjcmV0" not in repr(req.view())


def test_operands_are_accepted_in_any_order():
    # M44
    a = parse(document(CREDS, arguments="cidmap=2:6 timeout=30 mblockmap=400000000:800000000"))
    b = parse(document(CREDS, arguments="timeout=30 mblockmap=400000000:800000000 cidmap=2:6"))
    assert (a.cidmap, a.mblockmap, a.tuning) == (b.cidmap, b.mblockmap, b.tuning)


def test_mblockmap_takes_hex_with_or_without_0x():
    # M46
    assert parse_operands({"mblockmap": "400000000:0xc00000000,0x500000000:d00000000"})[1] == (
        (0x400000000, 0xC00000000), (0x500000000, 0xD00000000))


@pytest.mark.parametrize("name, value, message", [
    ("cidmap", "2:6,2:7", "Core 2 appears more than once in cidmap"),
    ("cidmap", "2:6,3:6", "Core 6 appears more than once in cidmap"),
    ("mblockmap", "400000000:0x1,0x400000000:0x2",
     "Address 0x400000000 appears more than once in mblockmap"),
    ("cidmap", "2-6", "Invalid value for cidmap: 2-6"),
    ("cidmap", "a:1", "Invalid value for cidmap: a:1"),
    ("mblockmap", "0xzz:0", "Invalid value for mblockmap: 0xzz:0"),
    ("max-downtime", "-1", "Invalid value for max-downtime: -1"),
    ("max-bandwidth", "1T", "Invalid value for max-bandwidth: 1T"),
    ("on-timeout", "wait", "Invalid value for on-timeout: wait"),
    ("compression", "gzip", "Invalid value for compression: gzip"),
])
def test_operand_values_and_duplicates_are_refused_with_the_5_4_texts(name, value, message):
    # M46, §5.4
    with pytest.raises(ValueError, match=f"^{message}$"):
        parse_operands({name: value})


def test_tuning_values_are_normalised():
    # §5.3: max-bandwidth is 1024-based, 0 means unlimited
    _, _, tuning = parse_operands({"max-bandwidth": "2M", "auto-converge": "OFF",
                                   "max-rounds": "010"})
    assert tuning == {"max-bandwidth": str(2 << 20), "auto-converge": "off", "max-rounds": "10"}
    assert parse_operands({"max-bandwidth": "0"})[2] == {"max-bandwidth": "0"}


@pytest.mark.parametrize("spec, expected", [
    ("system2", ("system2", None)),
    ("sys2.example.com:6483", ("sys2.example.com", 6483)),
    ("192.0.2.20", ("192.0.2.20", None)),
    ("fd00::5", ("fd00::5", None)),
    ("[fd00::5]:6482", ("fd00::5", 6482)),
    ("[fd00::5]", ("fd00::5", None)),
])
def test_target_hosts_take_names_ipv4_and_ipv6_with_optional_port(spec, expected):
    assert parse_target(spec) == expected


@pytest.mark.parametrize("spec", ["", "host:", "host:99999", "ho st", "[fd00::5", "[nohost]:1",
                                  "-bad-", "host:port"])
def test_malformed_targets_are_refused(spec):
    with pytest.raises(ValueError, match="^Invalid target specification"):
        parse_target(spec)
