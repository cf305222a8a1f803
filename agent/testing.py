"""Run a real ``ldmx-agent`` as a subprocess: for the demo, integration tests and benchmarks.

The agent listens on free loopback ports in its own state directory; :class:`AgentProcess`
waits for its ready line, keeps draining its log, and stops it with SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.config import parse_endpoint

READY_RE = re.compile(r"^ldmx-agent ready listen=(\S+) socket=(\S+) migration=(\S+)$")


class AgentProcess:
    """An agent subprocess; use as a context manager."""

    def __init__(self, state_dir: Path, *, host_name: str = "localhost",
                 listen: str = "127.0.0.1:0", migration_listen: str = "127.0.0.1:0",
                 extra_args: tuple[str, ...] = (), env: dict | None = None,
                 ready_timeout: float = 30.0) -> None:
        self.state_dir = Path(state_dir)
        self.host_name = host_name
        self.args = [sys.executable, "-m", "agent.cli.agent", "--state-dir", str(self.state_dir),
                     "--host-name", host_name, "--listen", listen,
                     "--migration-listen", migration_listen, *extra_args]
        self.env = env
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.log_lines: list[str] = []
        self.ready_line = ""
        self.listen: tuple[str, int] = ("", 0)
        self.socket_path: Path | None = None
        self.migration: tuple[str, int] = ("", 0)
        self._ready = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "AgentProcess":
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        threading.Thread(target=self._drain, daemon=True).start()
        if not self._ready.wait(self.ready_timeout) or not self.ready_line:
            self.stop()
            raise RuntimeError("ldmx-agent did not become ready; its log:\n" + self.log())
        return self

    def _drain(self) -> None:
        assert self.proc and self.proc.stderr
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            self.log_lines.append(line)
            m = READY_RE.match(line)
            if m and not self.ready_line:
                self.ready_line = line
                self.listen = parse_endpoint(m.group(1), "listen")
                self.socket_path = Path(m.group(2))
                self.migration = parse_endpoint(m.group(3), "migration")
                self._ready.set()
        self._ready.set()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the agent and wait for it; kill it if it does not exit in time."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, for durability tests."""
        self.stop(signal.SIGKILL)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def log(self) -> str:
        return "\n".join(self.log_lines)

    def __enter__(self) -> "AgentProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def destroy_guests(self) -> None:
        """Destroy every guest this agent's hypervisor knows (guests outlive the agent by
        design, so tests and the demo clean them up explicitly)."""
        from agent.hypervisor.sim.hypervisor import SimHypervisor

        guests = self.state_dir / "guests"
        if guests.is_dir():
            hv = SimHypervisor(guests)
            for name in hv.list():
                hv.destroy(name)

    # -- administration -----------------------------------------------------------------
    def add_user(self, name: str, role: str, password: str) -> None:
        """``ldmx-agent user add`` with the password on standard input."""
        run_admin(self.state_dir, "user", "add", name, "--role", role, "--password-stdin",
                  stdin=password + "\n")


def run_admin(state_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run an ``ldmx-agent`` administrative sub-command; raise with its stderr on failure."""
    proc = subprocess.run([sys.executable, "-m", "agent.cli.agent", "--state-dir", str(state_dir),
                           *args], input=stdin, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"ldmx-agent {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (for real-process tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
