"""ldmx migrate-domain: syntax and usage errors (migration spec §5), password handling (§4.6),
the XML request (ldm-xml §7.1), progress on a non-terminal, cancel on Ctrl-C, exit status (§5.5)."""

import base64
import io
import os

import pytest

from agent.cli import client, migrate
from agent.cli.answers import parse_answer
from agent.xmlapi import model
from agent.xmlapi.decode import decode_request

from .golden import assert_golden

ROOT = ('<LDM_event version="1.1" xmlns:ovf="./schemas/envelope" '
        'xmlns:rasd="./schemas/CIM_ResourceAllocationSettingData" '
        'xmlns:gprop="./schemas/GenericProperty">')


def progress_event(ldom="ldg1", **props):
    gp = "".join(f'<gprop:GenericProperty key="{k.replace("_", "-")}">{v}</gprop:GenericProperty>'
                 for k, v in props.items())
    return (ROOT + f'<cmd><action>migration-process</action><data version="3.0"><Envelope>'
            f'<References/><Content ovf:id="{ldom}"><Section><Item><rasd:OtherResourceType>'
            f'ldom_info</rasd:OtherResourceType>{gp}</Item></Section></Content></Envelope>'
            f'</data></cmd></LDM_event>').encode()


def response(ok, *messages, action="migrate-domain"):
    status = "success" if ok else "failure"
    msgs = "".join(f"<resp_msg>{m}</resp_msg>" for m in messages)
    return (f'<LDM_interface version="1.3"><cmd><action>{action}</action><data version="3.0">'
            f'<response><status>{status}</status>{msgs}</response></data><response><status>'
            f'{status}</status></response></cmd><response><status>{status}</status></response>'
            f'</LDM_interface>').encode()


# -- syntax --------------------------------------------------------------------------------------

def test_operands_and_target_may_come_in_any_order_after_the_source():
    """M44."""
    a = migrate.parse_migrate(["-n", "-f", "ldg1", "max-rounds=5", "root@system2:ldg-web",
                               "compression=none"])
    b = migrate.parse_migrate(["-n", "-f", "ldg1", "root@system2:ldg-web", "max-rounds=5",
                               "compression=none"])
    assert (a.source, a.user, a.host, a.target, a.flags) == ("ldg1", "root", "system2", "ldg-web",
                                                             ["-n", "-f"])
    assert a.operands == ["max-rounds=5", "compression=none"]
    assert b.operands == ["max-rounds=5", "compression=none"] and b.target == "ldg-web"


def test_target_forms_ipv6_default_name_and_target_port():
    args = migrate.parse_migrate(["--target-port", "7000", "ldg1", "[fd00::5]:web"])
    assert (args.host, args.target, args.target_property()) == ("[fd00::5]", "web", "[fd00::5]:7000")
    args = migrate.parse_migrate(["ldg1", "system2"])
    assert (args.user, args.target, args.target_property()) == (None, "ldg1", "system2")


def test_mblockmap_accepts_addresses_with_or_without_0x():
    """M46."""
    args = migrate.parse_migrate(["-c", "ldg2", "cidmap=2:6,3:7", "mblockmap=0x400000000:c00000000",
                                  "system2"])
    assert args.operands == ["cidmap=2:6,3:7", "mblockmap=0x400000000:c00000000"]


USAGE_ERRORS = [
    (["ldg1"], "Missing operand"),
    ([], "Missing operand"),
    (["ldg1", "max-rounds=3"], "Missing operand"),
    (["ldg1", "root@sys tem2"], "Invalid target specification root@sys tem2"),
    (["ldg1", "system2:-bad"], "Invalid target specification system2:-bad"),
    (["ldg1", "a@b@system2"], "Invalid target specification a@b@system2"),
    (["-c", "-p", "pwfile", "ldg1", "system2"], "Option -c cannot be combined with -p or with a user name"),
    (["-c", "ldg1", "root@system2"], "Option -c cannot be combined with -p or with a user name"),
    (["ldg1", "speed=3", "system2"], "Unknown operand speed"),
    (["ldg1", "max-downtime=soon", "system2"], "Invalid value for max-downtime: soon"),
    (["ldg1", "max-bandwidth=1T", "system2"], "Invalid value for max-bandwidth: 1T"),
    (["ldg1", "on-timeout=retry", "system2"], "Invalid value for on-timeout: retry"),
    (["ldg1", "cidmap=2:x", "system2"], "Invalid value for cidmap: 2:x"),
    (["ldg1", "mblockmap=0xzz:0x1", "system2"], "Invalid value for mblockmap: 0xzz:0x1"),
    (["ldg1", "cidmap=2:6,2:7", "system2"], "Core 2 appears more than once in cidmap"),
    (["ldg1", "cidmap=2:6,3:6", "system2"], "Core 6 appears more than once in cidmap"),
    (["ldg1", "mblockmap=0x400000000:0x1,400000000:0x2", "system2"],
     "Address 0x400000000 appears more than once in mblockmap"),
    (["-n", "-n", "ldg1", "system2"], "Option -n given more than once"),
]


@pytest.mark.parametrize("words,message", USAGE_ERRORS, ids=[m for _, m in USAGE_ERRORS])
def test_usage_errors_print_the_line_and_usage_and_exit_1_without_an_agent(words, message, capsys,
                                                                           tmp_path):
    """M45: one line, then Usage and the two synopsis lines; no agent is contacted."""
    code = client.main(["--socket", str(tmp_path / "none.sock"), "migrate-domain", *words])
    err = capsys.readouterr().err
    assert code == 1
    assert err == message + "\n" + migrate.USAGE + "\n"


def test_migrate_is_an_alias_of_migrate_domain(capsys, tmp_path):
    """M49."""
    assert client.main(["--socket", str(tmp_path / "none.sock"), "migrate", "ldg1"]) == 1
    assert capsys.readouterr().err.startswith("Missing operand\nUsage:")


# -- password ------------------------------------------------------------------------------------

def pwfile(tmp_path, text, mode=0o600):
    path = tmp_path / "pwfile"
    path.write_bytes(text)
    os.chmod(path, mode)
    return str(path)


def test_password_file_first_line_without_its_crlf(tmp_path):
    """M32."""
    assert migrate.read_password_file(pwfile(tmp_path, b"s3cret!\r\nignored\n")) == "s3cret!"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_password_file_readable_by_others_is_refused(tmp_path, mode):
    path = pwfile(tmp_path, b"pw\n", mode)
    with pytest.raises(migrate.PasswordError,
                       match=f"^Password file {path} must not be accessible by group or other users$"):
        migrate.read_password_file(path)


def test_password_file_empty_or_missing(tmp_path):
    path = pwfile(tmp_path, b"\nsecond\n")
    with pytest.raises(migrate.PasswordError, match="does not contain a password"):
        migrate.read_password_file(path)
    with pytest.raises(migrate.PasswordError, match="^Unable to read password file /nonexistent/pw$"):
        migrate.read_password_file("/nonexistent/pw")


def test_refused_password_file_fails_the_migration_before_any_agent(capsys, tmp_path):
    """Migration spec §11.4."""
    path = pwfile(tmp_path, b"pw\n", 0o644)
    code = client.main(["--socket", str(tmp_path / "none.sock"), "migrate-domain", "-p", path,
                        "ldg1", "admin@system2"])
    assert code == 1
    assert capsys.readouterr().err == (f"Password file {path} must not be accessible by group or "
                                       "other users\nDomain Migration of LDom ldg1 failed\n")


def test_without_terminal_or_p_or_c_the_password_is_required(monkeypatch, capsys, tmp_path):
    """M31."""
    monkeypatch.setattr(migrate, "has_terminal", lambda: False)
    code = client.main(["--socket", str(tmp_path / "none.sock"), "migrate-domain", "ldg1", "system2"])
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [migrate.NEED_PASSWORD,
                                                    "Domain Migration of LDom ldg1 failed"]


def test_prompt_on_a_terminal_and_none_with_c():
    """M30: the prompt text; no prompt in certificate mode."""
    prompts = []
    args = migrate.parse_migrate(["ldg1", "root@system2"])
    password = migrate.obtain_password(args, terminal=lambda: True,
                                       prompt=lambda text: prompts.append(text) or "typed")
    assert (password, prompts) == ("typed", ["Target Password: "])
    assert migrate.obtain_password(migrate.parse_migrate(["-c", "ldg1", "system2"]),
                                   terminal=lambda: True, prompt=lambda t: 1 / 0) is None


# -- the request ---------------------------------------------------------------------------------

def decoded_command(document):
    decoded = decode_request(document)
    assert isinstance(decoded, model.Request), decoded
    (command,) = decoded.commands
    assert command.error is None, command.error
    return command


def test_request_matches_the_xml_form_with_base64_credentials():
    """ldm-xml §7.1 first example: -f, web1 to sys2.example.com as admin / s3cret!."""
    args = migrate.parse_migrate(["-f", "web1", "admin@sys2.example.com"])
    command = decoded_command(migrate.migrate_request(args, "s3cret!"))
    assert (command.action, command.options, command.arguments) == ("migrate-domain", ["-f"], None)
    source, target = command.data[0].envelope.contents
    assert (source.name, source.sections, target.name) == ("web1", [], "web1")
    (item,) = target.items()
    assert item.rtype == "ldom_info"
    assert item.props == [("target", "sys2.example.com"), ("username", "YWRtaW4="),
                          ("password", "czNjcmV0IQ==")]
    assert target.sections[0].type == model.RESOURCE_ALLOCATION


def test_certificate_request_with_rename_and_maps_carries_no_credentials():
    """ldm-xml §7.1 second example."""
    args = migrate.parse_migrate(["-c", "--target-port", "6482", "web1", "cidmap=2:6",
                                  "mblockmap=0x410000000:0x810000000", "192.0.2.20:web1-new"])
    command = decoded_command(migrate.migrate_request(args, None))
    assert command.options == ["-c"]
    assert command.arguments == "cidmap=2:6 mblockmap=0x410000000:0x810000000"
    target = command.data[0].envelope.contents[1]
    assert target.name == "web1-new"
    assert target.items()[0].props == [("target", "192.0.2.20:6482")]


def test_password_never_appears_outside_its_base64_property():
    args = migrate.parse_migrate(["ldg1", "root@system2"])
    document = migrate.migrate_request(args, "pa55-word")
    assert b"pa55-word" not in document
    assert base64.b64encode(b"pa55-word") in document


# -- progress, answer, exit status ---------------------------------------------------------------

class Script:
    """The requesting session (a scripted list of documents) and a second session."""

    def __init__(self, docs, side_answers=()):
        self.docs = list(docs)
        self.sent = []
        self.side_sent = []
        self.side_answers = list(side_answers)

    def receive(self, timeout):
        if not self.docs:
            raise ConnectionError("the agent closed the connection")
        doc = self.docs.pop(0)
        if callable(doc):
            return doc()
        if doc is None:
            return None
        return (b"LDM_event" if doc.startswith(b"<LDM_event") else b"LDM_interface"), doc

    def open_session(self):
        def request(doc):
            self.side_sent.append(doc)
            return self.side_answers.pop(0)
        return request

    def runner(self, words=("ldg1", "root@system2"), terminal=False):
        err = io.StringIO()
        runner = migrate.Runner(migrate.parse_migrate(list(words)), send=self.sent.append,
                                receive=self.receive, open_session=self.open_session, err=err,
                                terminal=terminal)
        return runner, err


LIVE = [
    progress_event(progress="0%", status="ongoing", source="system1", role="source", phase="3", round="0"),
    progress_event(progress="0%", status="ongoing", source="system1", role="source", phase="3", round="0"),
    progress_event(progress="41%", status="ongoing", source="system1", phase="3", round="1",
                   expected_downtime="2210"),
    progress_event(ldom="other", progress="10%", status="ongoing", source="system1", phase="3"),
    progress_event(progress="88%", status="ongoing", source="system1", phase="3", round="4",
                   expected_downtime="190"),
    progress_event(progress="90%", status="ongoing", source="system1", phase="4", round="4"),
    progress_event(progress="99%", status="ongoing", source="system1", phase="5", round="4"),
    progress_event(progress="100%", status="done", source="system1", phase="5", round="4",
                   outcome="completed", downtime="84"),
]


def test_progress_on_a_non_terminal_is_plain_lines_and_success_exits_0():
    script = Script([*LIVE, None, response(True)])
    runner, err = script.runner()
    assert runner.run(b"<request/>") == 0
    assert script.sent == [b"<request/>"]
    assert_golden("migrate-progress.txt", err.getvalue())


def test_progress_bar_on_a_terminal_is_erased_when_it_ends():
    script = Script([*LIVE, response(True)])
    runner, err = script.runner(terminal=True)
    assert runner.run(b"<request/>") == 0
    text = err.getvalue()
    assert ("\r\033[Kldg1 [#########...............] 41%  ongoing  phase 3 (live transfer)  round 1"
            "  expected downtime 2210ms") in text
    assert text.endswith("\r\033[K")  # nothing left on the line: success prints nothing


def test_failure_prints_the_agents_lines_in_order_and_exits_1():
    script = Script([response(False, "Target machine system2 has 6 free virtual CPUs; domain ldg1 needs 8",
                              "Warning: Target CPU frequency 2998 MHz differs from source CPU frequency 2848 MHz",
                              "Domain Migration of LDom ldg1 would fail if attempted")])
    runner, err = script.runner(["-n", "ldg1", "root@system2"])
    assert runner.run(b"<request/>") == 1
    assert err.getvalue().splitlines() == [
        "Target machine system2 has 6 free virtual CPUs; domain ldg1 needs 8",
        "Warning: Target CPU frequency 2998 MHz differs from source CPU frequency 2848 MHz",
        "Domain Migration of LDom ldg1 would fail if attempted"]


def test_legacy_os_notice_is_printed_without_its_prefix():
    notice = ("Notice: Domain ldg1 is not running an operating system that is\n"
              "compatible with the latest migration functionality.")
    runner, err = Script([response(True, notice)]).runner()
    assert runner.run(b"x") == 0
    assert err.getvalue() == notice[len("Notice: "):] + "\n"


def test_unresolved_outcome_exits_3():
    """M47 / §9.3: the final progress event says unresolved; the response fails."""
    final = progress_event(progress="99%", status="failed", source="system1", phase="5",
                           outcome="unresolved")
    script = Script([final, response(False, "Lost contact with target machine system2 after handing over domain ldg1",
                                     "The outcome is not known yet; it will be settled automatically when system2 can be reached",
                                     "Domain Migration of LDom ldg1 failed")])
    runner, err = script.runner()
    assert runner.run(b"x") == 3
    assert err.getvalue().splitlines()[-1] == "Domain Migration of LDom ldg1 failed"


def test_losing_the_local_agent_exits_3_after_phase_5_and_1_before():
    """§5.6: the CLI exits 3 when the last phase it saw was 5, 1 otherwise."""
    runner, err = Script([LIVE[6]]).runner()
    assert runner.run(b"x") == 3
    assert err.getvalue().splitlines()[-1] == migrate.LOST_LOCAL_AGENT
    runner, err = Script([LIVE[2]]).runner()
    assert runner.run(b"x") == 1


def test_interrupt_sends_cancel_operation_migration_on_a_second_session():
    """§8.3: Ctrl-C before the point of no return cancels; the CLI prints the agent's lines."""
    holder = {}

    def interrupt():
        holder["runner"].interrupted = True
        return None

    script = Script([LIVE[0], interrupt, None,
                     response(False, "Migration of domain ldg1 was cancelled",
                              "Domain Migration of LDom ldg1 failed")],
                    side_answers=[response(True, action="cancel-operation")])
    runner, err = script.runner()
    holder["runner"] = runner
    assert runner.run(b"x") == 1
    (cancel,) = script.side_sent
    command = decoded_command(cancel)
    assert (command.action, command.options) == ("cancel-operation", ["migration"])
    assert command.data[0].envelope.contents[0].name == "ldg1"
    assert err.getvalue().splitlines()[-2:] == ["Migration of domain ldg1 was cancelled",
                                               "Domain Migration of LDom ldg1 failed"]


def test_interrupt_after_the_point_of_no_return_says_it_will_complete():
    holder = {}

    def interrupt():
        holder["runner"].interrupted = True
        return None

    refused = response(False, "The migration of domain ldg1 has passed the point of no return and "
                       "can no longer be cancelled", action="cancel-operation")
    script = Script([LIVE[6], interrupt, None, response(True)], side_answers=[refused])
    runner, err = script.runner()
    holder["runner"] = runner
    assert runner.run(b"x") == 0
    assert migrate.passed_pnr("ldg1") in err.getvalue().splitlines()


def test_final_answer_is_parsed_from_the_spec_shaped_dry_run_failure():
    """ldm-xml §7.2 dry-run failure: messages in order, overall failure."""
    answer = parse_answer(response(False, "Unable to bind 24G memory region at real address 0x10000000",
                                   "Domain Migration of LDom db2 would fail if attempted"))
    assert not answer.ok and answer.messages[-1].endswith("would fail if attempted")


def test_terminal_bar_shows_the_throughput_from_a_status_query():
    """On a terminal the CLI asks list-domain on its second session for live statistics."""
    listed = (b'<LDM_interface version="1.3" xmlns:ovf="./schemas/envelope" xmlns:rasd="./schemas/'
              b'CIM_ResourceAllocationSettingData" xmlns:gprop="./schemas/GenericProperty"><cmd>'
              b'<action>list-domain</action><data version="3.0"><Envelope><References/><Content '
              b'ovf:id="ldg1"><Section><Item><rasd:OtherResourceType>ldom_info</rasd:OtherResourceType>'
              b'<gprop:GenericProperty key="throughput">640889651</gprop:GenericProperty></Item>'
              b'</Section></Content></Envelope><response><status>success</status></response></data>'
              b'<response><status>success</status></response></cmd><response><status>success'
              b'</status></response></LDM_interface>')
    script = Script([LIVE[2], None, response(True)], side_answers=[listed])
    runner, err = script.runner(terminal=True)
    runner.status_interval = 0
    assert runner.run(b"x") == 0
    assert decoded_command(script.side_sent[0]).action == "list-domain"
    assert "611.2M/s" in err.getvalue()
