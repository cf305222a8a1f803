"""TLS material for the management port (spec ldm-xml §1.6).

:func:`ensure_tls_files` creates a self-signed certificate at first start and reuses it later;
:class:`ServerTls` turns a certificate and key into the server side of a TLS connection
(TLS 1.2 minimum, ALPN ``xmpp-client`` when offered, no alert when only others are offered).
The server asks for a client certificate without requiring one; whether it is trusted is
decided later against the migration trust store (migration.md §4.1).
:func:`peer_certificate_der` reads the other end's certificate from a TLS transport.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import implementer

CERT_NAME = "xmpp-cert.pem"
KEY_NAME = "xmpp-key.pem"
ALPN_XMPP = b"xmpp-client"
VALIDITY = datetime.timedelta(days=3650)


def _san_entry(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file through a temporary name created with ``mode`` (never widened later)."""
    temp = path.with_name(path.name + ".tmp")
    try:
        temp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temp, path)


def ensure_tls_files(state_dir: Path, server_name: str, *,
                     now: datetime.datetime | None = None) -> tuple[Path, Path]:
    """Return (certificate path, key path) in ``state_dir``, generating them if missing.

    The certificate is self-signed RSA-2048/SHA-256, valid ten years, with SANs
    ``server_name``, ``localhost``, ``127.0.0.1`` and ``::1``; the key file has mode 0600.
    """
    state_dir = Path(state_dir)
    cert_path, key_path = state_dir / CERT_NAME, state_dir / KEY_NAME
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    state_dir.mkdir(parents=True, exist_ok=True)
    start = (now or datetime.datetime.now(datetime.timezone.utc)) - datetime.timedelta(hours=1)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[str] = []
    for name in (server_name, "localhost", "127.0.0.1", "::1"):
        if name not in names:
            names.append(name)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name[:64] or "ldmx")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_san_entry(n) for n in names]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    _write_new(key_path, key_pem, 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _select_alpn(connection: SSL.Connection, offered: list[bytes]) -> bytes | object:
    # Clients that offer only other protocols must still complete the handshake (§1.6).
    return ALPN_XMPP if ALPN_XMPP in offered else SSL.NO_OVERLAPPING_PROTOCOLS


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the certificate (chain) and private key the management port uses."""

    cert_path: Path
    key_path: Path


@implementer(IOpenSSLServerConnectionCreator)
class ServerTls:
    """Creates server-side TLS connections from :class:`TlsMaterial`.

    Raises ``OpenSSL.SSL.Error`` or ``OSError`` at construction when the files are unusable.
    """

    def __init__(self, material: TlsMaterial) -> None:
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
        context.use_certificate_chain_file(str(material.cert_path))
        context.use_privatekey_file(str(material.key_path))
        context.check_privatekey()
        context.set_alpn_select_callback(_select_alpn)
        # Ask for a client certificate without requiring one (migration §4.1, M36).
        context.set_verify(SSL.VERIFY_PEER, _accept_any)
        context.set_session_id(b"ldmx-xmpp")
        self._context = context

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:  # noqa: N802
        """Twisted's hook: a fresh server connection for one TLS session."""
        return SSL.Connection(self._context, None)


def peer_certificate_der(transport: object) -> bytes | None:
    """The DER certificate the other end presented on a TLS transport, or None."""
    getter = getattr(transport, "getPeerCertificate", None)
    if getter is None:
        return None
    try:
        cert = getter()
    except Exception:  # noqa: BLE001 - no TLS, or no handshake yet: no certificate
        return None
    if cert is None:
        return None
    return cert.to_cryptography().public_bytes(serialization.Encoding.DER)


def _accept_any(connection: SSL.Connection, cert: object, errno: int, depth: int,
                ok: int) -> bool:
    # A client certificate is asked for but never judged here: the front door checks it
    # against the migration trust store after the handshake (SASL EXTERNAL, migration §4.1).
    return True
