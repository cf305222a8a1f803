"""The source removes its copy after a successful migration, guest included (migration.md §2.8
after the point of no return, §10.11; M15 "the source copy is gone").

``Migrations.remove_domain`` runs on the source once the target committed. Whatever the domain's
state was when the migration began, a guest the hypervisor still has for it must go: a domain
whose guest died on its own (the guest watch made it bound) keeps the dead guest's directory
and memory file, and after the domain has left nothing else would remove them.
"""

from __future__ import annotations

import os
import signal

import pytest

from agent.hypervisor.base import GuestSpec
from agent.hypervisor.sim import SimHypervisor
from agent.migration.coordinator import Migrations
from agent.migration.journal import Journal
from agent.testing import wait_for

MiB = 1 << 20


class _Manager:
    """Only what remove_domain asks of the manager."""

    def __init__(self) -> None:
        self.evicted: list[str] = []

    def evict_domain(self, name: str) -> None:
        self.evicted.append(name)


@pytest.fixture
def hv(tmp_path):
    hypervisor = SimHypervisor(tmp_path / "guests")
    yield hypervisor
    for name in hypervisor.list():
        hypervisor.destroy(name)


def _migrations(tmp_path, hv) -> tuple[Migrations, _Manager]:
    manager = _Manager()
    return Migrations(reactor=None, manager=manager, hypervisor=hv,
                      journal=Journal(str(tmp_path)), server_name="system1",
                      publish=lambda *a: None), manager


def test_a_cold_migration_removes_the_guest_that_died_on_its_own(tmp_path, hv):
    hv.create(GuestSpec("ldg1", 8 * MiB))
    hv.start("ldg1")
    os.kill(hv.pid("ldg1"), signal.SIGKILL)
    assert wait_for(lambda: hv.pid("ldg1") is None)
    migrations, manager = _migrations(tmp_path, hv)
    migrations.remove_domain("ldg1", live=False)
    assert "ldg1" not in hv.list()
    assert not (tmp_path / "guests" / "ldg1").exists()
    assert manager.evicted == ["ldg1"]


def _gone(pid: int) -> bool:
    """The process has ended: no /proc entry, or a zombie. Guests are detached, so their
    parent is PID 1, which on some machines (containers) never reaps them."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_live_migration_kills_the_running_guest_and_removes_it(tmp_path, hv):
    hv.create(GuestSpec("ldg2", 8 * MiB))
    hv.start("ldg2")
    pid = hv.pid("ldg2")
    migrations, manager = _migrations(tmp_path, hv)
    migrations.remove_domain("ldg2", live=True)
    assert "ldg2" not in hv.list()
    assert not (tmp_path / "guests" / "ldg2").exists()
    assert _gone(pid)
    assert manager.evicted == ["ldg2"]


def test_a_domain_without_a_guest_is_only_evicted(tmp_path, hv):
    migrations, manager = _migrations(tmp_path, hv)
    migrations.remove_domain("ldg3", live=False)
    assert manager.evicted == ["ldg3"]
