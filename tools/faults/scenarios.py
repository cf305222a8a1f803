"""The fault cells of migration.md §9.5 and how one trial of a cell runs.

A cell names a §9.5 row, the domain state, the fault to arm (``LDMX_MIGRATION_FAULTS`` on the
source or the target agent, see ``agent/migration/faults.py``), what happens after it (restart
the crashed agent, an operator's cancel, a signal to the ``ldmx migrate-domain`` CLI) and the
required end: ``restored`` (the source domain is the only copy, in its state before the
request — or the state the row names — with flags cleared), ``moved`` (the target domain is
the only copy) or ``split-brain`` (F34 only: both copies run and the source reports it). When
a row gives the reason line and status, the cell checks them too: the lines of the XML answer,
or the CLI's standard error and exit status for the cells driven through the real CLI.

One trial starts two agents, migrates, injects, restarts, waits until neither journal has an
open record, and then counts copies and asks each running guest's integrity oracle.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.cli.migrate import MigrateArgs, migrate_request
from agent.hypervisor.sim.hypervisor import SimHypervisor
from agent.testing import wait_for
from tests.migration import docs
from tests.migration.hosts import PASSWORD, USER, make_guest, two_hosts

RESTORED, MOVED, SPLIT = "restored", "moved", "split-brain"
FAULTS = "LDMX_MIGRATION_FAULTS"
SRC, TGT = "ldg1", "ldg-web"  # the source domain and its name on the target
FAILED = f"Domain Migration of LDom {SRC} failed"
_PROGRESS = re.compile(rf"^Migration of domain {SRC}: \d+%, ")


@dataclass(frozen=True)
class Cell:
    """One row × fault of §9.5."""

    row: str
    kind: str  # source crash | target crash | connection cut | cancel | guest | CLI signal ...
    point: str
    action: str  # the fault action armed at the point
    side: str  # which agent the fault is armed on: source | target
    expect: str  # restored | moved | split-brain
    state: str = "active"
    cancel: str = ""  # "before"/"after" the PNR on the source, "target" on the target, "force"
    lines: tuple[str, ...] | None = None  # the answer's lines ({host} = the target host)
    ok: bool | None = None  # the answer's status (success) or the CLI's exit status 0
    ends: str = ""  # the state the single copy ends in, when not the state before the request
    operands: tuple[str, ...] = ()  # tuning operands of the request (§5.3)
    cli: str = ""  # drive the real CLI ("none": no signal) and send it: INT, TERM, KILL, HUP
    exit: int | None = None  # the CLI's required exit status (None: not checked, it was killed)
    slow: bool = False  # runs only in the harness, not in the one-trial pytest run

    def required(self) -> str:
        """The row's reason line(s) and status, as the table prints them."""
        if self.cli:
            head = "CLI: " if self.cli == "none" else f"CLI SIG{self.cli}: "
            status = "killed" if self.exit is None else f"exit {self.exit}"
        else:
            head, status = "", {True: "success", False: "failure", None: "not checked"}[self.ok]
        if self.lines is None:
            return f"{head}{status}" + ("" if self.cancel != "force" else "; split-brain reported")
        shown = self.lines[:-1] if self.lines and self.lines[-1] == FAILED else self.lines
        text = " / ".join(line.format(host="<host>") for line in shown) or "no line"
        return f"{head}{text}; {status}"

    @property
    def name(self) -> str:
        kind = self.kind.replace(' ', '-')
        signalled = self.cli and self.cli != "none"
        return f"{self.row}-{kind}{'-SIG' + self.cli if signalled else ''}-{self.state}"


def lost_line(host: str = "{host}") -> str:
    return f"Lost connection to the Logical Domains Manager on target machine {host}"


LOCAL_LOST = "Lost connection to the Logical Domains Manager on this machine"
CANCELLED = f"Migration of domain {SRC} was cancelled"
LOST = (lost_line(), FAILED)
RESOLVED_ABORTED = (lost_line(), f"The migration did not complete; domain {SRC} has been "
                    f"restored on this machine", FAILED)

CELLS: tuple[Cell, ...] = (
    Cell("F10", "source crash", "source-prepared", "crash", "source", RESTORED, cli="none",
         lines=(LOCAL_LOST,), exit=1),
    Cell("F08", "connection cut", "source-prepared", "cut", "source", RESTORED, lines=LOST,
         ok=False),
    Cell("F14", "source crash", "source-round", "crash", "source", RESTORED, cli="none",
         lines=(LOCAL_LOST,), exit=1),
    Cell("F11", "connection cut", "source-round", "cut", "source", RESTORED, lines=LOST,
         ok=False),
    Cell("F21", "source crash", "source-before-commit-sent", "crash", "source", RESTORED,
         cli="none", lines=(LOCAL_LOST,), exit=1),
    Cell("F18", "connection cut", "source-sent-mig-transfer-done", "cut", "source", RESTORED,
         lines=LOST, ok=False),
    Cell("F30", "source crash", "source-after-commit-sent", "crash", "source", RESTORED,
         cli="none", lines=(LOCAL_LOST,), exit=3),
    Cell("F25", "connection cut", "source-after-commit-sent", "cut", "source", RESTORED,
         lines=RESOLVED_ABORTED, ok=False),
    Cell("F09", "target crash", "target-prepared", "crash", "target", RESTORED, lines=LOST,
         ok=False),
    Cell("F20", "target crash", "target-transfer-done", "crash", "target", RESTORED,
         lines=LOST, ok=False),
    Cell("F27", "target crash", "target-commit-received", "crash", "target", RESTORED,
         lines=RESOLVED_ABORTED, ok=False),
    Cell("F28", "target crash", "target-committing", "crash", "target", MOVED, lines=(),
         ok=True),
    Cell("F29", "target crash", "target-committed", "crash", "target", MOVED, lines=(),
         ok=True),
    Cell("F26", "connection cut", "target-commit-reply", "drop", "target", MOVED, lines=(),
         ok=True),
    Cell("F17", "cancel", "source-round-hold", "hold", "source", RESTORED, cancel="before",
         lines=(CANCELLED, FAILED), ok=False),
    Cell("F35", "cancel", "target-commit-received", "hold", "target", MOVED, cancel="after",
         lines=(), ok=True),
    Cell("F40", "connection cut", "source-sent-mig-prepare", "cut", "source", RESTORED, "bound",
         lines=LOST, ok=False),
    Cell("F41", "connection cut", "target-commit-reply", "drop", "target", MOVED, "bound",
         lines=(), ok=True),
    # -- the rows added with their own injection points ---------------------------------------
    Cell("F12", "data cut", "source-data-round", "cut", "source", RESTORED,
         lines=("Lost the data connection to target machine {host}", FAILED), ok=False),
    Cell("F13", "target crash", "target-data-round", "crash", "target", RESTORED, lines=LOST,
         ok=False),
    Cell("F15", "guest stops", "source-data-round", "halt", "source", RESTORED, ends="bound",
         lines=(f"Domain {SRC} stopped or was reset during the migration", FAILED), ok=False),
    Cell("F16", "no convergence", "", "", "source", RESTORED,
         operands=("max-downtime=1", "max-rounds=1", "on-timeout=abort"),
         lines=(f"Migration of domain {SRC} did not converge: the limit of 1 rounds was "
                f"reached", FAILED), ok=False),
    Cell("F19", "page corrupted", "target-before-ready", "corrupt", "target", RESTORED,
         lines=(f"Memory verification of domain {TGT} failed on target machine system2",
                FAILED), ok=False),
    Cell("F22", "suspend fails", "source-suspend", "fail", "source", RESTORED,
         lines=(f"Domain {SRC} could not be suspended", FAILED), ok=False),
    Cell("F23", "resume fails", "target-resume", "fail", "target", RESTORED,
         lines=(f"Domain {TGT} could not be resumed on target machine system2", FAILED),
         ok=False),
    Cell("F24", "CLI signal", "source-round-hold", "hold", "source", RESTORED, cli="INT",
         lines=(CANCELLED, FAILED), exit=1),
    Cell("F24", "CLI signal", "source-round-hold", "hold", "source", RESTORED, cli="TERM",
         lines=(CANCELLED, FAILED), exit=1, slow=True),
    Cell("F24", "CLI signal", "source-round-hold", "hold", "source", RESTORED, cli="KILL",
         slow=True),
    Cell("F31", "target machine crash", "target-committed", "poweroff", "target", MOVED,
         ends="bound", lines=(), ok=True),
    Cell("F34", "forced cancel after commit", "target-committed", "crash", "target", SPLIT,
         cancel="force", slow=True),
    Cell("F36", "cancel on the target", "source-round-hold", "hold", "source", MOVED,
         cancel="target", lines=(), ok=True, slow=True),
    Cell("F37", "CLI signal", "target-commit-received", "hold", "target", MOVED, cli="KILL"),
    Cell("F38", "CLI signal", "source-round-hold", "hold", "source", MOVED, cli="HUP", lines=(),
         exit=0, slow=True),
    Cell("F39", "release lost", "target-release", "drop", "target", MOVED, lines=(), ok=True),
)


@dataclass
class Trial:
    """What one trial of a cell ended with."""

    cell: Cell
    outcome: str  # restored | moved | split-brain | lost | duplicated | wrong-state
    copies: int
    running: int
    oracle: str  # ok, or what the guest's integrity oracle found
    answer: list[str]
    seconds: float
    note: str = ""
    status: object = None  # the answer's status (True/False), or the CLI's exit status

    @property
    def passed(self) -> bool:
        return self.outcome == self.cell.expect and self.oracle == "ok" and not self.note


def _open_records(state_dir: Path) -> int:
    path = state_dir / "migrations.db"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(str(path), timeout=5)) as db:
        rows = db.execute("SELECT state FROM migrations").fetchall()
    finals = {"completed", "aborted", "resolved-completed", "resolved-aborted", "forced",
              "split-brain", "committed"}
    return sum(1 for (state,) in rows if state not in finals)


def _record(host, role: str) -> tuple[str, str]:
    """(state, body) of ``host``'s record in ``role`` (one migration per trial), or ("", "")."""
    path = host.state / "migrations.db"
    if not path.exists():
        return "", ""
    with contextlib.closing(sqlite3.connect(str(path), timeout=5)) as db:
        row = db.execute("SELECT state, body FROM migrations WHERE role = ?",
                         (role,)).fetchone()
    return (row[0], row[1]) if row else ("", "")


def _request(cell: Cell, dst) -> bytes:
    if not cell.operands:
        return docs.migrate(SRC, dst.target, USER, PASSWORD, TGT)
    args = MigrateArgs(source=SRC, host=dst.listen[0], target=TGT, user=USER,
                       port=dst.listen[1], operands=list(cell.operands))
    return migrate_request(args, PASSWORD)


def run_trial(cell: Cell, workdir: Path) -> Trial:
    """One migration with the cell's fault; never raises for an outcome, only for a harness bug."""
    started = time.monotonic()
    env = {FAULTS: f"{cell.point}={cell.action}"} if cell.point else None
    with two_hosts(workdir, source_env=env if cell.side == "source" else None,
                   target_env=env if cell.side == "target" else None) as (src, dst):
        make_guest(src, SRC, cell.state)
        before = src.domains()[SRC]
        uuid = before["uuid"]
        box: dict = {}
        requester = (_CliRequester(cell, src, dst, workdir) if cell.cli
                     else _XmlRequester(cell, src, dst))
        requester.start(box)
        if cell.cancel == "force":
            note = _force_split_brain(src, dst)
        else:
            note = _operator(cell, src, dst) or requester.signal(src, dst)
            crashed = src if cell.side == "source" else dst
            if cell.action in ("crash", "poweroff"):
                wait_for(lambda: crashed.agent.proc.poll() is not None, timeout=60)
                crashed.agent.stop()
                crashed.start(env={FAULTS: ""})
        requester.join(box)
        settled = wait_for(lambda: _open_records(src.state) == 0 and
                           _open_records(dst.state) == 0, timeout=90, interval=0.2)
        if not settled:
            note = note or "records still open after 90 s"
        if cell.cancel == "force":
            note = note or _split_brain_reported(src, dst)
        if cell.row == "F39":
            note = note or _release_lost(dst)
        if cell.ends:
            # A guest that died (F15's halt, F31's machine crash) is marked by the guest watch,
            # once a second: let it look before judging.
            host, name = (src, SRC) if cell.expect == RESTORED else (dst, TGT)
            wait_for(lambda: host.domains().get(name, {}).get("state") == cell.ends, timeout=10)
        return _judge(cell, src, dst, uuid, before, box, note, time.monotonic() - started)


class _XmlRequester:
    """The request over the XML interface, on its own session, in a thread."""

    def __init__(self, cell: Cell, src, dst) -> None:
        self.cell, self.src, self.dst = cell, src, dst
        self.thread: threading.Thread | None = None
        self.conn = None

    def start(self, box: dict) -> None:
        self.conn = self.src.connect()
        document = _request(self.cell, self.dst)

        def migrate():
            try:
                box["answer"] = self.conn.request(document)
            except Exception as error:
                box["error"] = str(error)

        self.thread = threading.Thread(target=migrate, daemon=True)
        self.thread.start()

    def signal(self, src, dst) -> str:
        return ""

    def join(self, box: dict) -> None:
        self.thread.join(90)
        self.conn.close()


class _CliRequester:
    """``ldmx migrate-domain`` as a subprocess, signalled at the cell's moment (§8.3)."""

    def __init__(self, cell: Cell, src, dst, workdir: Path) -> None:
        self.cell, self.src, self.dst = cell, src, dst
        self.pwfile = workdir / "password"
        self.proc: subprocess.Popen | None = None

    def start(self, box: dict) -> None:
        self.pwfile.write_text(PASSWORD + "\n")
        os.chmod(self.pwfile, 0o600)
        command = [sys.executable, "-m", "agent.cli.client",
                   "-H", f"{self.src.listen[0]}:{self.src.listen[1]}", "-u", USER,
                   "--password-file", str(self.pwfile), "migrate-domain",
                   "-p", str(self.pwfile), "--target-port", str(self.dst.listen[1]),
                   SRC, f"{USER}@{self.dst.listen[0]}:{TGT}"]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def signal(self, src, dst) -> str:
        """Signal the CLI in the hold: in phase 3, or past the PNR when the target holds."""
        if self.cell.cli == "none":
            return ""
        if self.cell.side == "source":
            if not wait_for(lambda: TGT in dst.domains(), timeout=30):
                return "the target domain never appeared"
            time.sleep(0.3)  # inside the source's 3 s hold in phase 3
        elif not wait_for(lambda: _record(src, "source")[0] == "commit-sent", timeout=30,
                          interval=0.05):
            return "the source never reached commit-sent"
        self.proc.send_signal(getattr(signal, f"SIG{self.cell.cli}"))
        return ""

    def join(self, box: dict) -> None:
        try:
            out, err = self.proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        # Plain progress lines (stderr is no terminal) are "Migration of domain <ldom>: N%, ...";
        # what is left are the reason lines.
        box["cli"] = self.proc.returncode
        box["stdout"] = out
        # "ldmx: <error>" is the client's own diagnostic of a broken session.
        box["lines"] = [ln for ln in err.splitlines()
                        if ln and not _PROGRESS.match(ln) and not ln.startswith("ldmx: ")]


def _operator(cell: Cell, src, dst) -> str:
    """The cancel cells: cancel at the held point, on the source or the target; check the answer."""
    if cell.cancel in ("before", "target"):
        wait_for(lambda: TGT in dst.domains(), timeout=30)
        time.sleep(0.3)
        if cell.cancel == "target":  # F36, M91: refused on the target; nothing changes
            answer = dst.request(docs.cancel(TGT))
            expected = [f"The migration of domain {TGT} can be cancelled only on the source "
                        f"machine"]
            return "" if docs.lines(answer) == expected else f"target cancel: {docs.lines(answer)}"
        answer = src.request(docs.cancel(SRC))
        return "" if docs.status(answer) == "success" else f"cancel refused: {docs.lines(answer)}"
    if cell.cancel != "after":
        return ""
    # after the PNR: wait for the target to hold in its commit, then expect a refusal (§8.4)
    wait_for(lambda: _record(src, "source")[0] == "commit-sent", timeout=30, interval=0.05)
    answer = src.request(docs.cancel(SRC))
    expected = (f"The migration of domain {SRC} has passed the point of no return and can no "
                "longer be cancelled")
    return "" if docs.lines(answer) == [expected] else f"cancel answered {docs.lines(answer)}"


def _force_split_brain(src, dst) -> str:
    """F34: the target commits and its agent dies (its guest runs on); the operator forces
    the source back (§8.4); then the target comes back and answers ``committed`` (§9.4)."""
    if not wait_for(lambda: dst.agent.proc.poll() is not None, timeout=60):
        return "the target agent did not crash"
    dst.agent.stop()
    if not wait_for(lambda: src.domains()[SRC]["flags"].endswith("e"), timeout=30):
        return "the source never showed e"
    forced = src.request(docs.cancel(SRC, force=True))
    if not docs.lines(forced)[0].startswith(f"Warning: Domain {SRC} was restored without "
                                            f"confirmation"):
        return f"cancel -f answered {docs.lines(forced)}"
    dst.start(env={FAULTS: ""})
    return ""


def _split_brain_reported(src, dst) -> str:
    """§9.4: the source's record ends ``split-brain`` and both agents log it at critical."""
    wait_for(lambda: _record(src, "source")[0] == SPLIT, timeout=60, interval=0.2)
    state = _record(src, "source")[0]
    if state != SPLIT:
        return f"the source record ended {state}, not split-brain"
    for host in (src, dst):  # text log lines read "... [namespace#critical] message"
        if not any("#critical]" in ln and ("split" in ln.lower() or SRC in ln or TGT in ln)
                   for ln in host.agent.log_lines):
            return f"{host.name} logged no critical line about the split brain"
    return ""


def _release_lost(dst) -> str:
    """F39: the target's record stays committed, never released (kept until retention ends)."""
    state, body = _record(dst, "target")
    if state != "committed" or '"released": true' in body:
        return f"the target record is {state} {'released' if 'released' in body else ''}"
    return ""


def _judge(cell, src, dst, uuid, before, box, note, seconds) -> Trial:
    where = []
    for host in (src, dst):
        for name, props in host.domains().items():
            if props.get("uuid") == uuid:
                where.append((host, name, props))
    running = [w for w in where if w[2].get("state") in ("active", "suspended")]
    status, answer = _answer(cell, box)
    if not where:
        outcome = "lost"
    elif cell.expect == SPLIT and len(where) == 2 and len(running) == 2:
        outcome = SPLIT
    elif len(where) > 1:
        outcome = "duplicated"
    else:
        host, name, props = where[0]
        outcome = RESTORED if host is src else MOVED
        wanted = cell.ends or before["state"]
        if outcome == RESTORED and not cell.ends and (props["state"], props["flags"]) != (
                before["state"], before["flags"]):
            outcome, note = "wrong-state", note or f"source ended {props['state']} {props['flags']}"
        if (outcome == MOVED and props["flags"] not in ("-n----", "------")) or \
                props["state"] != wanted or props["flags"][-1] != "-":
            outcome, note = "wrong-state", note or f"{name} ended {props['state']} {props['flags']}"
    note = note or _reason_problem(cell, status, answer, dst.listen[0])
    oracle = "ok"
    for host, name, props in running:
        hv = SimHypervisor(host.state / "guests")
        problem = hv.verify(name) if name in hv.list() else "no guest process"
        if problem:
            oracle = f"{name}: {problem}"
    return Trial(cell, outcome, len(where), len(running), oracle, answer, seconds, note, status)


def _answer(cell: Cell, box: dict) -> tuple[object, list[str]]:
    if cell.cli:
        return box.get("cli"), box.get("lines", [])
    if "answer" in box:
        return docs.status(box["answer"]) == "success", docs.lines(box["answer"])
    return None, [box.get("error", "")]


def _reason_problem(cell: Cell, status, answer: list[str], host: str) -> str:
    """What is wrong with the reason lines and status against the row, or ""."""
    if cell.lines is not None:
        wanted = [line.format(host=host) for line in cell.lines]
        if answer != wanted:
            return f"answer {answer}, not {wanted}"
    if cell.cli and cell.exit is not None and status != cell.exit:
        return f"CLI exit status {status}, not {cell.exit}"
    if not cell.cli and cell.ok is not None and status is not cell.ok:
        return f"answer status {status}, not {'success' if cell.ok else 'failure'}"
    return ""
