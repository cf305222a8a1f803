"""``ldmx``: the operator's client of the LDM XML interface, with the ldm CLI's sub-commands.

    ldmx [--socket PATH | -H HOST[:PORT] -u USER [--password-file F]] SUB-COMMAND [ARGS...]

Sub-commands: every ldm command of the action table's ``cli`` column under its ldm name and
aliases (:mod:`agent.cli.commands`), ``list`` with ``-p``/``-l``/``-o``, ``migrate-domain``
(:mod:`agent.cli.migrate`), ``events`` (follow every event live) and ``xml`` (send a raw
request document). ``ldmx SUB-COMMAND --help`` describes each.

Over the Unix socket (the default) the agent recognises the caller by uid. Over TCP the client
negotiates STARTTLS and then SASL PLAIN; the password is read from the file given, or prompted
for on the terminal, and never crosses the network unencrypted.

Output follows ldm: listings on standard output, the agent's ``resp_msg`` lines on standard
error. Exit status: 0 success, 1 the agent answered with a failure, 2 usage errors and
connection problems (``migrate-domain`` has its own, migration spec §5.5).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Callable

from agent.cli import listing, migrate, requests
from agent.cli.answers import Answer, parse_answer, parse_event
from agent.cli.commands import BY_NAME, CLI, Sub, UsageError, build_request, parser_for
from agent.cli.connection import LdmClientError, LdmConnection
from agent.cli.pretty import indent_xml
from agent.config import default_state_dir, parse_endpoint
from agent.xmlapi import model

DEFAULT_PORT = 6482
OUTPUT_WORDS = tuple(listing.OUTPUT_WORDS)


# -- connection ------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The global options, then the sub-command and its own words."""
    names = sorted({s.name for s in CLI} | {"migrate-domain", "events", "xml"})
    p = argparse.ArgumentParser(
        prog="ldmx", description="Client of the ldmx agent (LDM XML interface), like ldm.",
        epilog="sub-commands: " + " ".join(names) + "  (ldmx SUB-COMMAND --help for each)")
    p.add_argument("--socket", help="the agent's Unix socket (default: <state dir>/ldmx.sock)")
    p.add_argument("-H", "--host", help="connect over TCP to HOST[:PORT] (port 6482 by default)")
    p.add_argument("-u", "--user", help="user name for SASL PLAIN (required with --host unless local)")
    p.add_argument("--password-file", help="read the password from this file (first line)")
    p.add_argument("--cacert", help="verify the agent's certificate against this PEM file")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the agent")
    p.add_argument("command", metavar="SUB-COMMAND")
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="ARGS")
    return p


def connect(args: argparse.Namespace) -> LdmConnection:
    """Open and negotiate one session with the agent the global options name."""
    if args.host:
        bracketed_or_port = args.host.startswith("[") or ":" in args.host
        host, port = (parse_endpoint(args.host, "--host") if bracketed_or_port
                      else (args.host, DEFAULT_PORT))
        conn = LdmConnection.tcp(host, port, timeout=args.timeout)
    else:
        path = Path(args.socket) if args.socket else default_state_dir() / "ldmx.sock"
        conn = LdmConnection.unix(path, timeout=args.timeout)
    conn.negotiate(args.user, session_password(args), cafile=args.cacert)
    return conn


def session_password(args: argparse.Namespace) -> str | None:
    """The SASL password (asked once per command, even when a second session opens)."""
    if not args.user:
        return None
    if getattr(args, "password", None) is None:
        if args.password_file:
            lines = Path(args.password_file).read_text().splitlines()
            args.password = lines[0] if lines else ""
        else:
            args.password = getpass.getpass(f"Password for {args.user}: ")
    return args.password


def poll_document(conn: LdmConnection, timeout: float) -> tuple[bytes, bytes] | None:
    """The next document if one arrives within ``timeout`` seconds, else None."""
    try:
        return conn.poll(timeout)
    except LdmClientError as exc:
        raise ConnectionError(str(exc)) from None


def report(answer: Answer) -> int:
    """Print the agent's messages on standard error; 0 on success, 1 on failure."""
    for message in answer.messages:
        print(message, file=sys.stderr)
    return 0 if answer.ok else 1


def exchange(args: argparse.Namespace, document: bytes) -> Answer:
    with connect(args) as conn:
        return parse_answer(conn.request(document))


# -- sub-commands -------------------------------------------------------------------------------

def render_for(sub: Sub, ns: argparse.Namespace, answer: Answer) -> str:
    """Standard output of a sub-command's answer (empty for the actions that change things)."""
    action = sub.action
    if action == "list-bindings":
        return listing.render_long(answer.contents())
    if action == "list-constraints":
        if ns.flag_x:
            return constraints_xml(answer) if answer.contents() else ""
        return listing.render_constraints(answer.contents())
    if action == "list-devices":
        return listing.render_devices(answer)
    if action == "list-services":
        return listing.render_services(answer.contents())
    if action == "list-variable":
        return listing.render_variables(answer.contents())
    if action == "list-spconfig":
        return listing.render_spconfigs(answer)
    return ""


def constraints_xml(answer: Answer) -> str:
    """``list-constraints -x``: an ``add-domain`` request that recreates the domains, replayable
    with ``ldmx add-domain -i FILE`` or ``ldmx xml FILE``."""
    document = requests.request("add-domain", [model.Envelope([c]) for c in answer.contents()])
    return indent_xml(document)


def run_sub(sub: Sub, name: str, args: argparse.Namespace, words: list[str]) -> int:
    """Parse, build the request, send it on one session, render the answer."""
    parser = parser_for(sub, f"ldmx {name}")
    ns = parser.parse_args(words)
    try:
        document = build_request(sub, ns)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"ldmx {name}: {exc}", file=sys.stderr)
        return 2
    answer = exchange(args, document)
    text = render_for(sub, ns, answer)
    if text:
        print(text)
    return report(answer)


def list_parser(name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"ldmx {name}",
                                description="list domains (XML action list-domain; with -l or -o "
                                            "also list-bindings)")
    p.add_argument("-p", action="store_true", help="parseable output (VERSION 1.6, DOMAIN|...)")
    p.add_argument("-l", action="store_true", help="long form: every resource of each domain")
    p.add_argument("-o", metavar="WORD[,WORD...]",
                   help="only these blocks: " + ", ".join(OUTPUT_WORDS))
    p.add_argument("names", nargs="*", metavar="ldom")
    return p


def run_list(name: str, args: argparse.Namespace, words: list[str]) -> int:
    """``ldmx list``: the table, ``-p``, ``-l`` and ``-o`` forms."""
    parser = list_parser(name)
    ns = parser.parse_args(words)
    selection = ns.o.split(",") if ns.o else None
    unknown = [w for w in selection or [] if w not in listing.OUTPUT_WORDS]
    if unknown:
        parser.print_usage(sys.stderr)
        print(f"ldmx {name}: unknown -o word {unknown[0]}; expected one of "
              + ", ".join(OUTPUT_WORDS), file=sys.stderr)
        return 2
    detailed = (ns.l or selection) and not ns.p
    action = "list-bindings" if detailed else "list-domain"
    data = [requests.domain(n) for n in ns.names] or [None]
    answer = exchange(args, requests.request(action, data))
    contents = answer.contents()
    if ns.p:
        text = listing.render_parseable(contents, long=ns.l, status="status" in (selection or []))
    elif detailed:
        text = listing.render_long(contents, selection, long=ns.l)
    else:
        text = listing.render_table(contents)
    if contents or ns.p:
        print(text)
    return report(answer)


def run_migrate(args: argparse.Namespace, words: list[str]) -> int:
    """``ldmx migrate-domain``: exit status per migration spec §5.5."""
    if words[:1] in (["-h"], ["--help"]):
        print(migrate.HELP)
        return 0
    try:
        margs = migrate.parse_migrate(words)
    except migrate.MigrateUsage as exc:
        print(exc, file=sys.stderr)
        print(migrate.USAGE, file=sys.stderr)
        return 1
    try:
        password = migrate.obtain_password(margs)
    except migrate.PasswordError as exc:
        print(exc, file=sys.stderr)
        print(migrate.failed(margs.source), file=sys.stderr)
        return 1
    document = migrate.migrate_request(margs, password)
    side: list[LdmConnection] = []

    def open_session() -> Callable[[bytes], bytes]:
        side.append(connect(args))
        return side[-1].request

    try:
        with connect(args) as conn:
            registered = parse_answer(conn.request(migrate.registration_request()))
            if not registered.ok:
                return report(registered)
            runner = migrate.Runner(margs, send=conn.send,
                                    receive=lambda t: poll_document(conn, t),
                                    open_session=open_session, err=sys.stderr,
                                    terminal=sys.stderr.isatty())
            return migrate.run_with_signals(runner, document)
    except (LdmClientError, OSError) as exc:
        print(f"ldmx: {exc}", file=sys.stderr)
        print(migrate.LOST_LOCAL_AGENT, file=sys.stderr)
        return 1
    finally:
        for conn in side:
            conn.close()


def run_events(args: argparse.Namespace, words: list[str]) -> int:
    """``ldmx events``: register for every event and print each as it comes, until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="ldmx events", description=(
        "register for all events (reg-all-events) and follow them live, one line per event"))
    parser.add_argument("--xml", action="store_true", help="print the raw LDM_event documents")
    ns = parser.parse_args(words)
    with connect(args) as conn:
        answer = parse_answer(conn.request(requests.request("reg-all-events", [None])))
        if not answer.ok:
            return report(answer)
        conn.sock.settimeout(None)  # events may be hours apart
        try:
            while True:
                root, doc = conn.next_document()
                if root != b"LDM_event":
                    continue
                if ns.xml:
                    print(doc.decode("utf-8"), flush=True)
                else:
                    event = parse_event(doc)
                    print(listing.render_event(event.action, event.envelope), flush=True)
        except KeyboardInterrupt:
            return 0


def run_xml(args: argparse.Namespace, words: list[str]) -> int:
    """``ldmx xml FILE|-``: send a raw request document and print the response."""
    parser = argparse.ArgumentParser(prog="ldmx xml",
                                     description="send a raw request document, print the response")
    parser.add_argument("file", help="request file, or - for standard input")
    ns = parser.parse_args(words)
    raw = sys.stdin.buffer.read() if ns.file == "-" else Path(ns.file).read_bytes()
    with connect(args) as conn:
        response = conn.request(raw)
    sys.stdout.write(response.decode("utf-8") + "\n")
    return 0 if parse_answer(response).ok else 1


SPECIAL = {"migrate-domain": run_migrate, "migrate": run_migrate, "events": run_events,
           "xml": run_xml}
LIST_NAMES = set(BY_NAME["list-domain"].names())


def dispatch(args: argparse.Namespace) -> int:
    name, words = args.command, args.words
    if name in SPECIAL:
        return SPECIAL[name](args, words)
    if name in LIST_NAMES:
        return run_list(name, args, words)
    if name in BY_NAME:
        return run_sub(BY_NAME[name], name, args, words)
    print(f"ldmx: unknown sub-command {name}; see ldmx --help", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return dispatch(args)
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    except BrokenPipeError:
        # The reader went away (`ldmx list | head`): stop quietly, as ls does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (LdmClientError, OSError) as exc:
        print(f"ldmx: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
