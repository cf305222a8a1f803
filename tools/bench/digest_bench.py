"""Cost of the §10.7 memory digest on a real simulated guest (``sim/digestlog.py``).

    python tools/bench/digest_bench.py [--memory-mib 1024] [--workloads web,db]
        [--round-ms 200] [--rounds 3]

For each workload a guest of the given size is filled with stamped pages (as
``migration_bench`` does), runs a warm-up second, then:

* ``first_read_ms``: the first digest read, the full scan (done during pre-copy);
* ``round_read_ms``: the reads between pre-copy rounds, ``--round-ms`` apart, running;
* ``prepause_read_ms``: the read the engine makes ``--round-ms`` after the last round's
  read, just before pausing (the guest runs);
* ``suspend_read_ms``: the read after the pause: what the source adds to the downtime;
  with ``suspend_pages``, the pages it re-hashed, and ``unprimed_suspend_pages``, the ones
  a suspend read without the pre-pause read would have re-hashed;
* ``full_scan_ms``: a full-scan digest of the paused guest, for comparison, and the check
  that it equals the suspend read;
* ``blake2b_mb_s``: the hash rate on this machine in the same run (the VM is shared, so
  compare figures only within one run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.hypervisor.base import GuestSpec  # noqa: E402
from agent.hypervisor.digest import memory_digest  # noqa: E402
from agent.hypervisor.sim import SimHypervisor  # noqa: E402
from tools.bench.migration_bench import prefill  # noqa: E402

MiB = 1 << 20


def ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 1)


def hash_rate() -> float:
    block = os.urandom(8192)
    started = time.perf_counter()
    for i in range(8192):
        hashlib.blake2b(i.to_bytes(8, "big") + block).digest()
    return round(64 * MiB / (time.perf_counter() - started) / 1e6, 1)


def measure(hv: SimHypervisor, name: str, memory: int, workload: str, round_ms: float,
            rounds: int) -> dict:
    hv.create(GuestSpec(name, memory, workload=workload))
    prefill(hv, name, memory, None)
    hv.start(name)
    try:
        time.sleep(1.0)
        log = hv._digests  # a benchmark may look inside: pages hashed per read
        started = time.perf_counter()
        hv.memory_digest(name)
        first = ms_since(started)
        between = []
        for _ in range(rounds):
            time.sleep(round_ms / 1000.0)
            hv.get_and_clear_dirty(name)  # the round's dirty sync, as the engine does it
            started = time.perf_counter()
            hv.memory_digest(name)
            between.append(ms_since(started))
        time.sleep(round_ms / 1000.0)
        hashed = log._guests[name].digest.hashed
        started = time.perf_counter()
        hv.memory_digest(name)  # the engine's read before the pause
        prepause = ms_since(started)
        unprimed = log._guests[name].digest.hashed - hashed
        hashed = log._guests[name].digest.hashed
        hv.suspend_for_switchover(name)  # the engine's pause and final sync, one request
        started = time.perf_counter()
        at_suspend = hv.memory_digest(name)
        suspend = ms_since(started)
        pages = log._guests[name].digest.hashed - hashed
        started = time.perf_counter()
        scanned = memory_digest(hv.map_ram(name), hv.page_size)
        full = ms_since(started)
        return {"workload": workload, "memory_mib": memory // MiB, "first_read_ms": first,
                "round_read_ms": between, "prepause_read_ms": prepause,
                "unprimed_suspend_pages": unprimed, "suspend_read_ms": suspend,
                "suspend_pages": pages, "full_scan_ms": full,
                "suspend_equals_scan": at_suspend == scanned, "blake2b_mb_s": hash_rate()}
    finally:
        hv.destroy(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-mib", type=int, default=1024)
    parser.add_argument("--workloads", default="web,db")
    parser.add_argument("--round-ms", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as tmp:
        hv = SimHypervisor(tmp)
        for workload in args.workloads.split(","):
            figures = measure(hv, f"digest-{workload}", args.memory_mib * MiB, workload,
                              args.round_ms, args.rounds)
            print(json.dumps(figures), flush=True)
            if not figures["suspend_equals_scan"]:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
