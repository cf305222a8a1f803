"""Pending operations: ``cancel-operation`` and ``remove-reconf`` (spec ldm-xml §5.13; C151).

``cancel-operation migration`` belongs to the migration room; until it is wired, no
migration can be in progress on this agent, so it fails for the named domain saying so.
"""

from __future__ import annotations

from agent.actions.handlers.lifecycle import transition
from agent.ldm import LdmError
from agent.xmlapi import messages


def _cancel(m, name: str, opts):
    if opts.word == "reconf":
        return m.cancel_reconf(name)
    if opts.word == "memdr":
        return m.cancel_memdr(name)
    raise LdmError(messages.no_migration_in_progress(name))


HANDLERS = {
    "cancel-operation": transition("cancel-operation", _cancel),
    "remove-reconf": transition("remove-reconf", lambda m, n, o: m.cancel_reconf(n)),
}
