"""The agent's authenticator: SASL users from the users file, local peers by uid (§1.10), and
migration peers by a client certificate of the migration trust store (migration.md §4.1)."""

from __future__ import annotations

import pwd

from zope.interface import implementer

from agent.auth.identity import MIGRATION_PEER, READ, WRITE, Identity
from agent.auth.truststore import TrustStore
from agent.auth.users import UsersFile
from agent.xmpp.api import IAuthenticator


def uid_name(uid: int) -> str:
    """The account name of ``uid``, or ``uid<N>`` when it has none (§1.9 bound JID)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


@implementer(IAuthenticator)
class Authenticator:
    """Decides identities from the users file and the local-peer configuration.

    ``local_users`` maps a uid (as text) or an account name to ``read`` or ``write``;
    ``unknown_local_uid`` is ``refuse`` (treat as remote) or ``read``; ``trust_store`` holds
    the certificates of the agents allowed in as migration peers (None: no one).
    """

    def __init__(self, users: UsersFile, local_users: dict[str, str] | None = None,
                 unknown_local_uid: str = "refuse", trust_store: TrustStore | None = None) -> None:
        self.users = users
        self.trust_store = trust_store
        self.local_users = dict(local_users or {})
        self.unknown_local_uid = unknown_local_uid

    def check_password(self, user: str, password: str) -> Identity | None:
        if not user or not password:
            return None
        found = self.users.verify(user, password)
        if found is None:
            return None
        return Identity(name=found.name, authorization=found.authorization)

    def certificate_identity(self, der: bytes | None) -> Identity | None:
        if self.trust_store is None:
            return None
        entry = self.trust_store.find(der)
        if entry is None:
            return None
        # '/' never occurs in a user name, so this name can never be a real user's.
        return Identity(name=f"certificate/{entry.name}", authorization=MIGRATION_PEER)

    def local_identity(self, uid: int) -> Identity | None:
        name = uid_name(uid)
        if uid == 0:
            authz = WRITE
        else:
            authz = self.local_users.get(str(uid)) or self.local_users.get(name)
            if authz is None:
                if self.unknown_local_uid != "read":
                    return None
                authz = READ
        return Identity(name=name, authorization=authz, local=True, uid=uid)
