"""Service integration: ``twistd -n ldmx`` runs the agent, the plugin is found in an install,
and the systemd unit in samples/ is valid and starts ldmx-agent with options it accepts."""

import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.cli.agent import build_parser
from agent.cli.connection import LdmConnection
from agent.config import parse_endpoint
from agent.testing import run_admin

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "samples" / "ldmx-agent.service"
READY = re.compile(r"ldmx-agent ready listen=(\S+) ")
# twistd, run so that the checkout's twisted/plugins is on sys.path (the current directory).
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def test_twistd_runs_the_agent_and_stops_it_cleanly_on_sigterm(tmp_path):
    """From the checkout (twisted/plugins on sys.path): the ready line is logged, a user logs
    in over TLS and lists domains; SIGTERM shuts the agent down (twistd then ends by the same
    signal, as twistd does for every application) and removes its socket."""
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [*TWISTD, "-n", "--pidfile=", "ldmx", "--state-dir", str(state),
         "--listen", "127.0.0.1:0", "--migration-listen", "127.0.0.1:0", "--host-name", "tw1"],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    lines: list[str] = []
    ready = threading.Event()

    def drain():
        for line in proc.stdout:
            lines.append(line)
            if READY.search(line):
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert ready.wait(30) and proc.poll() is None, "".join(lines)
        listen = parse_endpoint(READY.search("".join(lines)).group(1), "listen")
        run_admin(state, "user", "add", "op", "--role", "management", "--password-stdin",
                  stdin="pw-op\n")
        with LdmConnection.tcp(*listen) as conn:
            conn.negotiate("op", "pw-op")
            answer = conn.request(b'<LDM_interface version="1.3"><cmd><action>list-domain'
                                  b'</action><data version="3.0"/></cmd></LDM_interface>')
        assert b"primary" in answer and b'status>success' in answer.replace(b" ", b"")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        reader.join(10)
    log = "".join(lines)
    assert code == -signal.SIGTERM, log
    assert "Server Shut Down." in log and "Traceback" not in log
    assert not (state / "ldmx.sock").exists()


def test_twistd_refuses_a_bad_option_value_before_starting(tmp_path):
    proc = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "ldmx", "--state-dir", str(tmp_path), "--listen",
         "nowhere"], cwd=ROOT, capture_output=True, text=True,
        timeout=60)
    assert proc.returncode != 0
    assert "listen: expected ADDR:PORT" in proc.stdout + proc.stderr


PROBE = """
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted import plugins
makers = {m.tapname: m for m in getPlugins(IServiceMaker, plugins)}
print(sys.modules[type(makers["ldmx"]).__module__].__file__)
"""


def test_installed_package_carries_the_twistd_plugin(tmp_path):
    """After a non-editable install (make install, as make test does), twistd finds the
    plugin in site-packages: run from an empty directory so the checkout is not on sys.path."""
    proc = subprocess.run([sys.executable, "-c", "import sys" + PROBE], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    location = proc.stdout.strip().splitlines()[-1]
    assert "site-packages" in location and location.endswith("twisted/plugins/ldmx_plugin.py")


def exec_start() -> list[str]:
    line = next(l for l in UNIT.read_text().splitlines() if l.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_systemd_unit_starts_ldmx_agent_with_options_it_accepts():
    argv = exec_start()
    assert Path(argv[0]).name == "ldmx-agent"
    args = build_parser().parse_args(argv[1:])
    assert args.config == "/etc/ldmx/ldmx.toml" and args.command is None


def test_systemd_unit_keeps_guests_running_when_the_agent_stops():
    """Guests are processes of their own that the agent reattaches to: systemd must signal
    only the agent (KillMode=process), with SIGTERM, the agent's clean-shutdown signal."""
    text = UNIT.read_text()
    assert "\nKillMode=process\n" in text and "\nKillSignal=SIGTERM\n" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    """With ExecStart pointed at this environment's ldmx-agent (the unit names /opt/ldmx)."""
    agent = Path(sys.executable).parent / "ldmx-agent"
    if not agent.exists():
        pytest.skip("ldmx-agent is not installed in this environment")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/ldmx/bin/ldmx-agent", str(agent)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
