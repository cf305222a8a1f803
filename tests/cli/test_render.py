"""Rendering of the agent's answers like ldm: golden files for the human and parseable forms."""


from lxml import etree

from agent.cli import client, listing
from agent.cli.answers import parse_answer, parse_event
from agent.xmlapi.decode import decode_request
from agent.xmlapi.model import Request

from .golden import assert_golden, fixture


def answer(name):
    return parse_answer(fixture(name))


def test_list_table_has_the_ldm_columns_and_one_row_per_domain():
    text = listing.render_table(answer("list-domain.xml").contents())
    assert text.splitlines()[0].split() == ["NAME", "STATE", "FLAGS", "CONS", "VCPU", "MEMORY",
                                            "UTIL", "NORM", "UPTIME"]
    assert_golden("list.txt", text + "\n")


def test_list_parseable_prints_version_then_domain_lines_with_bytes_and_raw_util():
    text = listing.render_parseable(answer("list-domain.xml").contents())
    assert text.splitlines()[0] == "VERSION 1.6"
    assert ("DOMAIN|name=web2|state=bound|flags=------|cons=5001|ncpu=2|mem=1610612736|util=|"
            "uptime=|norm_util=") in text.splitlines()
    assert_golden("list-p.txt", text + "\n")


def test_list_long_parseable_spells_flags_as_words():
    text = listing.render_parseable(answer("list-domain.xml").contents(), long=True)
    assert "|flags=normal,control,vio-service|" in text
    assert "|flags=normal,migration-source|" in text


def test_uptime_leaves_out_zero_parts_like_ldm():
    assert listing.uptime("274380") == "3d 4h 13m"
    assert listing.uptime("1044000") == "12d 2h"
    assert listing.uptime("59") == "59s"
    assert listing.uptime("") == ""


def test_list_o_status_on_the_source_names_target_and_target_ldom():
    """Migration spec §7.3 (source side), byte for byte."""
    contents = [c for c in answer("list-domain.xml").contents() if c.name == "ldg1"]
    text = listing.render_long(contents, ["status"])
    assert text == ("NAME\nldg1\n\nSTATUS\n"
                    "    OPERATION    PROGRESS    TARGET       TARGET-LDOM\n"
                    "    migration    47%         system2      ldg-web")


def test_list_o_status_on_the_target_names_source_and_source_ldom():
    text = listing.render_long(answer("list-domain-target.xml").contents(), ["status"])
    assert text.splitlines()[4:] == ["    OPERATION    PROGRESS    SOURCE       SOURCE-LDOM",
                                     "    migration    47%         system1      ldg1"]


def test_list_o_status_shows_no_migration_row_for_a_quiet_domain():
    contents = [c for c in answer("list-domain.xml").contents() if c.name == "web2"]
    assert "migration" not in listing.render_long(contents, ["status"])


def test_list_l_o_status_adds_the_migration_block_in_human_units():
    contents = [c for c in answer("list-domain.xml").contents() if c.name == "ldg1"]
    text = listing.render_long(contents, ["status"], long=True)
    assert "        memory-remaining    310.5M" in text
    assert "        throughput          611.2M/s" in text
    assert "        time-elapsed        12.4s" in text
    assert "        expected-downtime   512ms" in text
    assert_golden("list-l-o-status.txt", text + "\n")


def test_list_p_o_status_prints_the_status_line_of_the_spec():
    text = listing.render_parseable(answer("list-domain-target.xml").contents(), status=True)
    assert text.splitlines() == [
        "VERSION 1.6",
        "DOMAIN|name=ldg-web|state=bound|flags=-----t|cons=5001|ncpu=8|mem=8589934592|util=|"
        "uptime=|norm_util=",
        "STATUS",
        "|op=migration|progress=47|role=target|peer=system1|peer-ldom=ldg1"]


def test_list_bindings_renders_the_long_form_with_resource_blocks():
    text = listing.render_long(answer("list-bindings.xml").contents())
    for title in ("UUID", "CORE", "VCPU", "MEMORY", "VARIABLES", "NETWORK", "DISK", "VCONS"):
        assert f"\n{title}\n" in text
    assert_golden("list-bindings.txt", text + "\n")


def test_list_o_selects_only_the_requested_blocks():
    text = listing.render_long(answer("list-bindings.xml").contents(), ["network", "disk"])
    titles = [line for line in text.splitlines() if line and line == line.lstrip() and line.isupper()]
    assert titles == ["NAME", "MAC", "NETWORK", "DISK"]


def test_list_constraints_x_is_an_add_domain_request_the_agent_accepts():
    """-x output replays: a valid add-domain request carrying the listed Content."""
    text = client.constraints_xml(answer("list-constraints.xml"))
    assert_golden("list-constraints-x.xml", text + "\n")
    decoded = decode_request(text.encode())
    assert isinstance(decoded, Request)
    command = decoded.commands[0]
    assert command.error is None and command.action == "add-domain"
    content = command.data[0].envelope.contents[0]
    assert content.name == "ldg1"
    assert [it.rtype for it in content.items()][:4] == ["ldom_info", "cpu", "mau", "memory"]


def test_list_constraints_human_form():
    assert_golden("list-constraints.txt",
                  listing.render_constraints(answer("list-constraints.xml").contents()) + "\n")


def test_list_devices_shows_one_block_per_class_with_its_columns():
    text = listing.render_devices(answer("list-devices.xml"))
    assert text.startswith("CORE\n    ID  %FREE  CPUSET")
    assert "(0, 1, 2, 3, 4, 5, 6, 7)" in text
    assert_golden("list-devices.txt", text + "\n")


def test_list_services_lists_each_service_with_its_domain():
    text = listing.render_services(answer("list-services.xml").contents())
    assert_golden("list-services.txt", text + "\n")
    assert [line for line in text.splitlines() if not line.startswith(" ")][:3] == ["VCC", "", "VSW"]


def test_list_spconfig_marks_the_current_configuration():
    assert listing.render_spconfigs(answer("list-spconfig.xml")) == "factory-default [current]"


def test_list_variable_prints_name_value_lines():
    assert listing.render_variables(answer("list-variable.xml").contents()).splitlines()[0] == \
        "auto-boot?=true"


FAILURE = (b'<LDM_interface version="1.3"><cmd><action>list-domain</action>'
           b'<data version="3.0"><Envelope><References/><Content ovf:id="web9" '
           b'xmlns:ovf="./schemas/envelope"/></Envelope><response><status>failure</status>'
           b'<resp_msg>Domain web9 does not exist</resp_msg></response></data>'
           b'<response><status>failure</status></response></cmd>'
           b'<response><status>failure</status></response></LDM_interface>')
WARNING = (b'<LDM_interface version="1.3"><cmd><action>set-memory</action><data version="3.0">'
           b'<response><status>success</status><resp_msg>Warning: memory size rounded up to 4G'
           b'</resp_msg></response></data><response><status>success</status></response></cmd>'
           b'<response><status>success</status></response></LDM_interface>')
NOT_AUTHORIZED = (b'<LDM_interface version="1.3"><cmd><action>stop-domain</action><response>'
                  b'<status>failure</status><resp_msg>Not authorized to perform stop-domain '
                  b'(requires the write authorization)</resp_msg></response></cmd><response>'
                  b'<status>failure</status></response></LDM_interface>')


def test_errors_are_the_agents_resp_msg_lines_on_stderr_with_exit_1(capsys):
    codes = [client.report(parse_answer(doc)) for doc in (FAILURE, NOT_AUTHORIZED, WARNING)]
    out, err = capsys.readouterr()
    assert codes == [1, 1, 0]
    assert out == ""
    assert_golden("errors.txt", err)


def test_events_render_as_one_line_each():
    progress = etree.tostring(etree.fromstring(fixture("migration-process.xml")))
    line = listing.render_event(*vars(parse_event(progress)).values())
    assert line == ("migration-process ldg1 progress=47% status=ongoing source=system1 "
                    "migration-id=3f0c1c9e-7d52-4a55-9b8e-0d7d2f6a1e11 role=source peer=system2 "
                    "peer-ldom=ldg-web phase=3 round=4 data-remaining=325582848 "
                    "expected-downtime=512")
    vnet = (b'<LDM_event version="1.1" xmlns:ovf="./schemas/envelope" xmlns:rasd="./schemas/'
            b'CIM_ResourceAllocationSettingData" xmlns:gprop="./schemas/GenericProperty"><cmd>'
            b'<action>add-vnet</action><data version="3.0"><Envelope><References/><Content '
            b'ovf:id="web1"><Section><Item><rasd:OtherResourceType>network</rasd:OtherResourceType>'
            b'<gprop:GenericProperty key="vnet_name">vnet1</gprop:GenericProperty></Item></Section>'
            b'</Content></Envelope></data></cmd></LDM_event>')
    event = parse_event(vnet)
    assert listing.render_event(event.action, event.envelope) == "add-vnet web1 network vnet_name=vnet1"
