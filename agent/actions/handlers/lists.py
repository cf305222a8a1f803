"""The list actions (spec ldm-xml §3.5, §6.19–§6.23): manager views → list-output Items.

The manager returns plain values; ``agent.xmlapi.resources`` orders and formats them. Here we
only decide which objects a request asks for and how the answer is split into ``data``.
"""

from __future__ import annotations

from typing import Callable


from agent.xmlapi import messages, resources
from agent.xmlapi.model import Command, Data, Envelope, ObjectResult


def _per_domain(build: Callable[[object, str], Envelope]):
    """A handler answering one data per domain for an empty request data, else the named
    domains of each data filled in (an unknown one fails that data only)."""

    def handle(ctx, cmd: Command, opts) -> list[ObjectResult]:
        manager = ctx.manager
        results: list[ObjectResult] = []
        for data in cmd.data:
            names = _named_domains(data)
            if not names:
                results.extend(ObjectResult(build(manager, n)) for n in manager.domain_names())
                continue
            missing = [n for n in names if n not in manager.domains]
            if missing:
                results.append(ObjectResult(data.envelope, ok=False,
                                            messages=[messages.unknown_domain(n) for n in missing]))
                continue
            parts = [part for n in names for part in build(manager, n).parts]
            results.append(ObjectResult(Envelope(parts)))
        return results or [ObjectResult(None)]

    return handle


def _named_domains(data: Data) -> list[str]:
    if data.envelope is None:
        return []
    return [c.name for c in data.envelope.contents]


def _domain_summary(manager, name: str) -> Envelope:
    summary = manager.summary(name)
    item = resources.item_for_output("ldom_info", dict(summary.list_domain_props()),
                                     resources.LIST_DOMAIN)
    return resources.domain_envelope(name, [item])


HANDLERS = {
    "list-domain": _per_domain(_domain_summary),
}


