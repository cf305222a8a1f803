"""Load with migrations, reduced (tools/load/mixed.py; issue 8 item 3).

Eight sessions (four working, four registered for all events, TCP + SASL and Unix socket) on
two agents for 20 s while the running guest migrates once: no request fails, every listener
sees each acknowledged scratch add-domain/remove-domain event exactly once, the migration
succeeds and the guest's integrity oracle is clean on the target.
"""

import collections

from tools.load.mixed import Listener, percentile, run


def test_mixed_load_with_a_migration_loses_nothing(tmp_path):
    f = run(sessions=8, seconds=20, migrations=1, listeners=4, seed=3, workdir=tmp_path)
    assert f["failures"] == [] and f["failed_requests"] == 0
    assert f["sessions_broken"] == 0 and f["hung_sessions"] == 0
    assert f["requests"] > 100
    for kind in ("list-domain", "list-bindings", "list-constraints", "add-domain",
                 "add-variable", "set-variable", "remove-domain"):
        assert f["kinds"][kind]["count"] > 0, kind
    # every listener heard something to check, and heard all of it exactly once
    assert all(c["scratch_events_expected"] > 0 for c in f["listener_checks"])
    assert {c["transport"] for c in f["listener_checks"]} == {"tcp", "unix"}
    assert (f["events_missing"], f["events_duplicated"], f["events_unexpected"]) == (0, 0, 0)
    assert f["listener_errors"] == []
    assert [m["status"] for m in f["migrations"]] == ["success"]
    guest = f["guest"]
    assert guest["expected_on"] == "system2" and guest["listed_on_holder"]
    assert not guest["listed_on_other"] and not guest["left_on_other_hv"]
    assert guest["same_uuid"] and guest["hv_state"] == "running"
    assert guest["oracle_problem"] is None
    assert f["scratch_leftovers"] == []
    assert all(f["agents_alive"].values()) and not any(f["tracebacks_in_logs"].values())
    for rss in f["rss_kib"].values():
        assert rss["start"] > 0 and rss["middle"] > 0 and rss["end"] > 0
    assert f["ok"]


def test_the_listener_check_reports_missing_duplicated_and_unexpected_events():
    """The event check itself: a lost, a doubled and a stray event are each counted."""
    ear = Listener.__new__(Listener)
    ear.index, ear.local, ear.events, ear.error = 0, True, 4, None
    ear.host = type("H", (), {"name": "system1"})()
    ear.seen = collections.Counter({("add-domain", "load-1-1"): 2, ("add-domain", "load-9-9"): 1,
                                    ("add-domain", "load-2-1"): 1})
    expected = collections.Counter({("add-domain", "load-1-1"): 1, ("remove-domain", "load-1-1"): 1})
    result = ear.check(expected, uncertain={("add-domain", "load-2-1")})
    assert result["missing"] == ["remove-domain load-1-1"]
    assert result["duplicated"] == ["add-domain load-1-1"]
    assert result["unexpected"] == ["add-domain load-9-9"]  # load-2-1 was in doubt, not stray
    assert not ear.has_all(expected)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert percentile([7.0], 99) == 7.0
