"""Action handlers, one module per family; ``HANDLERS`` maps action names to them."""

from __future__ import annotations

from agent.actions.handlers import registration
from agent.actions.table import ACTIONS

HANDLERS = {}
for _module in (registration,):
    HANDLERS.update(_module.HANDLERS)

_unknown = set(HANDLERS) - set(ACTIONS)
assert not _unknown, f"handlers for actions missing from the table: {sorted(_unknown)}"
