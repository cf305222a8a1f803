"""The hypervisor contract, written once: ``check_hypervisor(make)``.

``make()`` returns a new hypervisor object on the same host state each time it is called
(a second call models an agent restart). Every check cleans up the guests it created.
Only the public interface of ``agent.hypervisor.base`` is used, plus two process-level
acts any backend's guests can suffer: SIGKILL of the guest's pid, and time passing.
Checks that move memory between guests follow the migration target flow of
``spec/migration.md`` §2.5-§2.8 (M104 in miniature).
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable
from contextlib import contextmanager

from agent.hypervisor import base
from agent.hypervisor.base import GuestSpec, Hypervisor, HypervisorError

MiB = 1 << 20
Make = Callable[[], Hypervisor]


@contextmanager
def guest(hv: Hypervisor, name: str, workload: str = "web", memory: int = 16 * MiB, start=True):
    """A guest that is destroyed (process and files) whatever happens in the block."""
    hv.create(GuestSpec(name, memory, vcpus=2, workload=workload, page_size=hv.page_size))
    try:
        if start:
            hv.start(name)
        yield name
    finally:
        if name in hv.list():
            hv.destroy(name)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def ram_digest(hv: Hypervisor, name: str) -> bytes:
    return hashlib.blake2b(hv.map_ram(name)).digest()


def changed_pages(before: bytes, after: bytes, page_size: int) -> set[int]:
    return {
        index
        for index in range(len(before) // page_size)
        if before[index * page_size : (index + 1) * page_size]
        != after[index * page_size : (index + 1) * page_size]
    }


def bits(bitmap: bytes) -> set[int]:
    value = int.from_bytes(bitmap, "little")
    return {i for i in range(len(bitmap) * 8) if value >> i & 1}


# ---- the checks ---------------------------------------------------------------------


def check_lifecycle(make: Make) -> None:
    """create → stopped; start → running and writing; stop keeps memory; destroy forgets."""
    hv = make()
    with guest(hv, "life", start=False) as name:
        assert name in hv.list()
        assert hv.status(name).state == base.STOPPED
        try:
            hv.create(GuestSpec(name, 16 * MiB, page_size=hv.page_size))
            raise AssertionError("creating a guest twice must fail")
        except HypervisorError:
            pass
        hv.start(name)
        first = hv.status(name)
        assert first.state == base.RUNNING and first.pid
        assert wait_for(lambda: hv.status(name).pages_written > first.pages_written)
        hv.stop(name)
        stopped = hv.status(name)
        assert stopped.state == base.STOPPED and stopped.pid is None
        assert stopped.pages_written > 0, "stop must keep memory"
        assert hv.verify(name) is None
        hv.start(name)
        assert hv.status(name).pages_written >= stopped.pages_written
        hv.stop(name, force=True)
        assert hv.status(name).state == base.STOPPED
    assert "life" not in hv.list()
    for call in (hv.status, hv.pause, hv.destroy):
        try:
            call("life")
            raise AssertionError(f"{call.__name__} of an unknown guest must fail")
        except HypervisorError:
            pass


def check_pause_is_exact(make: Make) -> None:
    """Once pause returns, guest memory does not change for 200 ms; resume restarts writes.
    (The suspend of §2.7 that M104's "memory at the suspend" relies on.)"""
    hv = make()
    with guest(hv, "still", workload="stream") as name:
        time.sleep(0.05)
        hv.pause(name)
        assert hv.status(name).state == base.PAUSED
        before = ram_digest(hv, name)
        written = hv.status(name).pages_written
        time.sleep(0.2)
        assert ram_digest(hv, name) == before, "memory changed while paused"
        assert hv.status(name).pages_written == written
        hv.resume(name)
        assert wait_for(lambda: hv.status(name).pages_written > written)


def check_dirty_log_has_no_false_negatives(make: Make) -> None:
    """Every page whose content changed is in the union of the dirty syncs taken meanwhile,
    while the guest writes concurrently with the syncs (§10.2; the base of M104, M106)."""
    hv = make()
    with guest(hv, "dirt", workload="db") as name:
        hv.pause(name)
        hv.get_and_clear_dirty(name)
        before = hv.map_ram(name).tobytes()
        hv.resume(name)
        seen = 0
        for _ in range(6):
            time.sleep(0.03)
            seen |= int.from_bytes(hv.get_and_clear_dirty(name), "little")
        hv.pause(name)
        seen |= int.from_bytes(hv.get_and_clear_dirty(name), "little")
        after = hv.map_ram(name).tobytes()
        changed = changed_pages(before, after, hv.page_size)
        assert changed, "the workload wrote nothing"
        missing = {page for page in changed if not seen >> page & 1}
        assert not missing, f"changed pages missing from the dirty log: {sorted(missing)[:10]}"
        # Paused, nothing is written: the next sync is empty.
        assert not any(hv.get_and_clear_dirty(name))


def check_throttle_slows_the_guest(make: Make) -> None:
    """A 90 % throttle cuts the guest's execution (heartbeats) well below half (§10.6, M110)."""
    hv = make()
    with guest(hv, "slow", workload="db") as name:

        def beats_over(seconds: float) -> int:
            start = hv.status(name).heartbeats
            time.sleep(seconds)
            return hv.status(name).heartbeats - start

        free = beats_over(0.4)
        hv.throttle(name, 90)
        assert hv.status(name).throttle_percent == 90
        held = beats_over(0.4)
        hv.throttle(name, 0)
        assert held < free / 2, f"throttled guest ran {held} ticks against {free} unthrottled"
        for bad in (-1, 100):
            try:
                hv.throttle(name, bad)
                raise AssertionError(f"throttle {bad} must be refused")
            except HypervisorError:
                pass


def check_vcpu_state_moves_a_guest(make: Make) -> None:
    """The migration target flow yields a guest that verifies and carries on writing (M104);
    a copy missing one final page is caught (the guest-side twin of M113)."""
    hv = make()
    with guest(hv, "src", workload="web") as src, guest(hv, "dst", "web", start=False) as dst:
        time.sleep(0.1)
        assert hv.get_vcpu_state(src), "a running guest's state can be read (for its size)"
        hv.start(dst, paused=True)
        assert hv.status(dst).state == base.PAUSED
        hv.pause(src)
        blob = hv.get_vcpu_state(src)
        assert isinstance(blob, bytes) and blob
        target = hv.map_ram(dst, writable=True)
        target[:] = hv.map_ram(src)
        hv.set_vcpu_state(dst, blob)
        hv.resume(dst)
        written = hv.status(dst).pages_written
        assert wait_for(lambda: hv.status(dst).pages_written > written)
        assert not hv.status(dst).corrupt, hv.status(dst).corruption
        hv.pause(dst)
        assert hv.verify(dst) is None

    with guest(hv, "src2", workload="web") as src, guest(hv, "dst2", "web", start=False) as dst:
        time.sleep(0.1)
        hv.pause(src)
        hv.get_and_clear_dirty(src)
        hv.resume(src)
        time.sleep(0.05)
        hv.pause(src)
        final = hv.get_and_clear_dirty(src)
        target = hv.map_ram(dst, writable=True)
        source = hv.map_ram(src)
        page = hv.page_size
        dropped = max(bits(final))  # a page of the final copy that never arrives
        target[:] = source
        target[dropped * page : (dropped + 1) * page] = bytes(page)
        hv.set_vcpu_state(dst, hv.get_vcpu_state(src))
        hv.start(dst, paused=True)
        hv.resume(dst)
        caught = hv.verify(dst) or hv.status(dst).corruption
        assert caught, f"dropping page {dropped} of the final copy went unnoticed"


def check_reattach_after_agent_restart(make: Make) -> None:
    """A new hypervisor object on the same host finds and drives the running guest
    (§1.8: hypervisor state survives an agent crash)."""
    hv = make()
    with guest(hv, "keep") as name:
        pid = hv.status(name).pid
        again = make()
        assert name in again.reattach()
        status = again.status(name)
        assert status.state == base.RUNNING and status.pid == pid
        again.pause(name)
        assert hv.status(name).state == base.PAUSED
        again.resume(name)


def check_dead_guest_is_noticed(make: Make) -> None:
    """A guest killed behind the agent's back is reported dead, once."""
    hv = make()
    with guest(hv, "doomed") as name:
        pid = hv.status(name).pid
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: hv.status(name).state == base.DEAD)
        assert name not in hv.reattach()
        assert hv.poll_dead() == [name]
        assert hv.poll_dead() == []
        assert make().poll_dead() == [name], "a restarted agent must learn of the death too"
        hv.start(name)
        assert hv.status(name).state == base.RUNNING


def check_destroy_leaves_no_process(make: Make) -> None:
    hv = make()
    with guest(hv, "gone") as name:
        pid = hv.status(name).pid
        hv.destroy(name)
        assert name not in hv.list()
        assert not _process_exists(pid), f"guest process {pid} still exists after destroy"


def _process_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


CHECKS = [
    check_lifecycle,
    check_pause_is_exact,
    check_dirty_log_has_no_false_negatives,
    check_throttle_slows_the_guest,
    check_vcpu_state_moves_a_guest,
    check_reattach_after_agent_restart,
    check_dead_guest_is_noticed,
    check_destroy_leaves_no_process,
]


def check_hypervisor(make: Make) -> None:
    """Run every check against the backend ``make`` builds."""
    for check in CHECKS:
        check(make)
