"""Checklist items of the CLI's migration views and exit status: flags (§7.1), the STATUS row and
MIGRATION statistics (§7.3, §10.10), the wait for a resolution (§9.3)."""

from __future__ import annotations

import io

import pytest

from agent.cli import listing
from agent.cli.answers import Answer
from agent.cli.migrate import MigrateArgs, Runner
from tests.ldm.fakes import make_manager

G = 1 << 30
SPEC_ORDER = ("migration-id", "role", "peer", "peer-ldom", "phase", "status", "outcome",
              "time-elapsed", "setup-time", "round", "memory-total", "memory-processed",
              "memory-remaining", "data-total", "data-processed", "data-remaining", "transferred",
              "constant-pages", "normal-pages", "normal-bytes", "page-size", "dirty-rate",
              "throughput", "compression", "compression-ratio", "throttle", "downtime-budget",
              "expected-downtime", "downtime", "switchover", "error")  # migration.md §10.10


def test_m81_flag_letters_and_positions():
    """M81: position 2 n (running), 3 d/r, 4 c, 5 v, 6 s/t/e; '-' elsewhere (§7.1)."""
    m = make_manager(seed=3)
    m.set_vcpu("primary", 8)
    m.set_memory("primary", 16 * G)
    m.add_vsw("primary", "vsw0")
    m.add_domain("web1")
    m.set_vcpu("web1", 2)
    m.set_memory("web1", 1 * G)
    m.bind_domain("web1")
    assert m.summary("primary").flags == "-n-cv-"
    assert m.summary("web1").flags == "------"
    m.start_domain("web1")
    for letter in "ste":
        m.set_migration_flag("web1", letter)
        assert m.summary("web1").flags == "-n---" + letter
    m.set_migration_flag("web1", "")
    m.memory_dr("web1", True)
    assert m.summary("web1").flags == "-nr---"


@pytest.mark.parametrize("flags, words", [
    ("-n---s", "normal,migration-source"),
    ("-----t", "migration-target"),
    ("-n---e", "normal,migration-error"),
    ("-n-cv-", "normal,control,vio-service"),
    ("-td---", "transition,delayed-reconfig"),
    ("--r---", "memory-dr"),
])
def test_m81_long_flag_words(flags, words):
    """M81: -l -p spells the §7.1 words, joined by commas."""
    assert listing.flag_words(flags) == words


def _info(role: str) -> dict[str, str]:
    return {"status": "ongoing", "progress": "47%", "role": role, "flags": "-n---s",
            "peer": "system2" if role == "source" else "system1",
            "peer-ldom": "ldg-web" if role == "source" else "ldg1"}


def test_m82_status_row_on_the_source_names_the_target():
    """M82: the source shows OPERATION PROGRESS TARGET TARGET-LDOM and the migration row."""
    title, lines = listing.status_section(_info("source"))
    assert title == "STATUS"
    assert lines[0].split() == ["OPERATION", "PROGRESS", "TARGET", "TARGET-LDOM"]
    assert lines[1].split() == ["migration", "47%", "system2", "ldg-web"]


def test_m82_status_row_on_the_target_names_the_source():
    """M82: the target shows SOURCE SOURCE-LDOM."""
    info = dict(_info("target"), flags="-----t")
    _, lines = listing.status_section(info)
    assert lines[0].split() == ["OPERATION", "PROGRESS", "SOURCE", "SOURCE-LDOM"]
    assert lines[1].split() == ["migration", "47%", "system1", "ldg1"]


def test_m83_parseable_long_status_has_the_statistics_in_spec_order():
    """M83: -l -p -o status gives the §10.10 keys in their order, raw units (ms, bytes)."""
    info = {k: str(i + 1) for i, k in enumerate(SPEC_ORDER)}
    info.update(_info("source"))
    info.update({"status": "ongoing", "outcome": "", "error": "x", "compression": "none",
                 "switchover": "budget"})
    _, line = listing.parseable_status(info, long=True)
    keys = [field.split("=", 1)[0] for field in line.split("|")[1:]]
    # §7.3's example: op, progress, role, peer, peer-ldom, then the rest in §10.10 order.
    assert keys[:5] == ["op", "progress", "role", "peer", "peer-ldom"]
    expected = [k for k in SPEC_ORDER if info.get(k) and k not in ("role", "peer", "peer-ldom")]
    assert keys[5:] == expected
    values = dict(field.split("=", 1) for field in line.split("|")[1:])
    assert values["time-elapsed"] == info["time-elapsed"]  # ms, as given (§10.10 units)
    assert values["memory-total"] == info["memory-total"]  # bytes


def test_m83_human_migration_block_shows_every_statistic_in_spec_order_with_units():
    """M83: the -l -o status MIGRATION block shows every §10.10 key, in its order (§7.3's
    `id` label for migration-id), with the §7.3 units: sizes with one decimal, rates in /s,
    times in seconds with one decimal, downtimes in milliseconds."""
    info = {k: "1" for k in SPEC_ORDER}
    info.update({"migration-id": "3f0c", "role": "source", "peer": "system2",
                 "peer-ldom": "ldg-web", "status": "ongoing", "outcome": "completed",
                 "time-elapsed": "12412", "setup-time": "400", "memory-total": str(8 * G),
                 "memory-processed": str(9.2 * G), "memory-remaining": str(310.5 * (1 << 20)),
                 "data-total": str(8 * G), "data-processed": str(4 * G),
                 "data-remaining": str(4 * G), "transferred": str(6.1 * G),
                 "normal-bytes": str(2 * G), "page-size": "8192", "dirty-rate": "9120",
                 "throughput": str(611.2 * (1 << 20)), "compression": "zlib",
                 "compression-ratio": "0.42", "throttle": "0", "downtime-budget": "300",
                 "expected-downtime": "512", "downtime": "42", "switchover": "budget",
                 "error": "x"})
    title, lines = listing.migration_section(info)
    assert title == "    MIGRATION"
    shown = dict((line.split(None, 1) + [""])[:2] for line in lines)
    labels = [line.split()[0] for line in lines]
    assert labels == ["id", *SPEC_ORDER[1:]]
    assert all(line.startswith("        ") for line in lines)
    assert shown["time-elapsed"] == "12.4s" and shown["setup-time"] == "0.4s"
    assert shown["memory-total"] == "8.0G" and shown["memory-processed"] == "9.2G"
    assert shown["memory-remaining"] == "310.5M" and shown["transferred"] == "6.1G"
    assert shown["data-processed"] == "4.0G" and shown["normal-bytes"] == "2.0G"
    assert shown["page-size"] == "8.0K"
    assert shown["dirty-rate"] == "9120 pages/s" and shown["throughput"] == "611.2M/s"
    assert shown["throttle"] == "0%" and shown["compression-ratio"] == "0.42"
    assert shown["downtime-budget"] == "300ms" and shown["expected-downtime"] == "512ms"
    assert shown["downtime"] == "42ms"


def test_m83_human_block_leaves_out_keys_without_a_value():
    """M83 (§7.3): a key with no value yet is not shown; the rest keep their order."""
    _, lines = listing.migration_section({"role": "target", "round": "3", "downtime": "7"})
    assert [line.split()[0] for line in lines] == ["role", "round", "downtime"]


# -- M103: the CLI's exit status after the ambiguous window -------------------------------------

def _runner() -> tuple[Runner, io.StringIO]:
    err = io.StringIO()
    args = MigrateArgs(source="ldg1", host="system2", target="system2")
    runner = Runner(args=args, send=lambda d: None, receive=lambda t: None,
                    open_session=lambda: (lambda d: b""), err=err)
    return runner, err


def test_m103_resolved_completed_prints_nothing_and_exits_0():
    """M103: after resolved-completed the answer is a success with no line: exit 0."""
    runner, err = _runner()
    runner.progress.update({"phase": "5", "outcome": "resolved-completed", "status": "done"})
    assert runner.finish(Answer(ok=True, messages=[], results=[])) == 0
    assert err.getvalue() == ""


def test_m103_resolved_aborted_prints_the_restored_lines_and_exits_1():
    """M103: resolved-aborted: lost line, restored line, failed line; exit 1."""
    runner, err = _runner()
    runner.progress.update({"phase": "5", "outcome": "resolved-aborted", "status": "failed"})
    lines = ["Lost connection to the Logical Domains Manager on target machine system2",
             "The migration did not complete; domain ldg1 has been restored on this machine",
             "Domain Migration of LDom ldg1 failed"]
    assert runner.finish(Answer(ok=False, messages=lines, results=[])) == 1
    assert err.getvalue().splitlines() == lines


def test_m103_still_unresolved_prints_the_unresolved_lines_and_exits_3():
    """M103: still unresolved after migration_resolve_wait: the three lines, exit 3."""
    runner, err = _runner()
    runner.progress.update({"phase": "5", "outcome": "unresolved", "status": "failed"})
    lines = ["Lost contact with target machine system2 after handing over domain ldg1",
             "The outcome is not known yet; it will be settled automatically when system2 "
             "can be reached", "Domain Migration of LDom ldg1 failed"]
    assert runner.finish(Answer(ok=False, messages=lines, results=[])) == 3
    assert err.getvalue().splitlines() == lines
