"""Who a session is and what it may do (spec ldm-xml §1.10, §1.11)."""

from __future__ import annotations

from dataclasses import dataclass

READ = "read"
WRITE = "write"


@dataclass(frozen=True)
class Identity:
    """An authenticated principal.

    ``authorization`` is ``"read"`` (LDoms Review) or ``"write"`` (LDoms Management, which
    includes read). ``local`` is true for peers recognised by their uid (§1.10); ``uid`` is
    set for those.
    """

    name: str
    authorization: str
    local: bool = False
    uid: int | None = None

    def may(self, needed: str) -> bool:
        """True when this identity holds ``needed`` (``"read"`` or ``"write"``)."""
        if needed == READ:
            return self.authorization in (READ, WRITE)
        return self.authorization == WRITE


MIGRATION_PEER = "migration-peer"
"""The role of a session authenticated by a peer certificate or a resolution token (migration
§4.3): it holds neither read nor write and may send only the ``mig-*`` requests."""
