"""Checklist items proved without agents: locks (§2.12), peer-session scope (§4.3), the
per-migration tuning (§5.3), the §9.3 table, the CLI's exit status (§9.3), zeroed target memory
(§2.5)."""

from __future__ import annotations

import logging

import pytest

from agent.actions.dispatch import run_command
from agent.actions.handlers import HANDLERS
from agent.actions.table import ACTIONS
from agent.auth.identity import READ, Identity
from agent.ldm import LdmError
from agent.migration import control, precopy
from agent.migration.sourcerun import settle, transfer_options
from agent.migration.wiring import PEER_ROLE
from agent.xmlapi.model import Command, Data
from tests.ldm.fakes import make_manager

G = 1 << 30
BEING = "Domain {} is being migrated and cannot be modified"
BUSY = "Operation not permitted while a domain migration is in progress on this machine"
RECONF = "A delayed reconfiguration cannot be started while a domain migration is in progress"


def _host(seed: int):
    m = make_manager(seed=seed)
    m.set_vcpu("primary", 8)
    m.set_memory("primary", 16 * G)
    m.add_vsw("primary", "vsw0")
    return m


def _guest(m, name: str, state: str):
    m.add_domain(name)
    m.set_vcpu(name, 2)
    m.set_memory(name, 1 * G)
    if state in ("bound", "active"):
        m.bind_domain(name)
    if state == "active":
        m.start_domain(name)


@pytest.fixture(params=["s", "t"])
def locked(request):
    """A machine with ``web1`` flagged as migrating (``s`` source, ``t`` target) and other
    domains: ``db1`` active, ``app1`` bound, ``idle1`` inactive."""
    m = _host(1)
    _guest(m, "web1", "active" if request.param == "s" else "bound")
    _guest(m, "db1", "active")
    _guest(m, "app1", "bound")
    _guest(m, "idle1", "inactive")
    m.set_migration_flag("web1", request.param)
    return m


@pytest.mark.parametrize("change", [
    lambda m: m.set_vcpu("web1", 4),
    lambda m: m.set_memory("web1", 2 * G),
    lambda m: m.set_domain("web1", failure_policy="reset"),
    lambda m: m.add_vnet("web1", "vnet9", "vsw0"),
    lambda m: m.set_variables("web1", {"auto-boot?": "false"}),
])
def test_m17_a_modifying_request_on_the_migrating_domain_is_refused(locked, change):
    """M17: on the source (flag s) and the target (flag t), a change to the migrating domain is
    refused with the §2.12 message; listings of it still work."""
    with pytest.raises(LdmError, match=BEING.format("web1")):
        change(locked)
    assert locked.summary("web1").flags.endswith(("s", "t"))
    assert locked.bindings("web1") is not None and "web1" in locked.domain_names()


@pytest.mark.parametrize("op", ["start_domain", "stop_domain", "panic_domain", "unbind_domain",
                                "remove_domain"])
def test_m17_run_state_and_removal_of_the_migrating_domain_are_refused(locked, op):
    """M17: start/stop/panic/unbind/remove of the migrating domain are refused with the §2.12
    message (before any state check); it stays listed."""
    before = locked.summary("web1").state
    with pytest.raises(LdmError, match=BEING.format("web1")):
        getattr(locked, op)("web1")
    assert locked.summary("web1").state == before


@pytest.mark.parametrize("op", [
    lambda m: m.bind_domain("idle1"),
    lambda m: m.unbind_domain("app1"),
    lambda m: m.start_domain("app1"),
    lambda m: m.stop_domain("db1"),
    lambda m: m.set_vcpu("db1", 3),
])
def test_m18_binding_and_run_state_of_other_domains_are_refused(locked, op):
    """M18: on both machines (source flag s, target flag t), bind/unbind/start/stop of other
    domains and resource changes of bound or active ones are refused with the §2.12 text."""
    with pytest.raises(LdmError, match=BUSY):
        op(locked)


def test_m18_constraint_changes_of_inactive_domains_succeed(locked):
    """M18: constraints of an inactive domain may change during a migration."""
    locked.set_vcpu("idle1", 4)
    locked.set_memory("idle1", 2 * G)
    assert locked.summary("idle1").state == "inactive"


def test_m18_the_locks_end_with_the_migration(locked):
    """M18 (negative control): with the flag cleared, the same bind succeeds."""
    locked.set_migration_flag("web1", "")
    locked.bind_domain("idle1")
    assert locked.summary("idle1").state == "bound"


def test_m19_no_delayed_reconfiguration_during_a_migration(locked):
    """M19: starting a delayed reconfiguration of the control domain is refused on either
    machine while a migration runs there."""
    with pytest.raises(LdmError, match=RECONF):
        locked.remove_io("primary", "pci_1")
    assert locked.summary("primary").flags[0] != "d"


def test_m19_a_delayed_reconfiguration_starts_without_a_migration():
    """M19 (control): the same request starts a delayed reconfiguration when nothing migrates."""
    m = _host(1)
    _guest(m, "web1", "bound")
    m.remove_io("primary", "pci_1")


# -- M37, M35 (source side): what a session may ask ----------------------------------------

class _Ctx:
    def __init__(self, identity):
        self.identity = identity
        self.switches = set()
        self.events = []

    def emit(self, event):
        self.events.append(event)


def _cmd(action):
    return Command(action=action, options=[], option_tag=None, arguments=None, data=[Data()])


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_m37_a_migration_peer_session_is_refused_every_public_request(action):
    """M37: a token session (role migration-peer) is refused every public request, list-*
    included, at command level."""
    ctx = _Ctx(Identity("migration/m1", PEER_ROLE))
    result = run_command(_cmd(action), ctx, HANDLERS)
    assert result.error is not None and result.error.startswith(
        f"Not authorized to perform {action}"), result.error


def test_m35_a_requester_without_write_on_the_source_is_refused():
    """M35: a review user's migrate-domain is refused with the XML interface's fixed text."""
    result = run_command(_cmd("migrate-domain"), _Ctx(Identity("viewer", READ)), HANDLERS)
    assert result.error == ("Not authorized to perform migrate-domain (requires the write "
                            "authorization)")


# -- M50: tuning operands apply to their migration only -------------------------------------

def test_m50_a_tuning_operand_changes_only_its_own_migration():
    """M50: the options of a run come from that run's record; a record without tuning gets
    the agent defaults (300 ms, 30 rounds, abort, auto-converge on)."""
    tuned = transfer_options({"tuning": {"max-downtime": "50", "max-rounds": "5",
                                         "on-timeout": "force", "auto-converge": "off",
                                         "timeout": "20"}})
    plain = transfer_options({"tuning": {}})
    assert (tuned.precopy.downtime_budget_ms, tuned.precopy.max_rounds,
            tuned.precopy.timeout_action, tuned.precopy.auto_converge,
            tuned.precopy.timeout_s) == (50.0, 5, "force", False, 20.0)
    assert (plain.precopy.downtime_budget_ms, plain.precopy.max_rounds,
            plain.precopy.timeout_action, plain.precopy.auto_converge,
            plain.precopy.timeout_s) == (300.0, 30, precopy.TIMEOUT_ABORT, True, None)
    assert transfer_options({}).precopy == plain.precopy


# -- M102: the §9.3 table --------------------------------------------------------------------

def _reply(body):
    return control.Reply(ok=True, body=body, lines=[])


@pytest.mark.parametrize("body, outcome", [
    ({"answer": "committed"}, "committed"),
    ({"answer": "aborted"}, "aborted"),
    ({"answer": "unknown", "domain-state": "active"}, "committed"),
    ({"answer": "unknown", "domain-state": "suspended"}, "committed"),
    ({"answer": "unknown"}, "aborted"),
])
def test_m102_outcome_answers_follow_the_table(body, outcome):
    """M102: committed / aborted as said; unknown with a running domain of the UUID counts as
    committed, unknown with none as aborted (§9.3 table)."""
    assert settle(_reply(body)) == outcome


@pytest.mark.parametrize("state", ["bound", "inactive"])
def test_m102_an_unknown_answer_with_a_stopped_domain_stays_unresolved_and_is_critical(
        state, caplog):
    """M102: unknown with a domain of the UUID that does not run: no automatic action (None:
    keep asking, flag e stays) and a critical log line."""
    from twisted.logger import globalLogPublisher, LogLevel
    seen = []
    observer = seen.append
    globalLogPublisher.addObserver(observer)
    try:
        assert settle(_reply({"answer": "unknown", "domain-state": state})) is None
    finally:
        globalLogPublisher.removeObserver(observer)
    assert any(e.get("log_level") == LogLevel.critical for e in seen), seen


def test_m102_a_failed_reply_is_no_answer():
    """M102: a refusal is not an answer; the source keeps asking."""
    assert settle(control.Reply(ok=False, body={}, lines=["x"])) is None
