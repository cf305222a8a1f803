"""A seeded fuzz campaign against a throwaway agent, with figures.

    python -m tools.fuzz.campaign --documents 100000 --seed 1 [--json out.json]
    python -m tools.fuzz.campaign --fast --documents 100000 --max-seconds 1500 --json out.json

``--fast`` is the mode for the memory criterion (RSS growth after 100,000 documents): the
ready-phase cases run on local-root sessions over the agent's Unix socket (STARTTLS, no SASL),
so a new session costs a TLS handshake and no password check; as in the default mode a session
carries case after case while each case's sentinel gets its answer, and a new one is opened
only after a stream error, a close, or an incomplete case. The case mix is the same (same
generators and weights; the negotiation share still runs over TCP as ``nobody``).
``--max-seconds`` stops both loops at a wall-clock budget and reports the documents done.

Starts an agent (negotiation timeout 5 s, so silent negotiations end quickly), adds a
management user, runs a control session that issues ``list-domain`` every 0.25 s on its own
authenticated session throughout, feeds the cases of :mod:`tools.fuzz.mutate` through
:class:`tools.fuzz.live.LiveFuzzer`, and reports outcomes, hangs, crashes, the control
session's failures and latency, and the agent's RSS growth (``/proc/PID/status`` VmRSS).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

from lxml import etree

from agent.cli.connection import LdmConnection
from agent.testing import AgentProcess
from tools.fuzz.asuser import nobody, run_as
from tools.fuzz.live import LiveFuzzer, negotiation_campaign, rss_kib
from tools.fuzz.mutate import CORPUS, Case, GENERATORS, generate, negotiation

USER, PASSWORD = "fuzzer", "fuzz-pw-1"
NEGOTIATION_TIMEOUT = 5.0


class ControlSession(threading.Thread):
    """Issues list-domain on its own session until stopped; counts failures and latency."""

    def __init__(self, address: tuple[str, int], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.interval = interval
        self.stop_event = threading.Event()
        self.requests = 0
        self.failures: list[str] = []
        self.max_latency = 0.0

    def run(self) -> None:
        try:
            conn = LdmConnection.tcp(*self.address, timeout=15)
            conn.negotiate(USER, PASSWORD)
        except Exception as exc:  # noqa: BLE001 - any failure is a finding
            self.failures.append(f"login: {exc}")
            return
        while not self.stop_event.wait(self.interval):
            started = time.monotonic()
            try:
                response = conn.request(CORPUS["list-domain"])
                status = etree.fromstring(response).findtext("response/status")
                if status != "success":
                    self.failures.append(f"status {status}")
            except Exception as exc:  # noqa: BLE001
                self.failures.append(f"request: {exc}")
                return
            self.requests += 1
            self.max_latency = max(self.max_latency, time.monotonic() - started)
        conn.close()


def write_config(directory: Path) -> Path:
    config = directory / "fuzz.toml"
    config.write_text(f"[limits]\nnegotiation_timeout = {NEGOTIATION_TIMEOUT}\n")
    return config


class NegotiationWorker(threading.Thread):
    """Runs the negotiation cases in a forked child as ``nobody`` (a remote peer, §1.10)."""

    def __init__(self, address: tuple[str, int], count: int, seed: int, max_seconds: float | None = None) -> None:
        super().__init__(daemon=True)
        self.args = (list(address), count, seed, NEGOTIATION_TIMEOUT, max_seconds)
        self.result: dict | None = None
        self.error = ""

    def run(self) -> None:
        try:
            self.result = run_as(*nobody(), negotiation_campaign, *self.args)
        except Exception as exc:  # noqa: BLE001
            self.error = str(exc)


def negotiation_share() -> float:
    total = sum(w for _, w in GENERATORS)
    return dict((f, w) for f, w in GENERATORS)[negotiation] / total


def run_campaign(documents: int, seed: int, workdir: Path, progress=None, sasl_share: float = 0.25,
                 fast: bool = False, max_seconds: float | None = None, rss_every: int = 5000,
                 workers: int = 1) -> dict:
    """Run one campaign in ``workdir`` and return its figures: ``documents`` cases in all,
    the negotiation share of them from a child running as ``nobody``. ``fast``: ready-phase
    sessions are local root over the Unix socket (see the module docstring); ``max_seconds``:
    stop early at that budget; ``workers``: concurrent ready-phase loops (sessions)."""
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    negotiation_count = round(documents * negotiation_share())
    ready_count = documents - negotiation_count
    agent = AgentProcess(workdir / "state", host_name="fuzz.example.com",
                         extra_args=("--config", str(write_config(workdir))))
    agent.start()
    try:
        agent.add_user(USER, "management", PASSWORD)
        pid = agent.proc.pid
        control = ControlSession(agent.listen)
        control.start()
        address = str(agent.socket_path) if fast else agent.listen
        fuzzer = LiveFuzzer(address, USER, PASSWORD, negotiation_timeout=NEGOTIATION_TIMEOUT,
                            sasl_share=0.0 if fast else sasl_share, rng=random.Random(seed + 1))
        started = time.monotonic()
        rss_start = rss_kib(pid)
        for name, raw in CORPUS.items():  # warm-up: every sample once (schemas, handlers)
            fuzzer.run(Case("sample", "ready", [raw]))
        rss_samples = rss_kib(pid)
        budget = None if max_seconds is None else max(1.0, max_seconds - (time.monotonic() - started))
        stop_at = None if budget is None else time.monotonic() + budget
        worker = NegotiationWorker(agent.listen, negotiation_count, seed + 2, budget)
        worker.start()
        rss_warm = None
        timeline = []
        timed = []
        warm_at = min(1000, ready_count // 10)
        # Ready-phase loops: fuzzer 0 draws the same cases as a one-loop campaign; with
        # ``workers`` > 1 the others draw their own seeded cases on their own sessions.
        fuzzers = [fuzzer] + [LiveFuzzer(address, USER, PASSWORD, negotiation_timeout=NEGOTIATION_TIMEOUT,
                                         sasl_share=0.0 if fast else sasl_share,
                                         rng=random.Random(seed * 7919 + k * 2 + 1)) for k in range(1, workers)]
        rngs = [rng] + [random.Random(seed * 7919 + k * 2) for k in range(1, workers)]
        shares = [ready_count // workers + (1 if k < ready_count % workers else 0) for k in range(workers)]
        stop = threading.Event()
        loop_errors: list[str] = []

        def loop(k: int) -> None:
            try:
                for _ in range(shares[k]):
                    if stop.is_set():
                        return
                    fuzzers[k].run(generate(rngs[k], "ready"))
            except Exception as exc:  # noqa: BLE001 - a fuzzer failure ends the run, reported
                loop_errors.append(f"loop {k}: {exc!r}")
                stop.set()

        loops = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(workers)]
        for thread in loops:
            thread.start()
        next_mark = rss_every
        while any(thread.is_alive() for thread in loops):
            time.sleep(0.05)
            done = sum(f.tally.documents for f in fuzzers) - len(CORPUS)
            if rss_warm is None and done >= warm_at:
                rss_warm = rss_kib(pid)
            while done >= next_mark:
                timeline.append((next_mark, rss_kib(pid)))
                timed.append({"ready_documents": done, "elapsed_s": round(time.monotonic() - started, 1),
                              "rss_kib": timeline[-1][1]})
                if progress:
                    progress(f"{done} ready cases in {time.monotonic() - started:.0f} s, "
                             f"bad {sum(f.tally.bad_count for f in fuzzers)}, rss {timeline[-1][1]} KiB")
                next_mark += rss_every
            if agent.proc.poll() is not None or (stop_at is not None and time.monotonic() >= stop_at):
                stop.set()
        for thread in loops:
            thread.join()
        for other in fuzzers[1:]:
            other.finish()
            fuzzer.tally.merge(other.tally.as_dict())
            fuzzer.logins += other.logins
            fuzzer.local_logins += other.local_logins
            fuzzer.hang_details.extend(other.hang_details)
        ready_elapsed = time.monotonic() - started
        fuzzer.finish()
        worker.join(NEGOTIATION_TIMEOUT * 4 + negotiation_count)
        if worker.result:
            fuzzer.tally.merge(worker.result)
        time.sleep(0.5)
        alive = agent.proc.poll() is None
        rss_end = rss_kib(pid) if alive else 0
        control.stop_event.set()
        control.join(20)
        elapsed = time.monotonic() - started
    finally:
        code = agent.stop()
        agent.destroy_guests()
    log = agent.log()
    tally = fuzzer.tally
    return {
        "seed": seed,
        "mode": "fast (local root over the Unix socket)" if fast else "default",
        "documents_requested": documents,
        "max_seconds": max_seconds,
        "ready_loops": workers,
        "loop_errors": loop_errors,
        "documents": tally.documents,
        "elapsed_s": round(elapsed, 1),
        "ready_phase_elapsed_s": round(ready_elapsed, 1),
        "ready_documents": sum(n for k, v in tally.by_kind.items() if not k.startswith("neg-") for n in v.values()),
        "negotiation_documents": sum(n for k, v in tally.by_kind.items() if k.startswith("neg-") for n in v.values()),
        "negotiation_cases_as_nobody": negotiation_count,
        "negotiation_worker_error": worker.error,
        "sasl_logins": fuzzer.logins,
        "local_root_logins": fuzzer.local_logins,
        "outcomes": dict(sorted(tally.outcomes.items())),
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(tally.by_kind.items())},
        "hangs": tally.outcomes.get("hang", 0),
        "bad": tally.bad_count,
        "hang_details": fuzzer.hang_details,
        "bad_cases": [{"kind": k, "outcome": o, "data": d.decode("latin-1")[:2000]} for k, o, d in tally.bad],
        "agent_alive_at_end": alive,
        "agent_exit_code": code,
        "tracebacks_in_log": log.count("Traceback"),
        "internal_errors_in_log": log.count("internal error while answering"),
        "control_requests": control.requests,
        "control_failures": control.failures,
        "control_max_latency_s": round(control.max_latency, 3),
        "rss_start_kib": rss_start,
        "rss_after_samples_kib": rss_samples,
        "rss_warm_kib": rss_warm,
        "rss_end_kib": rss_end,
        "rss_timeline_kib": timeline,
        "rss_timeline": timed,
        "rss_growth_from_fresh_mib": round((rss_end - rss_start) / 1024, 1),
        "rss_growth_mib": round((rss_end - rss_samples) / 1024, 1),
        "rss_growth_after_warmup_mib": round((rss_end - (rss_warm or rss_start)) / 1024, 1),
        "rss_max_after_samples_kib": max([rss_samples, rss_end] + [kib for _, kib in timeline]),
        "log_tail": log.splitlines()[-20:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sasl-share", type=float, default=0.25,
                        help="share of fuzz sessions that log in with SASL (the others are local root)")
    parser.add_argument("--fast", action="store_true",
                        help="local-root sessions over the Unix socket only (the memory run)")
    parser.add_argument("--max-seconds", type=float, help="stop at this wall-clock budget")
    parser.add_argument("--rss-every", type=int, default=5000, help="record RSS every N ready cases")
    parser.add_argument("--workers", type=int, default=1,
                        help="concurrent ready-phase loops, each on its own sessions")
    parser.add_argument("--json", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ldmx-fuzz-") as tmp:
        figures = run_campaign(args.documents, args.seed, Path(tmp), sasl_share=args.sasl_share,
                               fast=args.fast, max_seconds=args.max_seconds, rss_every=args.rss_every,
                               workers=args.workers,
                               progress=lambda line: print(line, file=sys.stderr, flush=True))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    ok = (figures["bad"] == 0 and not figures["loop_errors"] and not figures["negotiation_worker_error"] and figures["agent_alive_at_end"] and not figures["control_failures"]
          and figures["rss_growth_mib"] < 50)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
