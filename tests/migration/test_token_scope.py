"""The resolution token's scope (migration.md §4.2, M38): a ``migration/<id>`` session may send
only ``mig-outcome``, ``mig-abort`` and ``mig-release``, and only for its own migration id."""

from __future__ import annotations

import types

import pytest

from agent.migration.coordinator import Migrations
from agent.migration.journal import Journal


def _migrations(tmp_path) -> Migrations:
    return Migrations(reactor=None, manager=None, hypervisor=None, journal=Journal(str(tmp_path)),
                      server_name="system2", publish=lambda *a: None)


def _session(name: str):
    return types.SimpleNamespace(identity=types.SimpleNamespace(name=name))


@pytest.mark.parametrize("message", ["mig-hello", "mig-check", "mig-prepare",
                                     "mig-transfer-done", "mig-commit"])
def test_token_session_is_refused_other_messages(tmp_path, message):
    """M38: even for its own id, a token session cannot drive the migration forward."""
    result = _migrations(tmp_path).incoming_message(_session("migration/m1"), message, "m1", {})
    assert not result.ok
    assert result.messages == [f"Not authorized to perform {message} (requires the write "
                               f"authorization)"]


@pytest.mark.parametrize("message", ["mig-outcome", "mig-abort", "mig-release"])
def test_token_session_is_refused_another_migration(tmp_path, message):
    """M38: the token of m1 does not reach migration m2, whatever the message."""
    result = _migrations(tmp_path).incoming_message(_session("migration/m1"), message, "m2", {})
    assert not result.ok and result.messages[0].startswith("Not authorized to perform")


@pytest.mark.parametrize("message", ["mig-abort", "mig-release"])
def test_token_session_may_ask_about_its_own_migration(tmp_path, message):
    """M38: its own id and an allowed message pass the scope check (no record here: the
    answer is the no-record reply, not a refusal)."""
    result = _migrations(tmp_path).incoming_message(_session("migration/m1"), message, "m1", {})
    assert result.ok
