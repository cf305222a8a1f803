"""The source side of one migration as an Automat machine (spec migration.md §2.3–§2.10, §8, §9).

Sans-IO: inputs are the control replies and channel events the Twisted driver
(``agent.migration.driver``) observes; behaviours write the journal first and then ask the
driver, through :class:`SourceEffects`, to send a message, start the data plane, or change
the domain. Nothing here opens a socket, starts a thread or reads a clock.

States follow the phases: ``connecting`` (intake) → ``hello`` → ``checking`` (phase 1) →
``preparing`` (phase 2) → ``transferring`` (phases 3–4, live only) → ``finalizing`` (waiting
for ``ready``) → ``handoff`` (commit sent: past the point of no return) → ``done``; any
failure or cancel before the point of no return goes to ``aborted``, which restores the source
domain; a lost reply after it goes to ``unresolved`` (flag ``e``) until an outcome arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from automat import TypeMachineBuilder

from agent.migration import messages
from agent.migration.journal import SOURCE_FINAL, Journal, Record

CANCELLED = "cancelled"


class SourceEffects(Protocol):
    """What the source machine asks of the world (implemented by the Twisted driver)."""

    def send(self, message: str, body: dict) -> None: ...
    def start_transfer(self, prepared: dict) -> None: ...
    def stop_transfer(self) -> None: ...
    def set_flag(self, flag: str) -> None: ...
    def set_suspended(self, suspended: bool) -> None: ...
    def hold_devices(self) -> None: ...
    def give_back_devices(self) -> None: ...
    def remove_copy(self) -> None: ...
    def report(self, phase: int, percent: int) -> None: ...
    def finish(self, ok: bool, lines: list[str], outcome: str) -> None: ...
    def resolve(self) -> None: ...
    def fault(self, point: str) -> None: ...


@dataclass
class SourceCore:
    """What every behaviour shares: the journal, this migration's record and the effects."""

    journal: Journal
    record: Record
    effects: SourceEffects
    live: bool  # an active domain: phases 3 and 4 run


class SourceInputs(Protocol):
    """The events of a source migration (named after the control messages of §2.14)."""

    def connected(self) -> None: ...
    def hello_answered(self, body: dict) -> None: ...
    def checks_passed(self) -> None: ...
    def prepared(self, body: dict) -> None: ...
    def transferred(self) -> None: ...
    def target_ready(self) -> None: ...
    def committed(self) -> None: ...
    def target_aborted(self, lines: list[str]) -> None: ...
    def failed(self, lines: list[str]) -> None: ...
    def dry_run_ended(self, ok: bool, lines: list[str]) -> None: ...
    def cancel(self) -> str | None: ...
    def peer_lost(self, lines: list[str]) -> None: ...
    def outcome(self, answer: str) -> None: ...
    def force(self) -> None: ...


builder = TypeMachineBuilder(SourceInputs, SourceCore)
connecting = builder.state("connecting")
hello = builder.state("hello")
checking = builder.state("checking")
preparing = builder.state("preparing")
transferring = builder.state("transferring")
finalizing = builder.state("finalizing")
handoff = builder.state("handoff")
unresolved = builder.state("unresolved")
done = builder.state("done")
aborted = builder.state("aborted")

BEFORE_PNR = (connecting, hello, checking, preparing, transferring, finalizing)
STATE_BY_NAME = {s.name: s for s in (*BEFORE_PNR, handoff, unresolved, done, aborted)}


def _abort(core: SourceCore, lines: list[str], outcome: str, notify: bool = True) -> None:
    """The single undo path before the point of no return: journal, tell the target, restore."""
    rec = core.record
    state = outcome if outcome in SOURCE_FINAL else "aborted"  # cancelled is an abort
    core.journal.advance(rec, state, outcome=outcome, error=(lines or [""])[0])
    core.effects.stop_transfer()
    if notify:
        core.effects.send("mig-abort", {"reason": outcome})
    if rec.data.get("suspended"):
        core.effects.set_suspended(False)  # resumes the guest the final copy paused
    core.effects.give_back_devices()
    core.effects.set_flag("")
    core.effects.finish(False, lines, outcome)


@connecting.upon(SourceInputs.connected).to(hello)
def _send_hello(inputs: SourceInputs, core: SourceCore) -> None:
    core.effects.send("mig-hello", {})


@hello.upon(SourceInputs.hello_answered).to(checking)
def _send_check(inputs: SourceInputs, core: SourceCore, body: dict) -> None:
    core.journal.advance(core.record, "intake", peer_host=body.get("hostname", ""))
    if not core.record.data.get("dry_run"):
        core.effects.set_flag("s")  # from the start of phase 1 (§2.4)
    core.effects.send("mig-check", {})


@checking.upon(SourceInputs.dry_run_ended).to(aborted)
def _dry_run_end(inputs: SourceInputs, core: SourceCore, ok: bool, lines: list[str]) -> None:
    core.journal.advance(core.record, "aborted", outcome="dry-run")
    core.effects.send("mig-abort", {"reason": "dry-run"})
    core.effects.finish(ok, lines, "dry-run")


@checking.upon(SourceInputs.checks_passed).to(preparing)
def _send_prepare(inputs: SourceInputs, core: SourceCore) -> None:
    core.effects.report(1, 2 if core.live else 30)
    if core.live:
        core.effects.hold_devices()  # §2.5: crypto units leave the guest, reserved to it
    core.effects.send("mig-prepare", {})


@preparing.upon(SourceInputs.prepared).to(transferring)
def _start_transfer(inputs: SourceInputs, core: SourceCore, body: dict) -> None:
    core.journal.advance(core.record, "prepared")
    core.effects.fault("source-prepared")
    if core.live:
        core.effects.report(2, 5)
        core.effects.start_transfer(body)
    else:
        core.effects.report(2, 70)
        inputs.transferred()  # a bound or inactive domain goes from phase 2 to phase 5


@transferring.upon(SourceInputs.transferred).to(finalizing)
def _transfer_done(inputs: SourceInputs, core: SourceCore) -> None:
    if core.live:
        # The data plane paused the guest for the final copy; record it before telling anyone.
        core.journal.advance(core.record, "suspended", suspended=True)
        core.effects.set_suspended(True)
        core.effects.report(4, 95)
        core.effects.send("mig-transfer-done", {})
    else:
        inputs.target_ready()


@finalizing.upon(SourceInputs.target_ready).to(handoff)
def _commit(inputs: SourceInputs, core: SourceCore) -> None:
    core.effects.fault("source-before-commit-sent")
    if core.live:
        core.effects.report(4, 99)
    # Phase 5 is announced before the point of no return is written: a waiting CLI that then
    # loses this agent must assume the outcome may be either (exit 3, F30), never that the
    # migration surely failed. A crash between the two leaves it saying "unresolved" for a
    # migration that restart restores: the cautious error.
    core.effects.report(5, 99 if core.live else 70)
    core.journal.advance(core.record, "commit-sent")  # the point of no return (§2.8)
    core.effects.fault("source-after-commit-sent")
    core.effects.send("mig-commit", {})


def _complete(core: SourceCore, outcome: str) -> None:
    # The target committed: its copy is the only one allowed to run, so ours goes.
    core.effects.remove_copy()
    core.journal.advance(core.record, outcome, outcome=outcome)
    core.effects.send("mig-release", {})
    core.effects.finish(True, [], outcome)


@handoff.upon(SourceInputs.committed).to(done)
def _committed(inputs: SourceInputs, core: SourceCore) -> None:
    _complete(core, "completed")


@handoff.upon(SourceInputs.target_aborted).to(aborted)
def _target_aborted(inputs: SourceInputs, core: SourceCore, lines: list[str]) -> None:
    _abort(core, lines, "aborted", notify=False)


@handoff.upon(SourceInputs.peer_lost).to(unresolved)
def _lost_after_pnr(inputs: SourceInputs, core: SourceCore, lines: list[str]) -> None:
    core.journal.advance(core.record, "unresolved", error=(lines or [""])[0])
    core.effects.set_flag("e")
    core.effects.resolve()


@handoff.upon(SourceInputs.cancel).to(handoff)
def _refuse_cancel(inputs: SourceInputs, core: SourceCore) -> str | None:
    return messages.past_pnr(core.record.data["domain"])


@unresolved.upon(SourceInputs.cancel).to(unresolved)
def _cancel_unresolved(inputs: SourceInputs, core: SourceCore) -> str | None:
    core.effects.resolve()
    return None


@unresolved.upon(SourceInputs.outcome).to(unresolved)
def _outcome(inputs: SourceInputs, core: SourceCore, answer: str) -> None:
    if answer == "committed":
        inputs.committed()
    elif answer == "aborted":
        inputs.target_aborted([])


@unresolved.upon(SourceInputs.committed).to(done)
def _resolved_completed(inputs: SourceInputs, core: SourceCore) -> None:
    core.effects.set_flag("")
    _complete(core, "resolved-completed")


@unresolved.upon(SourceInputs.target_aborted).to(aborted)
def _resolved_aborted(inputs: SourceInputs, core: SourceCore, lines: list[str]) -> None:
    _abort(core, lines, "resolved-aborted", notify=False)


@unresolved.upon(SourceInputs.force).to(aborted)
def _forced(inputs: SourceInputs, core: SourceCore) -> None:
    _abort(core, [], "forced", notify=False)


for _state in BEFORE_PNR:
    @_state.upon(SourceInputs.failed).to(aborted)
    def _failed(inputs: SourceInputs, core: SourceCore, lines: list[str]) -> None:
        _abort(core, lines, "aborted")

    @_state.upon(SourceInputs.peer_lost).to(aborted)
    def _lost(inputs: SourceInputs, core: SourceCore, lines: list[str]) -> None:
        _abort(core, lines, "aborted")

    @_state.upon(SourceInputs.cancel).to(aborted)
    def _cancelled(inputs: SourceInputs, core: SourceCore) -> str | None:
        ldom = core.record.data["domain"]
        _abort(core, [messages.cancelled(ldom)], CANCELLED)
        return None

# Late events after the end change nothing (a reply racing a cancel, a second peer loss).
for _state in (done, aborted):
    for _input in (SourceInputs.failed, SourceInputs.peer_lost, SourceInputs.target_aborted):
        _state.upon(_input).loop().returns(None)
    for _input in (SourceInputs.committed, SourceInputs.transferred, SourceInputs.target_ready):
        _state.upon(_input).loop().returns(None)
    _state.upon(SourceInputs.prepared).loop().returns(None)
    _state.upon(SourceInputs.hello_answered).loop().returns(None)
    _state.upon(SourceInputs.outcome).loop().returns(None)
    _state.upon(SourceInputs.checks_passed).loop().returns(None)
unresolved.upon(SourceInputs.peer_lost).loop().returns(None)

SourceMachine = builder.build()


def state_for(record: Record):
    """The machine state a stored source record restarts in (§9.2, §9.3).

    Before the point of no return the machine restarts where an abort is still possible
    (``preparing``, so the restart path can feed ``failed``); at ``commit-sent`` or later
    without a final state it restarts ``unresolved``.
    """
    if record.state in ("commit-sent", "unresolved"):
        return unresolved
    return preparing


def state_name(machine) -> str:
    """The current state's name (for listings and tests)."""
    return machine.__automat_transitioner__._state.name  # type: ignore[attr-defined]
