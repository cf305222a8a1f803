"""The front door on real loopback sockets, against independent clients (spec ldm-xml §1).

One agent subprocess (``tests.xmpp.serve``) serves the whole module; every socket is loopback
on a free port, every wait is bounded.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pytest

from tests.xmpp.fakes import BIND_EVENT, RESPONSE
from tests.xmpp.rawclient import (DOMAIN_EVENTS, MINIMAL_HEADER, REGISTRATION, STARTTLS, STATS,
                                  MinimalClient, RawClient, client_context, pause)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STD_HEADER = (b"<stream:stream to='ctl1.example.com' xmlns='jabber:client' "
              b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
AUTH_ADMIN = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFkbWluAHMzY3JldCE=</auth>"
STATS_REQUEST = b"<LDM_interface version='1.1'><cmd><action>stats</action></cmd></LDM_interface>"


@pytest.fixture(scope="module")
def agent():
    state = tempfile.mkdtemp(prefix="ldmx-xmpp-")
    proc = subprocess.Popen([sys.executable, "-m", "tests.xmpp.serve", state, "6"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(proc.stderr.read().decode())
        info = json.loads(line)
        info["proc"] = proc
        info["state"] = state
        yield info
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            _out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        shutil.rmtree(state, ignore_errors=True)
        # C69: abrupt disconnects and the faults above never produce tracebacks.
        assert b"Traceback" not in err, err.decode()


def local_tls_client(address, header=MINIMAL_HEADER, context=None) -> RawClient:
    client = RawClient(address)
    client.send(header)
    client.recv_until(b"</stream:features>")
    client.send(STARTTLS)
    assert client.recv_until(b"/>").endswith(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    client.starttls(context)
    client.send(header)
    client.recv_until(b"</stream:features>")
    return client


def stats(agent) -> tuple[int, ...]:
    client = local_tls_client(("127.0.0.1", agent["local"]))
    client.send(STATS_REQUEST)
    data = client.recv_until(b"</LDM_interface>")
    client.close()
    time.sleep(0.2)  # let the agent see this stats connection's close
    return tuple(int(x) for x in STATS.search(data).groups())


def settled_stats(agent, want_connections: int = 0) -> tuple[int, ...]:
    deadline = time.monotonic() + 5
    while True:
        result = stats(agent)
        # the stats connection itself is counted while it asks
        if result[0] <= want_connections + 1 or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


# -- TLS (§1.6) --------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls12_and_tls13_clients_complete(agent, version):
    """C20, C21: TLS 1.2-only and TLS 1.3 clients, no SNI, no certificate check."""
    context = client_context(minimum=version, maximum=version)
    client = local_tls_client(("127.0.0.1", agent["local"]), context=context)
    assert client.tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                    ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    client.close()


def test_tls11_client_refused(agent):
    """C20: a client limited to TLS 1.1 (and willing to use it) fails the handshake."""
    client = RawClient(("127.0.0.1", agent["local"]))
    client.send(MINIMAL_HEADER)
    client.recv_until(b"</stream:features>")
    client.send(STARTTLS)
    client.recv_until(b"/>")
    context = client_context(minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        client.starttls(context)
    client.close()


def openssl(agent, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/usr/bin/openssl", "s_client", "-starttls", "xmpp", "-xmpphost", "ctl1.example.com",
         "-connect", f"127.0.0.1:{agent['local']}", *args],
        input=stdin, capture_output=True, timeout=20)


def test_openssl_alpn_xmpp_client_selected(agent):
    """C22: ALPN xmpp-client is selected."""
    result = openssl(agent, "-alpn", "xmpp-client")
    assert b"ALPN protocol: xmpp-client" in result.stdout


def test_openssl_alpn_other_protocols_only_continues(agent):
    """C22: a client offering only h2 completes the handshake without ALPN (no alert)."""
    result = openssl(agent, "-alpn", "h2")
    assert b"No ALPN negotiated" in result.stdout
    assert b"alert" not in result.stderr.lower()


def test_openssl_tls11_refused_by_server(agent):
    """C20: s_client allowed to use TLS 1.1 gets a protocol-version refusal from the agent."""
    result = openssl(agent, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert result.returncode != 0
    assert b"alert protocol version" in result.stderr or b"unsupported protocol" in result.stderr


def test_openssl_raw_exchange(agent):
    """C5, C42: s_client drives STARTTLS, then a raw header and LDM document inside TLS."""
    proc = subprocess.Popen(
        ["/usr/bin/openssl", "s_client", "-starttls", "xmpp", "-xmpphost", "ctl1.example.com",
         "-connect", f"127.0.0.1:{agent['local']}", "-quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        proc.stdin.write(MINIMAL_HEADER + REGISTRATION)
        proc.stdin.flush()
        seen = b""
        deadline = time.monotonic() + 15
        while RESPONSE not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
        assert RESPONSE in seen
        assert b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>" in seen
    finally:
        proc.kill()
        proc.communicate(timeout=10)


# -- framing (§1.12) ---------------------------------------------------------------------------

def test_response_and_events_arrive_in_separate_records(agent):
    """C50, C51, C56: a response preceded by several events: one TLS record per document."""
    client = local_tls_client(("127.0.0.1", agent["local"]))
    client.send(REGISTRATION)
    assert client.read_record() == RESPONSE
    client.send(b"<LDM_interface version='1.1'><cmd><action>emit bind-domain web2 5</action>"
                b"</cmd></LDM_interface>")
    records = [client.read_record() for _ in range(6)]
    assert records == [BIND_EVENT] * 5 + [RESPONSE]
    client.close()


def _socket_buffer_bytes() -> int:
    """The most the kernel may buffer on one loopback connection (send plus receive side)."""
    most = 0
    for name in ("tcp_wmem", "tcp_rmem"):
        try:
            with open(f"/proc/sys/net/ipv4/{name}") as handle:
                most += int(handle.read().split()[2])
        except (OSError, ValueError, IndexError):
            most += 8 << 20
    return most


def test_answer_larger_than_socket_buffers_arrives_whole_before_the_next(agent):
    """C50, C55 (§1.12): an answer bigger than all the socket buffers cannot go out at once:
    what the kernel takes is sent directly, the rest from the transport's queue, and the next
    answer waits behind it, so both arrive whole and in order."""
    from tests.xmpp.serve import big

    size = 2 * _socket_buffer_bytes()
    client = local_tls_client(("127.0.0.1", agent["local"]))
    client.send(b"<LDM_interface version='1.1'><cmd><action>big %d</action></cmd></LDM_interface>"
                % size + REGISTRATION)
    pause(0.5)  # not reading: the agent fills every buffer and queues the rest
    chunks, received = [client.buffer], len(client.buffer)
    while received < size + len(RESPONSE):
        chunk = client.read_record()
        assert chunk, "closed early"
        chunks.append(chunk)
        received += len(chunk)
    data = b"".join(chunks)
    assert data[:size] == big(size)
    assert data[size:] == RESPONSE
    client.close()


def test_remote_sasl_exchange_on_loopback(agent):
    """C24, C26, C34: a remote peer on the real socket: SASL, restart, request."""
    client = RawClient(("127.0.0.1", agent["remote"]))
    client.send(STD_HEADER)
    client.recv_until(b"</stream:features>")
    client.send(STARTTLS)
    client.recv_until(b"/>")
    client.starttls()
    client.send(STD_HEADER)
    assert b"<bind" not in client.recv_until(b"</stream:features>")
    client.send(AUTH_ADMIN)
    assert client.recv_until(b"/>").endswith(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    client.send(STD_HEADER)
    client.recv_until(b"</stream:features>")
    client.send(REGISTRATION)
    assert client.recv_until(b"</LDM_interface>") == RESPONSE
    client.close()


def test_unix_socket_same_negotiation_local(agent):
    """C2, C41: the Unix socket goes through header and STARTTLS; its peer (our uid) is local."""
    client = RawClient(agent["unix"])
    client.send(MINIMAL_HEADER)
    assert b"<starttls " in client.recv_until(b"</stream:features>")
    client.send(STARTTLS)
    client.recv_until(b"/>")
    client.starttls()
    client.send(MINIMAL_HEADER)
    assert b"<bind " in client.recv_until(b"</stream:features>")
    client.send(REGISTRATION)
    assert client.recv_until(b"</LDM_interface>") == RESPONSE
    client.close()


def test_plaintext_pipelined_after_starttls_aborts_on_wire(agent):
    """C16: starttls plus an LDM document in one segment: connection dropped, no proceed."""
    client = RawClient(("127.0.0.1", agent["local"]))
    client.send(MINIMAL_HEADER)
    client.recv_until(b"</stream:features>")
    client.send(STARTTLS + REGISTRATION)
    try:
        rest = client.recv_all()
    except ConnectionResetError:
        rest = b""
    assert b"proceed" not in rest and b"LDM_interface" not in rest
    client.close()


# -- security: hostile input while another session keeps working (§1.13) ------------------------

def hostile_then_check(agent, payload: bytes, expect: bytes, chunk: int = 65536) -> None:
    watcher = local_tls_client(("127.0.0.1", agent["local"]))
    attacker = local_tls_client(("127.0.0.1", agent["local"]))
    got = b""
    try:
        for start in range(0, len(payload), chunk):
            attacker.send(payload[start:start + chunk])
        while expect not in got:
            record = attacker.read_record()
            if not record:
                break
            got += record
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    assert expect in got
    attacker.close()
    watcher.send(REGISTRATION)
    assert watcher.read_record() == RESPONSE
    watcher.close()


def test_billion_laughs_refused_while_others_work(agent):
    """C63: a DOCTYPE with entity expansion is restricted-xml; another session is unaffected."""
    bomb = (b"<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>"
            b"<LDM_interface>&lol2;</LDM_interface>")
    hostile_then_check(agent, bomb, b"<restricted-xml ")


def test_100mb_document_cut_off(agent):
    """C65: a 100 MB document is cut at the 1 MiB limit with policy-violation."""
    payload = b"<LDM_interface><cmd>" + b"x" * (100 * 1024 * 1024)
    # the agent closes after ~1 MiB; stop sending once it has answered
    watcher = local_tls_client(("127.0.0.1", agent["local"]))
    attacker = local_tls_client(("127.0.0.1", agent["local"]))
    sent = 0
    try:
        attacker.send(payload[:20])
        block = b"x" * 65536
        while sent < 100 * 1024 * 1024:
            attacker.send(block)
            sent += len(block)
    except (ConnectionError, OSError, ssl.SSLError):
        pass
    assert sent < 10 * 1024 * 1024, "the agent kept reading far beyond its limit"
    watcher.send(REGISTRATION)
    assert watcher.read_record() == RESPONSE
    attacker.close()
    watcher.close()


def test_deep_nesting_cut_off(agent):
    """C65: 10,000-deep nesting gets policy-violation."""
    hostile_then_check(agent, b"<LDM_interface>" + b"<a>" * 10000, b"<policy-violation ")


def test_stalled_half_sent_document_cut_by_negotiation_timeout(agent):
    """§1.13: a remote peer that stalls mid-element before auth is cut by the timeout (6 s here)."""
    watcher = local_tls_client(("127.0.0.1", agent["local"]))
    stalled = RawClient(("127.0.0.1", agent["remote"]))
    stalled.send(STD_HEADER)
    stalled.recv_until(b"</stream:features>")
    stalled.send(STARTTLS)
    stalled.recv_until(b"/>")
    stalled.starttls()
    stalled.send(STD_HEADER)
    stalled.recv_until(b"</stream:features>")
    stalled.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFk")
    watcher.send(REGISTRATION)
    assert watcher.read_record() == RESPONSE
    assert stalled.read_record().startswith(b"<stream:error><connection-timeout ")
    stalled.close()
    watcher.close()


def test_wrong_password_delayed_three_end_stream(agent):
    """C28, C31: each failure takes at least a second; the third ends the stream."""
    client = RawClient(("127.0.0.1", agent["remote"]))
    client.send(STD_HEADER)
    client.recv_until(b"</stream:features>")
    client.send(STARTTLS)
    client.recv_until(b"/>")
    client.starttls()
    client.send(STD_HEADER)
    client.recv_until(b"</stream:features>")
    wrong = b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFkbWluAHdyb25n</auth>"
    for _ in range(2):
        started = time.monotonic()
        client.send(wrong)
        assert client.recv_until(b"</failure>").endswith(b"<not-authorized/></failure>")
        assert time.monotonic() - started >= 1.0
    client.send(wrong)
    assert client.recv_until(b"</stream:stream>").startswith(b"<stream:error><not-authorized ")
    client.close()


def test_ldm_before_auth_refused_on_remote_port(agent):
    """C40: nothing runs before authentication on the real socket."""
    client = RawClient(("127.0.0.1", agent["remote"]))
    client.send(STD_HEADER)
    client.recv_until(b"</stream:features>")
    client.send(REGISTRATION)
    assert client.recv_until(b"</stream:stream>").endswith(
        b"<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"</stream:error></stream:stream>")
    client.close()


# -- the minimal-client replica (§1.15) ----------------------------------------------------------

def test_replica_registers_and_receives_every_domain_event(agent):
    """C73, C74, C75: handshake without SASL, registration status, 8 events one per read."""
    replica = MinimalClient(agent["local"])
    conn = replica.connect()
    pre_tls = [ends for ends in replica.ends]
    replica.register(conn)
    assert replica.status == "success"
    assert ["stream:features"] in pre_tls or any("stream:features" in e for e in pre_tls)
    trigger = local_tls_client(("127.0.0.1", agent["local"]))
    for action in DOMAIN_EVENTS:
        name = f"dom-{action}"
        trigger.send(f"<LDM_interface version='1.1'><cmd><action>emit {action} {name} 1"
                     "</action></cmd></LDM_interface>".encode())
        trigger.recv_until(b"</LDM_interface>")
        assert replica.read_event(conn) == (action, name)
    trigger.close()
    conn.close()  # abrupt: no closing tag, no close_notify
    joined = b"".join(replica.seen)
    assert b"failure" not in joined


def test_replica_sees_literal_names_before_and_after_tls(agent):
    """C74, R4: starttls and proceed unprefixed, stream:features prefixed, in the replica's reads."""
    replica = MinimalClient(agent["local"])
    sock = socket.create_connection(("127.0.0.1", agent["local"]), timeout=10)
    sock.sendall(MINIMAL_HEADER)
    replica._wait_for(sock, "stream:features")
    names = [n for ends in replica.ends for n in ends]
    assert "starttls" in names and "stream:features" in names
    sock.sendall(STARTTLS)
    replica._wait_for(sock, "proceed")
    sock.close()


def test_replica_cycles_leave_nothing_behind(agent):
    """C72, C76, R1, R14, R15: probes and 100 register/abrupt-close cycles leak nothing.

    The real client pauses 3 s between cycles; the replica pauses 10 ms to keep the test short.
    """
    before = settled_stats(agent)
    for _ in range(5):  # R1 probes
        socket.create_connection(("127.0.0.1", agent["local"]), timeout=5).close()
    for _ in range(100):
        replica = MinimalClient(agent["local"])
        conn = replica.connect()
        replica.register(conn)
        assert replica.status == "success"
        conn.close()
        pause(0.01)
    after = settled_stats(agent)
    assert after[0] == before[0]  # connections
    assert after[1] == before[1]  # open LDM sessions
    assert after[2] == before[2]  # registrations
    assert after[3] <= before[3] + 2  # descriptors (a little slack for the log file etc.)


# -- slixmpp (an independent XMPP implementation) ------------------------------------------------

def test_slixmpp_starttls_sasl_bind_and_raw_ldm(agent):
    """C26, C34, C35: slixmpp negotiates STARTTLS, SASL PLAIN and bind, then a raw LDM exchange."""
    import asyncio

    import slixmpp
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    result: dict = {}

    async def run() -> None:
        client = slixmpp.ClientXMPP("admin@ctl1.example.com/console", "s3cret!")
        client.ssl_context.check_hostname = False
        client.ssl_context.verify_mode = ssl.CERT_NONE
        got = asyncio.get_running_loop().create_future()

        def on_ldm(stanza) -> None:
            if not got.done():
                got.set_result(str(stanza))

        client.register_handler(Callback("ldm", MatchXPath("{jabber:client}LDM_interface"), on_ldm))

        async def on_start(_event) -> None:
            result["jid"] = str(client.boundjid)
            client.send_raw(REGISTRATION.decode())

        client.add_event_handler("session_start", on_start)
        client.connect("127.0.0.1", agent["remote"])
        try:
            result["ldm"] = await asyncio.wait_for(got, 20)
        finally:
            client.disconnect()
            await asyncio.sleep(0.2)

    asyncio.run(run())
    assert result["jid"] == "admin@ctl1.example.com/console"
    assert "reg-domain-events" in result["ldm"] and "success" in result["ldm"]


def test_shutdown_sends_system_shutdown(agent):
    """C70: stopping the agent sends system-shutdown to an open session. Runs last."""
    client = local_tls_client(("127.0.0.1", agent["local"]))
    agent["proc"].terminate()
    data = client.read_record()
    assert data == (b"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                    b"</stream:error></stream:stream>")
    client.close()
    agent["proc"].wait(timeout=10)
