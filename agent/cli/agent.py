"""``ldmx-agent``: the daemon, and its user and trust-store administration sub-commands.

    ldmx-agent [--state-dir DIR] [--host-name NAME] [--listen ADDR:PORT] [--socket PATH]
               [--migration-listen ADDR:PORT] [--platform FILE] [--guest-workload NAME]
               [--log-format text|json] [--log-file PATH] [--log-level LEVEL] [--config FILE]
    ldmx-agent [--state-dir DIR] user add NAME --role management|review --password-stdin
    ldmx-agent [--state-dir DIR] user remove NAME
    ldmx-agent [--state-dir DIR] user list
    ldmx-agent [--state-dir DIR] certificate
    ldmx-agent [--state-dir DIR] trust add NAME FILE
    ldmx-agent [--state-dir DIR] trust remove NAME
    ldmx-agent [--state-dir DIR] trust list

``certificate`` prints this agent's certificate (PEM; created like the daemon does at first
start) for the peers' ``trust add``; the ``trust`` commands manage the migration trust store
(migration.md §4.1: ``<state-dir>/trusted/``).

The daemon runs in the foreground, logs to stderr, prints one ready line when it accepts
connections, and exits cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from agent import config as configmod
from agent.auth.truststore import TrustError, TrustStore
from agent.auth.users import ROLES, UserError, UsersFile
from agent.hypervisor.base import WORKLOADS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ldmx-agent", description="The ldmx agent (Logical Domains Manager XML interface).")
    p.add_argument("--state-dir", help="state directory (default: $LDMX_STATE_DIR or the XDG state dir)")
    p.add_argument("--host-name", help="server name announced on the stream (default: the host's name)")
    p.add_argument("--listen", help="TCP endpoint for the XML interface (default 127.0.0.1:6482; port 0 picks one)")
    p.add_argument("--socket", help="Unix socket path (default <state-dir>/ldmx.sock)")
    p.add_argument("--migration-listen", help="migration data endpoint (default 127.0.0.1:8101)")
    p.add_argument("--platform", help="platform description (TOML; default: the embedded platform)")
    p.add_argument("--guest-workload", choices=WORKLOADS,
                   help="workload of the simulated guests this agent starts (default idle)")
    p.add_argument("--log-format", choices=configmod.LOG_FORMATS,
                   help="text (default) or json: one JSON object per line")
    p.add_argument("--log-file", help="append the log to this file (default -: standard error)")
    p.add_argument("--log-level", choices=configmod.LOG_LEVELS,
                   help="lowest level logged (default info)")
    p.add_argument("--config", help="configuration file (TOML); every option above has a key in it")
    sub = p.add_subparsers(dest="command")
    user = sub.add_parser("user", help="manage the users allowed to log in with SASL PLAIN")
    usub = user.add_subparsers(dest="user_command", required=True)
    add = usub.add_parser("add", help="add or replace a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=sorted(ROLES))
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (else prompt on the terminal)")
    rm = usub.add_parser("remove", help="remove a user")
    rm.add_argument("name")
    usub.add_parser("list", help="list users and roles")
    sub.add_parser("certificate", help="print this agent's certificate (PEM) for its peers")
    trust = sub.add_parser("trust", help="manage the migration trust store (certificate mode)")
    tsub = trust.add_subparsers(dest="trust_command", required=True)
    tadd = tsub.add_parser("add", help="trust the peer certificate in FILE under NAME")
    tadd.add_argument("name", help="the peer's host name")
    tadd.add_argument("file", help="a PEM file holding the peer's certificate (- for stdin)")
    trm = tsub.add_parser("remove", help="stop trusting the certificate NAME")
    trm.add_argument("name")
    tsub.add_parser("list", help="list trusted certificates: name, SHA-256 fingerprint, subject")
    return p


def load_config(args: argparse.Namespace) -> configmod.AgentConfig:
    overrides = {name: getattr(args, flag[2:].replace("-", "_"))
                 for flag, (name, _, _) in configmod.FLAG_KEYS.items()}
    return configmod.load(Path(args.config) if args.config else None, **overrides)


def user_command(cfg: configmod.AgentConfig, args: argparse.Namespace) -> int:
    users = UsersFile(cfg.state_dir)
    if args.user_command == "list":
        for user in sorted(users.users().values(), key=lambda u: u.name):
            print(f"{user.name} {user.role}")
        return 0
    if args.user_command == "remove":
        users.remove(args.name)
        return 0
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            raise UserError("the passwords do not match")
    ensure_state_dir(cfg.state_dir)
    users.add(args.name, args.role, password)
    return 0


def trust_command(cfg: configmod.AgentConfig, args: argparse.Namespace) -> int:
    store = TrustStore(cfg.state_dir)
    if args.trust_command == "list":
        for entry in store.entries():
            print(f"{entry.name} {entry.fingerprint} {entry.subject}")
        return 0
    if args.trust_command == "remove":
        store.remove(args.name)
        return 0
    try:
        pem = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as e:
        raise TrustError(f"cannot read {args.file}: {e.strerror}") from None
    ensure_state_dir(cfg.state_dir)
    entry = store.add(args.name, pem, origin=args.file)
    print(f"{entry.name} {entry.fingerprint} {entry.subject}")
    return 0


def certificate_command(cfg: configmod.AgentConfig) -> int:
    if cfg.tls_cert:
        path = cfg.tls_cert
    else:
        from agent.xmpp.tls import ensure_tls_files
        ensure_state_dir(cfg.state_dir)
        path, _ = ensure_tls_files(cfg.state_dir, cfg.host_name)
    try:
        sys.stdout.write(Path(path).read_text(encoding="ascii"))
    except OSError as e:
        raise configmod.ConfigError(f"cannot read certificate {path}: {e.strerror}") from None
    return 0


def ensure_state_dir(path: Path) -> None:
    """Create the state directory (mode 0700) or fail with a clear message."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise configmod.ConfigError(f"cannot create state directory {path}: {e.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise configmod.ConfigError(f"state directory {path} is not writable")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args)
        if args.command == "user":
            return user_command(cfg, args)
        if args.command == "trust":
            return trust_command(cfg, args)
        if args.command == "certificate":
            return certificate_command(cfg)
        ensure_state_dir(cfg.state_dir)
        from agent.daemon import run  # Twisted is only imported for the daemon
        return run(cfg)
    except (configmod.ConfigError, UserError, TrustError) as e:
        print(f"ldmx-agent: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
