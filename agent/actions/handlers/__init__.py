"""Action handlers, one module per family; ``HANDLERS`` maps action names to them."""

from __future__ import annotations

from agent.actions.handlers import lists, registration, unsupported
from agent.actions.table import ACTIONS

HANDLERS = {}
for _module in (lists, registration, unsupported):
    HANDLERS.update(_module.HANDLERS)

_unknown = set(HANDLERS) - set(ACTIONS)
assert not _unknown, f"handlers for actions missing from the table: {sorted(_unknown)}"
