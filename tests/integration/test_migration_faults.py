"""The fault matrix of migration.md §9.5, one trial per cell (the full run, ≥5 trials per cell,
is ``python -m tools.faults.run``; its table is in docs/migration-faults.md).

Each cell runs a real migration between two agents, injects its fault, restarts what crashed,
waits until neither agent has an open record, and requires: the single copy where §9.5 says
(restored on the source, or moved to the target), none lost, none duplicated, and a clean
integrity oracle in the running guest (M14, M97, M100, M101).
"""

import pytest

from tools.faults.scenarios import CELLS, run_trial


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_fault_cell_ends_as_the_spec_requires(tmp_path, cell):
    """M97 for the cell's row; M14 (never two running copies, never zero copies)."""
    trial = run_trial(cell, tmp_path)
    assert trial.copies == 1, f"{trial.copies} copies: {trial.answer} {trial.note}"
    assert trial.running <= 1
    assert trial.outcome == cell.expect, (trial.outcome, trial.answer, trial.note)
    assert trial.oracle == "ok"
    assert not trial.note
