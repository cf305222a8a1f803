"""Load with migrations (issue 8 item 3): many sessions on two agents while a domain moves.

    python -m tools.load.mixed [--sessions 50] [--seconds 300] [--migrations 3]
                               [--listeners 4] [--seed 1] [--json out.json]

Two agents, A (``system1``) and B (``system2``), each with a management user (the helpers of
``tests/migration/hosts.py``). A domain ``mig1`` (2 vCPUs, 64M) runs on A. For ``--seconds``
seconds, ``--sessions`` concurrent sessions (threads with blocking clients, one session each,
kept for the whole run) work on the agents: ``--listeners`` of them are registered for all
events and only read events; the others alternate between the agents and between transports
(every third one is a local-root session on the agent's Unix socket, the others TCP + TLS + SASL
as the management user) and issue a random mix of list-domain / list-bindings /
list-constraints reads and changes on their own scratch domains (add-domain, add-variable,
set-variable, remove-domain; names ``load-<session>-<n>``, never shared). Meanwhile
``--migrations`` migrations of ``mig1`` run one after the other, A→B, B→A, …, spread over
the run.

Measured: requests that failed (none of them should: every request is valid for its session),
p50/p99/max latency per request kind, for every listener whether it saw each add-domain and
remove-domain event of every acknowledged scratch change on its agent exactly once (missing,
duplicated, unexpected), the agents' VmRSS at start / middle / end, each migration's outcome
and duration, and at the end the guest's integrity oracle (``SimHypervisor.verify``) on the
agent that should hold it. ``ok`` in the figures is true when all of these are clean.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from lxml import etree

from agent.cli.connection import LdmConnection
from agent.hypervisor.sim.hypervisor import SimHypervisor
from tests.migration import docs
from tests.migration.hosts import PASSWORD, USER, Host, make_guest, two_hosts

PREFIX = "load-"
GUEST = "mig1"
READS = ("list-domain", "list-bindings", "list-constraints")
REQUEST_TIMEOUT = 120.0  # a client gives up on an answer after this long (counted as failed)


def _var(name: str, value: str) -> str:
    return ("<Item><rasd:OtherResourceType>var</rasd:OtherResourceType>"
            f'<gprop:GenericProperty key="name">{name}</gprop:GenericProperty>'
            f'<gprop:GenericProperty key="value">{value}</gprop:GenericProperty></Item>')


def variable_request(action: str, domain: str, name: str, value: str) -> bytes:
    """add-variable / set-variable of one variable on ``domain``."""
    return docs._doc(action, docs._content(domain, _var(name, value)))


def read_request(action: str) -> bytes:
    """A list-* request over all domains."""
    return docs._doc(action)


def vm_rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def connect(host: Host, local: bool) -> LdmConnection:
    """A session to ``host``: local root on its Unix socket, or TCP + SASL as the user."""
    if local:
        conn = LdmConnection.unix(host.agent.socket_path, timeout=REQUEST_TIMEOUT)
        conn.negotiate()
    else:
        conn = LdmConnection.tcp(*host.listen, timeout=REQUEST_TIMEOUT)
        conn.negotiate(USER, PASSWORD)
    return conn


class Recorder:
    """Thread-safe record of requests: latencies per kind, failures, acknowledged events."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.failures: list[dict] = []
        # per agent name: Counter of (event action, domain) the listeners must see once
        self.expected: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        # scratch changes whose outcome is unknown (failed requests): their events may or may not come
        self.uncertain: dict[str, set] = collections.defaultdict(set)

    def done(self, kind: str, seconds: float, answer: bytes | None, error: str | None,
             session: int, detail: str = "") -> bool:
        """Record one request; True if it succeeded."""
        ok = error is None and answer is not None and docs.status(answer) == "success"
        with self.lock:
            self.latencies[kind].append(seconds)
            if not ok:
                why = error or "; ".join(docs.lines(answer))[:300] or docs.status(answer)
                self.failures.append({"session": session, "kind": kind, "detail": detail,
                                      "error": why})
        return ok


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def worker(index: int, host: Host, local: bool, deadline: float, rec: Recorder, seed: int,
           stats: dict, max_requests: int = 200_000) -> None:
    """One working session: random reads and changes on its own scratch domains until the
    deadline, then removes the scratch domain it still has."""
    rng = random.Random(seed * 1000 + index)
    try:
        conn = connect(host, local)
    except Exception as error:  # noqa: BLE001 - a refused session is a failure to report
        with rec.lock:
            rec.failures.append({"session": index, "kind": "connect", "detail": host.name,
                                 "error": repr(error)})
        return
    counter = 0
    scratch: str | None = None
    variables: list[str] = []

    def send(kind: str, document: bytes, detail: str = "") -> bool:
        start = time.monotonic()
        answer, error = None, None
        try:
            answer = conn.request(document)
        except Exception as exc:  # noqa: BLE001
            error = repr(exc)
        ok = rec.done(kind, time.monotonic() - start, answer, error, index, detail)
        if error is not None:
            raise ConnectionError(error)
        return ok

    try:
        for _ in range(max_requests):
            if time.monotonic() >= deadline:
                break
            roll = rng.random()
            if roll < 0.45:
                kind = rng.choice(READS)
                send(kind, read_request(kind))
            elif scratch is None:
                counter += 1
                name = f"{PREFIX}{index}-{counter}"
                with rec.lock:
                    rec.uncertain[host.name].add(("add-domain", name))
                if send("add-domain", docs.add_domain(name), name):
                    scratch, variables = name, []
                    with rec.lock:
                        rec.uncertain[host.name].discard(("add-domain", name))
                        rec.expected[host.name][("add-domain", name)] += 1
            elif roll < 0.65 or not variables:
                var = f"v{len(variables)}"
                if send("add-variable", variable_request("add-variable", scratch, var, "1"), scratch):
                    variables.append(var)
            elif roll < 0.9:
                send("set-variable", variable_request("set-variable", scratch, rng.choice(variables),
                                                      str(rng.randrange(10**6))), scratch)
            else:
                scratch = remove(send, rec, host, scratch)
        if scratch is not None:
            scratch = remove(send, rec, host, scratch)
    except ConnectionError:
        stats["sessions_broken"] = stats.get("sessions_broken", 0) + 1
    finally:
        conn.close()


def remove(send, rec: Recorder, host: Host, scratch: str) -> str | None:
    """remove-domain of a scratch domain; its event becomes expected once acknowledged.
    Returns None once removed, else the domain still held."""
    with rec.lock:
        rec.uncertain[host.name].add(("remove-domain", scratch))
    if send("remove-domain", docs.simple("remove-domain", scratch), scratch):
        with rec.lock:
            rec.uncertain[host.name].discard(("remove-domain", scratch))
            rec.expected[host.name][("remove-domain", scratch)] += 1
        return None
    return scratch


class Listener:
    """A session registered for all events; keeps the scratch domain events it receives."""

    def __init__(self, index: int, host: Host, local: bool) -> None:
        self.index, self.host, self.local = index, host, local
        self.conn = connect(host, local)
        answer = self.conn.request(docs.reg_all_events())
        if docs.status(answer) != "success":
            raise RuntimeError(f"reg-all-events refused: {docs.lines(answer)}")
        self.seen: collections.Counter = collections.Counter()
        self.events = 0
        self.error: str | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _take(self, document: bytes) -> None:
        self.events += 1
        root = etree.fromstring(document)
        action = root.findtext("cmd/action") or ""
        if action not in ("add-domain", "remove-domain"):
            return
        for content in root.iter("{*}Content"):
            name = content.get("{./schemas/envelope}id") or ""
            if name.startswith(PREFIX):
                self.seen[(action, name)] += 1

    def _run(self) -> None:
        try:
            for _ in range(10_000_000):
                if self.stop.is_set():
                    break
                got = self.conn.poll(0.2)
                if got is not None:
                    self._take(got[1])
        except Exception as error:  # noqa: BLE001
            self.error = repr(error)

    def has_all(self, expected: collections.Counter) -> bool:
        return all(self.seen[key] >= n for key, n in expected.items())

    def check(self, expected: collections.Counter, uncertain: set) -> dict:
        """Missing / duplicated / unexpected scratch events against the acknowledged changes."""
        missing = sorted(f"{a} {n}" for (a, n), c in expected.items() if self.seen[(a, n)] < c)
        duplicated = sorted(f"{a} {n}" for (a, n), c in self.seen.items() if c > 1)
        unexpected = sorted(f"{a} {n}" for (a, n) in self.seen
                            if (a, n) not in expected and (a, n) not in uncertain)
        return {"session": self.index, "agent": self.host.name,
                "transport": "unix" if self.local else "tcp", "events_received": self.events,
                "scratch_events_seen": sum(self.seen.values()),
                "scratch_events_expected": sum(expected.values()),
                "missing": missing[:20], "missing_count": len(missing),
                "duplicated": duplicated[:20], "duplicated_count": len(duplicated),
                "unexpected": unexpected[:20], "unexpected_count": len(unexpected),
                "error": self.error}


def migrate_loop(hosts: tuple[Host, Host], count: int, start: float, seconds: float,
                 results: list, stop: threading.Event) -> None:
    """``count`` migrations of the guest, back and forth, started evenly over the run."""
    for k in range(count):
        at = start + (k + 1) * seconds / (count + 1)
        while time.monotonic() < at and not stop.is_set():
            time.sleep(min(0.2, max(0.0, at - time.monotonic())))
        if stop.is_set():
            break
        source, target = hosts[k % 2], hosts[(k + 1) % 2]
        began = time.monotonic()
        entry = {"n": k + 1, "from": source.name, "to": target.name}
        try:
            conn = LdmConnection.tcp(*source.listen, timeout=600.0)
            with contextlib.closing(conn):
                conn.negotiate(USER, PASSWORD)
                answer = conn.request(docs.migrate(GUEST, target.target, USER, PASSWORD))
            entry.update(status=docs.status(answer), messages=docs.lines(answer)[:5])
        except Exception as error:  # noqa: BLE001
            entry.update(status="error", messages=[repr(error)])
        entry["seconds"] = round(time.monotonic() - began, 2)
        entry["at_s"] = round(began - start, 1)
        results.append(entry)


def run(sessions: int = 50, seconds: float = 300.0, migrations: int = 3, listeners: int = 4,
        seed: int = 1, workdir: Path | None = None, progress=None) -> dict:
    """The whole load run; returns the figures (see the module docstring)."""
    say = progress or (lambda line: None)
    listeners = max(1, min(listeners, sessions - 1))
    workers = sessions - listeners
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ldmx-load-")))
        a, b = stack.enter_context(two_hosts(Path(workdir)))
        hosts = (a, b)
        make_guest(a, GUEST, "active", memory="64M")
        uuid = a.domains()[GUEST]["uuid"]
        pids = {h.name: h.agent.proc.pid for h in hosts}
        rss = {h.name: {"start": vm_rss_kib(pids[h.name])} for h in hosts}
        rec = Recorder()
        say(f"{workers} working sessions, {listeners} listeners, {migrations} migrations, {seconds} s")
        ears = [Listener(i, hosts[i % 2], local=(i // 2) % 2 == 1) for i in range(listeners)]
        for ear in ears:
            ear.thread.start()
        start = time.monotonic()
        deadline = start + seconds
        stats: dict = {}
        threads = []
        for i in range(workers):
            index = listeners + i
            t = threading.Thread(target=worker, args=(index, hosts[i % 2], i % 3 == 0, deadline,
                                                      rec, seed, stats), daemon=True)
            threads.append(t)
            t.start()
        moves: list[dict] = []
        stop_moves = threading.Event()
        mover = threading.Thread(target=migrate_loop,
                                 args=(hosts, migrations, start, seconds, moves, stop_moves), daemon=True)
        mover.start()
        while time.monotonic() < start + seconds / 2:
            time.sleep(0.2)
        for h in hosts:
            rss[h.name]["middle"] = vm_rss_kib(pids[h.name])
        say(f"middle: {sum(len(v) for v in rec.latencies.values())} requests so far")
        for t in threads:
            t.join(timeout=max(1.0, deadline - time.monotonic()) + 2 * REQUEST_TIMEOUT)
        hung_workers = sum(t.is_alive() for t in threads)
        mover.join(timeout=max(1.0, deadline - time.monotonic()) + 900)
        stop_moves.set()
        elapsed = time.monotonic() - start
        say(f"workload done in {elapsed:.1f} s; waiting for the listeners")
        drain_until = time.monotonic() + 30
        while time.monotonic() < drain_until and not all(
                ear.has_all(rec.expected[ear.host.name]) for ear in ears):
            time.sleep(0.2)
        time.sleep(1.0)  # a late duplicate would arrive now
        for ear in ears:
            ear.stop.set()
        for ear in ears:
            ear.thread.join(timeout=5)
            ear.conn.close()
        for h in hosts:
            rss[h.name]["end"] = vm_rss_kib(pids[h.name])
        holder = hosts[migrations % 2]
        other = hosts[(migrations + 1) % 2]
        domains_holder, domains_other = holder.domains(), other.domains()
        guest = {"expected_on": holder.name, "listed_on_holder": GUEST in domains_holder,
                 "listed_on_other": GUEST in domains_other,
                 "state": domains_holder.get(GUEST, {}).get("state"),
                 "same_uuid": domains_holder.get(GUEST, {}).get("uuid") == uuid}
        hv = SimHypervisor(holder.state / "guests")
        try:
            guest["hv_state"] = hv.status(GUEST).state
            guest["oracle_problem"] = hv.verify(GUEST)
        except Exception as error:  # noqa: BLE001
            guest["hv_state"], guest["oracle_problem"] = None, f"verify failed: {error!r}"
        guest["left_on_other_hv"] = GUEST in SimHypervisor(other.state / "guests").list()
        leftovers = sorted(n for h in hosts for n in h.domains() if n.startswith(PREFIX))
        alive = {h.name: h.agent.proc.poll() is None for h in hosts}
        tracebacks = {h.name: h.agent.log().count("Traceback") for h in hosts}
    kinds = {}
    for kind, values in sorted(rec.latencies.items()):
        kinds[kind] = {"count": len(values), "p50_ms": round(percentile(values, 50) * 1000, 1),
                       "p99_ms": round(percentile(values, 99) * 1000, 1),
                       "max_ms": round(max(values) * 1000, 1),
                       "failed": sum(1 for f in rec.failures if f["kind"] == kind)}
    checks = [ear.check(rec.expected[ear.host.name], rec.uncertain[ear.host.name]) for ear in ears]
    total = sum(len(v) for v in rec.latencies.values())
    figures = {
        "sessions": sessions, "working_sessions": workers, "listeners": listeners,
        "unix_sessions": sum(1 for i in range(workers) if i % 3 == 0)
        + sum(1 for i in range(listeners) if (i // 2) % 2 == 1),
        "seconds": seconds, "elapsed_s": round(elapsed, 1), "seed": seed,
        "requests": total, "requests_per_s": round(total / elapsed, 1) if elapsed else 0,
        "failed_requests": len(rec.failures), "failures": rec.failures[:20],
        "sessions_broken": stats.get("sessions_broken", 0), "hung_sessions": hung_workers,
        "kinds": kinds, "listener_checks": checks,
        "events_missing": sum(c["missing_count"] for c in checks),
        "events_duplicated": sum(c["duplicated_count"] for c in checks),
        "events_unexpected": sum(c["unexpected_count"] for c in checks),
        "listener_errors": [c["error"] for c in checks if c["error"]],
        "rss_kib": rss, "migrations_requested": migrations, "migrations": moves,
        "migrations_succeeded": sum(1 for m in moves if m["status"] == "success"),
        "guest": guest, "scratch_leftovers": leftovers[:20], "agents_alive": alive,
        "tracebacks_in_logs": tracebacks,
    }
    figures["ok"] = (figures["failed_requests"] == 0 and hung_workers == 0
                     and figures["events_missing"] == 0 and figures["events_duplicated"] == 0
                     and figures["events_unexpected"] == 0 and not figures["listener_errors"]
                     and figures["migrations_succeeded"] == migrations
                     and guest["listed_on_holder"] and not guest["listed_on_other"]
                     and guest["same_uuid"] and guest["hv_state"] == "running"
                     and guest["oracle_problem"] is None and not guest["left_on_other_hv"]
                     and not leftovers and all(alive.values())
                     and not any(tracebacks.values()))
    return figures


def render(f: dict) -> str:
    """The figures as markdown tables."""
    mib = lambda kib: f"{kib / 1024:.0f}"  # noqa: E731
    rows = [
        f"| sessions (working / listening; of them on the Unix socket) | {f['working_sessions']} / {f['listeners']}; {f['unix_sessions']} |",
        f"| duration / requests / rate | {f['elapsed_s']} s / {f['requests']} / {f['requests_per_s']} per s |",
        f"| **requests that should succeed and failed** | {f['failed_requests']} |",
        f"| sessions broken / hung | {f['sessions_broken']} / {f['hung_sessions']} |",
        f"| **scratch events missing / duplicated / unexpected** (all listeners) | {f['events_missing']} / {f['events_duplicated']} / {f['events_unexpected']} |",
        f"| **migrations succeeded** | {f['migrations_succeeded']} / {f['migrations_requested']} |",
        "| migrations (from→to: seconds, at) | " + ", ".join(
            f"{m['from']}→{m['to']}: {m['status']} {m['seconds']} s at {m['at_s']} s" for m in f["migrations"]) + " |",
        f"| **guest integrity oracle at the end** (on {f['guest']['expected_on']}) | "
        f"{f['guest']['oracle_problem'] or 'clean'}; {f['guest']['hv_state']}, same UUID {f['guest']['same_uuid']} |",
    ]
    for name, r in f["rss_kib"].items():
        rows.append(f"| {name} agent RSS start / middle / end | {mib(r['start'])} / {mib(r.get('middle', 0))} / {mib(r.get('end', 0))} MiB |")
    rows.append(f"| agents alive at the end / tracebacks in logs | {f['agents_alive']} / {f['tracebacks_in_logs']} |")
    rows.append(f"| scratch domains left over | {len(f['scratch_leftovers'])} |")
    kinds = "\n".join(f"| {k} | {v['count']} | {v['failed']} | {v['p50_ms']} | {v['p99_ms']} | {v['max_ms']} |"
                      for k, v in f["kinds"].items())
    ears = "\n".join(f"| {c['session']} | {c['agent']} | {c['transport']} | {c['events_received']} | "
                     f"{c['scratch_events_expected']} | {c['scratch_events_seen']} | {c['missing_count']} | "
                     f"{c['duplicated_count']} | {c['unexpected_count']} |" for c in f["listener_checks"])
    return ("| Figure | Value |\n|---|---|\n" + "\n".join(rows)
            + "\n\n| request kind | count | failed | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|\n"
            + kinds
            + "\n\n| listener | agent | transport | events received | scratch events expected | seen | missing | duplicated | unexpected |\n|---|---|---|---|---|---|---|---|---|\n"
            + ears + "\n")


def section(f: dict, number: int = 4) -> str:
    """The safety report's section for one run (``tools/safety_report.py --load``)."""
    return f"""## {number}. Load with migrations (`tools/load/mixed.py`)

`python -m tools.load.mixed --sessions {f['sessions']} --seconds {f['seconds']:g} --migrations {f['migrations_requested']} --seed {f['seed']}`:
two agents (system1, system2) on loopback; `mig1` (2 vCPUs, 64M) runs on system1 and migrates
back and forth {f['migrations_requested']} times, one after the other, spread over the run. {f['working_sessions']} working
sessions (threads with blocking clients; every third a local-root Unix-socket session, the
others TCP + TLS + SASL as a management user; alternately on each agent) issue a random mix
of list-domain / list-bindings / list-constraints and changes on their own scratch domains
(add-domain, add-variable, set-variable, remove-domain) without pause; the other {f['listeners']} sessions
(TCP and Unix, both agents) are registered for all events and check that they received every
add-domain / remove-domain event of the acknowledged scratch changes on their agent exactly
once. Latency is per request, measured by the client (both agents, the guest and the {f['sessions']}
client threads share the machine's 2 cores). `tests/safety/test_load.py` runs it reduced (8
sessions, 20 s, 1 migration) with the same assertions.

{render(f)}"""


def _interrupt(signum, frame) -> None:
    """Turn SIGTERM into KeyboardInterrupt so the agents and guests are cleaned up."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--migrations", type=int, default=3)
    parser.add_argument("--listeners", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the figures as JSON to this file")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the agents and guests too
    figures = run(args.sessions, args.seconds, args.migrations, args.listeners, args.seed,
                  progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(render(figures))
    if figures["failures"]:
        print("first failures:", json.dumps(figures["failures"][:5], indent=1), file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print("ok" if figures["ok"] else "NOT OK", file=sys.stderr)
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
