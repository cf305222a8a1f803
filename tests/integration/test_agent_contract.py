"""The `ldmx-agent` contract of issue 2: ready line, first start, users, clean shutdown."""

import os
import signal
import stat
import subprocess
import sys

import pytest

from agent.cli.connection import LdmClientError, LdmConnection
from agent.testing import READY_RE, AgentProcess, run_admin

from .conftest import ADMIN, ADMIN_PW


def test_ready_line_names_the_actual_endpoints(live_agent):
    """Port 0 picks free ports; the one ready line reports the real ones."""
    assert READY_RE.match(live_agent.ready_line)
    assert live_agent.listen[0] == "127.0.0.1" and live_agent.listen[1] > 0
    assert live_agent.migration[1] > 0
    assert live_agent.socket_path == live_agent.state_dir / "ldmx.sock"
    assert sum(1 for line in live_agent.log_lines if line.startswith("ldmx-agent ready")) == 1


def _own_non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine that is not loopback (from ``ip -4 -o addr``)."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True,
                             timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] == "inet" and not fields[3].startswith("127."):
            return fields[3].split("/")[0]
    return None


def test_remote_access_off_refuses_other_addresses_and_keeps_loopback(live_agent):
    """C3: by default the agent listens on loopback only (remote access off): a connection to
    this machine's own non-loopback address is not accepted, loopback still works."""
    import socket

    address = _own_non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    port = live_agent.listen[1]
    with pytest.raises(OSError):
        socket.create_connection((address, port), timeout=5).close()
    with LdmConnection.tcp(*live_agent.listen) as conn:
        conn.negotiate(ADMIN, ADMIN_PW)
        assert b"<status>success</status>" in conn.request(
            b"<LDM_interface version='1.0'><cmd><action>list-domain</action></cmd></LDM_interface>")


def test_first_start_creates_state_certificate_and_private_key(live_agent):
    """§1.6: a generated key file has mode 0600; the database exists."""
    files = {p.name: p for p in live_agent.state_dir.iterdir()}
    keys = [p for name, p in files.items() if name.endswith(".key") or "key" in name]
    assert keys, sorted(files)
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (live_agent.state_dir / "ldmx.db").exists()


def test_user_added_while_running_can_log_in_at_once(live_agent):
    live_agent.add_user("late", "review", "pw-late")
    with LdmConnection.tcp(*live_agent.listen) as conn:
        conn.negotiate("late", "pw-late")
    run_admin(live_agent.state_dir, "user", "remove", "late")
    with pytest.raises(LdmClientError, match="authentication failed"):
        with LdmConnection.tcp(*live_agent.listen) as conn:
            conn.negotiate("late", "pw-late")


def test_passwords_never_reach_the_log_or_the_state_dir(live_agent):
    with LdmConnection.tcp(*live_agent.listen) as conn:
        conn.negotiate(ADMIN, ADMIN_PW)
    with pytest.raises(LdmClientError):
        with LdmConnection.tcp(*live_agent.listen) as conn:
            conn.negotiate(ADMIN, "wrong-password-xyz")
    assert ADMIN_PW not in live_agent.log()
    assert "wrong-password-xyz" not in live_agent.log()
    for path in live_agent.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert ADMIN_PW.encode() not in data and b"wrong-password-xyz" not in data, path


def test_user_list_shows_names_and_roles(live_agent):
    out = run_admin(live_agent.state_dir, "user", "list").stdout
    assert "admin management" in out and "viewer review" in out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_agent_exits_cleanly_on_signal_and_restarts_on_the_same_state(tmp_path, sig):
    with AgentProcess(tmp_path) as agent:
        first_key = sorted(p.read_bytes() for p in tmp_path.iterdir() if p.suffix in (".pem", ".key"))
    assert agent.returncode == 0
    agent = AgentProcess(tmp_path).start()
    try:
        again = sorted(p.read_bytes() for p in tmp_path.iterdir() if p.suffix in (".pem", ".key"))
        assert again == first_key  # the certificate and key are reused
    finally:
        assert agent.stop(sig) == 0, agent.log()
    assert not (tmp_path / "ldmx.sock").exists()
    assert "Traceback" not in agent.log() and "Unhandled" not in agent.log(), agent.log()


def test_unwritable_state_dir_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/ldmx-cannot-exist"  # even root cannot create directories in /proc
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "state")
    proc = subprocess.run([sys.executable, "-m", "agent.cli.agent", "--state-dir", target,
                           "--listen", "127.0.0.1:0", "--migration-listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "state directory" in proc.stderr and target in proc.stderr
