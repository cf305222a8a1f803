"""migrate-domain between two real agents over loopback (migration.md §2, §8, §11; ldm-xml §7).

Each test starts two agents (``system1``, ``system2``) as subprocesses with their own
simulated machines, runs a migration over the XML interface, and checks what a user would
see on both sides: states, flags, identity, the guest's own integrity oracle, events.
"""

from __future__ import annotations

import base64
import threading

import pytest

from agent.hypervisor.sim.hypervisor import SimHypervisor
from agent.testing import wait_for
from tests.migration import docs
from tests.migration.hosts import PASSWORD, USER, make_guest, two_hosts



def guests(host) -> SimHypervisor:
    return SimHypervisor(host.state / "guests")


def stable(domains: dict) -> dict:
    """A listing without the values that change with time."""
    return {name: {k: v for k, v in props.items() if k not in ("uptime", "util")}
            for name, props in domains.items()}


def migrate_in_background(host, document: bytes):
    """Send a migrate-domain on its own session; return (thread, box with the answer, conn)."""
    conn = host.connect()
    box: dict = {}

    def run():
        try:
            box["answer"] = conn.request(document)
        except Exception as error:  # the session may be cut on purpose
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box, conn


def test_live_migration_with_rename_keeps_identity_and_memory(tmp_path):
    """§11.3, M4, M12, M15, M16, C171, C172: ldg1 runs on system2 as ldg-web, same UUID,
    MAC and host ID, the guest's integrity oracle is clean, the source copy is gone; the
    requesting session sees 0% first, 100% done last, then migrate-domain, then the answer."""
    with two_hosts(tmp_path) as (src, dst):
        make_guest(src, "ldg1", "active")
        before = src.domains()["ldg1"]
        conn = src.connect()
        conn.request(docs.reg_all_events())
        answer = conn.request(docs.migrate("ldg1", dst.target, USER, PASSWORD, "ldg-web"))
        conn.close()
        assert (docs.status(answer), docs.lines(answer)) == ("success", [])
        after = dst.domains()
        assert "ldg1" not in src.domains() and "ldg1" not in after
        moved = after["ldg-web"]
        assert (moved["state"], moved["flags"]) == ("active", "-n----")
        for key in ("uuid", "Address", "hostid", "ncpu", "memory"):
            assert moved[key] == before[key], key
        assert guests(dst).status("ldg-web").state == "running"
        assert guests(dst).verify("ldg-web") is None  # the guest proves no write was lost
        assert "ldg1" not in guests(src).list()
        events = [docs.event_props(e) for e in conn.events]
        progress = [p for action, p in events if action == "migration-process"]
        assert progress[0]["progress"] == "0%" and progress[0]["status"] == "ongoing"
        assert (progress[-1]["progress"], progress[-1]["status"]) == ("100%", "done")
        assert [int(p["progress"].rstrip("%")) for p in progress] == sorted(
            int(p["progress"].rstrip("%")) for p in progress)  # M84: never decreases
        assert events[-1][0] == "migrate-domain"
        assert b"password" not in answer and PASSWORD.encode() not in answer  # C171, M40
        secret_b64 = base64.b64encode(PASSWORD.encode()).decode()
        token = (src.state / "migration-tokens")
        tokens = [p.read_text() for p in token.iterdir()] if token.is_dir() else []
        for host in (src, dst):  # M40: no log holds the password, its base64, or a token
            log = host.agent.log()
            assert PASSWORD not in log and secret_b64 not in log
            assert not any(t and t in log for t in tokens)


@pytest.mark.parametrize("state", ["bound", "inactive"])
def test_cold_migration_moves_the_definition(tmp_path, state):
    """M4, M12, §2.9: a bound or inactive domain arrives in the same state with its flags
    cleared and the source copy removed; no guest runs on either side."""
    with two_hosts(tmp_path) as (src, dst):
        make_guest(src, "ldg1", state)
        uuid = src.domains()["ldg1"]["uuid"]
        answer = src.request(docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert docs.status(answer) == "success", docs.lines(answer)
        moved = dst.domains()["ldg1"]
        assert (moved["state"], moved["flags"], moved["uuid"]) == (state, "------", uuid)
        assert "ldg1" not in src.domains()
        assert guests(dst).list() == [] and guests(src).list() == []


def test_dry_run_changes_nothing(tmp_path):
    """M2, C174: -n answers after phase 1, both machines unchanged, no progress events."""
    with two_hosts(tmp_path) as (src, dst):
        make_guest(src, "ldg1", "active")
        before = (stable(src.domains()), stable(dst.domains()))
        conn = src.connect()
        conn.request(docs.reg_all_events())
        answer = conn.request(docs.migrate("ldg1", dst.target, USER, PASSWORD, options="-n"))
        conn.close()
        assert docs.status(answer) == "success", docs.lines(answer)
        assert (stable(src.domains()), stable(dst.domains())) == before
        assert not [e for e in conn.events if b"migration-process" in e]


def test_wrong_password_fails_at_intake_and_touches_nothing(tmp_path):
    """F02, M34: the authentication line and the summary; the source domain is unchanged."""
    with two_hosts(tmp_path) as (src, dst):
        make_guest(src, "ldg1", "active")
        answer = src.request(docs.migrate("ldg1", dst.target, USER, "wrong"))
        assert docs.lines(answer) == [
            f"Authentication to the Logical Domains Manager on {dst.listen[0]} failed",
            "Domain Migration of LDom ldg1 failed"]
        assert src.domains()["ldg1"]["flags"] == "-n----"
        assert "ldg1" not in dst.domains()


def test_unreachable_target_fails_at_intake(tmp_path):
    """F01: the connect line; nothing changed."""
    with two_hosts(tmp_path) as (src, dst):
        make_guest(src, "ldg1", "bound")
        answer = src.request(docs.migrate("ldg1", "127.0.0.1:1", USER, PASSWORD))
        assert docs.lines(answer)[0] == ("Failed to establish a connection with the Logical "
                                         "Domains Manager on target machine 127.0.0.1")
        assert src.domains()["ldg1"]["flags"] == "------"


def test_cancel_in_phase_3_restores_the_source(tmp_path):
    """§11.5, M3, M90, M91, F17, C175: during the transfer the source shows s and the target
    t; cancel on the target is refused, on the source it succeeds; the waiting request gets
    the cancelled line; the source runs unchanged; the target domain is gone; a second
    cancel says no migration is in progress."""
    hold = {"LDMX_MIGRATION_FAULTS": "source-round-hold=hold"}
    with two_hosts(tmp_path, source_env=hold) as (src, dst):
        make_guest(src, "ldg1", "active")
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD, "ldg-web"))
        assert wait_for(lambda: "ldg-web" in dst.domains(), timeout=20)
        assert src.domains()["ldg1"]["flags"] == "-n---s"
        assert (dst.domains()["ldg-web"]["state"], dst.domains()["ldg-web"]["flags"]) == (
            "bound", "-----t")
        # C155, C157, M87: while the migration runs, list-domain carries its keys on both sides.
        for listed, reporter in ((src.domains()["ldg1"], "system1"),
                                 (dst.domains()["ldg-web"], "system2")):
            assert listed["status"] == "ongoing" and listed["source"] == reporter
            assert listed["progress"].endswith("%")
        assert "status" not in dst.domains()["primary"]
        refused = dst.request(docs.cancel("ldg-web"))
        assert docs.lines(refused) == [
            "The migration of domain ldg-web can be cancelled only on the source machine"]
        done = src.request(docs.cancel("ldg1"))
        assert docs.status(done) == "success", docs.lines(done)
        thread.join(30)
        conn.close()
        assert docs.lines(box["answer"]) == ["Migration of domain ldg1 was cancelled",
                                             "Domain Migration of LDom ldg1 failed"]
        restored = src.domains()["ldg1"]
        assert (restored["state"], restored["flags"]) == ("active", "-n----")
        assert guests(src).status("ldg1").state == "running"
        assert guests(src).verify("ldg1") is None
        assert wait_for(lambda: "ldg-web" not in dst.domains(), timeout=10)
        assert docs.lines(src.request(docs.cancel("ldg1"))) == [
            "No migration is in progress for domain ldg1"]


def test_losing_the_requesting_session_before_the_pnr_cancels(tmp_path):
    """C176, M93 (SIGKILL row): the requester's session closes mid-transfer; the source is
    restored and the target domain removed."""
    hold = {"LDMX_MIGRATION_FAULTS": "source-round-hold=hold"}
    with two_hosts(tmp_path, source_env=hold) as (src, dst):
        make_guest(src, "ldg1", "active")
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert wait_for(lambda: "ldg1" in dst.domains(), timeout=20)
        # The client is gone (kill -9). abort() leaves releasing the socket to the thread
        # blocked reading it: closing it from here let that read take the bytes of the next
        # polling session, which reused the descriptor number (its TLS handshake then failed
        # with "unexpected message", or a record with "bad record mac").
        conn.abort()
        thread.join(timeout=10)
        assert not thread.is_alive()

        assert wait_for(lambda: src.domains()["ldg1"]["flags"] == "-n----", timeout=20)
        assert wait_for(lambda: "ldg1" not in dst.domains(), timeout=10)
        assert guests(src).status("ldg1").state == "running"


def test_lasting_partition_after_the_pnr_shows_e_and_needs_force(tmp_path):
    """§11.6, F32, F33, M3 (ambiguous window), M94, M95: the target dies on receiving the commit
    and stays down. The source shows suspended/-n---e; cancel without -f asks, gets no answer
    and refuses with the two lines; -f restores the domain with the forced warning. When the
    target comes back it aborts its prepared record: no split brain."""
    crash = {"LDMX_MIGRATION_FAULTS": "target-commit-received=crash"}
    with two_hosts(tmp_path, target_env=crash) as (src, dst):
        make_guest(src, "ldg1", "active")
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert wait_for(lambda: dst.agent.proc.poll() is not None, timeout=30)
        assert wait_for(lambda: src.domains()["ldg1"]["flags"] == "-n---e", timeout=15)
        assert src.domains()["ldg1"]["state"] == "suspended"
        host = dst.listen[0]
        refused = src.request(docs.cancel("ldg1"))
        assert docs.lines(refused) == [
            f"Target machine {host} cannot be reached, so the outcome of the migration of "
            f"domain ldg1 is unknown",
            f"Use cancel-operation -f only after checking that domain ldg1 is not running on "
            f"{host}"]
        assert src.domains()["ldg1"]["flags"] == "-n---e"
        forced = src.request(docs.cancel("ldg1", force=True))
        assert docs.lines(forced) == [
            f"Warning: Domain ldg1 was restored without confirmation from target machine {host}"]
        restored = src.domains()["ldg1"]
        assert (restored["state"], restored["flags"]) == ("active", "-n----")
        assert guests(src).status("ldg1").state == "running"
        thread.join(40)
        conn.close()
        dst.agent.stop()
        dst.start(env={"LDMX_MIGRATION_FAULTS": ""})
        assert wait_for(lambda: "ldg1" not in dst.domains(), timeout=15)
        assert guests(src).verify("ldg1") is None


def test_recovery_after_a_short_outage_completes_by_itself(tmp_path):
    """§11.6 first example, M101, F28: the target crashes after writing committing; at its
    restart it finishes the resume; the source's resolver learns committed, removes its copy,
    and the waiting migrate-domain succeeds with no operator action."""
    crash = {"LDMX_MIGRATION_FAULTS": "target-committing=crash"}
    with two_hosts(tmp_path, target_env=crash) as (src, dst):
        make_guest(src, "ldg1", "active")
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert wait_for(lambda: dst.agent.proc.poll() is not None, timeout=30)
        dst.agent.stop()
        dst.start(env={"LDMX_MIGRATION_FAULTS": ""})
        thread.join(40)
        conn.close()
        assert docs.status(box["answer"]) == "success", docs.lines(box["answer"])
        assert "ldg1" not in src.domains()
        moved = dst.domains()["ldg1"]
        assert (moved["state"], moved["flags"]) == ("active", "-n----")
        assert guests(dst).verify("ldg1") is None


def test_live_migration_keeps_the_workload_and_reports_the_downtime(tmp_path):
    """M12 (the guest runs on as it ran), §7.4, §7.5, §10.8, §10.10, M114: a ``web`` guest
    migrated to an agent whose own guests run ``idle`` keeps running ``web``; the commit
    reply carries the guest-measured downtime, which the final progress event of both sides
    and the target's list-domain final block report, equal to what the guest itself saw."""
    time_ = __import__("time")
    with two_hosts(tmp_path, source_args=("--guest-workload", "web")) as (src, dst):
        make_guest(src, "ldg1", "active")
        assert guests(src).spec("ldg1").workload == "web"
        conn = src.connect()
        conn.request(docs.reg_all_events())
        answer = conn.request(docs.migrate("ldg1", dst.target, USER, PASSWORD))
        conn.close()
        assert docs.status(answer) == "success", docs.lines(answer)
        hv = guests(dst)
        assert hv.spec("ldg1").workload == "web"
        before = hv.status("ldg1").pages_written
        time_.sleep(0.5)
        # web dirties ~2048 pages/s, idle ~32: the receiving guest really runs the web profile.
        assert hv.status("ldg1").pages_written - before > 300
        assert hv.verify("ldg1") is None
        seen = hv.status("ldg1").resume_pause_ms
        assert seen > 0
        progress = [p for action, p in map(docs.event_props, conn.events)
                    if action == "migration-process"]
        final = progress[-1]
        assert final["status"] == "done" and "downtime" in final
        assert not any("downtime" in p for p in progress[:-1])  # reported with the end only
        reported = float(final["downtime"])
        assert abs(reported - seen) <= max(2.0, 0.02 * seen)  # M114
        listed = dst.domains()["ldg1"]
        assert listed["status"] == "done" and listed["role"] == "target"
        assert abs(float(listed["downtime"]) - seen) <= max(2.0, 0.02 * seen)


def config_file(tmp_path, name: str, text: str) -> tuple[str, str]:
    """``--config`` for an agent: a file holding ``text``."""
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return ("--config", str(path))


def test_disabled_directions_refuse_with_their_messages(tmp_path):
    """M43, §2.3, §4.3: system1 has both directions disabled. Its own migrate-domain is refused
    at intake with the outgoing line; system2's migration to it is refused at mig-hello with
    the incoming line; nothing changes on either machine."""
    off = config_file(tmp_path, "off", "[migration]\nincoming_migration_enabled = false\n"
                                       "outgoing_migration_enabled = false\n")
    with two_hosts(tmp_path, source_args=off) as (one, two):
        make_guest(one, "ldg1", "bound")
        make_guest(two, "ldg2", "bound")
        answer = one.request(docs.migrate("ldg1", two.target, USER, PASSWORD))
        assert docs.lines(answer) == ["Outgoing domain migrations are disabled on this machine",
                                      "Domain Migration of LDom ldg1 failed"]
        answer = two.request(docs.migrate("ldg2", one.target, USER, PASSWORD))
        assert docs.lines(answer) == ["Incoming domain migrations are disabled on system1",
                                      "Domain Migration of LDom ldg2 failed"]
        assert one.domains()["ldg1"]["flags"] == "------" and "ldg2" not in one.domains()
        assert two.domains()["ldg2"]["flags"] == "------" and "ldg1" not in two.domains()


def test_concurrency_limit_counts_both_roles(tmp_path):
    """M20, §2.13: while system1 → system2 runs (held in phase 3), a second migration from
    system1 and one from system2 (which takes part as target) are refused with the limit
    message naming the configured limit and the machine."""
    hold = {"LDMX_MIGRATION_FAULTS": "source-round-hold=hold"}
    with two_hosts(tmp_path, source_env=hold) as (src, dst):
        make_guest(src, "ldg1", "active")
        make_guest(src, "ldg3", "bound")
        make_guest(dst, "ldg2", "bound")
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert wait_for(lambda: "ldg1" in dst.domains(), timeout=20)
        answer = src.request(docs.migrate("ldg3", dst.target, USER, PASSWORD))
        assert docs.lines(answer) == [
            "The limit of 1 concurrent domain migrations on system1 has been reached",
            "Domain Migration of LDom ldg3 failed"]
        answer = dst.request(docs.migrate("ldg2", src.target, USER, PASSWORD))
        assert docs.lines(answer) == [
            "The limit of 1 concurrent domain migrations on system2 has been reached",
            "Domain Migration of LDom ldg2 failed"]
        thread.join(60)
        conn.close()
        assert docs.status(box["answer"]) == "success", docs.lines(box["answer"])


def test_target_reports_progress_at_least_once_a_second(tmp_path):
    """ldm-xml §4.6, C130, M84: while the source holds in phase 3 (no phase change on the
    target for seconds), the target still publishes migration-process events each second."""
    import time
    hold = {"LDMX_MIGRATION_FAULTS": "source-round-hold=hold"}
    with two_hosts(tmp_path, source_env=hold) as (src, dst):
        make_guest(src, "ldg1", "active")
        watcher = dst.connect()
        watcher.request(docs.reg_all_events())
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert wait_for(lambda: "ldg1" in dst.domains(), timeout=20)
        time.sleep(2.6)
        watcher.request(docs.list_domain())  # collects the events published meanwhile
        progress = [p for action, p in map(docs.event_props, watcher.events)
                    if action == "migration-process" and p.get("role") == "target"]
        assert all(p["status"] == "ongoing" for p in progress)
        # Phase-change events alone are two (0% and phase 2); the ticker adds one a second.
        assert len(progress) >= 4, progress
        watcher.close()
        thread.join(60)
        conn.close()
        assert docs.status(box["answer"]) == "success", docs.lines(box["answer"])


def test_a_failed_migration_ends_its_series_with_failed_and_no_domain_event(tmp_path):
    """C173: a real migration that fails (cancelled in phase 3) ends the requesting session's
    progress series with `failed`, emits no migrate-domain event, and its answer ends with
    the failed line."""
    hold = {"LDMX_MIGRATION_FAULTS": "source-round-hold=hold"}
    with two_hosts(tmp_path, source_env=hold) as (src, dst):
        make_guest(src, "ldg1", "active")
        conn = src.connect()
        conn.request(docs.reg_all_events())
        box: dict = {}
        thread = threading.Thread(target=lambda: box.update(answer=conn.request(
            docs.migrate("ldg1", dst.target, USER, PASSWORD, "ldg-web"))), daemon=True)
        thread.start()
        assert wait_for(lambda: "ldg-web" in dst.domains(), timeout=20)
        assert docs.status(src.request(docs.cancel("ldg1"))) == "success"
        thread.join(30)
        conn.close()
        assert docs.lines(box["answer"])[-1] == "Domain Migration of LDom ldg1 failed"
        events = [docs.event_props(e) for e in conn.events]
        progress = [p for action, p in events if action == "migration-process"]
        assert progress and progress[-1]["status"] == "failed"
        assert progress[0]["status"] == "ongoing"
        assert "migrate-domain" not in [action for action, _ in events]


def test_live_migration_over_three_compressed_streams(tmp_path):
    """M108, M107, M39, §10.1, §10.4: with ``migration_parallel_streams = 3`` and
    ``migration_compression = "zlib"`` on the source, a ``web`` guest migrates over three
    data connections (one token each) with compression, and its integrity oracle is clean."""
    streams = config_file(tmp_path, "streams", "[migration]\nmigration_parallel_streams = 3\n"
                                               'migration_compression = "zlib"\n')
    with two_hosts(tmp_path, source_args=(*streams, "--guest-workload", "web")) as (src, dst):
        make_guest(src, "ldg1", "active")
        conn = src.connect()
        conn.request(docs.reg_all_events())
        answer = conn.request(docs.migrate("ldg1", dst.target, USER, PASSWORD))
        conn.close()
        assert docs.status(answer) == "success", docs.lines(answer)
        hv = guests(dst)
        assert hv.status("ldg1").state == "running"
        assert hv.verify("ldg1") is None
        listed = dst.domains()["ldg1"]  # the target's final block (§10.10)
        assert listed["status"] == "done" and listed["compression"] == "zlib", listed
        assert float(listed["compression-ratio"]) > 0
