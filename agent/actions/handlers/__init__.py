"""Action handlers, one module per family; ``HANDLERS`` maps action names to them.

Every action of the table has a handler; ``migration`` (``migrate-domain`` and
``cancel-operation``, which it hands to ``pending`` for ``reconf``/``memdr``) comes last.
"""

from __future__ import annotations

from agent.actions.handlers import (devices, lifecycle, lists, migration, pending,
                                    quantities, registration, settings, unsupported, vio)
from agent.actions.table import ACTIONS

HANDLERS = {}
for _module in (lifecycle, quantities, vio, settings, lists, devices, pending, registration,
                unsupported, migration):
    HANDLERS.update(_module.HANDLERS)

_unknown = set(HANDLERS) - set(ACTIONS)
assert not _unknown, f"handlers for actions missing from the table: {sorted(_unknown)}"
