"""``ldmx migrate-domain``: command syntax, password, request, progress and cancel.

Migration spec §5: options first (``-f``, ``-n``, ``-c``, ``-p FILE``, and ``--target-port``,
ours), then the source domain, then the named operands and exactly one
``[user@]host[:target-ldom]`` in any order. Usage errors (§5.4) print one line and the usage
block and exit 1 without contacting any agent. The request is the XML form of ldm-xml §7.1;
the session registers for hardware events first so that ``migration-process`` events show the
progress: a live bar on a terminal, plain lines otherwise, both on standard error (a successful
migration writes nothing to standard output). Ctrl-C or SIGTERM sends ``cancel-operation
migration`` on a second session (§8.3). Exit status §5.5: 0 done, 1 not migrated, 3 unresolved.
"""

from __future__ import annotations

import base64
import getpass
import os
import re
import signal
import stat
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO

from agent.cli import requests
from agent.cli.answers import Answer, ldom_info, parse_answer, parse_event
from agent.cli.listing import human_size
from agent.actions.table import MIGRATE_OPERANDS
from agent.xmlapi import model

USAGE = ("Usage:\n"
         "    ldmx migrate-domain [-f] [-n] [-p filename] source-ldom [map-or-tuning-operand ...]"
         " [user@]target-host[:target-ldom]\n"
         "    ldmx migrate-domain [-f] [-n] -c source-ldom [map-or-tuning-operand ...]"
         " target-host[:target-ldom]")
HELP = (USAGE + "\n\nOptions: -n dry run; -f force past overridable checks; -c certificate mode;"
        " -p FILE read the target password from FILE; --target-port PORT the target agent's"
        " port (default 6482).\nOperands: cidmap=, mblockmap=, max-downtime=, max-bandwidth=,"
        " max-rounds=, timeout=, on-timeout=, auto-converge=, compression=.")

# CLI-side messages (migration spec §5.4, §4.6, Appendix A); the agent's texts come in resp_msg.
PASSWORD_PROMPT = "Target Password: "
NEED_PASSWORD = "A target password is required: use -p filename or run the command from a terminal"
LOST_LOCAL_AGENT = "Lost connection to the Logical Domains Manager on this machine"
LEGACY_OS_NOTICE = "is not running an operating system that is"
NOTICE = "Notice: "


def failed(ldom: str) -> str:
    return f"Domain Migration of LDom {ldom} failed"


def passed_pnr(ldom: str) -> str:
    return (f"Notice: The migration of domain {ldom} has passed the point of no return "
            "and will complete")


class MigrateUsage(Exception):
    """A usage error of §5.4; its text is the one line printed before the usage block."""


class PasswordError(Exception):
    """The password could not be obtained (§4.6); the migration fails before any request."""


@dataclass
class MigrateArgs:
    """A parsed ``migrate-domain`` command line."""

    source: str
    host: str
    target: str
    user: str | None = None
    flags: list[str] = field(default_factory=list)  # -n -f -c in the order given
    password_file: str | None = None
    port: int | None = None
    operands: list[str] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        return "-n" in self.flags

    @property
    def certificate(self) -> bool:
        return "-c" in self.flags

    def target_property(self) -> str:
        """The ``target`` property: host, with ``:port`` when a port is given."""
        if self.port is None:
            return self.host
        return f"{self.host}:{self.port}"


# -- syntax (§5.1-§5.4) -------------------------------------------------------------------------

_USER = re.compile(r"^[^@:/]{1,32}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$")
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
_LDOM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_SIZE = re.compile(r"^\d+[KkMmGg]?$")
_CHOICES = {"on-timeout": ("abort", "force"), "auto-converge": ("on", "off"),
            "compression": ("none", "zlib")}
_INTEGERS = {"max-downtime": 0, "max-rounds": 1, "timeout": 1}  # minimum values


def parse_migrate(words: list[str]) -> MigrateArgs:
    """Parse the words after ``migrate-domain`` (raises :class:`MigrateUsage`)."""
    words = list(words)
    flags: list[str] = []
    password_file = port = None
    seen: set[str] = set()
    while words and words[0].startswith("-") and words[0] != "-":
        flag = words.pop(0)
        if flag in seen:
            raise MigrateUsage(f"Option {flag} given more than once")
        seen.add(flag)
        if flag in ("-f", "-n", "-c"):
            flags.append(flag)
        elif flag in ("-p", "--target-port"):
            if not words:
                raise MigrateUsage(f"Option {flag} requires an argument")
            value = words.pop(0)
            if flag == "-p":
                password_file = value
            elif value.isdigit() and 0 < int(value) < 65536:
                port = int(value)
            else:
                raise MigrateUsage(f"Invalid value for --target-port: {value}")
        else:
            raise MigrateUsage(f"Invalid option {flag}")
    if not words:
        raise MigrateUsage("Missing operand")
    source, rest = words[0], words[1:]
    operands: list[str] = []
    names: set[str] = set()
    spec = None
    for word in rest:
        if _is_named(word):
            name, _, value = word.partition("=")
            check_operand(name, value, names)
            operands.append(word)
        elif spec is None:
            spec = word
        else:
            raise MigrateUsage(f"Invalid target specification {word}")
    if spec is None:
        raise MigrateUsage("Missing operand")
    user, host, target = parse_target(spec)
    if "-c" in flags and (password_file is not None or user is not None):
        raise MigrateUsage("Option -c cannot be combined with -p or with a user name")
    return MigrateArgs(source, host, target or source, user, flags, password_file, port, operands)


def _is_named(word: str) -> bool:
    """An operand with ``=`` before any ``@`` or ``:`` is a named operand (§5.1)."""
    eq = word.find("=")
    return eq > 0 and all(c not in word[:eq] for c in "@:")


def parse_target(spec: str) -> tuple[str | None, str, str | None]:
    """``[user@]host[:target-ldom]`` as (user, host, target-ldom)."""
    user, at, rest = spec.rpartition("@") if "@" in spec else (None, "", spec)
    if at and not _USER.match(user or ""):
        raise MigrateUsage(f"Invalid target specification {spec}")
    if rest.startswith("["):
        close = rest.find("]")
        host, tail = rest[:close + 1], rest[close + 1:]
        if close < 0 or not _IPV6.match(host) or (tail and not tail.startswith(":")):
            raise MigrateUsage(f"Invalid target specification {spec}")
        target = tail[1:] if tail else None
    else:
        host, colon, target = rest.partition(":")
        target = target if colon else None
        if not _HOSTNAME.match(host):
            raise MigrateUsage(f"Invalid target specification {spec}")
    if target is not None and not _LDOM.match(target):
        raise MigrateUsage(f"Invalid target specification {spec}")
    return user, host, target


def check_operand(name: str, value: str, seen: set[str]) -> None:
    """Check one named operand's name and value (§5.3, §5.4)."""
    if name not in MIGRATE_OPERANDS:
        raise MigrateUsage(f"Unknown operand {name}")
    if name in seen:
        raise MigrateUsage(f"Operand {name} given more than once")
    seen.add(name)
    bad = MigrateUsage(f"Invalid value for {name}: {value}")
    if name in ("cidmap", "mblockmap"):
        check_map(name, value, bad)
    elif name in _CHOICES:
        if value not in _CHOICES[name]:
            raise bad
    elif name == "max-bandwidth":
        if not _SIZE.match(value):
            raise bad
    elif not value.isdigit() or int(value) < _INTEGERS[name]:
        raise bad


def check_map(name: str, value: str, bad: MigrateUsage) -> None:
    """``SRC:DST[,SRC:DST...]``: decimal cores (cidmap) or hex addresses (mblockmap)."""
    sources: set[int] = set()
    targets: set[int] = set()
    for pair in value.split(","):
        left, colon, right = pair.partition(":")
        if not colon:
            raise bad
        try:
            if name == "cidmap":
                if not (left.isdigit() and right.isdigit()):
                    raise ValueError
                a, b = int(left), int(right)
            else:
                a, b = _hex(left), _hex(right)
        except ValueError:
            raise bad from None
        for number, used in ((a, sources), (b, targets)):
            if number in used:
                raise MigrateUsage(f"Core {number} appears more than once in cidmap"
                                   if name == "cidmap" else
                                   f"Address {number:#x} appears more than once in mblockmap")
            used.add(number)


def _hex(text: str) -> int:
    digits = text[2:] if text.lower().startswith("0x") else text
    if not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(text)
    return int(digits, 16)


# -- password (§4.1, §4.6) ----------------------------------------------------------------------

def read_password_file(path: str) -> str:
    """The first line of a password file that only its owner (the caller or root) can read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        raise PasswordError(f"Unable to read password file {path}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if (not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077
                or info.st_uid not in (os.getuid(), 0)):
            raise PasswordError(f"Password file {path} must not be accessible by group or "
                                "other users")
        try:
            first = handle.readline().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            raise PasswordError(f"Unable to read password file {path}") from None
    password = first.rstrip("\n").removesuffix("\r")
    if not password:
        raise PasswordError(f"Password file {path} does not contain a password")
    return password


def has_terminal() -> bool:
    """Whether a controlling terminal can be opened for the prompt."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        return True
    except OSError:
        return False


def obtain_password(args: MigrateArgs, terminal: Callable[[], bool] | None = None,
                    prompt: Callable[[str], str] | None = None) -> str | None:
    """The target password (None in certificate mode); raises :class:`PasswordError`.

    The prompt reads the controlling terminal with echo off (``getpass``)."""
    if args.certificate:
        return None
    if args.password_file is not None:
        return read_password_file(args.password_file)
    if not (terminal or has_terminal)():
        raise PasswordError(NEED_PASSWORD)
    return (prompt or getpass.getpass)(PASSWORD_PROMPT)


# -- the request (ldm-xml §7.1) -----------------------------------------------------------------

def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def migrate_request(args: MigrateArgs, password: str | None) -> bytes:
    """The ``migrate-domain`` request: source Content, then the target Content."""
    props = [("target", args.target_property())]
    if args.user is not None:
        props.append(("username", _b64(args.user)))
    if password is not None:
        props.append(("password", _b64(password)))
    target = model.Content(args.target, requests.sections_for([requests.item("ldom_info", props)]))
    envelope = model.Envelope([model.Content(args.source), target])
    return requests.request("migrate-domain", [envelope], options=args.flags,
                            arguments=args.operands)


def cancel_request(ldom: str) -> bytes:
    return requests.request("cancel-operation", [requests.domain(ldom)], options=["migration"])


def registration_request() -> bytes:
    return requests.request("reg-hardware-events", [None])


# -- progress ---------------------------------------------------------------------------------

PHASES = {"1": "checks", "2": "preparation", "3": "live transfer", "4": "suspend and final copy",
          "5": "handoff"}


@dataclass
class Progress:
    """What the progress events (and status queries) told so far about one migration."""

    ldom: str
    info: dict[str, str] = field(default_factory=dict)

    def update(self, props: dict[str, str]) -> None:
        self.info.update({k: v for k, v in props.items() if v != ""})

    @property
    def phase(self) -> str:
        return self.info.get("phase", "")

    @property
    def final(self) -> bool:
        return self.info.get("status") in ("done", "failed")

    def key(self) -> tuple[str, ...]:
        """What a plain line reports; a new line is written when it changes."""
        return tuple(self.info.get(k, "") for k in ("status", "phase", "round"))

    def parts(self) -> list[str]:
        info = self.info
        out = [info.get("progress", "0%"), info.get("status", "ongoing")]
        if self.phase:
            out.append(f"phase {self.phase} ({PHASES.get(self.phase, '?')})")
        if info.get("round"):
            out.append(f"round {info['round']}")
        if info.get("throughput", "").isdigit():
            out.append(human_size(float(info["throughput"])) + "/s")
        if self.final and info.get("downtime"):
            out.append(f"downtime {info['downtime']}ms")
        elif info.get("expected-downtime"):
            out.append(f"expected downtime {info['expected-downtime']}ms")
        return out

    def line(self) -> str:
        """A plain progress line (not on a terminal)."""
        return f"Migration of domain {self.ldom}: " + ", ".join(self.parts())

    def bar(self, width: int = 24) -> str:
        """The live bar (on a terminal), drawn over itself with a carriage return."""
        digits = self.info.get("progress", "0%").rstrip("%")
        percent = int(digits) if digits.isdigit() else 0
        filled = width * min(percent, 100) // 100
        return f"\r\033[K{self.ldom} [{'#' * filled}{'.' * (width - filled)}] " + "  ".join(self.parts())


# -- running it -------------------------------------------------------------------------------

Receive = Callable[[float], "tuple[bytes, bytes] | None"]


@dataclass
class Runner:
    """Drives one migration over an open session: progress, signals, cancel, exit status.

    ``send`` writes a document on the requesting session; ``receive(timeout)`` returns the next
    (root name, document) or None; ``open_session()`` returns a function that sends one request
    on a second session and returns its answer (for cancel and status queries).
    """

    args: MigrateArgs
    send: Callable[[bytes], None]
    receive: Receive
    open_session: Callable[[], Callable[[bytes], bytes]]
    err: TextIO
    terminal: bool = False
    status_interval: float = 1.0
    progress: Progress = field(init=False)
    interrupted: bool = False
    _side: Callable[[bytes], bytes] | None = None
    _last_key: tuple[str, ...] = ()
    _last_status: float = 0.0
    _drawn: bool = False

    def __post_init__(self) -> None:
        self.progress = Progress(self.args.source)

    def run(self, document: bytes) -> int:
        """Send the request and wait for its answer; the exit status."""
        self.send(document)
        while True:
            if self.interrupted:
                self.interrupted = False
                self.cancel()
            try:
                got = self.receive(0.25)
            except OSError:
                return self.lost()
            if got is None:
                self.poll_status()
                continue
            root, doc = got
            if root == b"LDM_event":
                self.on_event(doc)
            else:
                return self.finish(parse_answer(doc))

    def on_event(self, doc: bytes) -> None:
        event = parse_event(doc)
        if event.action != "migration-process":
            return
        content = next(iter(event.envelope.contents), None)
        if content is None or content.name != self.args.source:
            return
        self.progress.update(ldom_info(content))
        self.show()

    def show(self) -> None:
        try:
            if self.terminal:
                self.err.write(self.progress.bar())
                self._drawn = True
            elif self.progress.key() != self._last_key:
                self._last_key = self.progress.key()
                self.err.write(self.progress.line() + "\n")
            self.err.flush()
        except OSError:
            pass  # §8.3: write errors on the output are ignored

    def poll_status(self) -> None:
        """On a terminal, ask for the live statistics (throughput) once a second."""
        if not self.terminal or not self.progress.info or self.progress.final:
            return
        now = time.monotonic()
        if now - self._last_status < self.status_interval:
            return
        self._last_status = now
        try:
            answer = parse_answer(self.side()(requests.request(
                "list-domain", [requests.domain(self.args.source)])))
        except Exception:  # noqa: BLE001 - a status query never stops the migration
            return
        for content in answer.contents():
            info = ldom_info(content)
            self.progress.update({k: info.get(k, "") for k in ("throughput", "expected-downtime")})
        self.show()

    def side(self) -> Callable[[bytes], bytes]:
        if self._side is None:
            self._side = self.open_session()
        return self._side

    def cancel(self) -> None:
        """Ask the agent to cancel (a second session); say so when it is too late."""
        try:
            answer = parse_answer(self.side()(cancel_request(self.args.source)))
        except Exception as exc:  # noqa: BLE001 - any failure to cancel is reported, not fatal
            self.clear()
            self.err.write(f"Unable to cancel the migration of domain {self.args.source}: {exc}\n")
            return
        if answer.ok:
            return
        self.clear()
        if self.progress.phase == "5" or any("point of no return" in m for m in answer.messages):
            self.err.write(passed_pnr(self.args.source) + "\n")
        else:
            self.err.writelines(m + "\n" for m in answer.messages)

    def clear(self) -> None:
        if self._drawn:
            self.err.write("\r\033[K")
            self._drawn = False

    def finish(self, answer: Answer) -> int:
        """Print the answer's lines (stderr) and choose the exit status (§5.5)."""
        self.clear()
        for message in answer.messages:
            if message.startswith(NOTICE) and LEGACY_OS_NOTICE in message:
                message = message[len(NOTICE):]
            self.err.write(message + "\n")
        self.err.flush()
        if answer.ok:
            return 0
        if self.progress.info.get("outcome") == "unresolved":
            return 3
        return 1

    def lost(self) -> int:
        """The local agent went away: 3 after phase 5 was seen (the agents resolve it), else 1."""
        self.clear()
        self.err.write(LOST_LOCAL_AGENT + "\n")
        return 3 if self.progress.phase == "5" else 1


def run_with_signals(runner: Runner, document: bytes) -> int:
    """Run with SIGINT/SIGTERM turned into a cancel request and SIGHUP ignored (§8.3)."""
    def interrupt(signum, frame):
        runner.interrupted = True

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        return runner.run(document)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
