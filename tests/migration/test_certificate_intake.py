"""Certificate mode at intake and on reconnection (migration.md §4.1, §4.2, M48 ``-c``)."""

from __future__ import annotations

import types

from agent.migration import messages
from agent.migration.coordinator import Migrations
from agent.migration.journal import Journal
from agent.migration.request import MigrationRequest


class _Manager:
    def summary(self, name):
        return types.SimpleNamespace(state="bound", uuid="u-1")


def _migrations(tmp_path, peer_trust=None) -> Migrations:
    return Migrations(reactor=None, manager=_Manager(), hypervisor=None,
                      journal=Journal(str(tmp_path)), server_name="system1",
                      publish=lambda *a: None, peer_trust=peer_trust)


def _request() -> MigrationRequest:
    return MigrationRequest(source="ldg1", target_host="system2", target_port=None,
                            target_name="ldg1", user=None, password=None, cert_mode=True)


def test_certificate_mode_without_an_own_certificate_fails_clearly(tmp_path):
    """§4.1: an agent wired without its certificate cannot do -c: it says so at intake,
    with the failure summary, and records nothing."""
    migrations = _migrations(tmp_path)
    answer = []
    migrations.migrate(_request()).addCallback(answer.append)
    assert answer == [(False, [messages.NO_OWN_CERTIFICATE,
                               "Domain Migration of LDom ldg1 failed"])]
    assert migrations.outgoing == {}


def test_reconnections_of_a_certificate_migration_use_the_certificate(tmp_path):
    """§4.2: every control connection of a -c migration (resolution included) presents the
    certificate; a password-mode record keeps its password or token login."""
    trust = object()
    migrations = _migrations(tmp_path, peer_trust=trust)
    assert migrations.control_auth({"cert": True}) == {"trust": trust, "cert_mode": True}
    assert migrations.control_auth({"user": "admin"}) == {"trust": trust, "cert_mode": False}
