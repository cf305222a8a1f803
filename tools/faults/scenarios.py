"""The fault cells of migration.md §9.5 and how one trial of a cell runs.

A cell names a §9.5 row, the domain state, the fault to arm (``LDMX_MIGRATION_FAULTS`` on the
source or the target agent, see ``agent/migration/faults.py``), what happens after it (restart
the crashed agent, cancel on the source) and the required end: ``restored`` (the source domain
is the only copy, in its state before the request, flags cleared) or ``moved`` (the target
domain is the only copy). One trial starts two agents, migrates, injects, restarts, waits
until neither journal has an open record, and then counts copies and asks each running
guest's integrity oracle.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.hypervisor.sim.hypervisor import SimHypervisor
from agent.testing import wait_for
from tests.migration import docs
from tests.migration.hosts import PASSWORD, USER, make_guest, two_hosts

RESTORED, MOVED = "restored", "moved"
FAULTS = "LDMX_MIGRATION_FAULTS"


@dataclass(frozen=True)
class Cell:
    """One row × fault of §9.5."""

    row: str
    kind: str  # source crash | target crash | connection cut | cancel
    point: str
    action: str  # the fault action armed at the point
    side: str  # which agent the fault is armed on: source | target
    expect: str  # restored | moved
    state: str = "active"
    cancel: str = ""  # "before" (must cancel) or "after" (must be refused) the PNR

    @property
    def name(self) -> str:
        return f"{self.row}-{self.kind.replace(' ', '-')}-{self.state}"


CELLS: tuple[Cell, ...] = (
    Cell("F10", "source crash", "source-prepared", "crash", "source", RESTORED),
    Cell("F08", "connection cut", "source-prepared", "cut", "source", RESTORED),
    Cell("F14", "source crash", "source-round", "crash", "source", RESTORED),
    Cell("F11", "connection cut", "source-round", "cut", "source", RESTORED),
    Cell("F21", "source crash", "source-before-commit-sent", "crash", "source", RESTORED),
    Cell("F18", "connection cut", "source-before-commit-sent", "cut", "source", RESTORED),
    Cell("F30", "source crash", "source-after-commit-sent", "crash", "source", RESTORED),
    Cell("F25", "connection cut", "source-after-commit-sent", "cut", "source", RESTORED),
    Cell("F09", "target crash", "target-prepared", "crash", "target", RESTORED),
    Cell("F20", "target crash", "target-transfer-done", "crash", "target", RESTORED),
    Cell("F27", "target crash", "target-commit-received", "crash", "target", RESTORED),
    Cell("F28", "target crash", "target-committing", "crash", "target", MOVED),
    Cell("F29", "target crash", "target-committed", "crash", "target", MOVED),
    Cell("F26", "connection cut", "target-commit-reply", "drop", "target", MOVED),
    Cell("F17", "cancel", "source-round-hold", "hold", "source", RESTORED, cancel="before"),
    Cell("F35", "cancel", "target-commit-received", "hold", "target", MOVED, cancel="after"),
    Cell("F40", "connection cut", "source-prepared", "cut", "source", RESTORED, "bound"),
    Cell("F41", "connection cut", "target-commit-reply", "drop", "target", MOVED, "bound"),
)


@dataclass
class Trial:
    """What one trial of a cell ended with."""

    cell: Cell
    outcome: str  # restored | moved | lost | duplicated | wrong-state
    copies: int
    running: int
    oracle: str  # ok, or what the guest's integrity oracle found
    answer: list[str]
    seconds: float
    note: str = ""

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


def run_trial(cell: Cell, workdir: Path) -> Trial:
    """One migration with the cell's fault; never raises for an outcome, only for a harness bug."""
    started = time.monotonic()
    env = {FAULTS: f"{cell.point}={cell.action}"}
    with two_hosts(workdir, source_env=env if cell.side == "source" else None,
                   target_env=env if cell.side == "target" else None) as (src, dst):
        make_guest(src, "ldg1", cell.state)
        before = src.domains()["ldg1"]
        uuid = before["uuid"]
        box: dict = {}
        conn = src.connect()

        def migrate():
            try:
                box["answer"] = conn.request(docs.migrate("ldg1", dst.target, USER, PASSWORD,
                                                          "ldg-web"))
            except Exception as error:
                box["error"] = str(error)

        thread = threading.Thread(target=migrate, daemon=True)
        thread.start()
        note = _operator(cell, src, dst)
        crashed = src if cell.side == "source" else dst
        if cell.action == "crash":
            wait_for(lambda: crashed.agent.proc.poll() is not None, timeout=60)
            crashed.agent.stop()
            crashed.start(env={FAULTS: ""})
        thread.join(90)
        conn.close()
        settled = wait_for(lambda: _open_records(src.state) == 0 and
                           _open_records(dst.state) == 0, timeout=90, interval=0.2)
        if not settled:
            note = note or "records still open after 90 s"
        return _judge(cell, src, dst, uuid, before, box, note, time.monotonic() - started)


def _operator(cell: Cell, src, dst) -> str:
    """The cancel cells: cancel on the source at the held point; check the answer."""
    if not cell.cancel:
        return ""
    if cell.cancel == "before":
        wait_for(lambda: "ldg-web" in dst.domains(), timeout=30)
        time.sleep(0.3)
        answer = src.request(docs.cancel("ldg1"))
        return "" if docs.status(answer) == "success" else f"cancel refused: {docs.lines(answer)}"
    # after the PNR: wait for the target to hold in its commit, then expect a refusal (§8.4)
    wait_for(lambda: _source_record_state(src) in ("commit-sent",), timeout=30, interval=0.05)
    answer = src.request(docs.cancel("ldg1"))
    expected = ("The migration of domain ldg1 has passed the point of no return and can no "
                "longer be cancelled")
    return "" if docs.lines(answer) == [expected] else f"cancel answered {docs.lines(answer)}"


def _source_record_state(src) -> str:
    path = src.state / "migrations.db"
    if not path.exists():
        return ""
    with contextlib.closing(sqlite3.connect(str(path), timeout=5)) as db:
        row = db.execute("SELECT state FROM migrations WHERE role = 'source'").fetchone()
    return row[0] if row else ""


def _judge(cell, src, dst, uuid, before, box, note, seconds) -> Trial:
    where = []
    for host in (src, dst):
        for name, props in host.domains().items():
            if props.get("uuid") == uuid:
                where.append((host, name, props))
    running = [w for w in where if w[2].get("state") in ("active", "suspended")]
    answer = docs.lines(box["answer"]) if "answer" in box else [box.get("error", "")]
    if not where:
        outcome = "lost"
    elif len(where) > 1:
        outcome = "duplicated"
    else:
        host, name, props = where[0]
        outcome = RESTORED if host is src else MOVED
        if outcome == RESTORED and (props["state"], props["flags"]) != (before["state"],
                                                                        before["flags"]):
            outcome, note = "wrong-state", note or f"source ended {props['state']} {props['flags']}"
        if outcome == MOVED and props["flags"] not in ("-n----", "------"):
            outcome, note = "wrong-state", note or f"target ended {props['state']} {props['flags']}"
    oracle = "ok"
    for host, name, props in running:
        hv = SimHypervisor(host.state / "guests")
        problem = hv.verify(name) if name in hv.list() else "no guest process"
        if problem:
            oracle = f"{name}: {problem}"
    return Trial(cell, outcome, len(where), len(running), oracle, answer, seconds, note)
