"""Crash durability, reduced: a few SIGKILLs in a mixed XML workload (tools/load/durability.py).

After each restart the state equals the last acknowledged one, or that state with the in-flight
request applied completely — never half-applied (DESIGN "Nothing is lost").
"""

from tools.load.durability import run


def test_state_after_kill_9_is_the_last_acknowledged_state_or_the_in_flight_request_applied_whole(tmp_path):
    figures = run(kills=5, seed=7, workdir=tmp_path)
    assert figures["kills"] == 5
    assert figures["restarts_failed"] == 0
    assert figures["mismatches"] == []
    assert figures["acknowledged"] > 0
    # the oracle's model of each request agrees with the agent while nothing crashes
    assert figures["model_disagreements"] == 0
