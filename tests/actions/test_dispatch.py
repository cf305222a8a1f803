"""Command-level checks of the dispatcher: unknown actions, authorization first, options."""

import pytest

from agent.actions.dispatch import execute, run_command
from agent.actions.handlers import HANDLERS
from agent.actions.table import ACTIONS
from agent.auth.identity import READ, WRITE, Identity
from agent.xmlapi import messages
from agent.xmlapi.model import (DOMAIN, HARDWARE, RESOURCE, Command, Data, DocumentFailure,
                                Request)


class Ctx:
    def __init__(self, authz=WRITE):
        self.identity = Identity("tester", authz)
        self.switches = set()
        self.events = []

    def emit(self, event):
        self.events.append(event)


def cmd(action, *options, arguments=None, error=None):
    return Command(action=action, options=list(options), option_tag="options" if options else None,
                   arguments=arguments, data=[Data()], error=error)


def run(c, authz=WRITE, handlers=None):
    return run_command(c, Ctx(authz), HANDLERS if handlers is None else handlers)


def test_unknown_action_and_cli_aliases_fail_at_command_level():
    """C82, C134/§5.1: CLI short forms such as `list` or `add-vds`, and other spellings, are
    unknown actions."""
    for name in ("list", "add-vds", "create", "add-crypto", "Add-Domain", "LIST-DOMAIN"):
        result = run(cmd(name))
        assert result.error == messages.unknown_action(name)
        assert not result.objects


def test_missing_action_fails_at_command_level():
    assert run(cmd(None)).error == messages.NO_ACTION


@pytest.mark.parametrize("name", sorted(n for n, a in ACTIONS.items() if a.auth == WRITE))
def test_read_session_is_refused_every_write_action(name):
    """C135: a read session gets the fixed authorization failure for every W action."""
    result = run(cmd(name), authz=READ)
    assert result.error == f"Not authorized to perform {name} (requires the write authorization)"


def test_authorization_is_decided_before_options_and_decoder_errors():
    """The issue's rule: the missing authorization is reported whatever else is wrong."""
    bad = cmd("stop-domain", "-z", error="Invalid request at /LDM_interface/cmd: x")
    assert run(bad, authz=READ).error == messages.not_authorized("stop-domain", "write")


def test_decoder_error_is_reported_for_an_authorized_session():
    bad = cmd("list-domain", error="Invalid request at /LDM_interface/cmd/data: missing version")
    assert run(bad).error == "Invalid request at /LDM_interface/cmd/data: missing version"


@pytest.mark.parametrize("action,options,problem", [
    ("stop-domain", ["-x"], '"-x"'),
    ("stop-domain", ["-f", "-f"], '"-f"'),
    ("stop-domain", ["-fa"], '"-fa"'),
    ("bind-domain", ["stray"], '"stray"'),
    ("add-spconfig", ["-r"], '"-r"'),
    ("cancel-operation", ["reconf", "migration"], '"migration"'),
    ("cancel-operation", ["-f", "reconf"], '"-f"'),
])
def test_bad_options_fail_naming_the_token(action, options, problem):
    """§2.5: unknown, repeated, combined flags, stray words, missing flag arguments."""
    result = run(cmd(action, *options), handlers={action: lambda *a: []})
    assert result.error and problem in result.error
    assert not result.objects


def test_cancel_operation_needs_exactly_one_word():
    """C151: exactly one of migration, reconf, memdr."""
    result = run(cmd("cancel-operation"), handlers={"cancel-operation": lambda *a: []})
    assert result.error == messages.operation_word_required(
        "cancel-operation", ("migration", "reconf", "memdr"))
    ok = run(cmd("cancel-operation", "-f", "migration"),
             handlers={"cancel-operation": lambda *a: []})
    assert ok.error is None


def test_flag_arguments_are_taken_when_the_flag_has_one():
    seen = {}

    def handler(ctx, c, opts):
        seen.update(opts.flags)
        return []

    assert run(cmd("add-spconfig", "-r", "auto1"), handlers={"add-spconfig": handler}).ok
    assert seen == {"-r": "auto1"}
    seen.clear()
    assert run(cmd("list-spconfig", "-r"), handlers={"list-spconfig": handler}).ok
    assert seen == {"-r": None}


def test_arguments_only_for_migrate_domain_and_only_known_operands_once():
    """C85, C169/C170 (command level): unknown or repeated operands, and arguments elsewhere."""
    h = {"migrate-domain": lambda *a: [], "list-domain": lambda *a: []}
    assert run(cmd("migrate-domain", arguments="max-downtime=200 compression=none"), handlers=h).ok
    assert "bogus=1" in run(cmd("migrate-domain", arguments="bogus=1"), handlers=h).error
    assert "timeout=2" in run(cmd("migrate-domain", arguments="timeout=1 timeout=2"), handlers=h).error
    assert "-p" in run(cmd("migrate-domain", "-p"), handlers=h).error
    assert "x=1" in run(cmd("list-domain", arguments="x=1"), handlers=h).error


def test_action_without_handler_answers_the_not_available_failure():
    result = run(cmd("add-vcpu"), handlers={})
    assert result.error == messages.not_available_yet("add-vcpu")


def test_registration_switches_and_reply_form():
    """C120/C121: reg-all then unreg-domain leaves resource and hardware on; repeats are no-ops."""
    ctx = Ctx(READ)
    for name in ("reg-all-events", "unreg-domain-events", "unreg-domain-events", "reg-resource-events"):
        result = run_command(cmd(name), ctx, HANDLERS)
        assert result.ok and len(result.objects) == 1 and result.objects[0].envelope is None
    assert ctx.switches == {RESOURCE, HARDWARE}
    run_command(cmd("unreg-all-events"), ctx, HANDLERS)
    assert ctx.switches == set()
    run_command(cmd("reg-domain-events"), ctx, HANDLERS)
    assert ctx.switches == {DOMAIN}


def test_document_failure_runs_no_command():
    resp = execute(DocumentFailure("1.9", "bad version"), Ctx(), HANDLERS)
    assert resp.error == "bad version" and resp.commands == []
    resp = execute(Request("1.3", [cmd("reg-domain-events"), cmd("nope")]), Ctx(), HANDLERS)
    assert [c.ok for c in resp.commands] == [True, False]
    assert not resp.ok


def test_data_plane_channel_actions_fail_per_object_after_authorization():
    """C148: vdpcs/vdpcc fail at object level with the fixed text, after the auth check."""
    for name in ("add-vdpcs", "remove-vdpcs", "add-vdpcc", "remove-vdpcc"):
        c = Command(action=name, data=[Data(), Data()])
        result = run(c)
        assert result.error is None and not result.ok
        assert [o.messages for o in result.objects] == [[f"{name}: not supported on this platform"]] * 2
        assert run(c, authz=READ).error == messages.not_authorized(name, "write")
