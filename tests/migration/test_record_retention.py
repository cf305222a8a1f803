"""Finished outcome records expire after ``migration_record_retention`` (migration.md §2.14,
Appendix B; §9.5 F39: a target record whose ``mig-release`` was lost expires by retention)."""

from __future__ import annotations

import types

import pytest

from agent.config import ConfigError, load
from agent.migration.coordinator import Migrations
from agent.migration.journal import SOURCE, TARGET, Journal, Record

DAY = 86400.0


class WallClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _journal(tmp_path) -> tuple[Journal, WallClock]:
    clock = WallClock()
    return Journal(str(tmp_path), wall_clock=clock), clock


def _ended(journal: Journal, mid: str, role: str, state: str, **data) -> Record:
    record = journal.create(Record(mid, role, "prepared" if role == TARGET else "intake", data))
    return journal.advance(record, state)


def test_a_record_gets_its_end_time_when_it_becomes_final(tmp_path):
    journal, clock = _journal(tmp_path)
    record = journal.create(Record("m1", TARGET, "prepared", {}))
    assert "ended_at" not in journal.get("m1", TARGET).data
    journal.advance(record, "committed")
    assert journal.get("m1", TARGET).data["ended_at"] == clock.now


def test_only_final_records_older_than_the_retention_are_dropped(tmp_path):
    journal, clock = _journal(tmp_path)
    _ended(journal, "old-unreleased", TARGET, "committed")  # F39: the release never came
    journal.create(Record("open", TARGET, "prepared", {}))
    clock.now += 7 * DAY + 1
    _ended(journal, "recent", SOURCE, "completed")
    journal.store_token("old-source", "secret")
    _ended(journal, "old-source", SOURCE, "aborted")
    clock.now += 7 * DAY + 1

    dropped = journal.expire(7 * DAY)

    assert sorted(dropped) == ["old-source", "old-unreleased", "recent"]
    assert [r.id for r in journal.all_records()] == ["open"]
    assert journal.load_token("old-source") is None  # the token stops working with its record


def test_nothing_is_dropped_within_the_retention(tmp_path):
    journal, clock = _journal(tmp_path)
    _ended(journal, "m1", TARGET, "committed")
    clock.now += 7 * DAY - 1
    assert journal.expire(7 * DAY) == []
    assert journal.get("m1", TARGET) is not None


def test_the_coordinator_keeps_an_unconfirmed_forced_recovery(tmp_path):
    """§9.4: after `cancel-operation -f` the source keeps asking the target; its record stays
    until the answer came, whatever its age."""
    journal, clock = _journal(tmp_path)
    _ended(journal, "forced", SOURCE, "forced")
    _ended(journal, "confirmed", SOURCE, "forced", confirmed=True)
    clock.now += 30 * DAY
    migrations = Migrations(reactor=None, manager=None, hypervisor=None, journal=journal,
                            server_name="system1", publish=lambda *a: None,
                            record_retention=7 * DAY)
    assert migrations.expire_records() == ["confirmed"]
    assert journal.get("forced", SOURCE) is not None


def test_the_coordinator_keeps_the_record_holding_a_listed_final_block(tmp_path):
    """M88 outlives the retention: the final MIGRATION block of a domain that still exists is
    kept in its record; once that domain is gone, the record expires."""
    journal, clock = _journal(tmp_path)
    _ended(journal, "moved", TARGET, "committed", tdomain="ldg1", uuid="u-1",
           final_block=[["progress", "100"]])
    clock.now += 8 * DAY
    summaries = {"ldg1": "u-1"}

    def summary(name):
        from agent.ldm import LdmError
        if name not in summaries:
            raise LdmError(f"no domain {name}")
        return types.SimpleNamespace(uuid=summaries[name])

    manager = types.SimpleNamespace(summary=summary)
    migrations = Migrations(reactor=None, manager=manager, hypervisor=None, journal=journal,
                            server_name="system2", publish=lambda *a: None,
                            record_retention=7 * DAY)
    migrations._load_blocks()
    assert migrations.expire_records() == []
    del summaries["ldg1"]
    assert migrations.expire_records() == ["moved"]


@pytest.mark.parametrize("text, seconds", [("7d", 7 * DAY), ("12h", 43200.0), ("90s", 90.0),
                                           (3600, 3600.0), ("30m", 1800.0)])
def test_the_retention_key_takes_a_duration(tmp_path, text, seconds):
    value = f'"{text}"' if isinstance(text, str) else str(text)
    path = tmp_path / "ldmx.toml"
    path.write_text(f"[migration]\nmigration_record_retention = {value}\n")
    assert load(path).migration_record_retention == seconds


@pytest.mark.parametrize("bad", ['"soon"', '"-1d"', "0", "true"])
def test_a_bad_retention_is_refused_naming_the_key(tmp_path, bad):
    path = tmp_path / "ldmx.toml"
    path.write_text(f"[migration]\nmigration_record_retention = {bad}\n")
    with pytest.raises(ConfigError, match="migration_record_retention"):
        load(path)
