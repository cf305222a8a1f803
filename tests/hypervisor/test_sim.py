"""Behaviour specific to the simulated hypervisor: its oracle, heartbeat, files and processes."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from agent.hypervisor import base
from agent.hypervisor.base import GuestSpec, HypervisorError
from agent.hypervisor.digest import memory_digest
from agent.hypervisor.sim import SimHypervisor, layout, oracle
from tests.hypervisor.conformance import MiB, bits, wait_for

PAGE = base.PAGE_SIZE


def ledger_of(hv, name):
    ram = hv.map_ram(name)
    geo = layout.geometry_for(len(ram), PAGE)
    return list(oracle.ledger_view(ram, geo)), geo


def gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_dirty_log_matches_the_guests_ledger_under_a_concurrent_writer(hv):
    """Syncs taken while the guest writes report exactly the pages its ledger says it wrote
    (plus the header and ledger pages those writes touched): no false negatives."""
    hv.create(GuestSpec("db1", 32 * MiB, workload="db"))
    hv.start("db1")
    time.sleep(0.05)
    hv.pause("db1")
    hv.get_and_clear_dirty("db1")
    before, geo = ledger_of(hv, "db1")
    hv.resume("db1")
    seen: set[int] = set()
    for _ in range(8):
        time.sleep(0.02)
        seen |= bits(hv.get_and_clear_dirty("db1"))
    hv.pause("db1")
    seen |= bits(hv.get_and_clear_dirty("db1"))
    after, _ = ledger_of(hv, "db1")
    written = {i for i in range(geo.npages) if after[i] != before[i]}
    assert len(written) > 100
    entries_per_page = PAGE // 4
    expected = written | {0} | {1 + i // entries_per_page for i in written}
    assert written <= seen, f"missed writes: {sorted(written - seen)[:10]}"
    assert seen == expected, f"spurious dirty pages: {sorted(seen - expected)[:10]}"


def test_verify_catches_one_flipped_byte(hv):
    hv.create(GuestSpec("flip", 16 * MiB, workload="web"))
    hv.start("flip")
    time.sleep(0.1)
    hv.pause("flip")
    assert hv.verify("flip") is None
    ledger, geo = ledger_of(hv, "flip")
    victim = next(i for i in range(geo.first_data_page, geo.npages) if ledger[i])
    ram = hv.map_ram("flip", writable=True)
    ram[victim * PAGE + 1234] ^= 0x01
    problem = hv.verify("flip")
    assert problem == f"page {victim} generation {ledger[victim]} fails its checksum"
    status = hv.status("flip")
    assert status.corrupt and status.corruption == problem


def test_a_running_guest_reports_corruption_it_runs_into(hv):
    """The guest checks each page before rewriting it and reports what it finds."""
    hv.create(GuestSpec("self", 16 * MiB, workload="web"))
    hv.start("self")
    time.sleep(0.2)  # the hot set (1/16 of memory) is written many times over
    hv.pause("self")
    ledger, geo = ledger_of(hv, "self")
    victim = next(i for i in range(geo.first_data_page, geo.npages) if ledger[i])
    hv.map_ram("self", writable=True)[victim * PAGE + 8] ^= 0xFF  # its generation
    hv.resume("self")
    assert wait_for(lambda: hv.status("self").corrupt)
    assert hv.status("self").corruption.startswith(f"page {victim} holds page {victim}")


def test_heartbeat_measures_an_injected_150ms_pause_within_10ms(hv):
    """The guest's own heartbeat measures a stall it suffered (§10.8, the basis of M114)."""
    hv.create(GuestSpec("beat", 16 * MiB, workload="idle"))
    hv.start("beat")
    time.sleep(0.1)
    assert hv.status("beat").longest_pause_ms < 100
    stalled = hv.inject_stall("beat", 0.15)
    time.sleep(0.02)
    seen = hv.status("beat").longest_pause_ms
    assert abs(seen - stalled * 1000) <= 10, f"guest saw {seen:.1f} ms, stall was {stalled * 1000:.1f}"


def test_resume_pause_reports_only_the_latest_resume(hv):
    """An earlier long stall does not hide the length of a later short pause."""
    hv.create(GuestSpec("two", 16 * MiB, workload="idle"))
    hv.start("two")
    time.sleep(0.05)
    hv.inject_stall("two", 0.15)
    beats = hv.status("two").heartbeats
    assert wait_for(lambda: hv.status("two").heartbeats > beats + 5)  # it ran again
    hv.pause("two")
    paused_at = time.monotonic()
    time.sleep(0.04)
    hv.resume("two")
    pause_ms = (time.monotonic() - paused_at) * 1000
    time.sleep(0.02)
    status = hv.status("two")
    assert status.longest_pause_ms > 140
    assert abs(status.resume_pause_ms - pause_ms) <= 10


def test_heartbeat_gap_survives_a_move_to_another_guest(hv):
    """The target guest measures the switch-over pause from the source's last heartbeat
    (the heartbeat lives in guest memory and travels with it)."""
    hv.create(GuestSpec("a", 16 * MiB, workload="web"))
    hv.create(GuestSpec("b", 16 * MiB, workload="web"))
    hv.start("a")
    hv.start("b", paused=True)
    time.sleep(0.1)
    hv.pause("a")
    paused_at = time.monotonic()
    hv.map_ram("b", writable=True)[:] = hv.map_ram("a")
    hv.set_vcpu_state("b", hv.get_vcpu_state("a"))
    time.sleep(0.12)
    hv.resume("b")
    downtime_ms = (time.monotonic() - paused_at) * 1000
    time.sleep(0.02)
    status = hv.status("b")
    seen = status.longest_pause_ms
    assert abs(seen - downtime_ms) <= 10, f"guest saw {seen:.1f} ms, switch-over took {downtime_ms:.1f}"
    assert status.resume_pause_ms == seen


def test_destroy_leaves_no_files_and_no_processes(hv, state_dir):
    hv.create(GuestSpec("tidy", 16 * MiB, workload="db"))
    hv.start("tidy")
    pid = hv.pid("tidy")
    hv.destroy("tidy")
    assert list(state_dir.iterdir()) == []
    assert gone(pid)


def test_guest_exits_when_its_state_dir_disappears(hv, state_dir):
    hv.create(GuestSpec("orphan", 16 * MiB))
    hv.start("orphan")
    pid = hv.pid("orphan")
    shutil.rmtree(state_dir / "orphan")
    assert wait_for(lambda: gone(pid), timeout=5.0)


def test_ram_file_is_sparse(hv, state_dir):
    """Untouched guest memory costs no disk, even after the guest ran."""
    hv.create(GuestSpec("big", 1024 * MiB, workload="idle"))
    hv.start("big")
    time.sleep(0.1)
    hv.stop("big")
    used = os.stat(state_dir / "big" / layout.RAM_FILE).st_blocks * 512
    assert used < 4 * MiB, f"a 1 GiB idle guest uses {used} bytes of disk"


def test_unwritable_state_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(HypervisorError, match="is not writable"):
        SimHypervisor(blocker / "hv")


def test_memory_that_cannot_be_reserved_is_a_clear_error(hv, state_dir):
    with pytest.raises(HypervisorError, match="cannot reserve .* memory for guest huge"):
        hv.create(GuestSpec("huge", 1 << 60))
    assert hv.list() == [] and not (state_dir / "huge").exists()


@pytest.mark.parametrize(
    "spec, message",
    [
        (GuestSpec("odd", 16 * MiB + 1), "multiple of the page size"),
        (GuestSpec("busy", 16 * MiB, workload="mining"), "unknown workload"),
        (GuestSpec("none", 16 * MiB, vcpus=0), "at least one vCPU"),
        (GuestSpec("../up", 16 * MiB), "invalid guest name"),
    ],
)
def test_bad_specs_are_refused(hv, spec, message):
    with pytest.raises(HypervisorError, match=message):
        hv.create(spec)
    assert hv.list() == []


def test_vcpu_state_from_a_guest_of_another_size_is_refused(hv):
    hv.create(GuestSpec("small", 16 * MiB))
    hv.create(GuestSpec("large", 32 * MiB))
    hv.start("small")
    hv.pause("small")
    blob = hv.get_vcpu_state("small")
    with pytest.raises(HypervisorError, match="vCPU state is for 2048 pages"):
        hv.set_vcpu_state("large", blob)
    hv.start("large", paused=True)
    with pytest.raises(HypervisorError, match="vCPU state is for 2048 pages"):
        hv.set_vcpu_state("large", blob)
    with pytest.raises(HypervisorError, match="not a simulated vCPU state blob"):
        hv.set_vcpu_state("large", b"garbage")


PR_SET_CHILD_SUBREAPER = 36


def test_guest_survives_the_agent_process_exiting(hv, state_dir):
    """An agent process starts a guest and exits; a new agent finds the guest still running.

    The test process makes itself a child subreaper for the duration, so the orphaned
    guest is re-parented to it and reaped here (this machine's init does not reap).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        script = textwrap.dedent(
            f"""
            from agent.hypervisor.base import GuestSpec
            from agent.hypervisor.sim import SimHypervisor
            hv = SimHypervisor({str(state_dir)!r})
            hv.create(GuestSpec("survivor", 16 * 2**20, workload="web"))
            hv.start("survivor")
            """
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=os.getcwd(),
                       env={**os.environ, "PYTHONPATH": os.getcwd()})
        again = SimHypervisor(state_dir)
        assert again.reattach() == ["survivor"]
        first = again.status("survivor")
        assert first.state == base.RUNNING
        assert wait_for(lambda: again.status("survivor").heartbeats > first.heartbeats)
        pid = first.pid
        again.destroy("survivor")
        assert gone(pid)
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def test_a_guest_that_cannot_map_its_memory_fails_to_start_with_the_reason(hv, state_dir):
    hv.create(GuestSpec("shrunk", 16 * MiB))
    os.truncate(state_dir / "shrunk" / layout.RAM_FILE, 0)  # damaged behind our back
    with pytest.raises(HypervisorError, match="guest shrunk failed to start: .*cannot map"):
        hv.start("shrunk")
    assert hv.pid("shrunk") is None
    with pytest.raises(HypervisorError, match="cannot map the memory of guest shrunk"):
        hv.status("shrunk")


def test_suspend_for_switchover_pauses_unthrottles_and_returns_the_final_set_and_state(hv):
    """§2.7 steps 1-2 in one round trip: after the call no byte changes, the throttle is
    gone, the bitmap holds every write since the last sync, and the vCPU state matches
    memory (a copy resumed from it passes the guest's own restore check)."""
    hv.create(GuestSpec("a", 16 * MiB, workload="db"))
    hv.create(GuestSpec("b", 16 * MiB, workload="db"))
    hv.start("a")
    hv.start("b", paused=True)
    time.sleep(0.05)
    hv.throttle("a", 50)
    hv.get_and_clear_dirty("a")
    before, geo = ledger_of(hv, "a")  # writes after the clear are in the bitmap anyway
    time.sleep(0.05)
    bitmap, blob = hv.suspend_for_switchover("a")
    status = hv.status("a")
    assert (status.state, status.throttle_percent) == ("paused", 0)
    after, _ = ledger_of(hv, "a")
    written = {i for i in range(geo.npages) if after[i] != before[i]}
    assert written and written <= bits(bitmap)
    frozen = bytes(hv.map_ram("a"))
    time.sleep(0.03)
    assert bytes(hv.map_ram("a")) == frozen
    hv.map_ram("b", writable=True)[:] = frozen
    hv.set_vcpu_state("b", blob)
    hv.resume("b")
    time.sleep(0.03)
    assert not hv.status("b").corrupt and hv.verify("b") is None


def test_map_ram_reuses_one_mapping_until_the_guest_is_destroyed(hv, state_dir):
    """A migration's engines map the guest again and again; unmapping a large mapping is
    slow, so the simulator keeps one per guest and access mode until ``destroy``. A guest
    re-created under the same name (even by another instance) gets a fresh mapping."""
    hv.create(GuestSpec("m1", 4 * MiB))
    first = hv.map_ram("m1", writable=True)
    first[100] = 7
    again = hv.map_ram("m1", writable=True)
    assert again.obj is first.obj and hv.map_ram("m1")[100] == 7
    other = SimHypervisor(state_dir)
    other.destroy("m1")
    other.create(GuestSpec("m1", 8 * MiB))
    fresh = hv.map_ram("m1")
    assert fresh.obj is not first.obj and len(fresh) == 8 * MiB and fresh[100] == 0
    hv.destroy("m1")
    assert first.obj.closed is False  # views still alive keep it mapped, without error


def test_a_running_guest_has_its_digest_kept_current_from_its_start(hv):
    """§10.7: the simulator keeps a running guest's memory digest current, so a migration
    finds it ready; a guest started paused (a migration target) is followed once resumed."""
    hv.create(GuestSpec("kept", 16 * MiB, workload="web"))
    hv.create(GuestSpec("target", 16 * MiB))
    hv.start("kept")
    hv.start("target", paused=True)
    assert wait_for(lambda: hv._digests.following("kept"), 5)
    time.sleep(0.2)
    assert not hv._digests.following("target")
    hv.resume("target")
    assert wait_for(lambda: hv._digests.following("target"), 5)
    hv.pause("kept")
    ram = hv.map_ram("kept")
    assert hv.memory_digest("kept") == memory_digest(ram, PAGE)
    ram.release()
