"""After a forced recovery (migration.md §8.4, §9.4): what the target's answer means, and the
one change a final record may still make (forced → split-brain)."""

from __future__ import annotations

import pytest

from agent.migration import control
from agent.migration.journal import SOURCE, Journal, JournalError, Record
from agent.migration.sourcerun import forced_verdict


def reply(answer: str, state: str | None = None, ok: bool = True) -> control.Reply:
    body = {"answer": answer, **({"domain-state": state} if state else {})}
    return control.Reply(ok=ok, lines=[], body=body)


@pytest.mark.parametrize("answer, state, verdict", [
    ("committed", None, "split-brain"),        # both copies ran: I1 broken (§9.4)
    ("unknown", "active", "split-brain"),      # a running domain with the UUID
    ("aborted", None, "confirmed"),            # the forced choice was right
    ("unknown", None, "confirmed"),            # no domain of that UUID
    ("unknown", "bound", "confirmed"),         # there, but not running
])
def test_m95_the_answer_after_a_forced_recovery(answer, state, verdict):
    """M95, §9.4: committed (or a running domain) is a split brain; otherwise confirmed."""
    assert forced_verdict(reply(answer, state)) == verdict


def test_a_refused_answer_means_ask_again():
    assert forced_verdict(reply("committed", ok=False)) is None


def test_a_forced_record_may_become_split_brain_and_nothing_else(tmp_path):
    """§9.4: the journal lets a forced record change once, to split-brain; other final
    records never change (§2.10)."""
    journal = Journal(tmp_path)
    try:
        forced = journal.create(Record("m1", SOURCE, "forced", {}))
        journal.advance(forced, "split-brain", outcome="split-brain")
        assert journal.get("m1", SOURCE).state == "split-brain"
        done = journal.create(Record("m2", SOURCE, "completed", {}))
        with pytest.raises(JournalError):
            journal.advance(done, "split-brain")
        with pytest.raises(JournalError):
            journal.advance(journal.get("m1", SOURCE), "forced")
    finally:
        journal.close()
