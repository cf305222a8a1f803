"""Render the figures of a ``--fast`` campaign (the memory run) as a markdown section.

    python -m tools.fuzz.memory_report run.json [--command "..."] [--note "..."]

Prints the section to stdout: documents, crashes, hangs, tracebacks, RSS at the start, after
the warm-up (one pass over the samples), every N documents and at the end, and the growth
after the warm-up against the 50 MiB criterion (issue 8 item 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CRITERION_MIB = 50


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def render(f: dict, command: str, note: str = "") -> str:
    o = f["outcomes"]
    warm = f["rss_after_samples_kib"]
    growth = (f["rss_end_kib"] - warm) / 1024
    peak = f.get("rss_max_after_samples_kib", f["rss_end_kib"])
    timeline = f.get("rss_timeline") or [{"ready_documents": n, "elapsed_s": None, "rss_kib": k}
                                         for n, k in f["rss_timeline_kib"]]
    rows = "\n".join(
        f"| {p['ready_documents']} | {p['elapsed_s']} | {mib(p['rss_kib'])} | {(p['rss_kib'] - warm) / 1024:+.1f} |"
        for p in timeline)
    half = [p for p in timeline if p["ready_documents"] >= f["ready_documents"] // 2]
    second_half = ""
    if half:
        second_half = (f"| RSS change over the second half (from {half[0]['ready_documents']} ready documents to the end) "
                       f"| {(f['rss_end_kib'] - half[0]['rss_kib']) / 1024:+.1f} MiB |\n")
    kinds = "\n".join(f"| {k} | {', '.join(f'{n} {o2}' for o2, n in v.items())} |" for k, v in f["by_kind"].items())
    bad = {}
    for case in f["bad_cases"]:
        key = (case["kind"].split()[0], case["outcome"])
        bad[key] = bad.get(key, 0) + 1
    bad_lines = "\n".join(f"- {k} → {o2}: {n}" for (k, o2), n in sorted(bad.items())) or "- none"
    verdict = "yes" if growth < CRITERION_MIB else "**no**"
    rate = f["documents"] / f["elapsed_s"] if f["elapsed_s"] else 0
    return f"""`{command}`{note}

| Figure | Value |
|---|---|
| documents fuzzed (ready phase / negotiation as `nobody`) | {f['documents']} ({f['ready_documents']} / {f['negotiation_documents']}) in {f['elapsed_s']} s, {rate:.0f} documents/s |
| ready-phase loops (concurrent sessions) / local-root sessions over the Unix socket / SASL logins | {f.get('ready_loops', 1)} / {f['local_root_logins']} / {f['sasl_logins']} |
| agent crashes (dead at the end / tracebacks in log / internal errors) | {0 if f['agent_alive_at_end'] else 1} / {f['tracebacks_in_log']} / {f['internal_errors_in_log']} |
| agent exit code on SIGTERM at the end | {f['agent_exit_code']} |
| hangs (silence beyond 10 s, or past the negotiation timeout + 5 s) | {f['hangs']} |
| answered / stream error / closed / waiting (input incomplete) / reset | {o.get('answered', 0)} / {o.get('stream-error', 0)} / {o.get('closed', 0)} / {o.get('waiting', 0)} / {o.get('reset', 0)} |
| aborted without the stream error / internal-error responses / malformed output | {o.get('aborted', 0)} / {o.get('internal-error', 0)} / {o.get('bad-output', 0)} |
| control session (TCP, SASL): requests / failures / worst latency | {f['control_requests']} / {len(f['control_failures'])} / {f['control_max_latency_s']} s |
| agent RSS at the start (fresh process) | {mib(f['rss_start_kib'])} MiB |
| agent RSS after the warm-up (one pass over the samples) | {mib(warm)} MiB |
| agent RSS after 1,000 ready documents | {mib(f['rss_warm_kib'] or 0)} MiB |
| agent RSS at the end / highest sample after the warm-up | {mib(f['rss_end_kib'])} / {mib(peak)} MiB |
| **RSS growth after the warm-up** (criterion < {CRITERION_MIB} MiB) | **{growth:.1f} MiB** — under {CRITERION_MIB} MiB: {verdict} |
{second_half}| RSS growth from the fresh process | {f['rss_growth_from_fresh_mib']} MiB |

RSS every {f['rss_timeline_kib'][0][0] if f['rss_timeline_kib'] else '?'} ready-phase documents (sampled by the
main thread while the loops run; the negotiation cases run alongside in the `nobody` child):

| ready documents | elapsed s | RSS MiB | since warm-up MiB |
|---|---|---|---|
{rows}

Outcomes by kind (the same kinds as the default campaign in §1):

| kind | outcomes |
|---|---|
{kinds}

Bad outcomes (of the first 50 kept):
{bad_lines}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json")
    parser.add_argument("--command", default="python -m tools.fuzz.campaign --fast ...")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    sys.stdout.write(render(json.loads(Path(args.json).read_text()), args.command, args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
