"""The migration trust store and certificate identities (migration.md §4.1, §4.3, M36, M37)."""

from __future__ import annotations

import stat

import pytest
from cryptography.hazmat.primitives import serialization

from agent.auth.authenticator import Authenticator
from agent.auth.identity import MIGRATION_PEER
from agent.auth.truststore import TrustError, TrustStore
from agent.auth.users import UsersFile
from agent.xmpp.tls import ensure_tls_files


@pytest.fixture
def peer(tmp_path):
    """A peer agent's certificate (PEM bytes, DER bytes) and key path, made like an agent's."""
    cert, key = ensure_tls_files(tmp_path / "peer", "system1")
    from cryptography import x509
    pem = cert.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return pem, der, key


def test_added_certificate_is_listed_found_and_removed(tmp_path, peer):
    """§4.1: one certificate per host; a certificate verifies when it is in the store."""
    pem, der, _ = peer
    store = TrustStore(tmp_path / "state")
    entry = store.add("system1", pem)
    assert [e.name for e in store.entries()] == ["system1"]
    assert store.find(der) == entry and store.get("system1") == entry
    assert entry.subject == "CN=system1" and len(entry.fingerprint) == 64
    assert stat.S_IMODE((tmp_path / "state" / "trusted").stat().st_mode) == 0o700
    store.remove("system1")
    assert store.find(der) is None and store.entries() == []


def test_changes_apply_to_a_running_reader_at_once(tmp_path, peer):
    """`ldmx-agent trust add` in another process: the agent's store sees it at the next lookup."""
    pem, der, _ = peer
    reader = TrustStore(tmp_path)
    assert reader.find(der) is None
    TrustStore(tmp_path).add("system1", pem)
    assert reader.find(der) is not None


def test_a_different_certificate_does_not_verify(tmp_path, peer):
    pem, _, _ = peer
    other, _ = ensure_tls_files(tmp_path / "other", "system1")  # same name, new key
    from cryptography import x509
    other_der = x509.load_pem_x509_certificate(other.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    store = TrustStore(tmp_path)
    store.add("system1", pem)
    assert store.find(other_der) is None and store.find(None) is None and store.find(b"") is None


def test_private_keys_and_non_certificates_are_refused(tmp_path, peer):
    """§4.6: private keys are never stored; the message names the file."""
    pem, _, key = peer
    store = TrustStore(tmp_path)
    with pytest.raises(TrustError, match="holds a private key"):
        store.add("system1", pem + key.read_bytes(), origin="both.pem")
    with pytest.raises(TrustError, match="x.pem does not hold a PEM certificate"):
        store.add("system1", b"hello", origin="x.pem")
    with pytest.raises(TrustError, match="holds 2 certificates"):
        store.add("system1", pem + pem)
    assert store.entries() == []


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "x..y"])
def test_bad_names_are_refused(tmp_path, peer, name):
    with pytest.raises(TrustError, match="Invalid trust store name"):
        TrustStore(tmp_path).add(name, peer[0])


def test_unknown_entry_cannot_be_removed(tmp_path):
    with pytest.raises(TrustError, match="No trusted certificate is named system9"):
        TrustStore(tmp_path).remove("system9")


def test_a_trusted_certificate_is_a_migration_peer(tmp_path, peer):
    """§4.3, M37: a certificate session gets the migration-peer role: neither read nor write;
    an unknown certificate or none gets no identity at all (M36)."""
    pem, der, _ = peer
    store = TrustStore(tmp_path)
    auth = Authenticator(UsersFile(tmp_path), trust_store=store)
    assert auth.certificate_identity(der) is None
    store.add("system1", pem)
    identity = auth.certificate_identity(der)
    assert (identity.name, identity.authorization) == ("certificate/system1", MIGRATION_PEER)
    assert not identity.may("read") and not identity.may("write")
    assert auth.certificate_identity(None) is None
    assert Authenticator(UsersFile(tmp_path)).certificate_identity(der) is None
