"""Every shell command shown in README.md and docs/operator-guide.md runs as written.

Convention in the docs: a fenced ``sh`` block is run by this test; a ``console`` block is
shown only (it needs root, systemd, a package install or a firewall) and the guide says so;
``toml`` blocks must load as ldmx configuration. The blocks of one document run in order,
each with ``bash -euo pipefail``, so a failing command fails the test with its output.

README: ``make demo`` runs for real (a non-editable install into .venv, then the demo).
``make test`` is not run: it is the command that runs this test (CI runs it, ``.ci/run``).

Operator guide, written for two real hosts ``ctl1.example.com`` and ``ctl2.example.com``
that run ldmx-agent under systemd with ``/etc/ldmx/ldmx.toml``: this test starts two agents
as subprocesses on a random loopback pair ``127.A.B.1`` and ``127.A.B.2``, on the default
ports 6482 and 8101, each configured from ``samples/ldmx.toml`` (state dir, listen
addresses and platform file adjusted, the platform copy given its own machine id as the
guide tells), and substitutes in every block before running it:

* ``ctl1.example.com`` and ``ctl2.example.com`` by the two loopback addresses;
* ``/etc/ldmx`` and ``/var/lib/ldmx`` by that host's directories under the test's temporary
  directory, the host being the one the block's first line names (``# on ctl2``; ``# on
  ctl1`` is the default);
* ``ldmx`` and ``ldmx-agent`` on PATH are wrappers running this checkout's code; ``HOME`` is
  a temporary directory; ``ALICE_PASSWORD`` and ``BOB_PASSWORD`` are set.

After the blocks have run, the test checks what they claim to have done: ``ldg1`` runs on
ctl2 and is gone from ctl1.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from agent import config
from agent.cli.connection import LdmConnection
from agent.testing import AgentProcess
from tests.migration import docs as xml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "operator-guide.md"
HOSTS = ("ctl1", "ctl2")
PASSWORDS = {"ALICE_PASSWORD": "alice-s3cret", "BOB_PASSWORD": "bob-look-only"}


def blocks(path: Path, lang: str) -> list[str]:
    """The bodies of the fenced blocks of ``lang`` in ``path``, in order."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", path.read_text(), flags=re.M | re.S)


def run_block(text: str, env: dict, cwd: Path, timeout: float = 150) -> str:
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"block failed ({proc.returncode}):\n{text}\n--- output:\n{output}"
    return output


# -- README ---------------------------------------------------------------------------------

def test_readme_shows_exactly_the_two_setup_commands():
    commands = [line.split("#")[0].strip() for block in blocks(README, "sh")
                for line in block.splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]


def normalized(line: str) -> str:
    """A demo output line without what changes from run to run (directories, ports)."""
    line = re.sub(r"ldmx-demo-\w+", "ldmx-demo-X", line)
    line = re.sub(r"(127\.0\.0\.\d):\d+", r"\1:P", line)
    return re.sub(r"--target-port \d+", "--target-port P", line)


def test_readme_make_demo_migrates_and_verifies_the_guest():
    """``make demo`` as a user runs it: install, two agents, migration, summary, nothing left
    running or on disk. The README's excerpt of its output shows the commands it really runs
    and the headings it really prints."""
    before = set(Path(tempfile.gettempdir()).glob("ldmx-demo-*"))
    commands = [line.split("#")[0].strip() for block in blocks(README, "sh")
                for line in block.splitlines()]
    assert "make demo" in commands
    output = run_block("make demo", dict(os.environ), ROOT, timeout=300)
    assert "== demo passed" in output, output
    assert "integrity: verified by the guest on ctl2" in output
    assert re.search(r"ldg1 +active +-n----", output.split("ldmx list on ctl2")[1])
    assert set(Path(tempfile.gettempdir()).glob("ldmx-demo-*")) == before
    produced = {normalized(line) for line in output.splitlines()}
    excerpt = [line for block in blocks(README, "text") for line in block.splitlines()
               if line.startswith(("$ ", "== "))]
    assert len(excerpt) >= 10
    assert [line for line in excerpt if normalized(line) not in produced] == []


# -- operator guide -------------------------------------------------------------------------

def test_guide_toml_blocks_load_as_configuration(tmp_path):
    found = blocks(GUIDE, "toml")
    assert found
    for number, text in enumerate(found):
        path = tmp_path / f"block{number}.toml"
        path.write_text(text)
        tomllib.loads(text)
        config.load(path)


def wrapper(bin_dir: Path, name: str, module: str) -> None:
    path = bin_dir / name
    path.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}${{PYTHONPATH:+:$PYTHONPATH}}" '
                    f'exec "{sys.executable}" -m {module} "$@"\n')
    path.chmod(0o755)


class Site:
    """The two loopback 'hosts', their directories and the substitutions of the docstring."""

    def __init__(self, base: Path) -> None:
        a, b = random.randrange(1, 255), random.randrange(0, 255)
        self.address = {h: f"127.{a}.{b}.{i}" for i, h in enumerate(HOSTS, start=1)}
        self.base = base
        self.home = base / "home"
        self.home.mkdir()
        bin_dir = base / "bin"
        bin_dir.mkdir()
        wrapper(bin_dir, "ldmx", "agent.cli.client")
        wrapper(bin_dir, "ldmx-agent", "agent.cli.agent")
        self.env = {**os.environ, **PASSWORDS, "HOME": str(self.home),
                    "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        self.env.pop("LDMX_STATE_DIR", None)
        self.agents: list[AgentProcess] = []

    def etc(self, host: str) -> Path:
        return self.base / host / "etc" / "ldmx"

    def state(self, host: str) -> Path:
        return self.base / host / "var" / "lib" / "ldmx"

    def substitute(self, text: str) -> str:
        first = text.lstrip().splitlines()[0] if text.strip() else ""
        host = next((h for h in HOSTS if first.startswith(f"# on {h}")), "ctl1")
        text = text.replace("/etc/ldmx", str(self.etc(host)))
        text = text.replace("/var/lib/ldmx", str(self.state(host)))
        for name, address in self.address.items():
            text = text.replace(f"{name}.example.com", address)
        return text

    def start(self, number: int, host: str) -> None:
        """``ldmx-agent --config /etc/ldmx/ldmx.toml`` as systemd would start it."""
        etc, state = self.etc(host), self.state(host)
        etc.mkdir(parents=True)
        default = (ROOT / "samples" / "platforms" / "default.toml").read_text()
        platform = re.sub(r'^machine_id = ".*"$', f'machine_id = "SIM-000000{number}"',
                          default, count=1, flags=re.M)
        platform = re.sub(r'^hostname = ".*"$', f'hostname = "{host}"', platform, count=1,
                          flags=re.M)
        (etc / "platform.toml").write_text(platform)
        sample = (ROOT / "samples" / "ldmx.toml").read_text()
        sample = sample.replace("0.0.0.0", self.address[host])
        sample = sample.replace('# platform = "/etc/ldmx/platform.toml"',
                                'platform = "/etc/ldmx/platform.toml"')
        sample = sample.replace('host_name = "ctl1.example.com"',
                                f'host_name = "{host}.example.com"')
        (etc / "ldmx.toml").write_text(self.substitute(f"# on {host}\n" + sample))
        cfg = config.load(etc / "ldmx.toml")
        assert cfg.platform == etc / "platform.toml" and cfg.state_dir == state
        agent = AgentProcess(state, host_name=f"{host}.example.com",
                             listen=f"{self.address[host]}:6482",
                             migration_listen=f"{self.address[host]}:8101",
                             extra_args=("--config", str(etc / "ldmx.toml")))
        self.agents.append(agent.start())

    def stop(self) -> None:
        for agent in self.agents:
            code = agent.stop()
            agent.destroy_guests()
            assert code == 0, agent.log()


@pytest.fixture
def site(tmp_path):
    site = Site(tmp_path)
    try:
        for number, host in enumerate(HOSTS, start=1):
            site.start(number, host)
        yield site
    finally:
        site.stop()


def domains(site: Site, host: str) -> dict:
    with LdmConnection.tcp(site.address[host], 6482) as conn:
        conn.negotiate("alice", PASSWORDS["ALICE_PASSWORD"])
        return xml.domains(conn.request(xml.list_domain()))


def test_guide_shell_blocks_run_against_two_loopback_agents(site):
    found = blocks(GUIDE, "sh")
    assert len(found) >= 5
    for text in found:
        run_block(site.substitute(text), site.env, site.home)
    on_ctl2 = domains(site, "ctl2")
    assert on_ctl2["ldg1"]["state"] == "active"
    assert "ldg1" not in domains(site, "ctl1")


def test_guide_marks_every_shell_block_as_run_or_shown():
    """No ``bash``/``shell``/unlabelled blocks: each block says whether this test runs it."""
    fences = re.findall(r"^```(\w*)$", GUIDE.read_text(), flags=re.M)
    openings = fences[0::2]
    assert set(openings) <= {"sh", "console", "toml", "text", "ini"}, openings
