"""``ldmx``: the operator's client of the LDM XML interface.

    ldmx [--socket PATH | -H HOST[:PORT] -u USER [--password-file F]] list-domain [-p] [name...]
    ldmx [connection options] xml FILE|-

Over the Unix socket (the default) the agent recognises the caller by uid. Over TCP the client
negotiates STARTTLS and then SASL PLAIN; the password is read from the file given, or prompted
for on the terminal, and never crosses the network unencrypted.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from lxml import etree

from agent.cli.connection import LdmClientError, LdmConnection
from agent.config import default_state_dir, parse_endpoint

GPROP = "./schemas/GenericProperty"
RASD = "./schemas/CIM_ResourceAllocationSettingData"
DEFAULT_PORT = 6482


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ldmx", description="Client of the ldmx agent (LDM XML interface).")
    p.add_argument("--socket", help="the agent's Unix socket (default: <state dir>/ldmx.sock)")
    p.add_argument("-H", "--host", help="connect over TCP to HOST[:PORT] (port 6482 by default)")
    p.add_argument("-u", "--user", help="user name for SASL PLAIN (required with --host unless local)")
    p.add_argument("--password-file", help="read the password from this file (first line)")
    p.add_argument("--cacert", help="verify the agent's certificate against this PEM file")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the agent")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ld = sub.add_parser("list-domain", aliases=["list", "ls"], help="list domains")
    ld.add_argument("-p", action="store_true", help="parseable output")
    ld.add_argument("names", nargs="*")
    xml = sub.add_parser("xml", help="send a raw request document and print the response")
    xml.add_argument("file", help="request file, or - for standard input")
    return p


def connect(args: argparse.Namespace) -> LdmConnection:
    if args.host:
        host, port = (parse_endpoint(args.host, "--host") if ":" in args.host.strip("[]")
                      or args.host.startswith("[") else (args.host, DEFAULT_PORT))
        conn = LdmConnection.tcp(host, port, timeout=args.timeout)
    else:
        path = Path(args.socket) if args.socket else default_state_dir() / "ldmx.sock"
        conn = LdmConnection.unix(path, timeout=args.timeout)
    password = None
    if args.user:
        if args.password_file:
            password = Path(args.password_file).read_text().splitlines()[0] if Path(args.password_file).stat().st_size else ""
        else:
            password = getpass.getpass(f"Password for {args.user}: ")
    conn.negotiate(args.user, password, cafile=args.cacert)
    return conn


def list_domain_request(names: list[str]) -> bytes:
    if not names:
        data = '<data version="3.0"/>'
    else:
        data = "".join(f'<data version="3.0"><Envelope><References/><Content ovf:id="{n}"/></Envelope></data>'
                       for n in names)
    return (f'<LDM_interface version="1.3"><cmd><action>list-domain</action>{data}</cmd>'
            f'</LDM_interface>').encode()


def failures(response: bytes) -> list[str]:
    """Every resp_msg of a response that failed, in document order (empty when it succeeded)."""
    root = etree.fromstring(response)
    if root.findtext("response/status") == "success":
        return []
    msgs = [m.text or "" for m in root.iter("resp_msg")]
    return msgs or ["the request failed"]


def domains_of(response: bytes) -> list[dict[str, str]]:
    """The ldom_info properties of each domain in a list-domain response."""
    rows = []
    root = etree.fromstring(response)
    for content in root.iter("Content"):
        for item in content.iter("Item"):
            if item.findtext(f"{{{RASD}}}OtherResourceType") != "ldom_info":
                continue
            row = {"name": content.get("{./schemas/envelope}id", "")}
            for prop in item.iter(f"{{{GPROP}}}GenericProperty"):
                row[prop.get("key")] = prop.text or ""
            rows.append(row)
    return rows


def _uptime(seconds: str) -> str:
    if not seconds or not seconds.isdigit():
        return ""
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {h}h {m}m" if d else (f"{h}h {m}m" if h else (f"{m}m" if m else f"{s}s"))


def render_list(rows: list[dict[str, str]], parseable: bool) -> str:
    """The ldm CLI's `list` table (NAME STATE FLAGS CONS VCPU MEMORY UTIL NORM UPTIME)."""
    if parseable:
        out = ["VERSION 1.6"]
        for r in rows:
            out.append("|".join([f"DOMAIN|name={r['name']}", f"state={r.get('state', '')}",
                                 f"flags={r.get('flags', '')}", f"cons={r.get('console', '')}",
                                 f"ncpu={r.get('ncpu', '')}", f"mem={r.get('memory', '')}",
                                 f"util={r.get('util', '')}", f"norm_util={r.get('util', '')}",
                                 f"uptime={r.get('uptime', '')}"]))
        return "\n".join(out)
    header = ["NAME", "STATE", "FLAGS", "CONS", "VCPU", "MEMORY", "UTIL", "NORM", "UPTIME"]
    table = [header]
    for r in rows:
        active = r.get("state") == "active"
        util = f"{r.get('util', '')}%" if active and r.get("util") else ""
        table.append([r["name"], r.get("state", ""), r.get("flags", ""), r.get("console", ""),
                      r.get("ncpu", ""), r.get("memory", ""), util, util,
                      _uptime(r.get("uptime", "")) if active else ""])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with connect(args) as conn:
            if args.command == "xml":
                raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
                response = conn.request(raw)
                sys.stdout.write(response.decode("utf-8") + "\n")
                return 0 if not failures(response) else 1
            response = conn.request(list_domain_request(args.names))
            problems = failures(response)
            rows = domains_of(response)
            if rows:
                print(render_list(rows, args.p))
            for msg in problems:
                print(msg, file=sys.stderr)
            return 1 if problems else 0
    except (LdmClientError, OSError) as e:
        print(f"ldmx: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
