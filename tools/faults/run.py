"""Run the §9.5 fault matrix: every cell of ``scenarios.CELLS``, N trials each, and write a table.

Usage: ``python -m tools.faults.run [--trials 5] [--only F28,F30] [--out docs/migration-faults.md]``

For each cell the table gives the required end, what every trial ended with, the domains lost
and duplicated (summed over trials), the integrity oracle's verdict and the mean time. The
exit status is 1 when any trial did not end as the cell requires.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tools.faults.scenarios import CELLS, run_trial


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated rows (F28,F30)")
    parser.add_argument("--out", default="", help="markdown table to write")
    parser.add_argument("--json", default="", help="raw results to write")
    args = parser.parse_args(argv)
    wanted = set(filter(None, args.only.split(",")))
    cells = [c for c in CELLS if not wanted or c.row in wanted]
    rows, raw, failed = [], [], 0
    for cell in cells:
        trials = []
        for number in range(args.trials):
            with tempfile.TemporaryDirectory(prefix=f"ldmx-fault-{cell.row}-") as tmp:
                trial = run_trial(cell, Path(tmp))
            trials.append(trial)
            status = "ok" if trial.passed else "FAIL"
            print(f"{cell.name} #{number + 1}: {trial.outcome} oracle={trial.oracle} "
                  f"{trial.seconds:.1f}s {status} {trial.note}", file=sys.stderr, flush=True)
            raw.append({"cell": cell.name, "row": cell.row, "expect": cell.expect,
                        "outcome": trial.outcome, "copies": trial.copies,
                        "running": trial.running, "oracle": trial.oracle,
                        "answer": trial.answer, "seconds": round(trial.seconds, 2),
                        "note": trial.note})
        failed += sum(1 for t in trials if not t.passed)
        outcomes = Counter(t.outcome for t in trials)
        lost = sum(1 for t in trials if t.copies == 0)
        duplicated = sum(1 for t in trials if t.copies > 1 or t.running > 1)
        oracle = "clean" if all(t.oracle == "ok" for t in trials) else "FAILED"
        mean = sum(t.seconds for t in trials) / len(trials)
        verdict = "pass" if all(t.passed for t in trials) else "FAIL"
        rows.append(f"| {cell.row} | {cell.kind} | {cell.state} | `{cell.point}={cell.action}` "
                    f"| {cell.expect} | {', '.join(f'{k} ×{v}' for k, v in outcomes.items())} "
                    f"| {lost} | {duplicated} | {oracle} | {mean:.1f} s | {verdict} |")
    table = ["| Row | Fault | Domain | Injection | Required | Trials ended | Lost | Duplicated "
             "| Oracle | Mean time | Verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|", *rows]
    print("\n".join(table))
    if args.out:
        Path(args.out).write_text("\n".join(table) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
