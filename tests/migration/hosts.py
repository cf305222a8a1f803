"""Two real agents on loopback, each its own simulated machine, for migration tests.

Each agent gets a copy of the default platform with its own host name and machine id (the
id is how an agent tells a peer from itself, migration.md §6.13), a management user, and a
control domain shrunk so that guests fit. Guests are destroyed when the pair is closed.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from agent.cli.connection import LdmConnection
from agent.testing import AgentProcess

from tests.migration import docs

USER, PASSWORD = "admin", "s3cret!"
_DEFAULT = Path(__file__).resolve().parents[2] / "agent" / "ldm" / "platforms" / "default.toml"


def platform_file(directory: Path, hostname: str, machine_id: str) -> Path:
    text = _DEFAULT.read_text()
    text = re.sub(r'^hostname = ".*"$', f'hostname = "{hostname}"', text, count=1, flags=re.M)
    text = re.sub(r'^machine_id = ".*"$', f'machine_id = "{machine_id}"', text, count=1,
                  flags=re.M)
    path = directory / f"{hostname}.toml"
    path.write_text(text)
    return path


class Host:
    """One agent and an admin session to it."""

    def __init__(self, base: Path, name: str, machine_id: str, env: dict | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.args = args  # more ldmx-agent options (--guest-workload, --config ...)
        base.mkdir(parents=True, exist_ok=True)
        self.platform = platform_file(base, name, machine_id)
        self.state = base / "state"
        self.env = env
        self.agent: AgentProcess | None = None
        self.listen = ("", 0)

    def start(self, env: dict | None = None) -> "Host":
        import os
        environment = dict(os.environ)
        environment.update(self.env or {})
        environment.update(env or {})
        listen = f"127.0.0.1:{self.listen[1]}" if self.listen[1] else "127.0.0.1:0"
        self.agent = AgentProcess(self.state, host_name=self.name, listen=listen,
                                  extra_args=("--platform", str(self.platform), *self.args),
                                  env=environment).start()
        self.listen = self.agent.listen
        return self

    def connect(self) -> LdmConnection:
        conn = LdmConnection.tcp(*self.listen, timeout=60.0)
        conn.negotiate(USER, PASSWORD)
        return conn

    def request(self, document: bytes) -> bytes:
        with contextlib.closing(self.connect()) as conn:
            return conn.request(document)

    def domains(self) -> dict[str, dict[str, str]]:
        return docs.domains(self.request(docs.list_domain()))

    @property
    def target(self) -> str:
        return f"{self.listen[0]}:{self.listen[1]}"


def prepare(host: Host) -> None:
    """Add the user and shrink the control domain so guests fit (first start only)."""
    host.agent.add_user(USER, "management", PASSWORD)
    for doc in (docs.set_quantity("set-vcpu", "primary", "cpu", "16"),
                docs.set_quantity("set-memory", "primary", "memory", "16G"),
                docs.add_vcc("primary", "primary-vcc0", 5000, 5100)):
        answer = host.request(doc)
        assert docs.status(answer) == "success", docs.lines(answer)


def make_guest(host: Host, name: str, state: str, memory: str = "64M", vcpus: int = 2) -> None:
    """Create ``name`` on ``host`` and bring it to ``state`` (inactive, bound or active)."""
    steps = [docs.add_domain(name), docs.set_quantity("add-vcpu", name, "cpu", str(vcpus)),
             docs.set_quantity("add-memory", name, "memory", memory)]
    if state in ("bound", "active"):
        steps.append(docs.simple("bind-domain", name))
    if state == "active":
        steps.append(docs.simple("start-domain", name))
    for doc in steps:
        answer = host.request(doc)
        assert docs.status(answer) == "success", docs.lines(answer)


@contextlib.contextmanager
def two_hosts(tmp: Path, source_env: dict | None = None, target_env: dict | None = None,
              source_args: tuple[str, ...] = (), target_args: tuple[str, ...] = ()):
    """``system1`` (source) and ``system2`` (target), started and prepared."""
    source = Host(tmp / "system1", "system1", "SIM-1000001", source_env, source_args)
    target = Host(tmp / "system2", "system2", "SIM-2000002", target_env, target_args)
    try:
        for host in (source, target):
            host.start()
            prepare(host)
        yield source, target
    finally:
        for host in (source, target):
            if host.agent is not None:
                host.agent.stop()
                host.agent.destroy_guests()


def lost_or_duplicated(source: Host, target: Host, uuid: str) -> tuple[int, int]:
    """How many complete copies of the domain with ``uuid`` exist, and how many run."""
    copies = [d for h in (source, target) for d in h.domains().values() if d.get("uuid") == uuid]
    running = [d for d in copies if d.get("state") in ("active", "suspended")
               and d.get("flags", "").endswith(("-", "t"))]
    return len(copies), len(running)
