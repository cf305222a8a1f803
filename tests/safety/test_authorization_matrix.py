"""The authorization matrix: every action of the table × every kind of peer × both transports.

Identities (spec ldm-xml §1.8, §1.10, §1.11): ``anonymous`` (a remote peer that never does
SASL), ``wrong-password`` (a remote peer whose SASL fails), ``review`` and ``management`` (SASL
users), ``local-root`` (uid 0, no SASL) and ``local-non-root`` (uid ``nobody``, no SASL: under
the default unknown-local-uid policy ``refuse`` it must be treated as remote, C43). Every
identity but ``local-root`` runs in a forked child as ``nobody``, so its sockets are not owned
by uid 0; TCP is loopback, which is remote for ``nobody`` under ``refuse``.

Each cell asserts: anonymous, wrong password and local non-root — no command ever runs (a
``not-authorized`` stream error, no response, state unchanged, C40/C43); review — read actions
pass the authorization check, write actions get exactly ``Not authorized to perform ACTION
(requires the write authorization)`` without side effects (C48); management and local root —
never the authorization failure (C41, C49).

``migrate-domain`` is not sent by the write identities (management, local root): it would
execute and wait on a network peer. Requests from write identities really execute, so the
module runs its own throwaway agent and sends the samples in the order of ``samples/requests/ORDER``.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import ssl
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from agent.actions.table import ACTIONS
from agent.auth.identity import READ
from agent.testing import AgentProcess
from agent.xmlapi import messages
from tools.fuzz.asuser import nobody, run_as
from tools.fuzz.live import SASL_PLAIN, Wire, WireClosed
from tools.fuzz.mutate import STREAM_HEADER

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "requests"
ADMIN, ADMIN_PW = "admin", "adm1n-pw"
VIEWER, VIEWER_PW = "viewer", "v1ewer-pw"
TRANSPORTS = ("tcp", "unix")
BOUND = 20.0


def ordered_actions() -> list[str]:
    """The 63 actions, in the order of samples/requests/ORDER (which suits a fresh agent)."""
    order = []
    for line in (SAMPLES / "ORDER").read_text().splitlines():
        name = line.split("#")[0].strip().removesuffix(".xml")
        if name in ACTIONS and name not in order:
            order.append(name)
    return order + [a for a in ACTIONS if a not in order]


ORDERED = ordered_actions()
DOCS = {a: (SAMPLES / f"{a}.xml").read_bytes().decode() for a in ORDERED}
WRITE_SKIPPED = ("migrate-domain",)


@pytest.fixture(scope="module")
def agent():
    """A throwaway agent whose Unix socket sits in a directory ``nobody`` can enter."""
    state = Path(tempfile.mkdtemp(prefix="ldmx-authz-"))
    sockdir = Path(tempfile.mkdtemp(prefix="ldmx-authz-sock-"))
    os.chmod(sockdir, 0o755)
    proc = AgentProcess(state / "state", host_name="authz.example.com",
                        extra_args=("--socket", str(sockdir / "ldmx.sock")))
    proc.start()
    try:
        proc.add_user(ADMIN, "management", ADMIN_PW)
        proc.add_user(VIEWER, "review", VIEWER_PW)
        yield proc
    finally:
        code = proc.stop()
        proc.destroy_guests()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)
        assert code == 0, "agent did not exit cleanly:\n" + proc.log()


# -- the client side (runs in the child as nobody, or in this process as root) ------------------

def connect(endpoint: dict) -> Wire:
    return Wire(endpoint["unix"]) if "unix" in endpoint else Wire(tuple(endpoint["tcp"]))


def post_tls_features(wire: Wire, deadline: float) -> bytes:
    wire.starttls(deadline)
    wire.send(STREAM_HEADER)
    return wire.read_through(b"</stream:features>", deadline)


def sasl(wire: Wire, user: str, password: str, deadline: float) -> tuple[bytes, float]:
    """One SASL PLAIN attempt: the agent's answer and how long it took."""
    started = time.monotonic()
    wire.send(SASL_PLAIN % base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()))
    while b"<success" not in wire.buffer and b"</failure>" not in wire.buffer:
        if not wire.fill(deadline):
            raise WireClosed("hang")
    answer, wire.buffer = wire.buffer, b""
    return answer, time.monotonic() - started


def outcome_of_one_request(wire: Wire, doc: str, deadline: float) -> str:
    """Send one request; "response:<bytes>" or the way the session ended."""
    wire.send(doc.encode())
    try:
        while b"</LDM_interface>" not in wire.buffer:
            if not wire.fill(deadline):
                return "hang"
    except WireClosed as closed:
        return closed.outcome
    end = wire.buffer.index(b"</LDM_interface>") + len(b"</LDM_interface>")
    start = wire.buffer.rfind(b"<LDM_interface", 0, end)  # events (LDM_event) may come first
    return "response:" + wire.buffer[start:end].decode("utf-8", "replace")


def unauthenticated_cell(endpoint: dict, action: str, password: str | None) -> dict:
    """A fresh session that does no SASL (password None) or fails it, then sends the action."""
    deadline = time.monotonic() + BOUND
    wire = connect(endpoint)
    try:
        features = post_tls_features(wire, deadline)
        result = {"bind_offered": b"<bind" in features}
        if password is not None:
            answer, took = sasl(wire, ADMIN, password, deadline)
            result.update(sasl=answer.decode(), sasl_seconds=took)
        result["outcome"] = outcome_of_one_request(wire, DOCS[action], deadline)
        return result
    except WireClosed as closed:
        return {"outcome": closed.outcome}
    finally:
        wire.close()


def unauthenticated_row(endpoint: dict, password: str | None) -> dict:
    with ThreadPoolExecutor(max_workers=16) as pool:
        cells = pool.map(lambda a: (a, unauthenticated_cell(endpoint, a, password)), ORDERED)
        return dict(cells)


def session_row(endpoint: dict, user: str | None, password: str, actions: list[str]) -> dict:
    """One session (SASL as ``user``, or none), every action on it, in order."""
    deadline = time.monotonic() + BOUND * 3
    wire = connect(endpoint)
    try:
        post_tls_features(wire, deadline)
        if user is not None:
            answer, _ = sasl(wire, user, password, deadline)
            assert b"<success" in answer, answer
            wire.send(STREAM_HEADER)
            wire.read_through(b"</stream:features>", deadline)
        row = {}
        for action in actions:
            row[action] = outcome_of_one_request(wire, DOCS[action], time.monotonic() + BOUND)
            wire.buffer = b""
        return row
    finally:
        wire.close()


def as_nobody(func, *args):
    return run_as(*nobody(), func, *args)


def endpoint(agent, transport: str) -> dict:
    return {"tcp": list(agent.listen)} if transport == "tcp" else {"unix": str(agent.socket_path)}


VOLATILE = re.compile(r'(<gprop:GenericProperty key="(?:uptime|util)">)[^<]*')


def snapshot(agent) -> list[str]:
    """list-domain (without the clock-driven uptime and util) and list-constraints as local
    root: the state that no refused request may change."""
    row = session_row(endpoint(agent, "unix"), None, "", ["list-domain", "list-constraints"])
    return [VOLATILE.sub(r"\1", row["list-domain"]), row["list-constraints"]]


def resp_msgs(outcome: str) -> list[str]:
    assert outcome.startswith("response:"), outcome
    root = etree.fromstring(outcome.removeprefix("response:").encode())
    return [m.text or "" for m in root.iter("resp_msg")]


def auth_failure(action: str) -> str:
    return messages.not_authorized(action, "write")


# -- the matrix ------------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("identity", ["anonymous", "local-non-root", "wrong-password"])
def test_unauthenticated_peers_never_run_a_command(agent, identity, transport):
    """C40, C43, C28: no SASL, or failed SASL, as a non-root uid: every action of the table gets
    the not-authorized stream error, no response, and the state does not change."""
    before = snapshot(agent)
    password = "wrong-password" if identity == "wrong-password" else None
    row = as_nobody(unauthenticated_row, endpoint(agent, transport), password)
    assert sorted(row) == sorted(ACTIONS)
    for action, cell in row.items():
        assert cell["outcome"] == "stream-error:not-authorized", (action, cell)
        assert cell["bind_offered"] is False, (action, "treated as a local peer")  # C43
        if password is not None:
            assert "<not-authorized/>" in cell["sasl"], (action, cell)
            assert cell["sasl_seconds"] >= 1.0, (action, cell)  # §1.8 failure delay
    assert snapshot(agent) == before


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_review_user_reads_and_is_refused_every_write_without_side_effects(agent, transport):
    """C48 over TLS + SASL: read actions pass the authorization check; every write action gets
    exactly the fixed command-level text, and nothing changes."""
    before = snapshot(agent)
    row = as_nobody(session_row, endpoint(agent, transport), VIEWER, VIEWER_PW, ORDERED)
    assert sorted(row) == sorted(ACTIONS)
    for action in ORDERED:
        msgs = resp_msgs(row[action])
        if ACTIONS[action].auth == READ:
            assert auth_failure(action) not in msgs, (action, msgs)
            assert not any(m.startswith("Not authorized") for m in msgs), (action, msgs)
        else:
            assert msgs == [auth_failure(action)], (action, msgs)
    assert snapshot(agent) == before


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("identity", ["management", "local-root"])
def test_write_identities_are_never_refused_authorization(agent, identity, transport):
    """C41, C42, C49: a management user (SASL, as nobody) and local root (no SASL, uid 0 on the
    socket or on loopback TCP) are never told they lack an authorization. migrate-domain is not
    sent (it would execute and wait on a network peer)."""
    actions = [a for a in ORDERED if a not in WRITE_SKIPPED]
    if identity == "management":
        row = as_nobody(session_row, endpoint(agent, transport), ADMIN, ADMIN_PW, actions)
    else:
        row = session_row(endpoint(agent, transport), None, "", actions)
    assert sorted(row) == sorted(actions)
    for action in actions:
        msgs = resp_msgs(row[action])
        assert not any(m.startswith("Not authorized") for m in msgs), (identity, action, msgs)


# -- SASL and TLS hardening ------------------------------------------------------------------------

def brute_force(endpoint: dict) -> list:
    deadline = time.monotonic() + BOUND
    wire = connect(endpoint)
    attempts = []
    try:
        post_tls_features(wire, deadline)
        for _ in range(3):
            answer, took = sasl(wire, ADMIN, "guess", deadline)
            attempts.append([answer.decode(), took])
    except WireClosed as closed:
        attempts.append([closed.outcome, 0.0])
    finally:
        wire.close()
    return attempts


def third_failure(endpoint: dict) -> list:
    """Two failed attempts, then the third: the stream must end with not-authorized."""
    deadline = time.monotonic() + BOUND
    wire = connect(endpoint)
    try:
        post_tls_features(wire, deadline)
        took = [sasl(wire, ADMIN, "guess", deadline)[1] for _ in range(2)]
        started = time.monotonic()
        wire.send(SASL_PLAIN % base64.b64encode(b"\0admin\0guess"))
        try:
            while wire.fill(deadline):
                pass
            end = "open"
        except WireClosed as closed:
            end = closed.outcome
        return [took, time.monotonic() - started, end, wire.buffer.decode()]
    finally:
        wire.close()


def test_sasl_failures_are_slowed_and_the_third_one_ends_the_stream(agent):
    """§1.8, C28, C31: each failure takes at least one second; the third failed attempt on a
    stream is the stream error not-authorized and the connection closes."""
    took, third_took, end, tail = as_nobody(third_failure, endpoint(agent, "tcp"))
    assert all(t >= 1.0 for t in took), took
    assert third_took >= 1.0, third_took
    assert end == "stream-error:not-authorized", (end, tail)
    assert "<failure" not in tail  # the third failure is the stream error, not a SASL failure


def tls_handshake(endpoint: dict, version: ssl.TLSVersion) -> str:
    wire = connect(endpoint)
    try:
        wire.send(STREAM_HEADER)
        deadline = time.monotonic() + BOUND
        wire.read_through(b"</stream:features>", deadline)
        wire.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        wire.read_through(b"/>", deadline)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = version
        try:
            tls = ctx.wrap_socket(wire.sock)
            return "handshake:" + str(tls.version())
        except (ssl.SSLError, OSError) as exc:
            return "refused:" + type(exc).__name__
    finally:
        wire.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls_1_0_and_1_1_are_refused_and_1_2_is_accepted(agent, transport):
    """§1.6, C20: the same client settings complete a TLS 1.2 handshake but not 1.0 or 1.1."""
    where = endpoint(agent, transport)
    assert tls_handshake(where, ssl.TLSVersion.TLSv1_2) == "handshake:TLSv1.2"
    assert tls_handshake(where, ssl.TLSVersion.TLSv1).startswith("refused:")
    assert tls_handshake(where, ssl.TLSVersion.TLSv1_1).startswith("refused:")


def plain_before_tls(endpoint: dict) -> str:
    wire = connect(endpoint)
    deadline = time.monotonic() + BOUND
    try:
        wire.send(STREAM_HEADER)
        wire.read_through(b"</stream:features>", deadline)
        wire.send(SASL_PLAIN % base64.b64encode(b"\0" + ADMIN.encode() + b"\0" + ADMIN_PW.encode()))
        try:
            while wire.fill(deadline):
                pass
            return "open:" + wire.buffer.decode()
        except WireClosed as closed:
            return closed.outcome + ":" + wire.buffer.decode()
    finally:
        wire.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_plain_with_valid_credentials_before_tls_is_refused(agent, transport):
    """§1.5, §1.8, C17, C33: SASL PLAIN in plaintext is a policy violation, never a success."""
    outcome = as_nobody(plain_before_tls, endpoint(agent, transport))
    assert outcome.startswith("stream-error:policy-violation:"), outcome
    assert "<success" not in outcome
