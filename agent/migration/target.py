"""The target side of one migration as an Automat machine (spec migration.md §2.5, §2.8, §9.2, §9.3).

Sans-IO like the source machine: the Twisted driver feeds it the control messages and the data
plane's verdict; behaviours write the journal before anything is acknowledged and ask
:class:`TargetEffects` to create, start or destroy the receiving domain.

``greeted`` (after ``mig-hello``) → ``prepared`` (receiving domain exists, flag ``t``) →
``ready`` (every record arrived and verified) → ``committing`` → ``committed``. Before it has
received ``mig-commit`` the target may abort at any time — on ``mig-abort``, on losing the
control session, or when asked ``mig-outcome`` without a decision — and its decision is
final: later commits and outcome questions get the same answer (§2.10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from automat import TypeMachineBuilder

from agent.migration.journal import Journal, Record

COMMITTED = "committed"
ABORTED = "aborted"


class TargetEffects(Protocol):
    """What the target machine asks of the world."""

    def destroy_domain(self) -> None: ...
    def start_domain(self) -> None: ...
    def report(self, phase: int, percent: int, status: str) -> None: ...
    def fault(self, point: str) -> None: ...


@dataclass
class TargetCore:
    journal: Journal
    record: Record
    effects: TargetEffects
    live: bool


class TargetInputs(Protocol):
    def created(self, fields: dict) -> None: ...
    def transfer_verified(self) -> None: ...
    def commit(self) -> str: ...
    def abort(self) -> str: ...
    def peer_lost(self) -> None: ...
    def outcome(self) -> str: ...
    def _resumed(self) -> None: ...
    def _resume_failed(self) -> None: ...


builder = TypeMachineBuilder(TargetInputs, TargetCore)
greeted = builder.state("greeted")
prepared = builder.state("prepared")
ready = builder.state("ready")
committing = builder.state("committing")
committed = builder.state("committed")
aborted = builder.state("aborted")

UNDECIDED = (greeted, prepared, ready)
STATE_BY_NAME = {s.name: s for s in (*UNDECIDED, committing, committed, aborted)}


def _abort(core: TargetCore) -> None:
    # The decision is written before anything is destroyed (§2.10).
    core.journal.advance(core.record, ABORTED)
    if core.record.data.get("domain_created"):
        core.effects.destroy_domain()
    core.effects.report(0, -1, "failed")


@greeted.upon(TargetInputs.created).to(prepared)
def _created(inputs: TargetInputs, core: TargetCore, fields: dict) -> None:
    core.journal.advance(core.record, "prepared", domain_created=True, **fields)
    core.effects.fault("target-prepared")
    core.effects.report(2, 5 if core.live else 70, "ongoing")


@prepared.upon(TargetInputs.transfer_verified).to(ready)
def _verified(inputs: TargetInputs, core: TargetCore) -> None:
    core.effects.fault("target-transfer-done")


def _commit(inputs: TargetInputs, core: TargetCore) -> str:
    core.effects.fault("target-commit-received")
    core.journal.advance(core.record, "committing")
    core.effects.fault("target-committing")
    try:
        core.effects.start_domain()
    except Exception:  # the guest never ran: abort is still allowed (§2.8 step 4)
        inputs._resume_failed()
        return ABORTED
    inputs._resumed()
    return COMMITTED


ready.upon(TargetInputs.commit).to(committing)(_commit)


@prepared.upon(TargetInputs.commit).to(committing)
def _commit_cold(inputs: TargetInputs, core: TargetCore) -> str:
    if core.live:
        # A live commit without a verified transfer: refuse, and the refusal is final.
        inputs._resume_failed()
        return ABORTED
    return _commit(inputs, core)


@committing.upon(TargetInputs._resumed).to(committed)
def _now_committed(inputs: TargetInputs, core: TargetCore) -> None:
    core.journal.advance(core.record, COMMITTED)
    core.effects.report(5, 100, "done")
    core.effects.fault("target-committed")


@committing.upon(TargetInputs._resume_failed).to(aborted)
def _resume_failed(inputs: TargetInputs, core: TargetCore) -> None:
    _abort(core)


for _state in UNDECIDED:
    @_state.upon(TargetInputs.abort).to(aborted)
    def _aborted(inputs: TargetInputs, core: TargetCore) -> str:
        _abort(core)
        return ABORTED

    @_state.upon(TargetInputs.outcome).to(aborted)
    def _decide_now(inputs: TargetInputs, core: TargetCore) -> str:
        _abort(core)  # asked without a commit: the only safe decision is abort (§9.3)
        return ABORTED

    @_state.upon(TargetInputs.peer_lost).to(aborted)
    def _lost(inputs: TargetInputs, core: TargetCore) -> None:
        _abort(core)

greeted.upon(TargetInputs.commit).to(aborted)(lambda inputs, core: (_abort(core), ABORTED)[1])

for _final, _answer in ((committed, COMMITTED), (aborted, ABORTED)):
    _final.upon(TargetInputs.commit).loop().returns(_answer)
    _final.upon(TargetInputs.abort).loop().returns(_answer)
    _final.upon(TargetInputs.outcome).loop().returns(_answer)
    _final.upon(TargetInputs.peer_lost).loop().returns(None)
    _final.upon(TargetInputs.transfer_verified).loop().returns(None)

TargetMachine = builder.build()


def state_name(machine) -> str:
    return machine.__automat_transitioner__._state.name  # type: ignore[attr-defined]
