"""Checklist items of migration.md §12 that need two real agents and a whole migration: what
each side emits and keeps after a success or an abort, the guest's clock, the switches'
MAC tables, the scrub of leaving memory, and the source guest's life in phase 3.

Each test starts ``system1`` (source) and ``system2`` (target) as subprocesses and watches
them through their XML interfaces, the simulated hypervisor and (for the switch tables, which
no listing shows) the stored manager state.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

from agent.cli.listing import STATISTICS
from agent.hypervisor.sim.hypervisor import SimHypervisor
from agent.testing import wait_for
from tests.migration import docs
from tests.migration.hosts import PASSWORD, USER, Host, two_hosts

M = 1 << 20
SCRUB = 8 * M  # scrub_rate of these agents: a 64M domain takes 8 s to scrub


def guests(host: Host) -> SimHypervisor:
    return SimHypervisor(host.state / "guests")


def config(tmp_path, name: str, text: str) -> tuple[str, str]:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return ("--config", str(path))


def ok(host: Host, document: bytes) -> bytes:
    answer = host.request(document)
    assert docs.status(answer) == "success", docs.lines(answer)
    return answer


def add_switch(host: Host) -> None:
    ok(host, docs.props("add-vswitch", "primary", "vsw", {"service_name": "vsw0"}))


def make_networked_guest(host: Host, name: str, mau: int = 0) -> None:
    """An active guest with two network devices on vsw0 (one in hybrid mode) and ``mau``
    crypto units."""
    ok(host, docs.add_domain(name))
    ok(host, docs.set_quantity("add-vcpu", name, "cpu", "2"))
    ok(host, docs.set_quantity("add-memory", name, "memory", "64M"))
    if mau:
        ok(host, docs.set_quantity("add-mau", name, "mau", str(mau)))
    ok(host, docs.props("add-vnet", name, "network", {"vnet_name": "vnet0",
                                                        "service_name": "vsw0"}))
    ok(host, docs.props("add-vnet", name, "network", {"vnet_name": "vnet1",
                                                        "service_name": "vsw0",
                                                        "mode": "hybrid"}))
    ok(host, docs.simple("bind-domain", name))
    ok(host, docs.simple("start-domain", name))


def switch_macs(host: Host) -> list[str]:
    """vsw0's MAC table, read from the agent's stored state (read-only)."""
    conn = sqlite3.connect(f"file:{host.state / 'ldmx.db'}?mode=ro", uri=True)
    try:
        body = conn.execute("SELECT body FROM state_rows WHERE kind = 'domain' AND "
                            "key = 'primary'").fetchone()[0]
    finally:
        conn.close()
    return json.loads(body)["vsws"]["vsw0"]["macs"]


# The keys a migration adds to ldom_info (§7.4): the final block that M88 keeps after an abort.
MIGRATION_KEYS = {"progress", "status", "source", "role", "peer", "peer-ldom", *STATISTICS}


def bindings(host: Host, name: str) -> list[tuple[str, str]]:
    """Every property list-bindings gives for ``name``, minus those that change with time
    and the migration keys."""
    answer = ok(host, docs.simple("list-bindings", name))
    root = docs.etree.fromstring(answer)
    return [(p.get("key"), p.text or "") for p in
            root.iter("{./schemas/GenericProperty}GenericProperty")
            if p.get("key") not in ("util", "uptime", "norm_util", *MIGRATION_KEYS)]


def free_memory(host: Host) -> int:
    return docs.free_bytes(ok(host, docs.list_free_memory()))


def watch(host: Host, register: bytes):
    conn = host.connect()
    conn.request(register)
    return conn


def collect(conn) -> list[bytes]:
    conn.request(docs.list_domain())  # reads the events published meanwhile
    return list(conn.events)


def migrate_in_background(host: Host, document: bytes):
    conn = host.connect()
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(answer=conn.request(document)),
                              daemon=True)
    thread.start()
    return thread, box, conn


def test_a_success_emits_one_domain_event_per_side_and_keeps_clock_switches_and_block(tmp_path):
    """M86: each side's domain-event session sees exactly one ``migrate-domain`` (the target's
    after its final progress event, the source's after its own); the target domain's creation
    emits no add/bind event. M89: domain events < 1024 bytes, progress events < 2048.
    M116: guest time minus host time is the same after the resume, within 1 ms.
    M117: the target's switch holds every MAC of the domain, the source's none.
    M88: the final MIGRATION block stays on the migrated domain, across an agent restart,
    until the domain is removed (a new domain of the same name has none)."""
    with two_hosts(tmp_path) as (src, dst):
        for host in (src, dst):
            add_switch(host)
        make_networked_guest(src, "ldg1")
        macs = sorted(json.loads(json.dumps(switch_macs(src))))
        assert len(macs) == 2 and switch_macs(dst) == []
        watchers = {side: (watch(host, docs.reg_domain_events()), watch(host, docs.reg_all_events()))
                    for side, host in (("src", src), ("dst", dst))}
        offset_before = guests(src).status("ldg1").tod_offset_ns
        answer = src.request(docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert docs.status(answer) == "success", docs.lines(answer)
        offset_after = guests(dst).status("ldg1").tod_offset_ns
        assert abs(offset_after - offset_before) <= 1_000_000  # M116
        assert switch_macs(dst) == macs and switch_macs(src) == []  # M117

        for side, (domain_session, all_session) in watchers.items():
            domain_events = collect(domain_session)
            all_events = collect(all_session)
            domain_session.close()
            all_session.close()
            actions = [docs.event_props(e)[0] for e in domain_events]
            assert actions == ["migrate-domain"], (side, actions)  # M86
            assert all(len(e) < 1024 for e in domain_events), side  # M89
            progress = [e for e in all_events if docs.event_props(e)[0] == "migration-process"]
            assert progress and all(len(e) < 2048 for e in progress), side  # M89
            # The domain event follows the side's final progress event (§7.5).
            order = [docs.event_props(e)[0] for e in all_events]
            last = max(i for i, a in enumerate(order) if a == "migration-process")
            assert order[last + 1:] == ["migrate-domain"], (side, order)
            assert docs.event_props(progress[-1])[1]["status"] == "done"

        block = dst.domains()["ldg1"]
        assert (block["status"], block["role"], block["outcome"]) == ("done", "target",
                                                                       "completed")
        dst.agent.stop()
        dst.start()
        kept = dst.domains()["ldg1"]
        assert kept["migration-id"] == block["migration-id"] and kept["status"] == "done"  # M88
        for action in ("stop-domain", "unbind-domain", "remove-domain"):
            ok(dst, docs.simple(action, "ldg1"))
        ok(dst, docs.add_domain("ldg1"))
        assert "status" not in dst.domains()["ldg1"]  # removed with its domain (M88)
        assert "status" not in src.domains().get("ldg1", {})


def test_cancel_in_phase_3_restores_exactly_and_the_target_scrubs_before_freeing(tmp_path):
    """M6: the source guest's heartbeat goes on during phase 3. M13: after the cancel the
    source domain has exactly its bindings (strands, memory, crypto unit, both network
    devices, console) and state; the target domain is gone and the target's memory is free
    again once the scrub ends. M96, M119: meanwhile the target answers list-domain and does
    not list the memory under scrub as free. M86: no domain event on either side. M89: the
    failed progress series stays under 2048 bytes per event. M88: the failed block stays on the source domain until its next migration, which then
    succeeds; M119: the source copy is scrubbed before its memory is free."""
    hold = {"LDMX_MIGRATION_FAULTS": "source-round-hold=hold"}
    slow = f"[migration]\nscrub_rate = {SCRUB}\n"
    with two_hosts(tmp_path, source_env=hold, source_args=config(tmp_path, "s", slow),
                   target_args=config(tmp_path, "t", slow)) as (src, dst):
        for host in (src, dst):
            add_switch(host)
            ok(host, docs.set_quantity("set-mau", "primary", "mau", "2"))  # free some units
        make_networked_guest(src, "ldg1", mau=1)
        before = bindings(src, "ldg1")
        target_free = free_memory(dst)
        domain_sessions = [watch(h, docs.reg_domain_events()) for h in (src, dst)]
        all_sessions = [watch(h, docs.reg_all_events()) for h in (src, dst)]
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert wait_for(lambda: "ldg1" in dst.domains(), timeout=20)
        # The hold point is the end of round 0: the data plane waits there for 3 s, inside
        # phase 3 (the listing still says phase 2 until that round is reported).
        beats = guests(src).status("ldg1").heartbeats
        time.sleep(0.5)
        # M6: at 1 ms per beat, 0.5 s of phase 3 gives up to 500 beats; a paused guest none.
        # 50 leaves room for a heavily loaded host.
        assert guests(src).status("ldg1").heartbeats - beats > 50
        assert guests(src).status("ldg1").state == "running"
        assert src.domains()["ldg1"]["state"] == "active"

        ok(src, docs.cancel("ldg1"))
        thread.join(30)
        conn.close()
        assert docs.lines(box["answer"])[0] == "Migration of domain ldg1 was cancelled"
        restored = src.domains()["ldg1"]
        assert (restored["state"], restored["flags"]) == ("active", "-n----")
        assert bindings(src, "ldg1") == before  # M13
        assert guests(src).status("ldg1").state == "running"
        assert guests(src).verify("ldg1") is None

        assert wait_for(lambda: "ldg1" not in dst.domains(), timeout=10)
        # 64M at 8M/s: for about 8 s the target's memory is neither the domain's nor free.
        assert free_memory(dst) == target_free - 64 * M  # M96, M119
        assert "primary" in dst.domains()  # list-domain answered during the scrub (M96)
        assert wait_for(lambda: free_memory(dst) == target_free, timeout=30)  # M13
        assert "ldg1" not in guests(dst).list()

        for session in domain_sessions:
            assert [docs.event_props(e)[0] for e in collect(session)] == []  # M86
            session.close()
        for session in all_sessions:  # M89: a failed series stays under 2048 bytes too
            progress = [e for e in collect(session)
                        if docs.event_props(e)[0] == "migration-process"]
            assert progress and all(len(e) < 2048 for e in progress)
            assert docs.event_props(progress[-1])[1]["status"] == "failed"
            session.close()
        failed = src.domains()["ldg1"]
        assert (failed["status"], failed["role"], failed["outcome"]) == (
            "failed", "source", "cancelled")  # M88

        source_free = free_memory(src)
        answer = src.request(docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert docs.status(answer) == "success", docs.lines(answer)
        assert "ldg1" not in src.domains()
        assert free_memory(src) == source_free  # M119: the copy's 64M are being scrubbed
        assert wait_for(lambda: free_memory(src) == source_free + 64 * M, timeout=30)
        moved = dst.domains()["ldg1"]
        assert moved["status"] == "done" and moved["migration-id"] != failed["migration-id"]


def test_a_forced_cancel_followed_by_committed_is_reported_as_a_split_brain(tmp_path):
    """§9.4, M95, F34: the target crashes after writing committed (its guest runs on); the
    operator forces the source domain back; when the target's agent returns, the source's
    background mig-outcome gets committed. Both agents log it at critical, the source sends
    the extra final progress event with outcome split-brain and keeps it as the domain's
    block; neither copy is stopped by an agent."""
    crash = {"LDMX_MIGRATION_FAULTS": "target-committed=crash"}
    with two_hosts(tmp_path, target_env=crash) as (src, dst):
        ok(src, docs.add_domain("ldg1"))
        for doc in (docs.set_quantity("add-vcpu", "ldg1", "cpu", "2"),
                    docs.set_quantity("add-memory", "ldg1", "memory", "64M"),
                    docs.simple("bind-domain", "ldg1"), docs.simple("start-domain", "ldg1")):
            ok(src, doc)
        thread, box, conn = migrate_in_background(
            src, docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert wait_for(lambda: dst.agent.proc.poll() is not None, timeout=30)
        assert wait_for(lambda: src.domains()["ldg1"]["flags"] == "-n---e", timeout=15)
        forced = src.request(docs.cancel("ldg1", force=True))
        assert docs.lines(forced) == [f"Warning: Domain ldg1 was restored without confirmation "
                                      f"from target machine {dst.listen[0]}"]
        watcher = watch(src, docs.reg_all_events())
        dst.agent.stop()
        dst.start(env={"LDMX_MIGRATION_FAULTS": ""})
        assert wait_for(lambda: src.domains()["ldg1"].get("outcome") == "split-brain",
                        timeout=60)
        line = (f"Domain ldg1 was restored on this machine by a forced cancel, but target "
                f"machine {dst.listen[0]} reports that domain ldg1 also resumed there")
        assert any(line in ln and "#critical]" in ln for ln in src.agent.log().splitlines())
        theirs = ("Domain ldg1 resumed on this machine, but source machine system1 restored "
                  "domain ldg1 by a forced cancel")
        assert any(theirs in ln and "#critical]" in ln for ln in dst.agent.log().splitlines())
        final = [p for a, p in map(docs.event_props, collect(watcher))
                 if a == "migration-process"]
        assert final and final[-1]["outcome"] == "split-brain" and final[-1]["error"] == line
        assert all(len(e) < 2048 for e in watcher.events)  # M89, with the longest error line
        watcher.close()
        # Both copies run: the agents leave the choice to the operator.
        assert guests(src).status("ldg1").state == "running"
        assert guests(dst).status("ldg1").state == "running"
        thread.join(40)
        conn.close()


def test_a_legacy_mode_migration_reserves_the_spare_strands_and_disables_cpu_dr(tmp_path):
    """M60, §1.5, §6.1: system1's guests run an OS without migration-v2, so ldg1 (5 vCPUs)
    migrates in legacy mode: on system2 it takes the first whole free core (core 2, strands
    16-23; the control domain holds cores 0 and 1), strands 21-23 are reserved (not free),
    add-vcpu fails with the disabled line; after a stop the reservation is gone and CPU DR
    works again."""
    legacy = config(tmp_path, "legacy", '[guests]\nos_capabilities = ["suspend", "cpu-dr", '
                                         '"crypto-dr", "mem-dr"]\n')
    with two_hosts(tmp_path, source_args=legacy) as (src, dst):
        ok(src, docs.add_domain("ldg1"))
        for doc in (docs.set_quantity("add-vcpu", "ldg1", "cpu", "5"),
                    docs.set_quantity("add-memory", "ldg1", "memory", "64M"),
                    docs.simple("bind-domain", "ldg1"), docs.simple("start-domain", "ldg1")):
            ok(src, doc)
        answer = src.request(docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert docs.status(answer) == "success", docs.lines(answer)
        assert guests(dst).spec("ldg1").os_capabilities == [
            "suspend", "cpu-dr", "crypto-dr", "mem-dr"]  # the OS came along
        free = {int(p) for p in docs.values(ok(dst, docs.list_free("cpu")), "pid")}
        assert not {16, 17, 18, 19, 20, 21, 22, 23} & free  # ldg1's and reserved to it
        assert set(range(24, 32)) <= free
        refused = dst.request(docs.set_quantity("add-vcpu", "ldg1", "cpu", "1"))
        assert docs.lines(refused) == [
            "CPU dynamic reconfiguration is disabled for domain ldg1 until it is rebooted"]
        ok(dst, docs.simple("stop-domain", "ldg1"))
        free = {int(p) for p in docs.values(ok(dst, docs.list_free("cpu")), "pid")}
        assert {21, 22, 23} <= free
        ok(dst, docs.set_quantity("add-vcpu", "ldg1", "cpu", "1"))


BUDGET_MS = 1000  # generous, so that a loaded 2-CPU machine does not decide the outcome


def test_a_budget_switchover_keeps_the_downtime_within_one_and_a_half_budgets(tmp_path):
    """M115, §10.8: a guest running the steady ``web`` workload over loopback, budget
    max-downtime=1000: phase 4 begins because of the budget (or an empty dirty set), and the
    downtime the guest itself saw is at most 1.5 × budget + 10 ms. The budget is large on
    purpose; the tight figure for the default 300 ms is measured by the data-plane benchmark,
    not here."""
    with two_hosts(tmp_path, source_args=("--guest-workload", "web")) as (src, dst):
        ok(src, docs.add_domain("ldg1"))
        for doc in (docs.set_quantity("add-vcpu", "ldg1", "cpu", "2"),
                    docs.set_quantity("add-memory", "ldg1", "memory", "128M"),
                    docs.simple("bind-domain", "ldg1"), docs.simple("start-domain", "ldg1")):
            ok(src, doc)
        time.sleep(1.0)  # the workload reaches its steady rate
        answer = src.request(docs.migrate("ldg1", dst.target, USER, PASSWORD,
                                          arguments=f"max-downtime={BUDGET_MS}"))
        assert docs.status(answer) == "success", docs.lines(answer)
        block = dst.domains()["ldg1"]
        seen = guests(dst).status("ldg1").resume_pause_ms
        assert block["downtime-budget"] == str(BUDGET_MS)  # the source's, sent to the target
        assert block["phase"] == "5" and block["status"] == "done"
        assert block.get("switchover") in ("budget", "empty"), block
        assert 0 < seen <= 1.5 * BUDGET_MS + 10, (seen, block)
        assert float(block["downtime"]) <= 1.5 * BUDGET_MS + 10
