"""A seeded fuzz campaign against a throwaway agent, with figures.

    python -m tools.fuzz.campaign --documents 100000 --seed 1 [--json out.json]

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

    def __init__(self, address: tuple[str, int], count: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.args = (list(address), count, seed, NEGOTIATION_TIMEOUT)
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


def run_campaign(documents: int, seed: int, workdir: Path, progress=None, sasl_share: float = 0.25) -> dict:
    """Run one campaign in ``workdir`` and return its figures: ``documents`` cases in all,
    the negotiation share of them from a child running as ``nobody``."""
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
        fuzzer = LiveFuzzer(agent.listen, USER, PASSWORD, negotiation_timeout=NEGOTIATION_TIMEOUT,
                            sasl_share=sasl_share, rng=random.Random(seed + 1))
        started = time.monotonic()
        rss_start = rss_kib(pid)
        for name, raw in CORPUS.items():  # warm-up: every sample once (schemas, handlers)
            fuzzer.run(Case("sample", "ready", [raw]))
        rss_samples = rss_kib(pid)
        worker = NegotiationWorker(agent.listen, negotiation_count, seed + 2)
        worker.start()
        rss_warm = None
        timeline = []
        warm_at = min(1000, ready_count // 10)
        for i in range(ready_count):
            fuzzer.run(generate(rng, "ready"))
            if i + 1 == warm_at:
                rss_warm = rss_kib(pid)
            if (i + 1) % 5000 == 0:
                timeline.append((i + 1, rss_kib(pid)))
            if progress and (i + 1) % 5000 == 0:
                progress(f"{i + 1} cases, outcomes {fuzzer.tally.outcomes}, rss {rss_kib(pid)} KiB")
            if agent.proc.poll() is not None:
                break
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
        "documents": tally.documents,
        "elapsed_s": round(elapsed, 1),
        "negotiation_cases_as_nobody": negotiation_count,
        "negotiation_worker_error": worker.error,
        "sasl_logins": fuzzer.logins,
        "local_root_logins": fuzzer.local_logins,
        "outcomes": dict(sorted(tally.outcomes.items())),
        "by_kind": {k: dict(sorted(v.items())) for k, v in sorted(tally.by_kind.items())},
        "hangs": tally.outcomes.get("hang", 0),
        "bad": tally.bad_count,
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
        "rss_growth_from_fresh_mib": round((rss_end - rss_start) / 1024, 1),
        "rss_growth_mib": round((rss_end - rss_samples) / 1024, 1),
        "rss_growth_after_warmup_mib": round((rss_end - (rss_warm or rss_start)) / 1024, 1),
        "log_tail": log.splitlines()[-20:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sasl-share", type=float, default=0.25,
                        help="share of fuzz sessions that log in with SASL (the others are local root)")
    parser.add_argument("--json", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ldmx-fuzz-") as tmp:
        figures = run_campaign(args.documents, args.seed, Path(tmp), sasl_share=args.sasl_share,
                               progress=lambda line: print(line, file=sys.stderr, flush=True))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    ok = (figures["bad"] == 0 and not figures["negotiation_worker_error"] and figures["agent_alive_at_end"] and not figures["control_failures"]
          and figures["rss_growth_mib"] < 50)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
