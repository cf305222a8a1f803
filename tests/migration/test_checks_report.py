"""The check table, report order, -f and the response line shapes of §6.0 and §5.6."""

import pytest

from agent.migration.checks import (TABLE, CheckResult, apply_force, merge, protocol_check,
                                    report_lines, self_target_check)

FAILED = "Domain Migration of LDom ldg1 failed"
WOULD_FAIL = "Domain Migration of LDom ldg1 would fail if attempted"


def r(check, klass, text, rank=0):
    result = {"hard": "fail", "overridable": "fail", "warning": "warn", "notice": "notice"}[klass]
    return CheckResult(check, klass, result, (text,), rank)


def test_the_table_lists_k01_to_k14_in_report_order_with_the_sides_of_6_0():
    assert [c.id for c in TABLE] == [f"K{i:02d}" for i in range(1, 15)]
    assert [c.order for c in TABLE] == list(range(1, 15))
    sides = {c.id: c.side for c in TABLE}
    assert [k for k, s in sides.items() if s == "both"] == ["K01", "K04", "K05", "K11", "K12"]
    assert [k for k, s in sides.items() if s == "source"] == ["K03", "K06", "K07", "K08"]
    for check in TABLE:  # a side that evaluates nothing has no rule, and vice versa
        assert (check.source is not None) == (check.side in ("source", "both"))
        assert (check.target is not None) == (check.side in ("target", "both"))


@pytest.mark.parametrize("state, unchecked", [
    ("active", []),
    ("bound", ["K05", "K06"]),
    ("inactive", ["K05", "K06", "K11", "K12", "K13"]),
])
def test_checks_not_run_for_a_state_are_those_of_6_11_and_6_12(state, unchecked):
    assert [c.id for c in TABLE if not c.classes(state)] == unchecked


def test_classes_per_state_follow_6_0():
    by_id = {c.id: c for c in TABLE}
    assert by_id["K14"].classes("active") == ("overridable",)
    assert by_id["K14"].classes("bound") == ("overridable",)
    assert by_id["K14"].classes("inactive") == ("warning",)
    assert by_id["K07"].classes("inactive") == ("warning",)
    assert by_id["K11"].classes("bound") == ("warning",)
    assert by_id["K06"].classes("active") == ("notice",)
    assert "overridable" in by_id["K09"].classes("active")
    assert by_id["K09"].classes("bound") == ("hard",)


def test_merge_orders_by_check_then_by_rule_and_keeps_the_source_line_first():
    # M51: K01 firmware lines: source machine first (§6.15 part 3); K12 rule 7 after rule 1
    source = [r("K12", "hard", "provides", 7), r("K01", "hard", "fw system1", 3),
              r("K03", "hard", "state", 1)]
    target = [r("K01", "hard", "vocabulary", 2), r("K01", "hard", "fw system2", 3),
              r("K12", "hard", "volume", 1), r("K02", "hard", "name", 1)]
    assert [x.lines[0] for x in merge(source, target)] == [
        "vocabulary", "fw system1", "fw system2", "name", "state", "volume", "provides"]


def test_force_turns_only_overridable_failures_into_warnings():
    # M52
    results = [r("K09", "hard", "capacity"), r("K09", "overridable", "frequency"),
               r("K14", "warning", "Warning: mac")]
    forced = apply_force(results, True)
    assert [(x.result, x.lines) for x in forced] == [
        ("fail", ("capacity",)), ("warn", ("Warning: frequency",)), ("warn", ("Warning: mac",))]
    assert apply_force(results, False) == results


def test_a_real_run_prints_the_first_failure_of_both_lines_and_the_failed_line():
    # M51, §6.0 real run
    two = CheckResult("K01", "hard", "fail", ("line one", " line two"), 6)
    results = [r("K10", "hard", "memory"), two, r("K13", "warning", "Warning: hybrid")]
    assert report_lines(results, "ldg1", dry_run=False) == (
        False, ["line one", " line two", FAILED])


def test_a_dry_run_lists_failures_then_warnings_and_notices_then_the_summary():
    # M51, §5.6, C174
    results = [r("K14", "warning", "Warning: mac"), r("K12", "hard", "volume"),
               CheckResult("K06", "notice", "notice", ("legacy a", "legacy b"), 1),
               r("K09", "hard", "cpu")]
    assert report_lines(results, "ldg1", dry_run=True) == (False, [
        "cpu", "volume", "Notice: legacy a\nlegacy b", "Warning: mac", WOULD_FAIL])


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_run_without_failures_carries_only_warnings_and_notices(dry_run):
    # §5.6 successful response
    results = [r("K13", "warning", "Warning: hybrid"), r("K11", "warning", "Warning: crypto")]
    assert report_lines(results, "ldg1", dry_run) == (
        True, ["Warning: crypto", "Warning: hybrid"])


def test_a_failure_before_any_check_comes_first():
    # §6.0: the target could not be checked; source results follow
    lead = ["Failed to establish a connection with the Logical Domains Manager on target "
            "machine system2"]
    results = [r("K07", "warning", "Warning: io")]
    assert report_lines(results, "ldg1", True, lead=lead) == (
        False, lead + ["Warning: io", WOULD_FAIL])
    assert report_lines(results, "ldg1", False, lead=lead) == (False, lead + [FAILED])


@pytest.mark.parametrize("local, peer, ok", [
    ((1, 2), (1, 2), True), ((1, 2), (2, 3), True), ((2, 3), (1, 2), True),
    ((1, 2), (3, 4), False), ((3, 4), (1, 2), False),
])
def test_protocols_one_apart_migrate_and_two_apart_fail_k01(local, peer, ok):
    # M23
    result = protocol_check(local, peer, host="system2", local_version="3.0.0.2",
                            peer_version="4.1.0.0")
    assert (result is None) is ok
    if not ok:
        assert (result.check, result.klass, result.result) == ("K01", "hard", "fail")
        assert result.lines == (
            "The Logical Domains Manager on system2 (version 4.1.0.0) is not compatible with "
            "the version on this machine (3.0.0.2)",)


def test_a_target_that_is_this_machine_is_refused():
    # M22
    assert self_target_check("system2", "SIM-1", "SIM-2") is None
    assert self_target_check("localhost", "SIM-1", "SIM-1").lines == (
        "Target machine localhost is this machine; a domain cannot be migrated to the machine "
        "it is on",)


def test_results_travel_as_dicts_with_their_overridable_mark():
    # §6.0: check id, class, result, whether overridable, lines
    result = r("K09", "overridable", "frequency", 2)
    row = result.to_dict()
    assert row["overridable"] is True and row["check"] == "K09" and row["lines"] == ["frequency"]
    assert CheckResult.from_dict(row) == result
