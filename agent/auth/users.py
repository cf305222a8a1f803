"""The users file: SASL users, their roles and argon2 password hashes.

The file lives in the state directory as ``users``, one line per user::

    NAME:ROLE:ARGON2-HASH

ROLE is ``management`` (write authorization) or ``review`` (read authorization). Passwords
never appear anywhere in clear; the hash is argon2id (memory-hard). The file is re-read
whenever it changes on disk, so ``ldmx-agent user add`` takes effect in a running agent at
once.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from agent.auth.identity import READ, WRITE

ROLES = {"management": WRITE, "review": READ}
USERS_FILE = "users"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}$")

# Parameters chosen so that one verification costs roughly 20-40 ms and 16 MiB on this
# class of machine: slow enough to hurt guessing, fast enough for logins under load.
_HASHER = PasswordHasher(time_cost=2, memory_cost=16384, parallelism=1)
# Verified against for unknown users so that a wrong name costs as much as a wrong password.
_DUMMY_HASH = _HASHER.hash("ldmx-no-such-user")


class UserError(ValueError):
    """A users-file operation that cannot be done (bad name, unknown user, bad role)."""


@dataclass(frozen=True)
class User:
    """One line of the users file."""

    name: str
    role: str
    password_hash: str

    @property
    def authorization(self) -> str:
        return ROLES[self.role]


class UsersFile:
    """Reads and writes the users file; re-reads it whenever it changes on disk."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / USERS_FILE
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, User] = {}

    # -- reading ------------------------------------------------------------------------
    def users(self) -> dict[str, User]:
        """The current users by name (re-read when the file changed)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._users = None, {}
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._users = self._parse(self.path.read_text(encoding="utf-8"))
            self._stamp = stamp
        return self._users

    @staticmethod
    def _parse(text: str) -> dict[str, User]:
        users = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, role, pw_hash = line.split(":", 2)
            if role in ROLES:
                users[name] = User(name, role, pw_hash)
        return users

    def verify(self, name: str, password: str) -> User | None:
        """Return the user when ``password`` is right, else None. Constant effort for
        unknown names (a dummy hash is verified instead)."""
        user = self.users().get(name)
        try:
            _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user

    # -- writing ------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str) -> None:
        """Add or replace a user."""
        if not _NAME_RE.match(name):
            raise UserError(f"Invalid user name {name!r}: use 1-64 letters, digits, '_', '.', '+', '-'")
        if role not in ROLES:
            raise UserError(f"Invalid role {role!r}: use management or review")
        if not password:
            raise UserError(f"Refusing an empty password for user {name}")
        users = dict(self.users())
        users[name] = User(name, role, _HASHER.hash(password))
        self._write(users)

    def remove(self, name: str) -> None:
        """Remove a user; an unknown name is an error."""
        users = dict(self.users())
        if name not in users:
            raise UserError(f"User {name} does not exist")
        del users[name]
        self._write(users)

    def _write(self, users: dict[str, User]) -> None:
        # Write a new file and rename it over the old one: readers never see half a file.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for u in sorted(users.values(), key=lambda u: u.name):
                    f.write(f"{u.name}:{u.role}:{u.password_hash}\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
