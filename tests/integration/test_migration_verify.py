"""§10.7 between two real agents: the source's EOS digest equals the target's, and the
``migration_verify`` key (the F19 cell itself is in ``test_migration_faults.py``)."""

from __future__ import annotations

import re

from agent.hypervisor.sim.hypervisor import SimHypervisor
from agent.migration.faults import ENV
from tests.migration import docs
from tests.migration.hosts import PASSWORD, USER, make_guest, two_hosts

SOURCE_LINE = re.compile(r"memory digest of (\S+) at the suspend: ([0-9a-f]{32})")
TARGET_LINE = re.compile(r"memory verification of migration (\S+): source ([0-9a-f]{32}), "
                         r"target ([0-9a-f]{32}), vCPU [0-9a-f]{32}; (compared|not compared)")


def test_live_migration_digests_are_equal_on_both_machines(tmp_path):
    """§10.7, M104: a ``web`` guest writing through the copy; the digest the source read at
    the suspend, the one it sent and the target's own are the same, and were compared."""
    with two_hosts(tmp_path, source_args=("--guest-workload", "web")) as (src, dst):
        make_guest(src, "ldg1", "active")
        answer = src.request(docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert docs.status(answer) == "success", docs.lines(answer)
        sent = SOURCE_LINE.findall(src.agent.log())
        seen = TARGET_LINE.findall(dst.agent.log())
        assert len(sent) == 1 and len(seen) == 1, (sent, seen)
        (mid, digest), (target_mid, source, target, how) = sent[0], seen[0]
        assert mid == target_mid and how == "compared"
        assert digest == source == target != "0" * 32


def test_verify_off_logs_the_digests_and_lets_a_corrupted_page_through(tmp_path):
    """§10.7 ``migration_verify = off`` on the target: the page corrupted before ready (the
    F19 fault) is not compared, the migration completes, the log shows both digests differ,
    and the guest's own integrity oracle finds the bad page."""
    config = tmp_path / "off.toml"
    config.write_text('[migration]\nmigration_verify = "off"\n')
    with two_hosts(tmp_path, target_env={ENV: "target-before-ready=corrupt"},
                   target_args=("--config", str(config))) as (src, dst):
        make_guest(src, "ldg1", "active")
        answer = src.request(docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert docs.status(answer) == "success", docs.lines(answer)
        (_, source, target, how), = TARGET_LINE.findall(dst.agent.log())
        assert how == "not compared" and source != target
        assert SimHypervisor(dst.state / "guests").verify("ldg1") is not None
