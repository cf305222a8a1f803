"""`make demo`: a live migration between two ldmx agents on loopback, told as an operator sees it.

Two agents run as subprocesses on distinct loopback addresses (127.0.0.1 and 127.0.0.2, free
ports), each with its own temporary state directory and simulated machine. The demo adds a
user on both, starts domain ``ldg1`` with the ``web`` workload on the first, keeps a session
registered for all events on the first, migrates ``ldg1`` with ``ldmx migrate-domain`` (a live
bar on a terminal, progress lines otherwise), then prints a summary and ``ldmx list`` on both
hosts. Every step is a real ``ldmx`` or ``ldmx-agent`` command, printed before it runs.

The summary takes each figure from where an operator would find it: phases and rounds from the
progress events; bytes and throughput from the target's listing of the migrated domain (the
§7.4 migration keys); downtime and integrity from the guest itself (its heartbeat and its
self-verifying pages, read through the simulated hypervisor). A figure the agents do not
report is printed as such. Exit status 0 only when the migration succeeded and the guest
verified its memory. Agents and guests are stopped and the state directories removed at the
end, whatever happened.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from agent.cli import requests
from agent.cli.answers import ldom_info, parse_answer, parse_event
from agent.cli.connection import LdmConnection
from agent.cli.listing import human_size
from agent.hypervisor.sim.hypervisor import SimHypervisor
from agent.testing import AgentProcess

USER, PASSWORD = "demo", "demo-password"
DOMAIN = "ldg1"
COMMAND_TIMEOUT_S = 90
PHASES = {"1": "checks", "2": "preparation", "3": "live pre-copy", "4": "suspend and final copy",
          "5": "handoff"}


@dataclass
class Host:
    """One demo machine: its name, loopback address, machine id and running agent."""

    name: str
    address: str
    machine_id: str
    base: Path
    agent: AgentProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.agent.listen[0]}:{self.agent.listen[1]}"


@dataclass
class EventLog:
    """The LDM_event documents one registered session received, with their arrival times."""

    conn: LdmConnection
    events: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def follow(self) -> None:
        while not self.stopping.is_set():
            try:
                got = self.conn.poll(0.2)
            except Exception:  # noqa: BLE001 - the agent went away; the demo reports the rest
                return
            if got is None or got[0] != b"LDM_event":
                continue
            event = parse_event(got[1])
            content = next(iter(event.envelope.contents), None)
            props = ldom_info(content) if content is not None else {}
            self.events.append((time.monotonic(), event.action, props))

    def progress(self) -> list[tuple[float, dict[str, str]]]:
        return [(t, p) for t, action, p in self.events if action == "migration-process"]


def platform_file(host: Host) -> Path:
    """The embedded platform with this host's name and machine id (a peer must differ)."""
    text = resources.files("agent.ldm").joinpath("platforms/default.toml").read_text()
    text = re.sub(r'^hostname = ".*"$', f'hostname = "{host.name}"', text, count=1, flags=re.M)
    text = re.sub(r'^machine_id = ".*"$', f'machine_id = "{host.machine_id}"', text, count=1,
                  flags=re.M)
    path = host.base / "platform.toml"
    path.write_text(text)
    return path


def say(text: str) -> None:
    print(text, flush=True)


def ldmx(host: Host, password_file: Path, *words: str) -> int:
    """Run one ``ldmx`` command against ``host``, echoing it first; its exit status."""
    argv = ["-H", host.endpoint, "-u", USER, "--password-file", str(password_file), *words]
    say(f"$ ldmx {shlex.join(argv)}")
    try:
        return subprocess.run([sys.executable, "-m", "agent.cli.client", *argv],
                              timeout=COMMAND_TIMEOUT_S).returncode
    except subprocess.TimeoutExpired:
        say(f"  no answer within {COMMAND_TIMEOUT_S} s; the command was stopped")
        return 124


def start_host(host: Host, workload: str) -> None:
    host.base.mkdir(parents=True)
    args = ("--platform", str(platform_file(host)), "--guest-workload", workload)
    say(f"$ ldmx-agent --state-dir {host.base / 'state'} --host-name {host.name} "
        f"--listen {host.address}:0 --migration-listen {host.address}:0 "
        f"{shlex.join(args)} &")
    host.agent = AgentProcess(host.base / "state", host_name=host.name,
                              listen=f"{host.address}:0", migration_listen=f"{host.address}:0",
                              extra_args=args).start()
    say(f"  {host.agent.ready_line}")
    say(f"$ ldmx-agent --state-dir {host.base / 'state'} user add {USER} --role management "
        "--password-stdin")
    host.agent.add_user(USER, "management", PASSWORD)


def prepare(host: Host, pw: Path) -> bool:
    """Give the control domain less than the whole machine, and a console concentrator."""
    steps = [("set-vcpu", "16", "primary"), ("set-memory", "16G", "primary"),
             ("add-vcc", "port-range=5000-5100", "primary-vcc0", "primary")]
    return all(ldmx(host, pw, *step) == 0 for step in steps)


def listing_of(host: Host, domain: str) -> dict[str, str]:
    """The ``ldom_info`` keys of ``domain`` in the host's ``list-domain``."""
    with LdmConnection.tcp(*host.agent.listen) as conn:
        conn.negotiate(USER, PASSWORD)
        answer = parse_answer(conn.request(requests.request("list-domain",
                                                            [requests.domain(domain)])))
    contents = answer.contents()
    return ldom_info(contents[0]) if contents else {}


def summary(log: EventLog, elapsed: float, target: Host) -> bool:
    """Print what the migration did; True when the guest verified its memory on the target."""
    series = log.progress()
    say("\n== summary")
    say(f"  migration time (as the client waited): {elapsed:.2f} s")
    if series:
        start = series[0][0]
        seen: dict[str, float] = {}
        for when, props in series:
            seen.setdefault(props.get("phase", ""), when - start)
        for phase, offset in seen.items():
            say(f"  phase {phase} ({PHASES.get(phase, '?')}): from +{offset:.2f} s")
        rounds = [int(p["round"]) for _, p in series if p.get("round", "").isdigit()]
        say(f"  pre-copy rounds: {max(rounds) if rounds else 'none reported'}")
        final = series[-1][1]
        say(f"  final event: {final.get('progress')} {final.get('status')}, "
            f"outcome {final.get('outcome', '?')}; {len(series)} progress events")
    else:
        say("  no progress events arrived")
    info = listing_of(target, DOMAIN)
    for key, label in (("transferred", "bytes transferred"), ("throughput", "throughput")):
        value = info.get(key, "")
        if value.isdigit():
            text = human_size(float(value)) + ("/s" if key == "throughput" else "")
        else:
            text = "not reported by the agents"
        say(f"  {label}: {text}")
    hv = SimHypervisor(target.base / "state" / "guests")
    status = hv.status(DOMAIN)
    say(f"  downtime measured by the guest (its heartbeat across the switch-over): "
        f"{status.resume_pause_ms:.1f} ms")
    problem = hv.verify(DOMAIN)
    if problem is None and not status.corrupt:
        say(f"  integrity: verified by the guest on {target.name}: every page it wrote "
            f"({status.pages_written} writes) checks out, none lost")
        return True
    say(f"  integrity: FAILED: {problem or status.corruption}")
    return False


def migrate(source: Host, target: Host, pw: Path) -> bool:
    """Register for events, migrate ``ldg1`` with the CLI, summarise; True on success."""
    say(f"\n== a session on {source.name} registered for all events (reg-all-events)")
    conn = LdmConnection.tcp(*source.agent.listen, timeout=60.0)
    conn.negotiate(USER, PASSWORD)
    if not parse_answer(conn.request(requests.request("reg-all-events", [None]))).ok:
        say("  registration failed")
        return False
    log = EventLog(conn)
    follower = threading.Thread(target=log.follow, daemon=True)
    follower.start()
    try:
        say(f"\n== live migration of {DOMAIN} from {source.name} to {target.name}")
        began = time.monotonic()
        code = ldmx(source, pw, "migrate-domain", "-p", str(pw),
                    "--target-port", str(target.agent.listen[1]), DOMAIN,
                    f"{USER}@{target.address}")
        elapsed = time.monotonic() - began
        time.sleep(0.3)  # the last events are written before the answer; let them land
    finally:
        log.stopping.set()
        follower.join(5)
        conn.close()
    if code != 0:
        say(f"  ldmx migrate-domain exited with status {code}")
        return False
    return summary(log, elapsed, target)


def run(base: Path) -> bool:
    pw = base / "password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    source = Host("ctl1", "127.0.0.1", "SIM-1000001", base / "ctl1")
    target = Host("ctl2", "127.0.0.2", "SIM-2000002", base / "ctl2")
    hosts = (source, target)
    try:
        say("== two agents, each its own simulated machine")
        start_host(source, "web")
        start_host(target, "idle")
        say("\n== preparing both machines")
        if not all(prepare(h, pw) for h in hosts):
            return False
        say(f"\n== domain {DOMAIN} on {source.name}, running the web workload")
        steps = [("add-domain", DOMAIN), ("add-vcpu", "2", DOMAIN),
                 ("add-memory", "256M", DOMAIN), ("bind-domain", DOMAIN),
                 ("start-domain", DOMAIN)]
        if not all(ldmx(source, pw, *step) == 0 for step in steps):
            return False
        time.sleep(2.0)  # let the workload dirty its working set before the copy
        ok = migrate(source, target, pw)
        for host in hosts:
            say(f"\n== ldmx list on {host.name}")
            ldmx(host, pw, "list")
        return ok
    finally:
        say("\n== stopping both agents (SIGTERM) and their guests")
        for host in hosts:
            if host.agent is not None:
                code = host.agent.stop()
                host.agent.destroy_guests()
                say(f"  {host.name}: agent exited with status {code}")


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="ldmx-demo-"))
    try:
        ok = run(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    say("\n== demo " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
