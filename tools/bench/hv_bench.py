"""Microbenchmarks of the simulated hypervisor, each against a baseline from the same run.

    python tools/bench/hv_bench.py [--json FILE] [--quick] [--no-rates]

* ``dirty-sync``: get-and-clear of the dirty log of a running 4 GiB guest, against a plain
  copy of the same bitmap bytes;
* ``dirty-runs/<pattern>``: finding the runs of a 4 GiB guest's bitmap
  (``pagescan.dirty_runs``), against the same copy and against a Python loop per page;
* ``nonzero-read``: reading every non-zero page of a 1 GiB guest with a quarter of its
  pages written, against a plain copy of all of its memory; with and without skipping the
  RAM file's holes first;
* ``rate/<profile>``: each workload's measured dirty rate against its target, and the
  guest's CPU share; ``link/tcp-loopback`` and ``link/tls-loopback`` are plain copies of
  random page runs between two processes (TCP, and TCP+TLS as the data channel uses), for
  comparison with ``diabolical``.

Prints a markdown table; ``--json`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.hypervisor import pagescan  # noqa: E402
from agent.hypervisor.base import GuestSpec  # noqa: E402
from agent.hypervisor.sim import SimHypervisor, layout, oracle, workload  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
PAGE = 8192


def best_of(repeat: int, fn) -> float:
    """Fastest of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - began)
    return best


def row(name: str, seconds: float, baseline_name: str, baseline: float, **extra) -> dict:
    return {
        "name": name,
        "ms": seconds * 1e3,
        "baseline": baseline_name,
        "baseline_ms": baseline * 1e3,
        "ratio": seconds / baseline if baseline else float("nan"),
        **extra,
    }


def bench_dirty_sync(hv: SimHypervisor, repeat: int) -> list[dict]:
    hv.create(GuestSpec("sync4g", 4 * GiB, workload="web"))
    hv.start("sync4g")
    try:
        time.sleep(0.2)
        bitmap = hv.get_and_clear_dirty("sync4g")
        sync = best_of(repeat, lambda: hv.get_and_clear_dirty("sync4g"))
        copy = best_of(repeat, lambda: bytearray(bitmap))
        return [row("dirty-sync (4 GiB guest, running)", sync, "copy of the bitmap", copy,
                    bitmap_bytes=len(bitmap))]
    finally:
        hv.destroy("sync4g")


def bench_dirty_runs(repeat: int) -> list[dict]:
    npages = 4 * GiB // PAGE
    rng = random.Random(7)
    patterns = {
        "sparse 0.1%": {rng.randrange(npages) for _ in range(npages // 1000)},
        "random 5%": {rng.randrange(npages) for _ in range(npages // 20)},
        "hot runs 10%": {p for s in range(0, npages, 640) for p in range(s, s + 64)},
        "all dirty": range(npages),
    }
    rows = []
    for label, pages in patterns.items():
        value = 0
        for page in pages:
            value |= 1 << page
        bitmap = value.to_bytes(npages // 8, "little")
        runs = pagescan.dirty_runs(bitmap)
        assert sum(count for _, count in runs) == len(set(pages))
        scan = best_of(repeat, lambda: pagescan.dirty_runs(bitmap))
        copy = best_of(repeat, lambda: bytearray(bitmap))
        loop = best_of(1, lambda: _runs_per_page(bitmap))
        rows.append(row(f"dirty-runs, {label} (4 GiB)", scan, "copy of the bitmap", copy,
                        runs=len(runs), per_page_loop_ms=loop * 1e3))
    return rows


def _runs_per_page(bitmap: bytes) -> list[tuple[int, int]]:
    runs, start = [], -1
    for index in range(len(bitmap) * 8):
        if bitmap[index >> 3] >> (index & 7) & 1:
            if start < 0:
                start = index
        elif start >= 0:
            runs.append((start, index - start))
            start = -1
    return runs


def bench_nonzero_read(hv: SimHypervisor, repeat: int) -> list[dict]:
    name = "read1g"
    hv.create(GuestSpec(name, GiB, workload="idle"))
    try:
        ram = hv.map_ram(name, writable=True)
        geo = layout.geometry_for(GiB, PAGE)
        painter = oracle.PagePainter(PAGE)
        # A quarter of memory written, in runs of 64 pages (a used heap among free memory).
        for start in range(geo.first_data_page, geo.npages - 64, 256):
            for index in range(start, start + 64):
                painter.paint(ram, index, 1)
        out = memoryview(bytearray(GiB))  # memoryview stores are plain memcpy

        def read_nonzero(runs):
            offset = 0
            for first, count in runs:
                n = count * PAGE
                out[offset : offset + n] = ram[first * PAGE : first * PAGE + n]
                offset += n
            return offset

        def scan_all():
            return read_nonzero(pagescan.nonzero_page_runs(ram, PAGE))

        fd = os.open(hv.state_dir / name / layout.RAM_FILE, os.O_RDONLY)
        try:
            def scan_holes():
                runs = []
                for first, count in pagescan.allocated_page_runs(fd, PAGE, geo.npages):
                    runs += pagescan.nonzero_page_runs(ram, PAGE, first, first + count)
                return read_nonzero(runs)

            moved = scan_all()
            assert moved == scan_holes()
            copy = best_of(repeat, lambda: out.__setitem__(slice(0, GiB), ram[:GiB]))
            whole = best_of(repeat, scan_all)
            holes = best_of(repeat, scan_holes)
        finally:
            os.close(fd)
        return [
            row("nonzero-read, 1 GiB guest, 25% written", whole, "copy of all 1 GiB", copy,
                bytes_read=moved),
            row("nonzero-read, skipping file holes first", holes, "copy of all 1 GiB", copy,
                bytes_read=moved),
        ]
    finally:
        hv.destroy(name)


def bench_rates(hv: SimHypervisor, seconds: float) -> list[dict]:
    rows = []
    for prof in workload.PROFILES.values():
        name = f"rate-{prof.name}"
        hv.create(GuestSpec(name, 256 * MiB, workload=prof.name))
        hv.start(name)
        try:
            time.sleep(1.0)  # first touches of the RAM file cost page-cache allocations
            pid = hv.pid(name)
            w0, c0, t0 = hv.status(name).pages_written, _cpu_s(pid), time.monotonic()
            time.sleep(seconds)
            w1, c1, t1 = hv.status(name).pages_written, _cpu_s(pid), time.monotonic()
        finally:
            hv.destroy(name)
        rate = (w1 - w0) * PAGE / MiB / (t1 - t0)
        rows.append({
            "name": f"rate/{prof.name}",
            "target_mib_s": prof.rate_mib_s,
            "measured_mib_s": rate,
            "error_pct": (rate / prof.rate_mib_s - 1) * 100,
            "guest_cpu_pct": (c1 - c0) / (t1 - t0) * 100,
            "working_set": prof.working_set,
        })
    return rows


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sink(sock: socket.socket, cert: str | None) -> None:
    conn, _ = sock.accept()
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert)
        conn = context.wrap_socket(conn, server_side=True)
    buffer = bytearray(1 << 20)
    while conn.recv_into(buffer):
        pass


def _self_signed(directory: str) -> str:
    """A throw-away certificate and key for the TLS link (PEM, one file)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = os.path.join(directory, "link.pem")
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return path


def bench_link(seconds: float, cert: str | None) -> list[dict]:
    listener = socket.create_server(("127.0.0.1", 0))
    child = multiprocessing.Process(target=_sink, args=(listener, cert))
    child.start()
    try:
        out = socket.create_connection(listener.getsockname())
        if cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            out = context.wrap_socket(out)
        page_run = bytes(random.Random(1).randbytes(64 * PAGE))
        sent, began = 0, time.monotonic()
        while time.monotonic() - began < seconds:
            out.sendall(page_run)
            sent += len(page_run)
        elapsed = time.monotonic() - began
        out.close()
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
        listener.close()
    label = "link/tls-loopback" if cert else "link/tcp-loopback"
    return [{"name": label, "measured_mib_s": sent / MiB / elapsed}]


def markdown(results: dict) -> str:
    lines = ["| benchmark | time (ms) | baseline | baseline (ms) | ratio | notes |",
             "|---|---:|---|---:|---:|---|"]
    for r in results["micro"]:
        notes = ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()
                          if k not in ("name", "ms", "baseline", "baseline_ms", "ratio"))
        lines.append(f"| {r['name']} | {r['ms']:.3f} | {r['baseline']} | "
                     f"{r['baseline_ms']:.3f} | {r['ratio']:.2f} | {notes} |")
    if results.get("rates"):
        lines += ["", "| workload | target (MiB/s) | measured (MiB/s) | error | guest CPU |",
                  "|---|---:|---:|---:|---:|"]
        for r in results["rates"]:
            if "target_mib_s" in r:
                lines.append(f"| {r['name']} | {r['target_mib_s']:g} | {r['measured_mib_s']:.1f} | "
                             f"{r['error_pct']:+.1f}% | {r['guest_cpu_pct']:.0f}% |")
            else:
                lines.append(f"| {r['name']} | - | {r['measured_mib_s']:.1f} | - | - |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-rates", action="store_true", help="skip the workload rates")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 10
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    with tempfile.TemporaryDirectory(prefix="hv-bench-") as state:
        hv = SimHypervisor(state)
        results["micro"] = (
            bench_dirty_sync(hv, repeat * 10)
            + bench_dirty_runs(repeat)
            + bench_nonzero_read(hv, max(2, repeat // 3))
        )
        if not args.no_rates:
            results["rates"] = (
                bench_rates(hv, 2.0 if args.quick else 4.0)
                + bench_link(2.0, None)
                + bench_link(2.0, _self_signed(state))
            )
    table = markdown(results)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
