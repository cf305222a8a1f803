"""The authorization matrix, certificate rows (issue #8; migration.md §4.1, §4.3; M36, M37).

Next to ``test_authorization_matrix.py`` and built from its client helpers: a remote client
(a forked child running as ``nobody``, so loopback and the Unix socket count as remote) that
presents a TLS client certificate. Rows: a certificate of the agent's migration trust store,
an untrusted certificate, and no certificate. Only the trusted one is offered SASL EXTERNAL;
the others are refused EXTERNAL and, unauthenticated, never get a migration request run.
The trusted one is a migration peer: every public request is refused as not authorized,
while a ``mig-*`` request passes authorization.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import time
from pathlib import Path

import pytest

from agent.migration import control
from agent.testing import AgentProcess, run_admin
from agent.xmlapi import messages
from agent.xmpp.tls import ensure_tls_files
from tests.safety.test_authorization_matrix import (BOUND, DOCS, TRANSPORTS, as_nobody, connect,
                                                    endpoint, outcome_of_one_request, resp_msgs)
from tools.fuzz.live import WireClosed
from tools.fuzz.mutate import STREAM_HEADER

EXTERNAL = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>"
MIG_OUTCOME = control.encode_request("mig-outcome", "00000000-0000-0000-0000-000000000000",
                                     {"uuid": "11111111-1111-1111-1111-111111111111"}).decode()


@pytest.fixture(scope="module")
def world():
    """A throwaway agent that trusts ``trusted``'s certificate and not ``stranger``'s.

    Client certificates and keys sit in a directory ``nobody`` can read (test keys only)."""
    base = Path(tempfile.mkdtemp(prefix="ldmx-authz-cert-"))
    os.chmod(base, 0o755)
    sockdir = base / "sock"
    sockdir.mkdir(mode=0o755)
    clients = {}
    for name in ("trusted", "stranger"):
        cert, key = ensure_tls_files(base / name, f"{name}.example.com")
        os.chmod(base / name, 0o755)
        os.chmod(key, 0o644)
        clients[name] = (str(cert), str(key))
    state = base / "state"
    run_admin(state, "trust", "add", "trusted.example.com", clients["trusted"][0])
    proc = AgentProcess(state, host_name="authz-cert.example.com",
                        extra_args=("--socket", str(sockdir / "ldmx.sock"))).start()
    try:
        yield proc, clients
    finally:
        code = proc.stop()
        proc.destroy_guests()
        shutil.rmtree(base, ignore_errors=True)
        assert code == 0, "agent did not exit cleanly:\n" + proc.log()


def certificate_session(where: dict, client: tuple[str, str] | None,
                        action_docs: list[str]) -> dict:
    """STARTTLS with ``client`` (cert, key) or none, try EXTERNAL, then send each document."""
    deadline = time.monotonic() + BOUND
    wire = connect(where)
    result: dict = {}
    try:
        wire.send(STREAM_HEADER)
        wire.read_through(b"</stream:features>", deadline)
        wire.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        wire.read_through(b"/>", deadline)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if client is not None:
            context.load_cert_chain(*client)
        wire.sock = context.wrap_socket(wire.sock)
        wire.buffer = b""
        wire.send(STREAM_HEADER)
        features = wire.read_through(b"</stream:features>", deadline)
        result["external_offered"] = b"<mechanism>EXTERNAL</mechanism>" in features
        wire.buffer = b""
        wire.send(EXTERNAL)
        while b"<success" not in wire.buffer and b"</failure>" not in wire.buffer:
            if not wire.fill(deadline):
                raise WireClosed("hang")
        result["sasl"], wire.buffer = wire.buffer.decode(), b""
        if "<success" in result["sasl"]:
            wire.send(STREAM_HEADER)
            wire.read_through(b"</stream:features>", deadline)
            wire.buffer = b""
        result["outcomes"] = []
        for doc in action_docs:
            result["outcomes"].append(outcome_of_one_request(wire, doc, time.monotonic() + BOUND))
            wire.buffer = b""
        return result
    except WireClosed as closed:
        result["closed"] = closed.outcome
        return result
    finally:
        wire.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("who", ["stranger", "none"])
def test_untrusted_certificate_is_refused_for_migration(world, transport, who):
    """Issue #8, M36, §4.1: a client certificate outside the trust store (or none) is not
    offered EXTERNAL, its EXTERNAL attempt fails, and its mig-* request never runs."""
    agent, clients = world
    client = clients.get(who)
    row = as_nobody(certificate_session, endpoint(agent, transport), client, [MIG_OUTCOME])
    assert row["external_offered"] is False, row
    assert "<invalid-mechanism/>" in row["sasl"], row
    assert row["outcomes"] == ["stream-error:not-authorized"], row


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_trusted_certificate_is_a_migration_peer_only(world, transport):
    """M36, M37, §4.3: the trusted certificate gets EXTERNAL and the migration-peer role:
    public requests (read and write) are refused with the fixed text, a mig-* request is
    answered by the migration room."""
    agent, clients = world
    public = ["list-domain", "add-domain", "migrate-domain"]
    row = as_nobody(certificate_session, endpoint(agent, transport), clients["trusted"],
                    [DOCS[a] for a in public] + [MIG_OUTCOME])
    assert row["external_offered"] is True and "<success" in row["sasl"], row
    for action, outcome in zip(public, row["outcomes"]):
        needed = "read" if action.startswith("list-") else "write"
        assert resp_msgs(outcome) == [messages.not_authorized(action, needed)], (action, outcome)
    reply = control.decode_reply(row["outcomes"][-1].removeprefix("response:").encode())
    assert (reply.ok, reply.body.get("answer")) == (True, "unknown"), reply
