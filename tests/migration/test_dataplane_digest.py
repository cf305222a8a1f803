"""§10.7 on the data plane: the EOS digest, the target's comparison before READY, and what
a mismatch does (M113, M104; §9.5 F19). Engines over loopback TLS, with the in-memory
hypervisor of ``test_dataplane`` and with real simulated guest processes."""

import time

import pytest

from agent.hypervisor.base import GuestSpec
from agent.hypervisor.digest import memory_digest
from agent.hypervisor.sim import SimHypervisor
from agent.migration import faults, messages
from agent.migration.dataplane import TransferOptions
from agent.migration.faults import Faults
from agent.migration.precopy import PrecopyConfig
from tests.migration.test_dataplane import (PAGE, FakeHypervisor, migrate, page_bytes,
                                           random_page, tls)  # noqa: F401 (tls is a fixture)

MiB = 1 << 20


class SuspendingHypervisor(FakeHypervisor):
    """Has the one-round-trip suspend: the vCPU frame then goes ahead of the final pages."""

    def suspend_for_switchover(self, name):
        self.pause(name)
        return self.get_and_clear_dirty(name), self.get_vcpu_state(name)


@pytest.fixture
def armed(monkeypatch):
    def arm(spec: str) -> None:
        monkeypatch.setattr(faults, "_SHARED", Faults(spec))
    return arm


def busy_pair(pages=1024, hv_class=FakeHypervisor):
    src, dst = hv_class(), hv_class()
    guest = src.add("g", pages)
    dst.add("g", pages)
    for page in range(0, pages, 3):
        guest.write(page, random_page())

    def dirty_some(g, sync):
        for page in range(sync % 11, pages, 37 + sync):
            g.write(page, page_bytes(page, sync + 2))
        if sync == 2:
            g.write(3, bytes(PAGE))  # a page that becomes zero travels as ZERO

    guest.on_sync = dirty_some
    return src, dst, guest


BUSY = TransferOptions(PrecopyConfig(downtime_budget_ms=0.5, max_rounds=6,
                                     timeout_action="force"))


@pytest.mark.parametrize("hv_class", [FakeHypervisor, SuspendingHypervisor])
@pytest.mark.parametrize("streams", [1, 3])
def test_eos_digest_equals_the_target_digest_and_the_memory_at_suspend(tls, streams, hv_class):
    """§10.7, M104: the source digest read while suspended, the target's own digest (with
    N streams the XOR of one per stream, M108) and a scan of the source memory at the
    suspend are one and the same, whether the vCPU state travels after the final pages or
    ahead of them (one-round-trip suspend)."""
    src, dst, guest = busy_pair(hv_class=hv_class)
    result, received = migrate(tls, src, dst, options=BUSY, streams=streams)
    assert result.ok and received.ok, (result.error, received.error)
    assert guest.state == "paused"
    at_suspend = memory_digest(guest.ram, PAGE).hex()
    assert result.memory_digest == at_suspend
    assert received.verdict.compared and received.verdict.matches
    assert received.verdict.target == at_suspend == received.verdict.source
    assert dst.guests["g"].loaded_vcpu == guest.vcpu
    assert "digest" in result.switch_ms  # the read is a step of the downtime


@pytest.mark.parametrize("streams", [1, 3])
def test_page_corrupted_on_the_target_fails_verification_and_the_source_resumes(tls, armed,
                                                                               streams):
    """M113, F19: a page changed on the target after it was applied fails the comparison
    before READY; the source gives the guest back; the operator sees the verification
    line."""
    armed("target-before-ready=corrupt")
    src, dst, guest = busy_pair()
    result, received = migrate(tls, src, dst, options=BUSY, streams=streams)
    assert not received.ok and messages.DIGEST_MISMATCH in received.error
    assert not result.ok and messages.DIGEST_MISMATCH in result.error
    assert guest.state == "running"
    # READY never sent: the target reports no transfer to resume. (The vCPU state may be
    # loaded into the paused target guest already: it is loaded while the final pages
    # arrive, and the comparison waits for that load.)
    assert received.vcpu_state is None
    line = messages.transfer_failure(result.error, "g", "system2", True, "g-new")
    assert line == messages.verification_failed("g-new", "system2")


class ForgetfulHypervisor(FakeHypervisor):
    """A dirty log that loses one write: the copy then misses it."""

    def get_and_clear_dirty(self, name):
        bitmap = bytearray(super().get_and_clear_dirty(name))
        if self.guests[name].syncs == 2:
            bitmap[17 // 8] &= ~(1 << (17 % 8))
        return bytes(bitmap)


@pytest.mark.parametrize("streams", [1, 3])
def test_a_write_the_copy_missed_fails_verification(tls, streams):
    """§10.7: a page the source never re-sent passes every frame checksum and is caught by
    the digest (this hypervisor has no digest log: the source digest is a full scan)."""
    src, dst = ForgetfulHypervisor(), FakeHypervisor()
    guest = src.add("g", 256)
    dst.add("g", 256)
    for page in range(256):
        guest.write(page, random_page())
    guest.on_sync = lambda g, sync: g.write(17, random_page()) if sync == 1 else None
    result, received = migrate(tls, src, dst, options=BUSY, streams=streams)
    assert not received.ok and messages.DIGEST_MISMATCH in received.error
    assert not result.ok and guest.state == "running"


def test_verify_off_computes_the_digests_but_does_not_compare(tls, armed):
    """§10.7 ``migration_verify = off``: the corrupted page goes through; the verdict
    (for the log) still shows both digests and that they differ."""
    armed("target-before-ready=corrupt")
    src, dst, guest = busy_pair()
    result, received = migrate(tls, src, dst, options=BUSY, compare=False)
    assert result.ok and received.ok, (result.error, received.error)
    verdict = received.verdict
    assert not verdict.compared and not verdict.matches
    assert verdict.source == result.memory_digest
    assert verdict.target == memory_digest(dst.guests["g"].ram, PAGE).hex()


@pytest.mark.parametrize("streams", [1, 3])
@pytest.mark.parametrize("workload", ["web", "db"])
def test_real_guest_digest_round_trip(tmp_path, tls, workload, streams):
    """§10.7 with real guest processes writing during the copy: the digest the source's
    hypervisor keeps from its dirty log equals a scan of the paused source and the
    target's digest; the target memory equals the source memory (M104). The simulator's
    one-round-trip suspend takes the final dirty bitmap through the digest log, else the
    pages written between the pre-pause read and the pause would be missing here."""
    src, dst = SimHypervisor(tmp_path / "src"), SimHypervisor(tmp_path / "dst")
    try:
        src.create(GuestSpec("g", 32 * MiB, workload=workload))
        dst.create(GuestSpec("g", 32 * MiB, workload=workload))
        src.start("g")
        dst.start("g", paused=True)
        time.sleep(0.2)  # let the workload write
        options = TransferOptions(PrecopyConfig(downtime_budget_ms=20, max_rounds=10,
                                                timeout_action="force"))
        result, received = migrate(tls, src, dst, options=options, streams=streams)
        assert result.ok and received.ok, (result.error, received.error)
        assert src.status("g").state == "paused"
        source_ram = src.map_ram("g")
        assert result.memory_digest == memory_digest(source_ram, src.page_size).hex()
        assert received.verdict.compared and received.verdict.matches
        assert bytes(dst.map_ram("g")) == bytes(source_ram)
        # The target's hypervisor took over the transfer's page terms (no scan at resume)
        # and keeps them current once the migrated guest runs and writes.
        assert dst._digests.following("g")
        assert dst._digests._guests["g"].digest.value().hex() == result.memory_digest
        dst.resume("g")
        time.sleep(0.2)
        dst.pause("g")
        assert dst.memory_digest("g") == memory_digest(dst.map_ram("g"), dst.page_size)
    finally:
        for hv in (src, dst):
            for name in hv.list():
                hv.destroy(name)
