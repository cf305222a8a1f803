"""What a legacy-mode live migration leaves on the target (migration.md §1.5, §6.1, M60):
whole cores, the spare strands of the last one reserved, CPU DR off until a reboot or stop."""

from __future__ import annotations

import pytest

from agent.ldm import LdmError
from tests.ldm.fakes import make_manager

G = 1 << 30
DISABLED = "CPU dynamic reconfiguration is disabled for domain web1 until it is rebooted"


def host(seed: int):
    m = make_manager(seed=seed)
    m.set_vcpu("primary", 10)  # primary keeps core 0 and two strands of core 1
    m.set_memory("primary", 16 * G)
    return m


@pytest.fixture
def arrived():
    """web1 (5 vCPUs) legacy-migrated to a second machine and running there."""
    src, dst = host(1), host(2)
    src.add_domain("web1")
    src.set_vcpu("web1", 5)
    src.set_memory("web1", 1 * G)
    dst.import_domain(src.export_domain("web1"), bind=True, legacy=True)
    dst.set_migration_flag("web1", "")
    dst.mark_running("web1")
    return dst


def free_strands(m) -> set[int]:
    return {dict(d.props)["pid"] for d in m.devices("cpu")}


def test_m60_the_spare_strands_of_the_last_core_are_reserved(arrived):
    """M60, §6.1: 5 vCPUs take the first fully free core (core 2, strands 16-23) in vCPU
    order; strands 21-23 are reserved to web1: not its vCPUs and not free."""
    m = arrived
    assert m.constraints("web1").binding.strands == [16, 17, 18, 19, 20]
    assert m.constraints("web1").binding.reserved == [21, 22, 23]
    assert not {21, 22, 23} & free_strands(m)
    assert {10, 11, 12, 13, 14, 15} <= free_strands(m)  # core 1's spare strands stay free
    assert m.summary("web1").ncpu == 5


def test_m60_cpu_dr_fails_with_the_disabled_message_until_the_domain_is_stopped(arrived):
    """M60: add-, set- and remove-vcpu give the Appendix A line while web1 runs; after a
    stop the reservation is dropped and the change works."""
    m = arrived
    for change in (lambda: m.add_vcpu("web1", 1), lambda: m.set_vcpu("web1", 8),
                   lambda: m.remove_vcpu("web1", 1)):
        with pytest.raises(LdmError) as refused:
            change()
        assert str(refused.value) == DISABLED
    m.stop_domain("web1")
    assert m.constraints("web1").binding.reserved == []
    assert {21, 22, 23} <= free_strands(m)
    m.add_vcpu("web1", 1)


def test_m60_a_reboot_ends_the_reservation(arrived):
    """M60: a reboot of the guest (here: it reset itself) drops the reservation too."""
    m = arrived
    m.guest_reset("web1")
    assert m.constraints("web1").binding.reserved == []
    m.add_vcpu("web1", 1)


def test_a_normal_migration_keeps_single_strand_placement():
    """Without legacy mode the target takes free strands; nothing is reserved."""
    src, dst = host(1), host(2)
    src.add_domain("web1")
    src.set_vcpu("web1", 5)
    src.set_memory("web1", 1 * G)
    dst.import_domain(src.export_domain("web1"), bind=True)
    assert dst.constraints("web1").binding.strands == [10, 11, 12, 13, 14]
    assert dst.constraints("web1").binding.reserved == []


def test_m72_a_crypto_shortage_on_the_target_binds_the_units_it_can_give():
    """§6.6 (M72, M13): the checks only warn of a shortage, so the prepare must not fail on
    it: the target domain gets the free units of its own cores (none here: the control domain
    holds every unit), and keeps its constraint."""
    src, dst = host(1), host(2)
    src.set_mau("primary", 2)
    src.add_domain("web1")
    src.set_vcpu("web1", 4)
    src.set_memory("web1", 1 * G)
    src.set_mau("web1", 1)
    src.bind_domain("web1")
    dst.import_domain(src.export_domain("web1"), bind=True)
    assert dst.constraints("web1").binding.mau == []
    assert dst.constraints("web1").resources.mau == 1


def test_free_units_on_its_own_cores_go_to_the_target_domain():
    """§6.6: with units free on the domain's cores, it gets them (at most its constraint)."""
    src, dst = host(1), host(2)
    dst.set_mau("primary", 1)  # the control domain keeps core 0's unit; core 1's is free
    src.add_domain("web1")
    src.set_vcpu("web1", 4)
    src.set_memory("web1", 1 * G)
    src.set_mau("web1", 1)
    dst.import_domain(src.export_domain("web1"), bind=True)
    binding = dst.constraints("web1").binding
    plat = dst.platform
    assert len(binding.mau) == 1
    assert plat.core_of_crypto_unit(binding.mau[0]) in {plat.core_of_strand(s)
                                                        for s in binding.strands}
