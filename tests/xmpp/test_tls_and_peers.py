"""TLS material (spec ldm-xml §1.6) and local-peer recognition (§1.10)."""

from __future__ import annotations

import ipaddress
import os
import socket
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from agent.xmpp import localpeer
from agent.xmpp.tls import ensure_tls_files


def test_first_start_creates_self_signed_rsa_cert_and_0600_key(tmp_path):
    """C23: RSA-2048, SHA-256, ten years, SANs name/localhost/127.0.0.1/::1, key mode 0600."""
    old_umask = os.umask(0)  # the mode must come from creation, not from the umask
    try:
        cert_path, key_path = ensure_tls_files(tmp_path / "state", "ctl1.example.com")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.public_key().key_size == 2048
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.issuer == cert.subject
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 3649 <= days <= 3651
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"ctl1.example.com", "localhost"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}


def test_restart_reuses_certificate(tmp_path):
    """C23: a second start returns the same files with the same fingerprint."""
    cert_path, key_path = ensure_tls_files(tmp_path, "ctl1")
    first = x509.load_pem_x509_certificate(cert_path.read_bytes()).fingerprint(hashes.SHA256())
    key_before = key_path.read_bytes()
    again = ensure_tls_files(tmp_path, "ctl1")
    assert again == (cert_path, key_path)
    assert x509.load_pem_x509_certificate(cert_path.read_bytes()).fingerprint(
        hashes.SHA256()) == first
    assert key_path.read_bytes() == key_before


TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1952 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 1 1
   1: 0100007F:D431 0100007F:1952 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:1952 0100007F:D431 01 00000000:00000000 00:00000000 00000000   999        0 3 1
   3: 0100007F:D432 0100007F:1952 06 00000000:00000000 03:00000000 00000000     0        0 0 3
"""
TCP6_TABLE = """\
  sl  local_address                         remote_port                           st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:D433 0000000000000000FFFF00000100007F:1952 01 00000000:00000000 00:00000000 00000000  1001        0 4 1
   1: 00000000000000000000000001000000:D434 00000000000000000000000001000000:1952 01 00000000:00000000 00:00000000 00000000  1002        0 5 1
"""


def test_owner_found_by_peer_as_local_and_agent_as_remote():
    """C42: the peer's own socket (local = peer, remote = agent) gives the uid, not ours."""
    assert localpeer.find_owner_uid([TCP_TABLE], ("127.0.0.1", 0xD431), ("127.0.0.1", 6482)) == 0


def test_time_wait_entries_are_not_trusted():
    """§1.10: only an established socket counts (TIME_WAIT entries show uid 0)."""
    assert localpeer.find_owner_uid([TCP_TABLE], ("127.0.0.1", 0xD432), ("127.0.0.1", 6482)) is None


def test_ipv4_mapped_and_ipv6_loopback_entries():
    """§1.10: ::ffff:127.0.0.1 matches 127.0.0.1, and ::1 entries are read from tcp6."""
    assert localpeer.find_owner_uid([TCP6_TABLE], ("::ffff:127.0.0.1", 0xD433),
                                    ("127.0.0.1", 6482)) == 1001
    assert localpeer.find_owner_uid([TCP6_TABLE], ("::1", 0xD434), ("::1", 6482)) == 1002


def test_not_found_is_remote():
    """C46: a socket missing from the tables is remote."""
    assert localpeer.find_owner_uid([TCP_TABLE, TCP6_TABLE], ("127.0.0.1", 1),
                                    ("127.0.0.1", 6482)) is None


def test_loopback_detection():
    """§1.10: 127/8, ::1 and mapped loopback are loopback; other addresses are not."""
    assert localpeer.is_loopback("127.3.4.5")
    assert localpeer.is_loopback("::1")
    assert localpeer.is_loopback("::ffff:127.0.0.1")
    assert not localpeer.is_loopback("10.0.0.1")
    assert not localpeer.is_loopback("::ffff:10.0.0.1")


class _Transport:
    def __init__(self, peer, host, handle=None):
        self._peer, self._host, self._handle = peer, host, handle

    def getPeer(self):  # noqa: N802
        return self._peer

    def getHost(self):  # noqa: N802
        return self._host

    def getHandle(self):  # noqa: N802
        return self._handle


def test_real_loopback_connection_owner_is_this_process():
    """C42: for a real loopback connection, the kernel tables name this process's uid."""
    from twisted.internet.address import IPv4Address

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    accepted, peer = server.accept()
    try:
        transport = _Transport(IPv4Address("TCP", *peer),
                               IPv4Address("TCP", *server.getsockname()))
        assert localpeer.peer_uid(transport) == os.getuid()
    finally:
        for sock in (client, accepted, server):
            sock.close()


def test_non_loopback_peer_is_remote_without_looking():
    """C46: a peer on a non-loopback address is remote, whatever the tables say."""
    from twisted.internet.address import IPv4Address

    transport = _Transport(IPv4Address("TCP", "192.0.2.7", 40000),
                           IPv4Address("TCP", "192.0.2.1", 6482))
    assert localpeer.peer_uid(transport, read_tables=lambda: [TCP_TABLE]) is None


def test_unix_socket_peer_credentials():
    """C41: SO_PEERCRED on a Unix socket gives the peer's uid."""
    from twisted.internet.address import UNIXAddress

    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        transport = _Transport(UNIXAddress(None), UNIXAddress("/tmp/x"), handle=left)
        assert localpeer.peer_uid(transport) == os.getuid()
    finally:
        left.close()
        right.close()
