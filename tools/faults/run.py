"""Run the §9.5 fault matrix: every cell of ``scenarios.CELLS``, N trials each, and write a table.

Usage: ``python -m tools.faults.run [--trials 5] [--only F28,F30] [--out table.md]
[--json raw.json]``, or ``--merge a.json,b.json --out table.md`` to build one table from the
raw results of runs split with ``--only`` (shards run side by side: most of a trial is waiting).

For each cell the table gives the injection, the required end and reason line/status, what
every trial ended with, the domains lost and duplicated (summed over trials), the integrity
oracle's verdict, the mean time and the verdict; below it, every failed trial's problem. The
exit status is 1 when any trial did not end as the cell requires.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tools.faults.scenarios import CELLS, SPLIT, Cell, Trial, run_trial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated rows or cell names (F28,F30)")
    parser.add_argument("--out", default="", help="markdown table to write")
    parser.add_argument("--json", default="", help="raw results to write")
    parser.add_argument("--merge", default="", help="comma-separated raw results to tabulate")
    args = parser.parse_args(argv)
    if args.merge:
        results = _load(args.merge.split(","))
    else:
        wanted = set(filter(None, args.only.split(",")))
        cells = [c for c in CELLS if not wanted or c.row in wanted or c.name in wanted]
        results = [(cell, _run(cell, args.trials)) for cell in cells]
    table = tabulate(results)
    print("\n".join(table))
    if args.out:
        Path(args.out).write_text("\n".join(table) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps([_raw(t) for _, ts in results for t in ts],
                                              indent=1))
    return 1 if any(not t.passed for _, ts in results for t in ts) else 0


def _run(cell: Cell, count: int) -> list[Trial]:
    trials = []
    for number in range(count):
        with tempfile.TemporaryDirectory(prefix=f"ldmx-fault-{cell.row}-") as tmp:
            trial = run_trial(cell, Path(tmp))
        trials.append(trial)
        status = "ok" if trial.passed else "FAIL"
        print(f"{cell.name} #{number + 1}: {trial.outcome} oracle={trial.oracle} "
              f"{trial.seconds:.1f}s {status} {trial.note}", file=sys.stderr, flush=True)
    return trials


def _raw(trial: Trial) -> dict:
    return {"cell": trial.cell.name, "row": trial.cell.row, "expect": trial.cell.expect,
            "outcome": trial.outcome, "copies": trial.copies, "running": trial.running,
            "oracle": trial.oracle, "answer": trial.answer, "status": trial.status,
            "seconds": round(trial.seconds, 2), "note": trial.note}


def _load(paths: list[str]) -> list[tuple[Cell, list[Trial]]]:
    """The trials of earlier runs, by cell, in the order of ``CELLS``."""
    by_name: dict[str, list[Trial]] = {}
    cells = {c.name: c for c in CELLS}
    for path in paths:
        for r in json.loads(Path(path).read_text()):
            cell = cells[r["cell"]]
            by_name.setdefault(cell.name, []).append(Trial(
                cell, r["outcome"], r["copies"], r["running"], r["oracle"], r["answer"],
                r["seconds"], r["note"], r.get("status")))
    return [(c, by_name[c.name]) for c in CELLS if c.name in by_name]


def tabulate(results: list[tuple[Cell, list[Trial]]]) -> list[str]:
    """The markdown table of the cells' trials, then each failed trial's problem."""
    rows, problems = [], []
    for cell, trials in results:
        for number, trial in enumerate(trials, 1):
            if not trial.passed:
                problems.append(f"* {cell.name} #{number}: ended {trial.outcome}, oracle "
                                f"{trial.oracle}; {trial.note or 'no further note'}")
        outcomes = Counter(t.outcome for t in trials)
        lost = sum(1 for t in trials if t.copies == 0)
        # F34's two running copies are the operator's forced choice (§9.4), not a duplicate.
        duplicated = sum(1 for t in trials if (t.copies > 1 or t.running > 1)
                         and t.outcome != SPLIT)
        oracle = "clean" if all(t.oracle == "ok" for t in trials) else "FAILED"
        mean = sum(t.seconds for t in trials) / len(trials)
        verdict = "pass" if all(t.passed for t in trials) else "FAIL"
        injection = f"`{cell.point}={cell.action}`" if cell.point else \
            f"operands `{' '.join(cell.operands)}`"
        rows.append(f"| {cell.row} | {cell.kind} | {cell.state} | {injection} "
                    f"| {cell.expect}{f' ({cell.ends})' if cell.ends else ''} "
                    f"| {cell.required()} "
                    f"| {', '.join(f'{k} ×{v}' for k, v in outcomes.items())} "
                    f"| {lost} | {duplicated} | {oracle} | {mean:.1f} s | {verdict} |")
    table = ["| Row | Fault | Domain | Injection | Required end | Required reason; status "
             "| Trials ended | Lost | Duplicated | Oracle | Mean time | Verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|", *rows]
    if problems:
        table += ["", "Failed trials:", "", *problems]
    return table


if __name__ == "__main__":
    sys.exit(main())
