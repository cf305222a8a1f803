"""Fault-injection actions of ``agent/migration/faults.py`` and the failure lines they expose
(migration.md §9.5 F12, F15, F16, F22; Appendix A). The two-agent cells of these rows are in
``tests/integration/test_migration_faults.py``; these tests pin the pieces without agents."""

import socket
from types import SimpleNamespace

import pytest

from agent.migration import faults, messages
from agent.migration.faults import Faults, InjectedFailure, data_point
from tests.migration.test_dataplane import (FakeHypervisor, make_pair, migrate, random_page,
                                           tls)  # noqa: F401 (tls is a fixture)


@pytest.fixture
def armed(monkeypatch):
    """Arm the process-wide faults (what ``LDMX_MIGRATION_FAULTS`` does in an agent)."""
    def arm(spec: str) -> None:
        monkeypatch.setattr(faults, "_SHARED", Faults(spec))
    return arm


def test_every_action_parses_and_an_unknown_one_is_refused():
    spec = "a=crash,b=cut,c=drop,d=hold,e=fail,f=halt,g=corrupt,h=poweroff"
    assert set(Faults(spec).armed.values()) == set(faults.ACTIONS)
    with pytest.raises(ValueError, match="unknown fault action 'explode'"):
        Faults("source-round=explode")


def test_nothing_is_armed_by_default(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    monkeypatch.setattr(faults, "_SHARED", None)
    assert Faults.from_environment().armed == {}


def test_fail_raises_once_then_the_point_is_disarmed(armed):
    armed("source-suspend=fail")
    with pytest.raises(InjectedFailure):
        data_point("source-suspend")
    data_point("source-suspend")  # fires once


def test_corrupt_flips_one_byte_of_the_memory(armed):
    armed("target-before-ready=corrupt")
    ram = memoryview(bytearray(4 * 8192))
    data_point("target-before-ready", ram=ram)
    assert sum(1 for b in ram.tobytes() if b) == 1


def test_cut_breaks_the_data_link_in_both_directions(armed):
    armed("source-data-round=cut")
    near, far = socket.socketpair()
    with near, far:
        data_point("source-data-round", channel=SimpleNamespace(sock=near))
        assert far.recv(1) == b""  # the peer sees the link go
        with pytest.raises(OSError):
            near.sendall(b"x")


class PauseFails(FakeHypervisor):
    def pause(self, name):
        raise RuntimeError("the hypervisor refused to stop the vCPUs")


def test_a_failed_suspend_aborts_with_the_suspend_line_and_the_guest_runs_on(tls):
    """F22 (regression: the data-lost line was given): the pause of phase 4 fails; the
    transfer ends with the suspend line and the source guest never stopped running."""
    src, dst, guest = make_pair(64)
    src.__class__ = PauseFails
    for page in range(64):
        guest.write(page, random_page())
    result, received = migrate(tls, src, dst)
    assert not result.ok and result.error == messages.suspend_failed("g")
    assert guest.state == "running"
    assert not received.ok


@pytest.mark.parametrize("error, running, line", [
    ("Domain ldg1 could not be suspended", True, "Domain ldg1 could not be suspended"),
    ("Migration of domain ldg1 did not converge: the limit of 1 rounds was reached", True,
     "Migration of domain ldg1 did not converge: the limit of 1 rounds was reached"),
    ("connection reset by peer", True, "Lost the data connection to target machine sys2"),
    ("guest ldg1 is not running", False,
     "Domain ldg1 stopped or was reset during the migration"),
    ("Domain ldg1 could not be suspended", False,
     "Domain ldg1 stopped or was reset during the migration"),
])
def test_a_failed_transfer_gets_the_line_of_its_cause(error, running, line):
    """F12, F15, F16, F22: each cause has its Appendix A line; a stopped guest wins."""
    assert messages.transfer_failure(error, "ldg1", "sys2", running) == line
