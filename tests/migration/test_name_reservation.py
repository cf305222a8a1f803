"""The target name that passed mig-check is reserved until the operation ends (migration.md
§6.13, M21): the target's driver with a real manager and journal, no sockets."""

from __future__ import annotations

import pytest

from agent.ldm import LdmError
from agent.migration.journal import TARGET, Journal, Record
from agent.migration.targetrun import TargetRun
from tests.ldm.fakes import make_manager

REFUSAL = "Domain name ldg-web is reserved by an incoming migration"


class Svc:
    """The few parts of the coordinator a target run uses before phase 2."""

    def __init__(self, journal: Journal, results: list[dict]) -> None:
        self.journal = journal
        self.manager = make_manager()
        self.results = results
        self.data_port = None
        self.ended_runs: list = []

    def target_checks(self, body: dict) -> list[dict]:
        return self.results

    def ended(self, run) -> None:
        self.ended_runs.append(run)


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path)
    yield j
    j.close()


def run_for(journal: Journal, results: list[dict] | None = None) -> tuple[TargetRun, Svc]:
    svc = Svc(journal, results or [])
    record = journal.create(Record("m1", TARGET, "greeted", {}))
    return TargetRun(svc, record), svc


def check(run: TargetRun, **request) -> None:
    run.handle("mig-check", {"description": {}, "request": {"target-name": "ldg-web",
                                                            "dry-run": False, **request}})


def test_m21_a_checked_name_is_refused_to_add_domain_until_the_migration_ends(journal):
    """M21: after a passing mig-check, add-domain ldg-web gives the §6.13 line; once the
    migration has ended (here: aborted by the source) the name is free again."""
    run, svc = run_for(journal)
    check(run)
    with pytest.raises(LdmError) as refused:
        svc.manager.add_domain("ldg-web")
    assert str(refused.value) == REFUSAL
    assert "ldg-web" not in svc.manager.domain_names()
    run.handle("mig-abort", {})
    svc.manager.add_domain("ldg-web")


def test_m21_a_dry_run_reserves_nothing(journal):
    """M21, §2.4 item 5: a dry run creates or reserves nothing."""
    run, svc = run_for(journal)
    check(run, **{"dry-run": True})
    svc.manager.add_domain("ldg-web")


def test_m21_a_failed_check_reserves_nothing_but_a_forced_overridable_one_does(journal):
    """M21: only a mig-check that passed (after -f) reserves the name."""
    failure = {"check": "K09", "class": "overridable", "result": "fail", "overridable": True,
               "lines": ["x"], "rank": 0}
    run, svc = run_for(journal, [failure])
    check(run)
    svc.manager.add_domain("ldg-web")
    svc.manager.remove_domain("ldg-web")
    check(run, force=True)
    with pytest.raises(LdmError, match="reserved by an incoming migration"):
        svc.manager.add_domain("ldg-web")


def test_m21_other_names_are_not_affected(journal):
    run, svc = run_for(journal)
    check(run)
    svc.manager.add_domain("ldg2")
