"""ldmx against a real agent over its Unix socket (root: a local peer with write authorization)."""

import os
import select
import signal
import subprocess
import sys

import pytest

from agent.cli import client
from agent.testing import AgentProcess


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    proc = AgentProcess(tmp_path_factory.mktemp("cli-agent"), host_name="ctl1.example.com").start()
    try:
        yield proc
    finally:
        code = proc.stop()
        proc.destroy_guests()
        assert code == 0, "agent did not exit cleanly:\n" + proc.log()


@pytest.fixture
def ldmx(agent, capsys):
    """Run ldmx in-process; returns (exit status, stdout, stderr)."""
    def run(*words):
        capsys.readouterr()
        code = client.main(["--socket", str(agent.socket_path), *words])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_list_shows_the_control_domain(ldmx):
    code, out, err = ldmx("list")
    lines = out.splitlines()
    assert (code, err) == (0, "")
    assert lines[0].split() == ["NAME", "STATE", "FLAGS", "CONS", "VCPU", "MEMORY", "UTIL", "NORM",
                                "UPTIME"]
    primary = lines[1].split()
    assert primary[:4] == ["primary", "active", primary[2], "UART"] and primary[2][3] == "c"
    code, out, _ = ldmx("ls", "-p")
    assert out.splitlines()[0] == "VERSION 1.6"
    assert out.splitlines()[1].startswith("DOMAIN|name=primary|state=active|")


def test_add_domain_set_vcpu_and_list_constraints_round_trip(ldmx, tmp_path):
    assert ldmx("create", "failure-policy=reset", "cli1")[0] == 0
    assert ldmx("set-vcpu", "6", "cli1")[0] == 0
    assert ldmx("set-mem", "2G", "cli1")[0] == 0
    assert ldmx("add-var", "auto-boot?=false", "cli1")[0] == 0
    code, out, _ = ldmx("list-constraints", "cli1")
    assert code == 0
    assert "VCPU\n    COUNT\n    6\n" in out and "MEMORY\n    SIZE\n    2G\n" in out
    assert "    failure-policy=reset" in out and "    auto-boot?=false" in out
    code, saved, _ = ldmx("list-constraints", "-x", "cli1")
    assert code == 0
    (tmp_path / "cli1.xml").write_text(saved)
    # -x output recreates the domain exactly, after the original has gone (ldm-xml §6.21).
    assert ldmx("remove-domain", "cli1")[0] == 0
    assert ldmx("list", "cli1")[0] == 1
    assert ldmx("add-domain", "-i", str(tmp_path / "cli1.xml")) == (0, "", "")
    assert ldmx("list-constraints", "-x", "cli1")[1] == saved
    assert ldmx("rm-domain", "cli1")[0] == 0


def test_errors_print_the_agents_message_and_exit_1(ldmx):
    assert ldmx("list", "nosuch") == (1, "", "Domain nosuch does not exist\n")
    assert ldmx("add-vdpcs", "s1", "primary") == (1, "", "add-vdpcs: not supported on this platform\n")
    code, _, err = ldmx("set-vcpu", "1", "nosuch")
    assert (code, err) == (1, "Domain nosuch does not exist\n")


def read_line(proc, timeout):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def test_events_follows_changes_live(agent, ldmx):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    follower = subprocess.Popen([sys.executable, "-m", "agent.cli.client", "--socket",
                                 str(agent.socket_path), "events"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
    names = []
    try:
        line = ""
        while not line and len(names) < 40:  # until the follower has registered
            names.append(f"ev{len(names)}")
            assert ldmx("add-domain", names[-1])[0] == 0
            line = read_line(follower, 0.5)
        assert line == f"add-domain {names[-1]}\n"
        assert ldmx("add-vcpu", "2", names[-1])[0] == 0
        assert read_line(follower, 10) == f"add-vcpu {names[-1]} cpu AllocationUnits=2\n"
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(10)
        for name in names:
            ldmx("remove-domain", name)
    assert follower.returncode == 0
