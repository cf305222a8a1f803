"""The migration trust store (migration.md §4.1): the certificates of the peers this agent trusts.

It is the directory ``<state-dir>/trusted/`` with one PEM certificate per peer host, named
``<name>.pem`` (the name is the peer's host name as operators know it). A certificate
*verifies against the store* when it is, byte for byte, one of the stored certificates (its
SHA-256 fingerprint matches): agents use self-signed certificates, so the store pins them
rather than naming CAs. The directory is read at each lookup, so ``ldmx-agent trust add`` and
``trust remove`` apply to a running agent at once. Only certificates are stored, never keys.
"""

from __future__ import annotations

import hmac
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.migration.channel import fingerprint

TRUST_DIR = "trusted"
# Host names, IPv4 addresses, IPv6 addresses (with or without brackets), optionally ":port".
_NAME_RE = re.compile(r"^[A-Za-z0-9\[][A-Za-z0-9_.:\[\]-]{0,252}$")


class TrustError(ValueError):
    """A trust-store operation that cannot be done; the message names the entry or file."""


@dataclass(frozen=True)
class TrustedCertificate:
    """One entry of the trust store."""

    name: str
    fingerprint: str  # lower-case hex SHA-256 of the DER certificate
    subject: str
    der: bytes = field(repr=False)


def load_certificate(pem: bytes, origin: str) -> x509.Certificate:
    """The one certificate in ``pem``; refuses private keys and anything else (§4.6)."""
    if b"PRIVATE KEY" in pem:
        raise TrustError(f"{origin} holds a private key: give the certificate only")
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TrustError(f"{origin} does not hold a PEM certificate") from None
    if len(certificates) != 1:
        raise TrustError(f"{origin} holds {len(certificates)} certificates: give exactly one")
    return certificates[0]


class TrustStore:
    """Reads and changes ``<state-dir>/trusted/``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / TRUST_DIR

    # -- reading --------------------------------------------------------------------------
    def entries(self) -> list[TrustedCertificate]:
        """Every usable entry, by name. A file that is not one certificate is skipped."""
        found = []
        try:
            files = sorted(self.path.glob("*.pem"))
        except OSError:
            return []
        for path in files:
            try:
                cert = load_certificate(path.read_bytes(), str(path))
            except (OSError, TrustError):
                continue
            der = cert.public_bytes(serialization.Encoding.DER)
            found.append(TrustedCertificate(path.stem, fingerprint(der),
                                            cert.subject.rfc4514_string(), der))
        return found

    def get(self, name: str) -> TrustedCertificate | None:
        """The entry called ``name``, or None."""
        return next((e for e in self.entries() if e.name == name), None)

    def find(self, der: bytes | None) -> TrustedCertificate | None:
        """The entry holding exactly this DER certificate, or None."""
        if not der:
            return None
        wanted = fingerprint(der)
        for entry in self.entries():
            if hmac.compare_digest(entry.fingerprint, wanted):
                return entry
        return None

    # -- writing --------------------------------------------------------------------------
    def add(self, name: str, pem: bytes, origin: str = "the certificate") -> TrustedCertificate:
        """Add or replace the entry ``name`` with the one certificate in ``pem``."""
        _check_name(name)
        cert = load_certificate(pem, origin)
        text = cert.public_bytes(serialization.Encoding.PEM)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".trust.", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, self.path / f"{name}.pem")
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
        der = cert.public_bytes(serialization.Encoding.DER)
        return TrustedCertificate(name, fingerprint(der), cert.subject.rfc4514_string(), der)

    def remove(self, name: str) -> None:
        """Remove the entry ``name``; an unknown name is an error."""
        _check_name(name)
        try:
            (self.path / f"{name}.pem").unlink()
        except FileNotFoundError:
            raise TrustError(f"No trusted certificate is named {name}") from None


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name) or ".." in name:
        raise TrustError(f"Invalid trust store name {name!r}: use the peer's host name")
