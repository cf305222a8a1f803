"""Drive fuzz cases against a live agent and classify how each session ended.

A ``ready`` case is written on an authenticated TLS session, followed by a *sentinel*: a
request whose unsupported version (``s<N>``) comes back echoed in its overall failure, so the
sentinel's response proves that everything before it was answered. Outcomes:

``answered``          the sentinel's response arrived (the session survived the case);
``stream-error:COND`` a stream error, then the agent closed the connection;
``closed``            the agent sent ``</stream:stream>`` and closed (the case closed the stream);
``reset``             the connection was reset after the agent stopped reading (huge inputs);
``aborted``           end of connection with no stream error and no closing tag;
``waiting``           silence, and the agent's own stream reader agrees the input is incomplete;
``hang``              silence beyond the bound although the input was complete or broken;
``internal-error``    a response carrying the agent's internal-error text (a handler bug);
``bad-output``        a response that is not well-formed XML.

Negotiation cases run on fresh connections; a connection still open after a short look is
*parked* and must end (a stream error, normally ``connection-timeout``) before the agent's
negotiation timeout plus a margin.
"""

from __future__ import annotations

import base64
import re
import select
import socket
import ssl
import time
from dataclasses import dataclass, field

from lxml import etree

from agent.xmpp.reader import NEED_DATA, StreamFault, StreamReader
from tools.fuzz.mutate import STARTTLS, STREAM_HEADER, Case

SASL_PLAIN = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
INTERNAL_ERROR = b"Internal error in ldmx"
_STREAM_ERROR = re.compile(rb"<stream:error><([A-Za-z-]+)")
_DOC = re.compile(rb"</(LDM_interface|LDM_event)>")
BAD_OUTCOMES = ("hang", "internal-error", "bad-output", "aborted")


class WireClosed(Exception):
    """The agent ended the connection; ``outcome`` says how."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class Wire:
    """A raw client connection: bytes out, a buffer in, and how the connection ended."""

    def __init__(self, address: "tuple[str, int] | str") -> None:
        """``address``: (host, port) for TCP, or the path of the agent's Unix socket."""
        self.sock: socket.socket | ssl.SSLSocket
        if isinstance(address, tuple):
            self.sock = socket.create_connection(address, timeout=10)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(address))
        self.buffer = b""
        self.eof = False  # the agent closed (seen while writing)
        self.reset = False
        self.opened = time.monotonic()

    def send(self, data: bytes, bound: float = 10.0) -> bool:
        """Write, reading what the agent sends meanwhile; False when the agent stopped reading
        (no progress within ``bound``), ended the stream, or closed the connection.

        Reading while writing matters where the socket buffers are small (the Unix socket):
        a flood the agent stops reading after its stream error would otherwise block the
        writer until ``bound`` although the stream error and the close already arrived."""
        view = memoryview(data)
        previous = self.sock.gettimeout()
        try:
            deadline = time.monotonic() + bound
            while view:
                if self.eof or b"</stream:stream>" in self.buffer:
                    return False
                pending = getattr(self.sock, "pending", lambda: 0)()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                readable, writable, _ = ([self.sock], [], []) if pending else select.select(
                    [self.sock], [self.sock], [], remaining)
                if readable:
                    self.sock.settimeout(0.05)
                    try:
                        chunk = self.sock.recv(65536)
                        if chunk:
                            self.buffer += chunk
                        else:
                            self.eof = True
                    except (socket.timeout, TimeoutError, ssl.SSLWantReadError):
                        pass
                    except (OSError, ssl.SSLError):
                        self.eof = self.reset = True
                    continue
                if writable:
                    self.sock.settimeout(0.5)
                    try:
                        sent = self.sock.send(view[:65536])
                    except (socket.timeout, TimeoutError, ssl.SSLWantWriteError):
                        continue
                    view = view[sent:]
                    deadline = time.monotonic() + bound
            return True
        except (OSError, ssl.SSLError):
            return False
        finally:
            try:
                self.sock.settimeout(previous)
            except OSError:
                pass

    def fill(self, deadline: float) -> bool:
        """Read once before ``deadline``; False on timeout. Raise :class:`WireClosed` at the end."""
        if self.eof:
            raise WireClosed(self.end_outcome(reset=self.reset))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except ssl.SSLError as exc:
            if "timed out" in str(exc):
                return False
            raise WireClosed(self.end_outcome(reset=True)) from None
        except OSError:
            raise WireClosed(self.end_outcome(reset=True)) from None
        if not chunk:
            raise WireClosed(self.end_outcome())
        self.buffer += chunk
        return True

    def end_outcome(self, reset: bool = False) -> str:
        found = _STREAM_ERROR.search(self.buffer)
        if found:
            return "stream-error:" + found.group(1).decode()
        if b"</stream:stream>" in self.buffer:
            return "closed"
        return "reset" if reset else "aborted"

    def read_through(self, marker: bytes, deadline: float) -> bytes:
        while marker not in self.buffer:
            if not self.fill(deadline):
                raise WireClosed("hang")
        end = self.buffer.index(marker) + len(marker)
        out, self.buffer = self.buffer[:end], self.buffer[end:]
        return out

    def starttls(self, deadline: float) -> None:
        self.send(STREAM_HEADER)
        self.read_through(b"</stream:features>", deadline)
        self.send(STARTTLS)
        self.read_through(b"/>", deadline)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock.settimeout(max(0.1, deadline - time.monotonic()))
        self.sock = ctx.wrap_socket(self.sock)

    def login(self, user: str | None, password: str, deadline: float) -> None:
        """STARTTLS and the restart; then SASL PLAIN, unless ``user`` is None (a local peer)."""
        self.starttls(deadline)
        self.send(STREAM_HEADER)
        self.read_through(b"</stream:features>", deadline)
        if user is None:
            return
        self.send(SASL_PLAIN % base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()))
        answer = self.read_through(b"/>", deadline)
        if b"<success" not in answer:
            raise RuntimeError(f"login of {user} failed: {answer!r}")
        self.send(STREAM_HEADER)
        self.read_through(b"</stream:features>", deadline)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def sentinel(seq: int) -> bytes:
    return (b'<LDM_interface version="s%d"><cmd><action>list-domain</action>'
            b'<data version="3.0"/></cmd></LDM_interface>' % seq)


def reader_expects_more(data: bytes, max_element: int = 1 << 20) -> bool:
    """True when the agent's own stream reader, after a stream header and ``data``, is still
    waiting for bytes (neither a complete element nor a fault at the end). Used only to tell
    legitimate silence from a hang."""
    reader = StreamReader(max_element=max_element, stanza_names=frozenset({"iq"}))
    reader.feed(STREAM_HEADER)
    reader.next_event()
    reader.feed(data)
    try:
        while True:
            event = reader.next_event()
            if event is NEED_DATA:
                return True
            if type(event).__name__ == "StreamEnd":
                return False
    except StreamFault:
        return False


@dataclass
class Tally:
    """Counts of outcomes by case kind, and the first few bad cases kept for replay."""

    outcomes: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    bad: list[tuple[str, str, bytes]] = field(default_factory=list)
    documents: int = 0

    def add(self, case: Case, outcome: str) -> None:
        self.documents += 1
        key = outcome.split(":")[0] if outcome.startswith("stream-error") else outcome
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        kind = self.by_kind.setdefault(case.kind, {})
        kind[outcome] = kind.get(outcome, 0) + 1
        if outcome in BAD_OUTCOMES and len(self.bad) < 50:
            self.bad.append((f"{case.kind} ({len(case.data)} bytes)", outcome, case.data[:4096]))

    @property
    def bad_count(self) -> int:
        return sum(self.outcomes.get(o, 0) for o in BAD_OUTCOMES)

    def as_dict(self) -> dict:
        return {"documents": self.documents, "outcomes": self.outcomes, "by_kind": self.by_kind,
                "bad": [(k, o, d.decode("latin-1")) for k, o, d in self.bad]}

    def merge(self, other: dict) -> None:
        """Add the figures of another tally (from :meth:`as_dict`)."""
        self.documents += other["documents"]
        for key, n in other["outcomes"].items():
            self.outcomes[key] = self.outcomes.get(key, 0) + n
        for kind, outcomes in other["by_kind"].items():
            mine = self.by_kind.setdefault(kind, {})
            for key, n in outcomes.items():
                mine[key] = mine.get(key, 0) + n
        self.bad.extend((k, o, d.encode("latin-1")) for k, o, d in other["bad"])


class LiveFuzzer:
    """Runs cases against one agent: ``ready`` cases on a reused authenticated session,
    negotiation cases on fresh connections (parked while the agent may still be waiting)."""

    def __init__(self, address: tuple[str, int], user: str, password: str, *,
                 bound: float = 10.0, negotiation_timeout: float = 5.0,
                 sasl_share: float = 1.0, rng=None) -> None:
        self.address = address
        self.user = user
        self.password = password
        self.sasl_share = sasl_share  # share of sessions logged in with SASL; others: local uid
        self.rng = rng
        self.bound = bound
        self.negotiation_timeout = negotiation_timeout
        self.session: Wire | None = None
        self.seq = 0
        self.parked: list[tuple[Case, Wire]] = []
        self.tally = Tally()
        self.logins = 0
        self.local_logins = 0
        self.hang_details: list[dict] = []  # what a hung session had received, for diagnosis

    def run(self, case: Case) -> None:
        if case.phase == "ready":
            self.tally.add(case, self._ready(case))
        else:
            self._negotiation(case)

    def finish(self) -> None:
        self._sweep(everything=True)
        if self.session:
            self.session.close()
            self.session = None

    # -- authenticated sessions --------------------------------------------------------------
    def _ready(self, case: Case) -> str:
        if self.session is None:
            self.session = Wire(self.address)
            sasl = self.rng is None or self.rng.random() < self.sasl_share
            self.session.login(self.user if sasl else None, self.password, time.monotonic() + self.bound)
            if sasl:
                self.logins += 1
            else:
                self.local_logins += 1
        wire = self.session
        self.seq += 1
        mark = b'version="s%d"' % self.seq
        sent = all(wire.send(chunk) for chunk in case.chunks) and wire.send(sentinel(self.seq))
        incomplete = reader_expects_more(case.data + sentinel(self.seq))
        deadline = time.monotonic() + (0.1 if incomplete else self.bound)
        try:
            while True:
                found = _DOC.search(wire.buffer)
                if found is None:
                    if not wire.fill(deadline):
                        outcome = "waiting" if incomplete else "hang"
                        if outcome == "hang" and len(self.hang_details) < 20:
                            self.hang_details.append({
                                "kind": case.kind, "bytes": len(case.data), "sent": sent,
                                "session_age_s": round(time.monotonic() - wire.opened, 1),
                                "received_tail": wire.buffer[-300:].decode("latin-1")})
                        break
                    continue
                start = wire.buffer.rfind(b"<" + found.group(1), 0, found.start())
                doc, wire.buffer = wire.buffer[start:found.end()], wire.buffer[found.end():]
                if INTERNAL_ERROR in doc:
                    outcome = "internal-error"
                    break
                try:
                    etree.fromstring(doc)
                except etree.XMLSyntaxError:
                    outcome = "bad-output"
                    break
                if found.group(1) == b"LDM_interface" and mark in doc[:200]:
                    return "answered"
        except WireClosed as closed:
            outcome = closed.outcome
            if not sent and outcome in ("aborted", "reset"):
                outcome = "reset"
        wire.close()
        self.session = None
        return outcome

    # -- negotiation -------------------------------------------------------------------------
    def _negotiation(self, case: Case) -> None:
        wire = Wire(self.address)
        deadline = time.monotonic() + self.bound
        try:
            if case.phase in ("plain",):
                wire.send(STREAM_HEADER)
                wire.read_through(b"</stream:features>", deadline)
            elif case.phase in ("tls-header", "tls"):
                wire.starttls(deadline)
                if case.phase == "tls":
                    wire.send(STREAM_HEADER)
                    wire.read_through(b"</stream:features>", deadline)
            for chunk in case.chunks:
                wire.send(chunk)
            wire.fill(time.monotonic() + 0.2)
            while wire.fill(time.monotonic() + 0.05):
                pass
        except WireClosed as closed:
            wire.close()
            self.tally.add(case, _expected_abort(case, closed.outcome))
            return
        self.parked.append((case, wire))
        if len(self.parked) >= 64:
            self._sweep(everything=False)

    def _sweep(self, everything: bool) -> None:
        """Every parked connection must end before the negotiation timeout plus a margin."""
        keep = [] if everything else self.parked[32:]
        for case, wire in self.parked[: len(self.parked) - len(keep)]:
            # a deadline already passed still reads what the agent sent meanwhile
            deadline = max(wire.opened + self.negotiation_timeout + 5.0, time.monotonic() + 0.2)
            try:
                while wire.fill(deadline):
                    pass
                outcome = "hang"
            except WireClosed as closed:
                outcome = _expected_abort(case, closed.outcome)
            wire.close()
            self.tally.add(case, outcome)
        self.parked = keep


def negotiation_campaign(address: list, count: int, seed: int, negotiation_timeout: float,
                         max_seconds: float | None = None) -> dict:
    """``count`` seeded negotiation cases on fresh connections (run it as a non-root uid, so
    that the agent treats the peer as remote), or fewer when ``max_seconds`` runs out; the
    tally as a dict."""
    import random

    from tools.fuzz.mutate import generate

    rng = random.Random(seed)
    fuzzer = LiveFuzzer(tuple(address), "", "", negotiation_timeout=negotiation_timeout)
    stop_at = None if max_seconds is None else time.monotonic() + max_seconds
    for _ in range(count):
        if stop_at is not None and time.monotonic() >= stop_at:
            break
        fuzzer.run(generate(rng, "negotiation"))
    fuzzer.finish()
    return fuzzer.tally.as_dict()


def _expected_abort(case: Case, outcome: str) -> str:
    """An abort without reply is the required answer to plaintext pipelined after
    ``<starttls/>`` (§1.5, C16)."""
    data = case.data
    at = data.find(b"<starttls")
    if outcome == "aborted" and case.phase == "plain" and at >= 0 and data.find(b"<", at + 1) >= 0:
        return "aborted-pipelined"
    return outcome


def rss_kib(pid: int) -> int:
    """The resident set size of a process, from /proc/PID/status (KiB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
