"""Both migration channels of a real agent are TLS 1.2 or later, never clear text (M41, §4.5).

The control channel is the agent's XML port (STARTTLS, then SASL); the data channel is its
migration data port (TLS from the first byte, then the token). For each: a client limited to
TLS 1.1 is refused, a default client gets TLS 1.2 or later, and a client that offers no TLS
is refused without anything being run or answered.
"""

from __future__ import annotations

import base64
import socket
import ssl

import pytest

from agent.testing import AgentProcess

HEADER = (b"<?xml version='1.0'?><stream:stream to='tls.example.com' xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    with AgentProcess(tmp_path_factory.mktemp("tls") / "state",
                      host_name="tls.example.com") as proc:
        proc.add_user("admin", "management", "s3cret!")
        yield proc


def read_until(sock, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def client_context(maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        # Security level 0 lets this client really offer TLS 1.1: the refusal must come
        # from the agent, not from our own client.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    return context


def control_handshake(agent, maximum: ssl.TLSVersion | None) -> str:
    raw = socket.create_connection(agent.listen, timeout=10)
    try:
        raw.sendall(HEADER)
        read_until(raw, b"</stream:features>")
        raw.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        read_until(raw, b"/>")
        try:
            return client_context(maximum).wrap_socket(raw).version() or ""
        except (ssl.SSLError, OSError) as error:
            return "refused:" + type(error).__name__
    finally:
        raw.close()


def data_handshake(agent, maximum: ssl.TLSVersion | None) -> str:
    raw = socket.create_connection(agent.migration, timeout=10)
    try:
        try:
            return client_context(maximum).wrap_socket(raw).version() or ""
        except (ssl.SSLError, OSError) as error:
            return "refused:" + type(error).__name__
    finally:
        raw.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("handshake", [control_handshake, data_handshake],
                         ids=["control", "data"])
def test_tls_1_2_or_later_only(agent, handshake):
    """M41: TLS 1.2+ is negotiated on both channels; a TLS 1.1 client is refused."""
    assert handshake(agent, None) in ("TLSv1.2", "TLSv1.3")
    assert handshake(agent, ssl.TLSVersion.TLSv1_1).startswith("refused:")


def test_control_channel_refuses_a_client_without_tls(agent):
    """M41, §4.5: credentials in clear text before STARTTLS end the stream (policy-violation);
    no SASL success is ever sent."""
    raw = socket.create_connection(agent.listen, timeout=10)
    try:
        raw.sendall(HEADER)
        read_until(raw, b"</stream:features>")
        raw.sendall(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
                    + base64.b64encode(b"\0admin\0s3cret!") + b"</auth>")
        answer = read_until(raw, b"</stream:stream>")
    finally:
        raw.close()
    assert b"<policy-violation" in answer and b"<success" not in answer


def test_data_channel_refuses_a_client_without_tls(agent):
    """M41, §4.5: clear-text bytes on the data port get no reply; the connection closes."""
    raw = socket.create_connection(agent.migration, timeout=10)
    try:
        raw.sendall(b"LDMXDATA" + bytes(64) + b"\r\n\r\n")
        try:
            reply = raw.recv(65536)
        except ConnectionResetError:
            reply = b""
    finally:
        raw.close()
    assert reply == b""
