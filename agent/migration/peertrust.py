"""How a source agent checks its migration target and presents itself (migration.md §4.1, §4.4).

:class:`PeerTrust` answers, for the certificate a target showed on the control channel,
whether the migration may go on (``check``, before any credential is sent), and records the
target's fingerprint once it has authenticated (``authenticated``: trust on first use).
Modes (``migration_peer_verify``): ``strict`` (the certificate must be in the trust store),
``tofu`` (the default: a host without a trust-store entry is pinned to the fingerprint seen
at its first successful migration; a different one is refused later) and ``none`` (no check,
a warning at each use). Certificate mode (``-c``) always behaves as ``strict`` and presents
this agent's certificate as the TLS client certificate. ``migration_tls_host_match`` adds a
match of the certificate's names against the target host.

Pinned fingerprints live in ``<state-dir>/migration-known-hosts``, one ``KEY FINGERPRINT``
line each, where KEY is the target host, with ``:port`` when the request named a port.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID
from twisted.logger import Logger

from agent.auth.truststore import TrustStore
from agent.migration import messages
from agent.migration.channel import fingerprint

log = Logger()

KNOWN_HOSTS = "migration-known-hosts"
DEFAULT_PORT = 6482


def host_key(host: str, port: int | None) -> str:
    """How a target is named in the known-hosts file and looked up in the trust store."""
    if port is None or port == DEFAULT_PORT:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KnownHosts:
    """The fingerprints pinned by ``tofu``: ``<state-dir>/migration-known-hosts``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / KNOWN_HOSTS

    def all(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return {}
        pins = {}
        for line in text.splitlines():
            key, _, value = line.strip().partition(" ")
            if key and value:
                pins[key] = value.strip()
        return pins

    def get(self, key: str) -> str | None:
        return self.all().get(key)

    def record(self, key: str, value: str) -> None:
        """Pin ``key`` to ``value`` (written through a temporary file and a rename)."""
        pins = {**self.all(), key: value}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".known.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                for name in sorted(pins):
                    handle.write(f"{name} {pins[name]}\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise


def names_match(der: bytes, host: str) -> bool:
    """True when the certificate's subject CN or a subject alternative name is ``host``."""
    cert = x509.load_der_x509_certificate(der)
    wanted_ip = _ip(host)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        if wanted_ip is not None and wanted_ip in san.get_values_for_type(x509.IPAddress):
            return True
        if any(name.lower() == host.lower() for name in san.get_values_for_type(x509.DNSName)):
            return True
    for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        if str(attribute.value).lower() == host.lower():
            return True
    return False


def _ip(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass
class PeerTrust:
    """The source side's trust decisions and its own certificate (for ``-c``)."""

    store: TrustStore
    known: KnownHosts
    verify: str = "tofu"  # migration_peer_verify
    host_match: bool = False  # migration_tls_host_match
    cert_file: str | None = None  # this agent's certificate and key (client certificate)
    key_file: str | None = None

    def mode(self, cert_mode: bool) -> str:
        return "strict" if cert_mode else self.verify

    def check(self, host: str, port: int | None, der: bytes | None,
              cert_mode: bool) -> str | None:
        """The refusal line for the target's certificate ``der``, or None to go on."""
        mode = self.mode(cert_mode)
        if mode == "none":
            log.warn("migration_peer_verify = none: the certificate of {host} is not verified",
                     host=host)
            return None
        if not der:
            return messages.certificate_unverified(host)
        if self.host_match and not names_match(der, host):
            log.info("the certificate of {host} does not name it", host=host)
            return messages.certificate_unverified(host)
        if self.store.find(der) is not None:
            return None
        key = host_key(host, port)
        seen = fingerprint(der)
        if mode == "strict" or self.store.get(key) is not None:
            log.info("the certificate of {host} ({fp}) is not in the migration trust store",
                     host=host, fp=seen)
            return messages.certificate_unverified(host)
        pinned = self.known.get(key)
        if pinned is not None and not hmac.compare_digest(pinned, seen):
            log.warn("the certificate of {host} changed: {old} before, {new} now",
                     host=host, old=pinned, new=seen)
            return messages.certificate_changed(host)
        return None

    def authenticated(self, host: str, port: int | None, der: bytes | None,
                      cert_mode: bool) -> None:
        """The target accepted us: with ``tofu``, pin a host seen for the first time."""
        if self.mode(cert_mode) != "tofu" or not der or self.store.find(der) is not None:
            return
        key = host_key(host, port)
        if self.known.get(key) is None:
            self.known.record(key, fingerprint(der))
            log.info("pinned the certificate of {key}: {fp}", key=key, fp=fingerprint(der))
