"""XML path benchmark: end-to-end `list-domain` over authenticated TLS sessions against a live
agent (1 client and 16 concurrent clients), with the in-process baseline (decode + validate +
dispatch + encode of the same document) measured in the same run.

    python tools/bench/xml_bench.py [--seconds 5] [--slices 10] [--floor] [--json FILE] [--no-docs]

Targets (issue 2): one-client throughput >= 0.5x the in-process baseline; p99 with 16 clients
<= 10x its p50.

The in-process baseline and the one-client run alternate in ``--slices`` short slices of the
same total length, so that a machine whose load changes during the run affects both alike.
``--floor`` adds two parties to that alternation, each the same service in its own server
process on one TLS connection, with no XMPP (no negotiation, no stream reader, no session;
a document ends at its closing tag): ``bare``, a blocking standard-library ``ssl`` socket,
shows what any Python server pays for a round trip on this machine; ``twisted``, Twisted's
reactor and TLS layer (pyOpenSSL, the agent's TLS settings and write path), shows what the
agent's I/O stack adds to that, so the rest of the one-client time is the XMPP front door.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import ssl
import struct
import subprocess
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


def local_session(state: Path):
    """An in-process LDM session on a fresh state directory: the baseline answers the request
    with it directly, no transport (and the floor server puts it behind a bare TLS socket)."""
    from agent.daemon import open_manager

    cfg = load_config(None, state_dir=str(state), host_name="bench")
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    service = LdmService(server_name="bench", manager=open_manager(cfg))
    session = service.open_session(Identity("bench", "write"), _NullSink())
    assert b"<status>success</status>" in session.answer(REQUEST)
    return session


def _timed(call, seconds: float, lat: list) -> float:
    """Call ``call`` back to back for ``seconds``; append each latency; return the wall time."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        call()
        lat.append(time.perf_counter() - t0)
    return time.perf_counter() - start


def interleaved(parties: dict, seconds: float, slices: int) -> dict:
    """Run each party (name -> call) for ``seconds`` in total, alternating in ``slices``."""
    lat: dict[str, list[float]] = {name: [] for name in parties}
    wall = dict.fromkeys(parties, 0.0)
    for _ in range(slices):
        for name, call in parties.items():
            wall[name] += _timed(call, seconds / slices, lat[name])
    return {name: summarize(lat[name], wall[name]) for name in parties}


_END = b"</LDM_interface>"


def _recv_document(sock) -> bytes:
    data = sock.recv(65536)
    while not data.endswith(_END):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk
    return data


def _announce(port_file: str, port: int) -> None:
    Path(port_file + ".tmp").write_text(str(port))
    Path(port_file + ".tmp").rename(port_file)


def serve_floor(kind: str, port_file: str, state: str) -> None:
    """A floor server (``bare`` or ``twisted``): the in-process session behind TLS, no XMPP."""
    from agent.xmpp.tls import ensure_tls_files

    session = local_session(Path(state) / kind)
    cert, key = ensure_tls_files(Path(state), "bench")
    if kind == "twisted":
        _serve_twisted_floor(session, cert, key, port_file)
        return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        _announce(port_file, listener.getsockname()[1])
        conn, _ = listener.accept()
    with ctx.wrap_socket(conn, server_side=True) as sock:
        while True:
            try:
                raw = _recv_document(sock)
            except (RuntimeError, OSError):
                return
            sock.sendall(session.answer(raw))


def _serve_twisted_floor(session, cert: Path, key: Path, port_file: str) -> None:
    """Twisted's reactor and TLS layer with the front door's TLS settings and write path."""
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol

    from agent.xmpp.protocol import keep_documents_apart
    from agent.xmpp.tls import ServerTls, TlsMaterial

    tls = ServerTls(TlsMaterial(cert, key))

    class Floor(Protocol):
        buffer = b""

        def connectionMade(self) -> None:  # noqa: N802
            self.transport.startTLS(tls)
            keep_documents_apart(self.transport)

        def dataReceived(self, data: bytes) -> None:  # noqa: N802
            self.buffer += data
            end = self.buffer.find(_END)
            if end >= 0:
                end += len(_END)
                raw, self.buffer = self.buffer[:end], self.buffer[end:]
                self.transport.write(session.answer(raw))

        def connectionLost(self, reason=None) -> None:  # noqa: N802
            reactor.stop()

    port = reactor.listenTCP(0, Factory.forProtocol(Floor), interface="127.0.0.1")
    _announce(port_file, port.getHost().port)
    reactor.run()


class _FloorClient:
    """Starts a floor server process and sends it the request, one round trip per call."""

    def __init__(self, kind: str, state: Path) -> None:
        port_file = state / f"floor-{kind}-port"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-floor", kind,
                                      str(port_file), str(state)])
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the floor server did not start")
            time.sleep(0.05)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", int(port_file.read_text())), timeout=30)
        self.sock = ctx.wrap_socket(raw)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 30, 0))
        assert b"<status>success</status>" in self.request()

    def request(self) -> bytes:
        self.sock.sendall(REQUEST)
        return _recv_document(self.sock)

    def close(self) -> None:
        self.sock.close()
        self.proc.wait(30)


class _LeanClient:
    """The measuring client: lean, so that it is not what the benchmark measures.

    It negotiates with :class:`LdmConnection` (stream header, STARTTLS, SASL PLAIN), then
    drives the authenticated TLS socket itself: one blocking ``sendall`` per request and
    blocking ``recv`` calls until the response's closing ``</LDM_interface>`` tag has arrived
    (the agent writes each document whole, and this session registers for no events, so
    nothing else arrives). The response is not parsed; it is checked for its success status.
    A stalled agent ends the run through the socket's 30 s receive timeout.
    """

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
        self.sock.sendall(REQUEST)
        data = _recv_document(self.sock)
        if data.count(_END) != 1:
            raise RuntimeError(f"more than one document in the answer: {data[-80:]!r}")
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
    ap.add_argument("--slices", type=int, default=10,
                    help="alternate the baseline and the one-client run in this many slices")
    ap.add_argument("--floor", action="store_true",
                    help="also measure the service behind a bare TLS server and a Twisted one")
    ap.add_argument("--json")
    ap.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    ap.add_argument("--serve-floor", nargs=3, metavar=("KIND", "PORT_FILE", "STATE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_floor:
        serve_floor(*args.serve_floor)
        return 0
    load_before = os.getloadavg()[0]
    state = Path(tempfile.mkdtemp(prefix="ldmx-xmlbench-"))
    floors: list[_FloorClient] = []
    try:
        session = local_session(state / "inproc")
        with AgentProcess(state / "agent", host_name="bench") as agent:
            agent.add_user(USER, "management", PASSWORD)
            client = _LeanClient(agent.listen)
            client.request()
            parties = {"base": lambda: session.answer(REQUEST), "one": client.request}
            if args.floor:
                for kind in ("bare", "twisted"):
                    floors.append(_FloorClient(kind, state))
                    parties[kind] = floors[-1].request
            measured = interleaved(parties, args.seconds, max(1, args.slices))
            client.close()
            many = end_to_end(agent.listen, 16, args.seconds)
    finally:
        for floor in floors:
            floor.close()
        shutil.rmtree(state, ignore_errors=True)
    base, one = measured["base"], measured["one"]
    ratio_one = one["req_per_s"] / base["req_per_s"]
    tail = many["p99_ms"] / many["p50_ms"]
    results = {"in_process": base, "e2e_1_client": one, "e2e_16_clients": many,
               "ratio_1_client_to_in_process": ratio_one, "p99_over_p50_16_clients": tail,
               "targets_met": {"ratio_1_client_ge_0.5": ratio_one >= 0.5, "tail_le_10": tail <= 10}}
    named = [("in-process baseline (decode+validate+dispatch+encode)", base),
             ("end-to-end, 1 client (TLS, SASL)", one),
             ("end-to-end, 16 concurrent clients", many)]
    notes = []
    for kind, label in (("bare", "bare blocking TLS server (stdlib ssl), no XMPP"),
                        ("twisted", "Twisted TLS server (pyOpenSSL), no XMPP")):
        if kind in measured:
            ratio = measured[kind]["req_per_s"] / base["req_per_s"]
            results[f"floor_{kind}_1_client"] = measured[kind]
            results[f"ratio_floor_{kind}_to_in_process"] = ratio
            named.insert(len(named) - 1, (f"floor: same service, {label}, 1 client", measured[kind]))
            notes.append(f"- floor, {label} / in-process baseline: {ratio:.2f}x")
    command = f"python tools/bench/xml_bench.py --seconds {args.seconds:g}" + (" --floor" if args.floor else "")
    rows = [
        "| measurement | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {r['req_per_s']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |"
          for name, r in named),
        "",
        f"- one-client throughput / in-process baseline: **{ratio_one:.2f}x** (target >= 0.5x)",
        *notes,
        f"- 16 clients p99 / p50: **{tail:.1f}x** (target <= 10x)",
        f"- 1-minute load average {load_before:.1f} before the run, {os.getloadavg()[0]:.1f} "
        "after (other work on the machine inflates every figure and the spread of ratios)",
        f"- {machine_line()}; `{command}`",
    ]
    table = "\n".join(rows)
    print(table)
    write_json(args.json, results)
    if not args.no_docs:
        write_section("XML interface: list-domain", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
