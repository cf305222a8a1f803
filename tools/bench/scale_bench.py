"""Scale benchmark (issue 4 item 10): 1,000 domains defined and bound on a large platform.

Measures, against a live agent: list-domain of all domains, list-bindings of one domain, the
fan-out of one domain event to 100 registered sessions, and the agent's RSS. The baseline,
measured in the same run, is the in-process answer to the same list-domain request (decode,
dispatch, manager, encode) on a copy of the same state.

    python tools/bench/scale_bench.py [--domains 1000] [--sessions 100] [--json FILE] [--no-docs]

Targets: list-domain of 1,000 domains <= 300 ms; RSS <= 300 MiB; event fan-out p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import selectors
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.auth.identity import Identity  # noqa: E402
from agent.cli.connection import LdmConnection  # noqa: E402
from agent.testing import AgentProcess  # noqa: E402
from tools.bench.common import (ROOT, machine_line, percentile, write_json,  # noqa: E402
                                write_section)

PLATFORM = ROOT / "samples" / "platforms" / "large.toml"
HEAD = '<LDM_interface version="1.3">'
LIST_ALL = (HEAD + '<cmd><action>list-domain</action><data version="3.0"/></cmd></LDM_interface>').encode()


def _cmd(action: str, name: str, items: str = "") -> str:
    section = f'<Section xsi:type="ovf:VirtualHardwareSection_Type">{items}</Section>' if items else ""
    return (f'<cmd><action>{action}</action><data version="3.0"><Envelope><References/>'
            f'<Content xsi:type="ovf:VirtualSystem_Type" ovf:id="{name}">{section}</Content>'
            f'</Envelope></data></cmd>')


def _item(rtype: str, units: str) -> str:
    return (f'<Item><rasd:OtherResourceType>{rtype}</rasd:OtherResourceType>'
            f'<rasd:AllocationUnits>{units}</rasd:AllocationUnits></Item>')


def _ok(response: bytes) -> None:
    if b"<status>failure</status>" in response:
        raise RuntimeError("request failed: " + response[:2000].decode())


def populate(conn: LdmConnection, domains: int, batch: int = 50) -> float:
    """Shrink primary, then add and bind ``domains`` domains (1 vCPU, 1G each)."""
    start = time.perf_counter()
    _ok(conn.request((HEAD + _cmd("set-vcpu", "primary", _item("cpu", "8"))
                      + _cmd("set-memory", "primary", _item("memory", "16G")) + "</LDM_interface>").encode()))
    names = [f"ldg{i:04d}" for i in range(domains)]
    for i in range(0, domains, batch):
        chunk = names[i:i + batch]
        adds = "".join(_cmd("add-domain", n, _item("cpu", "1") + _item("memory", "1G")) for n in chunk)
        _ok(conn.request((HEAD + adds + "</LDM_interface>").encode()))
        binds = "".join(_cmd("bind-domain", n) for n in chunk)
        _ok(conn.request((HEAD + binds + "</LDM_interface>").encode()))
    return time.perf_counter() - start


def timed(conn: LdmConnection, doc: bytes, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _ok(conn.request(doc))
        out.append(time.perf_counter() - t0)
    return out


def fan_out(agent: AgentProcess, control: LdmConnection, sessions: int, rounds: int) -> list[float]:
    """Latency from sending a change to each registered session reading its domain event."""
    listeners = []
    reg = (HEAD + '<cmd><action>reg-domain-events</action><data version="3.0"/></cmd></LDM_interface>').encode()
    for _ in range(sessions):
        c = LdmConnection.unix(agent.socket_path)
        c.negotiate()
        _ok(c.request(reg))
        c.sock.setblocking(False)
        listeners.append(c)
    sel = selectors.DefaultSelector()
    for c in listeners:
        sel.register(c.sock, selectors.EVENT_READ, c)
    lat: list[float] = []
    try:
        for r in range(rounds):
            action = "unbind-domain" if r % 2 == 0 else "bind-domain"
            marker = f"<action>{action}</action>".encode()
            waiting = set(listeners)
            t0 = time.perf_counter()
            control.sock.sendall((HEAD + _cmd(action, "ldg0000") + "</LDM_interface>").encode())
            while waiting:
                for key, _ in sel.select(timeout=10):
                    c = key.data
                    try:
                        while True:
                            chunk = c.sock.recv(65536)
                            if not chunk:
                                raise RuntimeError("listener closed")
                            c.buffer += chunk
                    except OSError:  # includes ssl.SSLWantReadError: nothing more to read now
                        pass
                    if c in waiting and marker in c.buffer:
                        lat.append(time.perf_counter() - t0)
                        waiting.discard(c)
                        c.buffer = b""
            _, response = control.next_document()
            while b"LDM_interface" not in response[:14]:
                _, response = control.next_document()
            _ok(response)
    finally:
        for c in listeners:
            c.sock.close()
    return lat


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def in_process(state: Path, repeat: int) -> list[float]:
    from agent.daemon import open_manager
    from agent.config import load as load_config
    from agent.service import LdmService

    copy = state.parent / "inproc"
    copy.mkdir()
    for f in state.glob("ldmx.db*"):
        shutil.copy(f, copy / f.name)
    cfg = load_config(None, state_dir=str(copy), host_name="bench", platform=str(PLATFORM))

    class NullSink:
        def write_document(self, data: bytes) -> None:
            pass

    service = LdmService(server_name="bench", manager=open_manager(cfg))
    session = service.open_session(Identity("bench", "write"), NullSink())
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _ok(session.answer(LIST_ALL))
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ldmx-scale-"))
    try:
        with AgentProcess(tmp / "agent", extra_args=("--platform", str(PLATFORM))) as agent:
            with LdmConnection.unix(agent.socket_path, timeout=600) as conn:
                conn.negotiate()
                setup_s = populate(conn, args.domains)
                list_all = timed(conn, LIST_ALL, args.repeat)
                one = (HEAD + '<cmd><action>list-bindings</action><data version="3.0"><Envelope>'
                       f'<References/><Content ovf:id="ldg{args.domains // 2:04d}"/></Envelope>'
                       '</data></cmd></LDM_interface>').encode()
                bindings = timed(conn, one, args.repeat * 5)
                fan = fan_out(agent, conn, args.sessions, rounds=20)
                rss = rss_mib(agent.proc.pid)
            agent.stop()
            base = in_process(tmp / "agent", args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = {
        "domains": args.domains, "sessions": args.sessions, "setup_s": setup_s,
        "list_domain_all_ms": {"p50": percentile(list_all, 50) * 1e3, "p99": percentile(list_all, 99) * 1e3},
        "list_domain_in_process_ms": {"p50": percentile(base, 50) * 1e3},
        "list_bindings_one_ms": {"p50": percentile(bindings, 50) * 1e3, "p99": percentile(bindings, 99) * 1e3},
        "event_fanout_ms": {"p50": percentile(fan, 50) * 1e3, "p99": percentile(fan, 99) * 1e3},
        "agent_rss_mib": rss,
    }
    ratio = res["list_domain_all_ms"]["p50"] / res["list_domain_in_process_ms"]["p50"]
    res["list_domain_e2e_over_in_process"] = ratio
    res["targets_met"] = {"list_domain_le_300ms": res["list_domain_all_ms"]["p99"] <= 300,
                          "rss_le_300mib": rss <= 300,
                          "fanout_p99_le_20ms": res["event_fanout_ms"]["p99"] <= 20}
    table = "\n".join([
        "| measurement | p50 | p99 | target |",
        "|---|---:|---:|---|",
        f"| list-domain, {args.domains} domains, end to end | {res['list_domain_all_ms']['p50']:.1f} ms | {res['list_domain_all_ms']['p99']:.1f} ms | <= 300 ms |",
        f"| same request in process (baseline) | {res['list_domain_in_process_ms']['p50']:.1f} ms | | |",
        f"| list-bindings of one domain | {res['list_bindings_one_ms']['p50']:.2f} ms | {res['list_bindings_one_ms']['p99']:.2f} ms | |",
        f"| one domain event to {args.sessions} sessions | {res['event_fanout_ms']['p50']:.2f} ms | {res['event_fanout_ms']['p99']:.2f} ms | p99 <= 20 ms |",
        f"| agent RSS with {args.domains} bound domains | {rss:.0f} MiB | | <= 300 MiB |",
        "",
        f"- end-to-end list-domain / in-process baseline: {ratio:.2f}x; defining and binding took {setup_s:.1f} s",
        f"- {machine_line()}; `python tools/bench/scale_bench.py --domains {args.domains} --sessions {args.sessions}`",
    ])
    print(table)
    write_json(args.json, res)
    if not args.no_docs:
        write_section("Scale: 1,000 domains", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
