"""The source and target state machines, driven by hand with recording effects (sans-IO).

Every effect call is appended to one log together with the journal state at that moment, so a
test can prove the order "journal first, then send" that the spec requires.
"""

import pytest

from agent.migration import source, target
from agent.migration.journal import SOURCE, TARGET, Journal, JournalError, Record


class Recorder:
    """Both sides' effects: each call is logged with the journal state seen at that moment."""

    def __init__(self, journal: Journal, role: str) -> None:
        self.journal, self.role = journal, role
        self.log: list[tuple] = []
        self.mid = ""
        self.fail_start = False

    def _state(self) -> str:
        return self.journal.get(self.mid, self.role).state

    def __getattr__(self, name):
        def effect(*args):
            self.log.append((name, args, self._state()))
            if name == "start_domain" and self.fail_start:
                raise RuntimeError("resume failed")
            return None
        return effect

    def calls(self, name: str) -> list[tuple]:
        return [entry for entry in self.log if entry[0] == name]

    def sent(self) -> list[str]:
        return [args[0] for name, args, _ in self.log if name == "send"]


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path)
    yield j
    j.close()


def make_source(journal, live=True, record_state="intake", start=None):
    rec = journal.create(Record("m1", SOURCE, record_state, {"domain": "ldg1", "tdomain": "ldg-web"}))
    effects = Recorder(journal, SOURCE)
    effects.mid = "m1"
    core = source.SourceCore(journal, rec, effects, live)
    machine = source.SourceMachine(core) if start is None else source.SourceMachine(core, start)
    return machine, effects


def run_to_handoff(machine, live=True):
    machine.connected()
    machine.hello_answered({})
    machine.checks_passed()
    machine.prepared({})
    if live:
        machine.transferred()
        machine.target_ready()


def test_live_migration_sends_messages_in_phase_order(journal):
    """M1: hello, check, prepare, transfer, transfer-done, commit, release — in that order."""
    machine, fx = make_source(journal)
    run_to_handoff(machine)
    machine.committed()
    assert fx.sent() == ["mig-hello", "mig-check", "mig-prepare", "mig-transfer-done",
                         "mig-commit", "mig-release"]
    assert [args[0] for _, args, _ in fx.calls("report")] == [1, 2, 4, 4, 5]
    assert fx.calls("start_transfer")
    assert journal.get("m1", SOURCE).state == "completed"


def test_cold_migration_skips_the_data_plane(journal):
    """M1: a bound or inactive migration goes from phase 2 to phase 5 without a transfer."""
    machine, fx = make_source(journal, live=False)
    run_to_handoff(machine, live=False)
    machine.committed()
    assert fx.sent() == ["mig-hello", "mig-check", "mig-prepare", "mig-commit", "mig-release"]
    assert not fx.calls("start_transfer") and not fx.calls("set_suspended")


def test_commit_sent_is_durable_before_the_commit_leaves(journal):
    """M8: the journal says commit-sent when mig-commit is sent (the point of no return)."""
    machine, fx = make_source(journal)
    run_to_handoff(machine)
    commit = [entry for entry in fx.calls("send") if entry[1][0] == "mig-commit"]
    assert commit[0][2] == "commit-sent"


def test_source_copy_goes_only_after_committed(journal):
    """M11: remove_copy is called only after a committed answer, then completed is written."""
    machine, fx = make_source(journal)
    run_to_handoff(machine)
    assert not fx.calls("remove_copy")
    machine.committed()
    assert fx.calls("remove_copy")[0][2] == "commit-sent"
    assert journal.get("m1", SOURCE).state == "completed"


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 4, 5])
def test_cancel_before_the_pnr_restores_the_source(journal, steps):
    """M90: a cancel in any phase before the PNR aborts, tells the target, clears the flag,
    resumes a suspended domain, and answers the requester with the cancelled line."""
    machine, fx = make_source(journal)
    inputs = [machine.connected, lambda: machine.hello_answered({}), machine.checks_passed,
              lambda: machine.prepared({}), machine.transferred]
    for step in inputs[:steps]:
        step()
    assert machine.cancel() is None
    record = journal.get("m1", SOURCE)
    assert (record.state, record.data["outcome"]) == ("aborted", "cancelled")
    assert fx.calls("set_flag")[-1][1] == ("",)
    assert fx.calls("finish")[-1][1] == (False, ["Migration of domain ldg1 was cancelled"],
                                         "cancelled")
    assert bool(fx.calls("set_suspended")) == (steps >= 5)  # only a suspended guest is resumed
    assert fx.sent()[-1] == "mig-abort"


def test_cancel_after_the_pnr_is_refused_and_the_migration_completes(journal):
    """M92 / F35: refused with the point-of-no-return text while the reply is pending."""
    machine, fx = make_source(journal)
    run_to_handoff(machine)
    assert machine.cancel() == ("The migration of domain ldg1 has passed the point of no return "
                                "and can no longer be cancelled")
    machine.committed()
    assert journal.get("m1", SOURCE).state == "completed"


def test_lost_reply_after_the_pnr_opens_the_ambiguous_window(journal):
    """§9.3: flag e, nothing resumed, resolution started; committed then removes the copy."""
    machine, fx = make_source(journal)
    run_to_handoff(machine)
    machine.peer_lost(["Lost connection"])
    assert journal.get("m1", SOURCE).state == "unresolved"
    assert fx.calls("set_flag")[-1][1] == ("e",)
    assert fx.calls("resolve") and not fx.calls("finish")
    assert not [c for c in fx.calls("set_suspended") if c[1] == (False,)]  # M101: never resumed
    machine.outcome("committed")
    assert journal.get("m1", SOURCE).state == "resolved-completed"
    assert fx.calls("remove_copy")


def test_aborted_answer_in_the_window_restores_the_domain(journal):
    """§9.3 table, row 2: aborted → resume, outcome resolved-aborted."""
    machine, fx = make_source(journal)
    run_to_handoff(machine)
    machine.peer_lost(["Lost connection"])
    machine.outcome("aborted")
    assert journal.get("m1", SOURCE).state == "resolved-aborted"
    assert fx.calls("set_suspended")[-1][1] == (False,)
    assert not fx.calls("remove_copy")


def test_restart_after_commit_sent_resumes_resolution(journal):
    """M100 / F30: a record in commit-sent restarts unresolved and settles on the answer."""
    rec = journal.create(Record("m2", SOURCE, "commit-sent", {"domain": "ldg1"}))
    fx = Recorder(journal, SOURCE)
    fx.mid = "m2"
    machine = source.SourceMachine(source.SourceCore(journal, rec, fx, True),
                                   source.state_for(rec))
    assert source.state_name(machine) == "unresolved"
    machine.outcome("committed")
    assert journal.get("m2", SOURCE).state == "resolved-completed"


def test_forced_recovery_only_in_the_window(journal):
    """M95: force is an input of the unresolved state only."""
    machine, fx = make_source(journal)
    run_to_handoff(machine)
    with pytest.raises(Exception):
        machine.force()
    machine.peer_lost([])
    machine.force()
    assert journal.get("m1", SOURCE).data["outcome"] == "forced"


# -- target ------------------------------------------------------------------------------------

def make_target(journal, live=True, fail_start=False):
    rec = journal.create(Record("t1", TARGET, "greeted", {}))
    fx = Recorder(journal, TARGET)
    fx.mid, fx.fail_start = "t1", fail_start
    return target.TargetMachine(target.TargetCore(journal, rec, fx, live)), fx


def test_target_writes_committing_before_starting_and_committed_before_replying(journal):
    """M10: start_domain sees committing; commit() returns only once committed is durable."""
    machine, fx = make_target(journal)
    machine.created({})
    machine.transfer_verified()
    assert machine.commit() == "committed"
    assert fx.calls("start_domain")[0][2] == "committing"
    assert journal.get("t1", TARGET).state == "committed"


def test_target_never_starts_without_a_commit(journal):
    """M9, M99: losing the session before mig-commit aborts and destroys, never starts."""
    machine, fx = make_target(journal)
    machine.created({})
    machine.transfer_verified()
    machine.peer_lost()
    assert journal.get("t1", TARGET).state == "aborted"
    assert fx.calls("destroy_domain") and not fx.calls("start_domain")


def test_target_decision_is_final(journal):
    """§2.10: after aborted, a late commit gets aborted; after committed, abort gets committed."""
    machine, _ = make_target(journal)
    machine.created({})
    assert machine.abort() == "aborted"
    assert machine.commit() == "aborted"
    machine2, _ = _committed_target(journal)
    assert machine2.abort() == "committed"
    assert machine2.outcome() == "committed"


def _committed_target(journal):
    rec = journal.create(Record("t2", TARGET, "greeted", {}))
    fx = Recorder(journal, TARGET)
    fx.mid = "t2"
    machine = target.TargetMachine(target.TargetCore(journal, rec, fx, False))
    machine.created({})
    assert machine.commit() == "committed"
    return machine, fx


def test_outcome_question_without_commit_decides_abort(journal):
    """§9.3: mig-outcome on an undecided record writes aborted and answers aborted."""
    machine, fx = make_target(journal)
    machine.created({})
    assert machine.outcome() == "aborted"
    assert fx.calls("destroy_domain")


def test_failed_resume_aborts_and_destroys(journal):
    """F23: the resume fails before any vCPU ran: aborted, domain destroyed."""
    machine, fx = make_target(journal, fail_start=True)
    machine.created({})
    machine.transfer_verified()
    assert machine.commit() == "aborted"
    assert journal.get("t1", TARGET).state == "aborted"
    assert fx.calls("destroy_domain")


def test_live_commit_without_verified_transfer_is_refused(journal):
    machine, fx = make_target(journal, live=True)
    machine.created({})
    assert machine.commit() == "aborted"
    assert not fx.calls("start_domain")


# -- journal -----------------------------------------------------------------------------------

def test_journal_states_only_move_forward(journal):
    rec = journal.create(Record("j1", SOURCE, "intake", {}))
    journal.advance(rec, "commit-sent")
    with pytest.raises(JournalError):
        journal.advance(rec, "prepared")
    journal.advance(rec, "completed")
    with pytest.raises(JournalError):
        journal.advance(rec, "aborted")


def test_resolution_token_file_is_private(journal):
    journal.store_token("j2", "ab" * 32)
    path = journal.dir / "migration-tokens" / "j2"
    assert path.stat().st_mode & 0o777 == 0o600
    assert journal.load_token("j2") == "ab" * 32
    assert "ab" * 32 not in (journal.dir / "migrations.db").read_bytes().decode("latin-1")


def test_m13_crypto_units_leave_before_the_prepare_and_return_at_every_abort(journal):
    """§2.5 step 1 and M13: a live migration takes the units out of the guest just before
    mig-prepare; the abort (here a cancel in phase 3) gives them back before the flag clears."""
    machine, fx = make_source(journal)
    machine.connected()
    machine.hello_answered({})
    machine.checks_passed()
    names = [name for name, _, _ in fx.log]
    assert names.index("hold_devices") < [i for i, (n, a, _) in enumerate(fx.log)
                                          if n == "send" and a[0] == "mig-prepare"][0]
    machine.prepared({})
    machine.cancel()
    names = [name for name, _, _ in fx.log]
    assert names.index("give_back_devices") < len(names) - 1 - names[::-1].index("set_flag")


def test_a_cold_migration_holds_no_device(journal):
    machine, fx = make_source(journal, live=False)
    run_to_handoff(machine, live=False)
    assert not fx.calls("hold_devices")
