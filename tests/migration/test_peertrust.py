"""The source's checks of the target certificate (migration.md §4.4, M42) and ``-c`` (§4.1)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.logger import globalLogPublisher

from agent.auth.truststore import TrustStore
from agent.migration.channel import fingerprint
from agent.migration.peertrust import KnownHosts, PeerTrust, host_key, names_match
from agent.xmpp.tls import ensure_tls_files

UNVERIFIED = "The certificate of system2 could not be verified"
CHANGED = "The certificate of system2 has changed since the last migration to it"


def certificate(directory, name="system2"):
    """A certificate made the way an agent makes its own: (PEM, DER)."""
    cert, _ = ensure_tls_files(directory, name)
    pem = cert.read_bytes()
    return pem, x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


@pytest.fixture
def target(tmp_path):
    return certificate(tmp_path / "target")


@pytest.fixture
def impostor(tmp_path):
    return certificate(tmp_path / "impostor")


def trust(tmp_path, verify="tofu", host_match=False) -> PeerTrust:
    state = tmp_path / "source"
    return PeerTrust(TrustStore(state), KnownHosts(state), verify=verify, host_match=host_match)


def test_tofu_pins_the_first_certificate_and_refuses_a_changed_one(tmp_path, target, impostor):
    """§4.4, M42: nothing is pinned before the first successful login; after it the same
    certificate passes and a different one gets the changed-certificate message."""
    peer = trust(tmp_path)
    assert peer.check("system2", None, target[1], False) is None
    assert peer.known.get("system2") is None  # not before the target accepted us
    peer.authenticated("system2", None, target[1], False)
    assert peer.known.get("system2") == fingerprint(target[1])
    assert peer.check("system2", None, target[1], False) is None
    assert peer.check("system2", None, impostor[1], False) == CHANGED
    peer.authenticated("system2", None, impostor[1], False)  # never re-pinned silently
    assert peer.known.get("system2") == fingerprint(target[1])


def test_tofu_pins_per_host_and_port(tmp_path, target, impostor):
    """Two agents on one host (another port) are two targets, each pinned on its own."""
    peer = trust(tmp_path)
    peer.authenticated("system2", 7000, target[1], False)
    assert peer.check("system2", 7001, impostor[1], False) is None
    assert peer.check("system2", 7000, impostor[1], False) == CHANGED
    assert (host_key("h", None), host_key("h", 6482), host_key("h", 7000),
            host_key("fd00::5", 7000)) == ("h", "h", "h:7000", "[fd00::5]:7000")


def test_tofu_follows_a_trust_store_entry_for_the_host(tmp_path, target, impostor):
    """§4.4: a host with a trust-store entry is checked against it, not pinned."""
    peer = trust(tmp_path)
    peer.store.add("system2", target[0])
    assert peer.check("system2", None, target[1], False) is None
    assert peer.check("system2", None, impostor[1], False) == UNVERIFIED
    peer.authenticated("system2", None, target[1], False)
    assert peer.known.all() == {}


def test_strict_needs_the_trust_store(tmp_path, target, impostor):
    """§4.4 strict: only a certificate of the trust store passes; nothing is pinned."""
    peer = trust(tmp_path, verify="strict")
    assert peer.check("system2", None, target[1], False) == UNVERIFIED
    peer.store.add("system2", target[0])
    assert peer.check("system2", None, target[1], False) is None
    assert peer.check("system2", None, impostor[1], False) == UNVERIFIED
    assert peer.check("system2", None, None, False) == UNVERIFIED


def test_certificate_mode_is_always_strict(tmp_path, target):
    """§4.4: '-c always behaves as strict', whatever migration_peer_verify says."""
    for verify in ("none", "tofu"):
        peer = trust(tmp_path / verify, verify=verify)
        assert peer.check("system2", None, target[1], True) == UNVERIFIED
        peer.authenticated("system2", None, target[1], True)
        assert peer.known.all() == {}


def test_none_verifies_nothing_and_warns_at_each_use(tmp_path, impostor):
    """§4.4 none: any certificate passes, with a warning each time."""
    seen = []
    observer = seen.append
    globalLogPublisher.addObserver(observer)
    try:
        peer = trust(tmp_path, verify="none")
        for _ in range(2):
            assert peer.check("system2", None, impostor[1], False) is None
    finally:
        globalLogPublisher.removeObserver(observer)
    warnings = [e for e in seen if e.get("log_namespace") == "agent.migration.peertrust"
                and e["log_level"].name == "warn"]
    assert len(warnings) == 2


def test_host_match_uses_subject_and_alternative_names(tmp_path, target):
    """§4.4 migration_tls_host_match: the certificate must name the target host."""
    _, der = target  # CN system2; SANs system2, localhost, 127.0.0.1, ::1
    assert names_match(der, "system2") and names_match(der, "127.0.0.1")
    assert names_match(der, "::1") and not names_match(der, "system3")
    peer = trust(tmp_path, host_match=True)
    assert peer.check("127.0.0.1", None, der, False) is None
    assert peer.check("system3", None, der, False) == (
        "The certificate of system3 could not be verified")
