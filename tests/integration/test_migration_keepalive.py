"""Keepalives find a frozen peer on a quiet control channel (migration.md §9.1, §9.2, M98).

Two real agents with a short keepalive (0.5 s × 3). During phase 3 the control channel is
quiet (the data plane does the talking), so without keepalives a frozen peer would go
unnoticed there. One agent is frozen with SIGSTOP (its TCP connections stay open, so only
silence can reveal it); the other must declare it lost within interval × count plus slack
and take the before-PNR path: abort and restore. After SIGCONT nothing is duplicated.
"""

from __future__ import annotations

import signal
import time

from agent.testing import wait_for
from tests.integration.test_migration_e2e import config_file, guests, migrate_in_background
from tests.migration import docs
from tests.migration.hosts import PASSWORD, USER, lost_or_duplicated, make_guest, two_hosts

INTERVAL, COUNT = 0.5, 3
SHORT = f"[migration]\nmigration_keepalive_interval = {INTERVAL}\nmigration_keepalive_count = {COUNT}\n"
SLACK = 3.0  # scheduling on a loaded 2-core machine; still far below any reply deadline


def test_source_detects_a_frozen_target_in_phase_3_and_restores(tmp_path):
    """M98, §9.2: the target is frozen in phase 3; the source declares it lost within
    interval × count + slack, answers with the lost-connection line and restores its domain
    (active, -n----, guest intact). After SIGCONT the target, finding its session gone,
    destroys its copy: one domain with the UUID remains, running once."""
    hold = {"LDMX_MIGRATION_FAULTS": "source-round-hold=hold"}
    with two_hosts(tmp_path, source_env=hold,
                   source_args=config_file(tmp_path, "src", SHORT),
                   target_args=config_file(tmp_path, "dst", SHORT)) as (src, dst):
        make_guest(src, "ldg1", "active")
        uuid = src.domains()["ldg1"]["uuid"]
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD, "ldg-web"))
        assert wait_for(lambda: "ldg-web" in dst.domains(), timeout=20)
        assert src.domains()["ldg1"]["flags"] == "-n---s"
        dst.agent.proc.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            thread.join(INTERVAL * COUNT + SLACK)
            detected = time.monotonic() - frozen
            assert not thread.is_alive(), "the source did not notice the frozen target"
            assert detected <= INTERVAL * COUNT + SLACK
            host = dst.listen[0]
            assert docs.lines(box["answer"]) == [
                f"Lost connection to the Logical Domains Manager on target machine {host}",
                "Domain Migration of LDom ldg1 failed"]
            restored = src.domains()["ldg1"]
            assert (restored["state"], restored["flags"]) == ("active", "-n----")
            assert guests(src).status("ldg1").state == "running"
        finally:
            dst.agent.proc.send_signal(signal.SIGCONT)
        conn.close()
        assert wait_for(lambda: "ldg-web" not in dst.domains(), timeout=15)
        assert lost_or_duplicated(src, dst, uuid) == (1, 1)
        assert guests(src).verify("ldg1") is None


def test_target_detects_a_frozen_source_in_phase_3_and_destroys_its_copy(tmp_path):
    """M98, §9.2: the source is frozen in phase 3; the target declares its control session
    lost within interval × count + slack (while the source's TCP connection is still open)
    and destroys the receiving domain on its own. After SIGCONT the source finds the channel
    gone and restores its domain: one copy, running once."""
    hold = {"LDMX_MIGRATION_FAULTS": "source-round-hold=hold"}
    with two_hosts(tmp_path, source_env=hold,
                   source_args=config_file(tmp_path, "src", SHORT),
                   target_args=config_file(tmp_path, "dst", SHORT)) as (src, dst):
        make_guest(src, "ldg1", "active")
        uuid = src.domains()["ldg1"]["uuid"]
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD, "ldg-web"))
        assert wait_for(lambda: "ldg-web" in dst.domains(), timeout=20)
        src.agent.proc.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            assert wait_for(lambda: "ldg-web" not in dst.domains(),
                            timeout=INTERVAL * COUNT + SLACK)
            assert time.monotonic() - frozen <= INTERVAL * COUNT + SLACK
        finally:
            src.agent.proc.send_signal(signal.SIGCONT)
        thread.join(30)
        conn.close()
        assert docs.status(box["answer"]) != "success"
        assert wait_for(lambda: src.domains()["ldg1"]["flags"] == "-n----", timeout=15)
        assert src.domains()["ldg1"]["state"] == "active"
        assert lost_or_duplicated(src, dst, uuid) == (1, 1)
        assert guests(src).verify("ldg1") is None
