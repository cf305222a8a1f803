"""XML path benchmark: end-to-end `list-domain` over authenticated TLS sessions against a live
agent (1 client and 16 concurrent clients), with the in-process baseline (decode + validate +
dispatch + encode of the same document) measured in the same run.

    python tools/bench/xml_bench.py [--seconds 5] [--json FILE] [--no-docs]

Targets (issue 2): one-client throughput >= 0.5x the in-process baseline; p99 with 16 clients
<= 10x its p50.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.auth.identity import Identity  # noqa: E402
from agent.cli.connection import LdmConnection  # noqa: E402
from agent.config import load as load_config  # noqa: E402
from agent.service import LdmService  # noqa: E402
from agent.testing import AgentProcess  # noqa: E402
from tools.bench.common import machine_line, summarize, write_json, write_section  # noqa: E402

REQUEST = (b'<LDM_interface version="1.3"><cmd><action>list-domain</action>'
           b'<data version="3.0"/></cmd></LDM_interface>')
USER, PASSWORD = "bench", "bench-password"


class _NullSink:
    def write_document(self, data: bytes) -> None:
        pass


def in_process(seconds: float, state: Path) -> dict:
    """The baseline: the same request answered by an in-process session, no transport."""
    from agent.daemon import open_manager

    cfg = load_config(None, state_dir=str(state / "inproc"), host_name="bench")
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    service = LdmService(server_name="bench", manager=open_manager(cfg))
    session = service.open_session(Identity("bench", "write"), _NullSink())
    assert b"<status>success</status>" in session.answer(REQUEST)
    lat, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        session.answer(REQUEST)
        lat.append(time.perf_counter() - t0)
    return summarize(lat, time.perf_counter() - start)


class _LeanClient:
    """The measuring client: lean, so that it is not what the benchmark measures.

    It negotiates with :class:`LdmConnection` (stream header, STARTTLS, SASL PLAIN), then
    drives the authenticated TLS socket itself: one blocking ``sendall`` per request and
    blocking ``recv`` calls until the response's closing ``</LDM_interface>`` tag has arrived
    (the agent writes each document whole, and this session registers for no events, so
    nothing else arrives). The response is not parsed; it is checked for its success status.
    A stalled agent ends the run through the socket's 30 s receive timeout.
    """

    END = b"</LDM_interface>"

    def __init__(self, endpoint) -> None:
        conn = LdmConnection.tcp(*endpoint)
        conn.negotiate(USER, PASSWORD)
        if conn.buffer:
            raise RuntimeError(f"unexpected bytes after negotiation: {conn.buffer[:80]!r}")
        self.conn = conn
        self.sock = conn.sock
        # Blocking mode: a timeout would add a poll() before every read.
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                             struct.pack("ll", 30, 0))

    def request(self) -> bytes:
        sock, end = self.sock, self.END
        sock.sendall(REQUEST)
        data = sock.recv(65536)
        while not data.endswith(end):
            if end in data:
                raise RuntimeError(f"bytes after the response: {data[-80:]!r}")
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the agent closed the connection")
            data += chunk
        if b"<status>success</status>" not in data:
            raise RuntimeError(f"list-domain failed: {data[:300]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


def _client_loop(endpoint, seconds: float, out: list, barrier: threading.Barrier) -> None:
    client = _LeanClient(endpoint)
    client.request()
    barrier.wait()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        client.request()
        out.append(time.perf_counter() - t0)
    client.close()


def end_to_end(endpoint, clients: int, seconds: float) -> dict:
    lat: list[float] = []
    barrier = threading.Barrier(clients + 1)
    threads = [threading.Thread(target=_client_loop, args=(endpoint, seconds, lat, barrier))
               for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return summarize(lat, time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--json")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="ldmx-xmlbench-"))
    try:
        base = in_process(args.seconds, state)
        with AgentProcess(state / "agent", host_name="bench") as agent:
            agent.add_user(USER, "management", PASSWORD)
            one = end_to_end(agent.listen, 1, args.seconds)
            many = end_to_end(agent.listen, 16, args.seconds)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    ratio_one = one["req_per_s"] / base["req_per_s"]
    tail = many["p99_ms"] / many["p50_ms"]
    results = {"in_process": base, "e2e_1_client": one, "e2e_16_clients": many,
               "ratio_1_client_to_in_process": ratio_one, "p99_over_p50_16_clients": tail,
               "targets_met": {"ratio_1_client_ge_0.5": ratio_one >= 0.5, "tail_le_10": tail <= 10}}
    rows = [
        "| measurement | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {r['req_per_s']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |"
          for name, r in (("in-process baseline (decode+validate+dispatch+encode)", base),
                          ("end-to-end, 1 client (TLS, SASL)", one),
                          ("end-to-end, 16 concurrent clients", many))),
        "",
        f"- one-client throughput / in-process baseline: **{ratio_one:.2f}x** (target >= 0.5x)",
        f"- 16 clients p99 / p50: **{tail:.1f}x** (target <= 10x)",
        f"- {machine_line()}; `python tools/bench/xml_bench.py --seconds {args.seconds:g}`",
    ]
    table = "\n".join(rows)
    print(table)
    write_json(args.json, results)
    if not args.no_docs:
        write_section("XML interface: list-domain", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
