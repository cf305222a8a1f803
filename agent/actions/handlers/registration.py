"""Event registration actions (spec ldm-xml §4.1, §5.12): three switches per session."""

from __future__ import annotations

from agent.xmlapi.model import DOMAIN, HARDWARE, RESOURCE, Command, ObjectResult

_ALL = {DOMAIN, RESOURCE, HARDWARE}


def _switcher(categories: set[str], on: bool):
    def handle(ctx, cmd: Command, opts) -> list[ObjectResult]:
        if on:
            ctx.switches |= categories
        else:
            ctx.switches -= categories
        # The registration form: one data holding only a success response per request data.
        return [ObjectResult(envelope=None) for _ in cmd.data or [None]]
    return handle


HANDLERS = {
    "reg-domain-events": _switcher({DOMAIN}, True),
    "unreg-domain-events": _switcher({DOMAIN}, False),
    "reg-resource-events": _switcher({RESOURCE}, True),
    "unreg-resource-events": _switcher({RESOURCE}, False),
    "reg-hardware-events": _switcher({HARDWARE}, True),
    "unreg-hardware-events": _switcher({HARDWARE}, False),
    "reg-all-events": _switcher(_ALL, True),
    "unreg-all-events": _switcher(_ALL, False),
}
