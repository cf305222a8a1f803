"""Argument parsing and request building for every ldm sub-command of ldmx.

Each command line is turned into its request, which must pass the agent's own decoder and
schema (combined-v3.xsd) and carry exactly the action, options and Items the XML interface
expects for that ldm command (spec ldm-xml §5, §6).
"""

import pytest

from agent.actions.table import ACTIONS
from agent.cli import client
from agent.cli.commands import BY_ACTION, BY_NAME, CLI, build_request, parser_for
from agent.xmlapi import model
from agent.xmlapi.decode import decode_request

MAC = "00:14:4f:f9:0a:11"


def built(words):
    """The decoded command a command line builds (schema-checked by the agent's decoder)."""
    sub = BY_NAME[words[0]]
    document = build_request(sub, parser_for(sub, "ldmx " + words[0]).parse_args(words[1:]))
    decoded = decode_request(document)
    assert isinstance(decoded, model.Request), decoded
    (command,) = decoded.commands
    assert command.error is None, command.error
    return command


def summary(command):
    """Each data as a list of parts: ("ldom", name, items) or ("section", items)."""
    out = []
    for data in command.data:
        if data.envelope is None:
            out.append(None)
            continue
        parts = []
        for part in data.envelope.parts:
            if isinstance(part, model.Content):
                parts.append(("ldom", part.name, [(i.rtype, i.props) for i in part.items()]))
            else:
                parts.append(("section", [(i.rtype, i.props) for i in part.items]))
        out.append(parts)
    return out


def dom(name, *items):
    return [("ldom", name, list(items))]


def sec(*items):
    return [("section", list(items))]


CASES = [
    # words, action, options, data
    (["create", "failure-policy=reset", f"mac-addr={MAC}", "ldg1"], "add-domain", [],
     [dom("ldg1", ("ldom_info", [("rasd:Address", MAC), ("failure-policy", "reset")]))]),
    (["add-domain", "ldg1"], "add-domain", [], [dom("ldg1")]),
    (["rm-domain", "ldg1", "ldg2"], "remove-domain", [], [dom("ldg1"), dom("ldg2")]),
    (["destroy", "-a"], "remove-domain", ["-a"], [None]),
    (["start", "ldg1"], "start-domain", [], [dom("ldg1")]),
    (["stop", "-f", "ldg1"], "stop-domain", ["-f"], [dom("ldg1")]),
    (["stop-domain", "-a"], "stop-domain", ["-a"], [None]),
    (["bind", "-f", "ldg1"], "bind-domain", ["-f"], [dom("ldg1")]),
    (["unbind-domain", "ldg1"], "unbind-domain", [], [dom("ldg1")]),
    (["set-domain", "master=primary", "failure-policy=", "ldg1"], "set-domain", [],
     [dom("ldg1", ("ldom_info", [("master", "primary"), ("failure-policy", "")]))]),
    (["add-vcpu", "4", "ldg1"], "add-vcpu", [], [dom("ldg1", ("cpu", [("rasd:AllocationUnits", "4")]))]),
    (["set-vcpu", "-c", "2", "ldg1"], "set-vcpu", [], [dom("ldg1", ("cpu", [("wcore", "2")]))]),
    (["rm-vcpu", "1", "ldg1"], "remove-vcpu", [], [dom("ldg1", ("cpu", [("rasd:AllocationUnits", "1")]))]),
    (["add-crypto", "1", "ldg1"], "add-mau", [], [dom("ldg1", ("mau", [("rasd:AllocationUnits", "1")]))]),
    (["set-mau", "0", "ldg1"], "set-mau", [], [dom("ldg1", ("mau", [("rasd:AllocationUnits", "0")]))]),
    (["rm-crypto", "1", "ldg1"], "remove-mau", [], [dom("ldg1", ("mau", [("rasd:AllocationUnits", "1")]))]),
    (["add-mem", "2G", "ldg1"], "add-memory", [], [dom("ldg1", ("memory", [("rasd:AllocationUnits", "2G")]))]),
    (["set-memory", "4G", "ldg1"], "set-memory", [], [dom("ldg1", ("memory", [("rasd:AllocationUnits", "4G")]))]),
    (["rm-mem", "512M", "ldg1"], "remove-memory", [], [dom("ldg1", ("memory", [("rasd:AllocationUnits", "512M")]))]),
    (["add-io", "pci_1", "ldg1"], "add-io", [], [dom("ldg1", ("physio_device", [("name", "pci_1")]))]),
    (["rm-io", "-n", "/SYS/MB/PCIE1", "primary"], "remove-io", ["-n"],
     [dom("primary", ("physio_device", [("name", "/SYS/MB/PCIE1")]))]),
    (["set-io", "iov=on", "pci_0"], "set-io", [], [sec(("physio_device", [("name", "pci_0"), ("iov", "on")]))]),
    (["add-vds", "primary-vds0", "primary"], "add-vdiskserver", [],
     [dom("primary", ("vds", [("service_name", "primary-vds0")]))]),
    (["rm-vds", "-f", "primary-vds0"], "remove-vdiskserver", ["-f"], [sec(("vds", [("service_name", "primary-vds0")]))]),
    (["add-vdsdev", "-q", "options=ro,excl", "mpgroup=mp1", "/img/v1", "vol1@primary-vds0"],
     "add-vdiskserverdevice", ["-q"],
     [sec(("vds_volume", [("block_dev", "/img/v1"), ("vol_name", "vol1"), ("service_name", "primary-vds0"),
                          ("vol_opts", "ro,excl"), ("mpgroup", "mp1")]))]),
    (["rm-vdsdev", "-f", "vol1@primary-vds0"], "remove-vdiskserverdevice", ["-f"],
     [sec(("vds_volume", [("vol_name", "vol1"), ("service_name", "primary-vds0")]))]),
    (["add-vdisk", "timeout=30", "id=1", "vdisk1", "vol1@primary-vds0", "ldg1"], "add-vdisk", [],
     [dom("ldg1", ("disk", [("vdisk_name", "vdisk1"), ("vol_name", "vol1"), ("service_name", "primary-vds0"),
                            ("timeout", "30"), ("id", "1")]))]),
    (["rm-vdisk", "-f", "vdisk1", "ldg1"], "remove-vdisk", ["-f"], [dom("ldg1", ("disk", [("vdisk_name", "vdisk1")]))]),
    (["add-vsw", "net-dev=net0", "mtu=9000", "inter-vnet-link=off", "primary-vsw0", "primary"], "add-vswitch", [],
     [dom("primary", ("vsw", [("service_name", "primary-vsw0"), ("dev_path", "net0"), ("mtu", "9000"),
                              ("inter_vnet_link", "off")]))]),
    (["set-vsw", f"mac-addr={MAC}", "pvid=10", "primary-vsw0"], "set-vswitch", [],
     [sec(("vsw", [("rasd:Address", MAC), ("service_name", "primary-vsw0"), ("pvid", "10")]))]),
    (["rm-vsw", "-f", "primary-vsw0"], "remove-vswitch", ["-f"], [sec(("vsw", [("service_name", "primary-vsw0")]))]),
    (["add-vnet", "pvid=2", "vid=100,200", "vnet1", "primary-vsw0", "ldg1"], "add-vnet", [],
     [dom("ldg1", ("network", [("vnet_name", "vnet1"), ("service_name", "primary-vsw0"), ("pvid", "2"),
                               ("vid", "100,200")]))]),
    (["set-vnet", "vswitch=primary-vsw1", "vnet1", "ldg1"], "set-vnet", [],
     [dom("ldg1", ("network", [("vnet_name", "vnet1"), ("service_name", "primary-vsw1")]))]),
    (["rm-vnet", "-f", "vnet1", "ldg1"], "remove-vnet", ["-f"], [dom("ldg1", ("network", [("vnet_name", "vnet1")]))]),
    (["add-vcc", "port-range=5000-5100", "primary-vcc0", "primary"], "add-vconscon", [],
     [dom("primary", ("vcc", [("service_name", "primary-vcc0"), ("min_port", "5000"), ("max_port", "5100")]))]),
    (["set-vcc", "port-range=5000-5200", "primary-vcc0"], "set-vconscon", [],
     [sec(("vcc", [("service_name", "primary-vcc0"), ("min_port", "5000"), ("max_port", "5200")]))]),
    (["rm-vcc", "-f", "primary-vcc0"], "remove-vconscon", ["-f"], [sec(("vcc", [("service_name", "primary-vcc0")]))]),
    (["set-vcons", "port=5001", "log=off", "service=primary-vcc0", "group=g1", "ldg1"], "set-vconsole", [],
     [dom("ldg1", ("console", [("port", "5001"), ("enable-log", "off"), ("service_name", "primary-vcc0"),
                               ("group", "g1")]))]),
    (["add-vdpcs", "s1", "ldg1"], "add-vdpcs", [], [dom("ldg1", ("vdpcs", [("service_name", "s1")]))]),
    (["rm-vdpcs", "s1"], "remove-vdpcs", [], [sec(("vdpcs", [("service_name", "s1")]))]),
    (["add-vdpcc", "c1", "s1", "ldg1"], "add-vdpcc", [],
     [dom("ldg1", ("vdpcc", [("vdpcc_name", "c1"), ("service_name", "s1")]))]),
    (["rm-vdpcc", "c1", "ldg1"], "remove-vdpcc", [], [dom("ldg1", ("vdpcc", [("vdpcc_name", "c1")]))]),
    (["add-config", "two"], "add-spconfig", [], [sec(("spconfig", [("spconfig_name", "two")]))]),
    (["add-spconfig", "-r", "auto1"], "add-spconfig", ["-r", "auto1"], [None]),
    (["set-config", "two"], "set-spconfig", [], [sec(("spconfig", [("spconfig_name", "two")]))]),
    (["rm-config", "-r", "two"], "remove-spconfig", ["-r"], [sec(("spconfig", [("spconfig_name", "two")]))]),
    (["ls-config"], "list-spconfig", [], [None]),
    (["list-spconfig", "-r"], "list-spconfig", ["-r"], [None]),
    (["list-spconfig", "-r", "auto1"], "list-spconfig", ["-r", "auto1"], [None]),
    (["add-var", "a=1", "b=x=y", "ldg1"], "add-variable", [],
     [dom("ldg1", ("var", [("name", "a"), ("value", "1")]), ("var", [("name", "b"), ("value", "x=y")]))]),
    (["set-var", "auto-boot?=false", "ldg1"], "set-variable", [],
     [dom("ldg1", ("var", [("name", "auto-boot?"), ("value", "false")]))]),
    (["rm-var", "a", "b", "ldg1"], "remove-variable", [],
     [dom("ldg1", ("var", [("name", "a")]), ("var", [("name", "b")]))]),
    (["ls-var", "ldg1"], "list-variable", [], [dom("ldg1")]),
    (["list-variable", "auto-boot?", "ldg1"], "list-variable", [], [dom("ldg1", ("var", [("name", "auto-boot?")]))]),
    (["list-variable"], "list-variable", [], [None]),
    (["list-bindings"], "list-bindings", [], [None]),
    (["ls-bindings", "a", "b"], "list-bindings", [], [dom("a"), dom("b")]),
    (["list-constraints", "-x", "ldg1"], "list-constraints", [], [dom("ldg1")]),
    (["list-devices", "-a", "core", "crypto", "io"], "list-devices", ["-a"],
     [sec(("core", []), ("mau", []), ("physio_device", []))]),
    (["ls-devices", "-B"], "list-devices", ["-B"], [None]),
    (["list-services"], "list-services", [], [None]),
    (["cancel-operation", "migration", "ldg1"], "cancel-operation", ["migration"], [dom("ldg1")]),
    (["cancel-op", "-f", "migration", "ldg1"], "cancel-operation", ["-f", "migration"], [dom("ldg1")]),
    (["cancel-operation", "reconf", "primary"], "cancel-operation", ["reconf"], [dom("primary")]),
    (["cancel-reconf", "primary"], "remove-reconf", [], [dom("primary")]),
]


@pytest.mark.parametrize("words,action,options,data", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_command_line_builds_the_schema_valid_request_of_its_action(words, action, options, data):
    command = built(words)
    assert command.action == action
    assert command.options == options
    assert summary(command) == data


def test_every_action_with_an_ldm_equivalent_has_a_sub_command():
    with_cli = {name for name, row in ACTIONS.items() if row.cli != "(XML only)"}
    assert with_cli - set(BY_ACTION) == {"migrate-domain"}  # agent.cli.migrate
    assert "migrate-domain" in client.SPECIAL and "migrate" in client.SPECIAL
    covered = {case[1] for case in CASES} | {"list-domain"}  # list: see test_list_requests
    assert covered == set(BY_ACTION)


def test_sub_command_names_are_the_ldm_names_of_the_action_table():
    for sub in CLI:
        assert sub.names()[0] == ACTIONS[sub.action].cli.split()[0]


@pytest.mark.parametrize("name,action", [
    ("list", "list-domain"), ("ls", "list-domain"), ("add-vds", "add-vdiskserver"),
    ("add-crypto", "add-mau"), ("add-config", "add-spconfig"), ("create", "add-domain"),
    ("rm-vds", "remove-vdiskserver"), ("rm-domain", "remove-domain"), ("rm-vdsdev", "remove-vdiskserverdevice"),
    ("remove-vsw", "remove-vswitch"), ("ls-spconfig", "list-spconfig"), ("set-vcons", "set-vconsole"),
    ("add-vdiskserver", "add-vdiskserver"), ("cancel-reconf", "remove-reconf")])
def test_ldm_names_and_aliases_resolve_to_their_actions(name, action):
    assert BY_NAME[name].action == action


@pytest.mark.parametrize("words,message", [
    (["add-vcpu", "4"], "Missing operand"),
    (["add-vds", "primary-vds0", "primary", "extra"], "Unexpected operand extra"),
    (["add-vsw", "speed=10", "sw", "primary"], "Unknown property speed"),
    (["add-vdsdev", "/img", "vol1"], "Invalid volume vol1: expected volume@service"),
    (["add-vcc", "port-range=5000", "vcc0", "primary"], "Invalid port-range 5000: expected min-max"),
    (["stop", "-a", "ldg1"], "-a cannot be combined with domain names"),
    (["start-domain"], "Missing operand"),
    (["add-var", "novalue", "ldg1"], "Invalid variable novalue: expected name=value"),
    (["list-devices", "disks"], "Unknown device class disks"),
])
def test_usage_errors_exit_2_before_contacting_the_agent(words, message, capsys, tmp_path):
    code = client.main(["--socket", str(tmp_path / "no-agent.sock"), *words])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "No such file" not in err  # nothing tried to connect


def test_unknown_sub_command_and_bad_flags_exit_2(capsys, tmp_path):
    sock = str(tmp_path / "none.sock")
    assert client.main(["--socket", sock, "frobnicate"]) == 2
    assert client.main(["--socket", sock, "add-vcpu", "-z", "1", "ldg1"]) == 2
    assert client.main(["--socket", sock, "cancel-operation", "everything", "ldg1"]) == 2


def test_connection_problems_exit_2(capsys, tmp_path):
    assert client.main(["--socket", str(tmp_path / "none.sock"), "list"]) == 2
    assert capsys.readouterr().err.startswith("ldmx: ")


def test_help_of_every_sub_command_shows_its_ldm_usage(capsys):
    for sub in CLI:
        assert client.main([sub.name, "--help"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: ldmx " + sub.name), out
        assert sub.action in out


def test_list_requests_use_list_domain_or_list_bindings(monkeypatch, capsys):
    sent = []

    def fake_exchange(args, document):
        sent.append(decode_request(document).commands[0])
        return client.parse_answer(b'<LDM_interface version="1.3"><cmd><action>x</action>'
                                   b'<response><status>success</status></response></cmd>'
                                   b'<response><status>success</status></response></LDM_interface>')

    monkeypatch.setattr(client, "exchange", fake_exchange)
    assert client.main(["ls", "ldg1", "ldg2"]) == 0
    assert client.main(["list", "-l"]) == 0
    assert client.main(["list", "-o", "network,status", "ldg1"]) == 0
    assert client.main(["list", "-p", "-o", "status"]) == 0
    assert [(c.action, summary(c)) for c in sent] == [
        ("list-domain", [dom("ldg1"), dom("ldg2")]), ("list-bindings", [None]),
        ("list-bindings", [dom("ldg1")]), ("list-domain", [None])]
    assert client.main(["list", "-o", "gpu"]) == 2
