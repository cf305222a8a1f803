"""The users file: argon2 hashes only, roles, live reload, constant-effort verification."""

import os
import stat

import pytest

from agent.auth.authenticator import Authenticator
from agent.auth.identity import READ, WRITE
from agent.auth.users import UserError, UsersFile


def test_password_is_stored_only_as_an_argon2_hash(tmp_path):
    users = UsersFile(tmp_path)
    users.add("admin", "management", "s3cret!")
    text = (tmp_path / "users").read_text()
    assert "s3cret!" not in text
    assert text.startswith("admin:management:$argon2id$")
    assert stat.S_IMODE(os.stat(tmp_path / "users").st_mode) == 0o600


def test_verify_accepts_the_right_password_only(tmp_path):
    users = UsersFile(tmp_path)
    users.add("admin", "management", "s3cret!")
    assert users.verify("admin", "s3cret!").authorization == WRITE
    assert users.verify("admin", "wrong") is None
    assert users.verify("nobody", "s3cret!") is None


def test_changes_by_another_writer_take_effect_without_restart(tmp_path):
    running = UsersFile(tmp_path)  # the agent's copy
    assert running.verify("ops", "pw") is None
    UsersFile(tmp_path).add("ops", "review", "pw")  # `ldmx-agent user add` in another process
    assert running.verify("ops", "pw").authorization == READ
    UsersFile(tmp_path).remove("ops")
    assert running.verify("ops", "pw") is None


@pytest.mark.parametrize("name,role,pw", [("", "review", "x"), ("a:b", "review", "x"),
                                          ("ok", "admin", "x"), ("ok", "review", "")])
def test_bad_user_entries_are_refused(tmp_path, name, role, pw):
    with pytest.raises(UserError):
        UsersFile(tmp_path).add(name, role, pw)


def test_removing_an_unknown_user_names_it(tmp_path):
    with pytest.raises(UserError, match="User ghost does not exist"):
        UsersFile(tmp_path).remove("ghost")


def test_local_identity_policy(tmp_path):
    """§1.10: uid 0 writes; configured uids/names get their authorization; others per policy."""
    auth = Authenticator(UsersFile(tmp_path), {"1234": "read", "daemon": "write"}, "refuse")
    assert auth.local_identity(0).authorization == WRITE
    assert auth.local_identity(1234).authorization == READ
    assert auth.local_identity(1).authorization == WRITE  # uid 1 is "daemon" on Debian
    assert auth.local_identity(4321) is None
    lenient = Authenticator(UsersFile(tmp_path), {}, "read")
    ident = lenient.local_identity(4321)
    assert ident.authorization == READ and ident.local and ident.name == "uid4321"


def test_sasl_identity_carries_the_role(tmp_path):
    users = UsersFile(tmp_path)
    users.add("viewer", "review", "pw")
    auth = Authenticator(users)
    assert auth.check_password("viewer", "pw").authorization == READ
    assert auth.check_password("viewer", "") is None
    assert auth.check_password("", "pw") is None
