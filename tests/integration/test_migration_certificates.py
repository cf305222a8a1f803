"""Certificate mode and target-certificate checks between two real agents (migration.md §4).

``-c`` migrates with no user and no password: the source presents its own certificate and
logs in with SASL EXTERNAL, which the target offers only to a certificate in its migration
trust store; the source checks the target's certificate against its own store. In password
mode the default ``migration_peer_verify = tofu`` pins the target's fingerprint at the first
migration and refuses a changed one later.
"""

from __future__ import annotations

from agent.migration.peertrust import KNOWN_HOSTS
from agent.testing import run_admin, wait_for
from tests.migration import docs
from tests.migration.hosts import PASSWORD, USER, make_guest, two_hosts

CERT = "xmpp-cert.pem"  # the certificate each agent makes at first start


def trust(host, peer, name: str) -> None:
    """``ldmx-agent trust add``: ``host`` trusts ``peer``'s certificate under ``name``."""
    run_admin(host.state, "trust", "add", name, str(peer.state / CERT))


def failure(answer: bytes) -> list[str]:
    assert docs.status(answer) == "failure", docs.lines(answer)
    return docs.lines(answer)


def test_certificate_mode_migrates_with_mutually_trusted_certificates(tmp_path):
    """§4.1, M36, M48 (-c): with each agent in the other's trust store, -c without user or
    password migrates the domain; the password-mode pin file is not written (-c is strict)."""
    with two_hosts(tmp_path) as (src, dst):
        trust(src, dst, "system2")
        trust(dst, src, "system1")
        make_guest(src, "ldg1", "active")
        uuid = src.domains()["ldg1"]["uuid"]
        answer = src.request(docs.migrate("ldg1", dst.target, None, None, options="-c"))
        assert docs.status(answer) == "success", (docs.lines(answer), src.agent.log()[-3000:],
                                                  dst.agent.log()[-3000:])
        assert docs.lines(answer) == []
        moved = dst.domains()["ldg1"]
        assert (moved["state"], moved["uuid"]) == ("active", uuid)
        assert "ldg1" not in src.domains()
        assert not (src.state / KNOWN_HOSTS).exists()


def test_certificate_mode_refused_when_the_target_does_not_trust_the_source(tmp_path):
    """§4.1, M36, issue #8 (certificate mode with an untrusted peer refused for migration):
    the target offers no EXTERNAL to an unknown client certificate; the source reports it is
    not trusted and the domain stays where it was."""
    with two_hosts(tmp_path) as (src, dst):
        trust(src, dst, "system2")
        make_guest(src, "ldg1", "bound")
        lines = failure(src.request(docs.migrate("ldg1", dst.target, None, None, options="-c")))
        assert lines == ["The certificate of this machine is not trusted by 127.0.0.1",
                         "Domain Migration of LDom ldg1 failed"]
        assert src.domains()["ldg1"]["state"] == "bound"
        assert "ldg1" not in dst.domains()


def test_certificate_mode_refused_when_the_source_does_not_trust_the_target(tmp_path):
    """§4.1, §4.4 (certificate mode is always strict): a target certificate that is not in
    the source's trust store stops the migration before anything is sent."""
    with two_hosts(tmp_path) as (src, dst):
        trust(dst, src, "system1")
        make_guest(src, "ldg1", "bound")
        lines = failure(src.request(docs.migrate("ldg1", dst.target, None, None, options="-c")))
        assert lines == ["The certificate of 127.0.0.1 could not be verified",
                         "Domain Migration of LDom ldg1 failed"]
        assert "ldg1" not in dst.domains()


def test_tofu_refuses_a_target_whose_certificate_changed(tmp_path):
    """§4.4, M42: the first password-mode migration pins the target's fingerprint; after the
    target gets a new certificate the next migration is refused with the changed-certificate
    message and the domain stays on the source."""
    with two_hosts(tmp_path) as (src, dst):
        make_guest(src, "ldg1", "bound")
        make_guest(src, "ldg2", "bound")
        answer = src.request(docs.migrate("ldg1", dst.target, USER, PASSWORD))
        assert docs.status(answer) == "success", docs.lines(answer)
        pinned = (src.state / KNOWN_HOSTS).read_text()
        assert pinned.split() == [dst.target, _fingerprint(dst.state / CERT)]
        dst.agent.stop()
        (dst.state / CERT).unlink()
        (dst.state / "xmpp-key.pem").unlink()
        dst.start()  # same port, a freshly made certificate
        lines = failure(src.request(docs.migrate("ldg2", dst.target, USER, PASSWORD)))
        assert lines == ["The certificate of 127.0.0.1 has changed since the last migration to it",
                         "Domain Migration of LDom ldg2 failed"]
        assert src.domains()["ldg2"]["state"] == "bound"
        assert (src.state / KNOWN_HOSTS).read_text() == pinned


def _fingerprint(pem_path) -> str:
    import ssl

    from agent.migration.channel import fingerprint

    return fingerprint(ssl.PEM_cert_to_DER_cert(pem_path.read_text()))


def test_certificate_mode_resolves_a_lost_commit_reply_with_the_certificate(tmp_path):
    """§4.2, §9.3: the target's answer to mig-commit is lost (fault point
    target-commit-reply); the source reconnects for mig-outcome with its certificate (no
    password, no token login in certificate mode) and settles on the moved domain."""
    from tools.faults.scenarios import FAULTS, _open_records

    with two_hosts(tmp_path, target_env={FAULTS: "target-commit-reply=drop"}) as (src, dst):
        trust(src, dst, "system2")
        trust(dst, src, "system1")
        make_guest(src, "ldg1", "bound")
        uuid = src.domains()["ldg1"]["uuid"]
        answer = src.request(docs.migrate("ldg1", dst.target, None, None, options="-c"))
        assert wait_for(lambda: _open_records(src.state) == 0 and _open_records(dst.state) == 0,
                        timeout=90, interval=0.2), docs.lines(answer)
        assert dst.domains()["ldg1"]["uuid"] == uuid
        assert "ldg1" not in src.domains()
        assert docs.status(answer) == "success", docs.lines(answer)
        # Two certificate logins on the target: the migration's, and the resolution's.
        assert dst.agent.log().count(": certificate/system1") >= 2, dst.agent.log()
