"""``list-devices`` (spec ldm-xml §6.22; C160, C161): one response data per device class.

An empty data selects every class (``-B``: the classes that can be evacuated, cores and
memory); otherwise the selector Items of the data pick classes in request order, and an
unknown class fails its own data only.
"""

from __future__ import annotations

from agent.ldm import LdmError
from agent.ldm.queries import DEVICE_CLASSES
from agent.xmlapi import messages, resources
from agent.xmlapi.model import VIRTUAL_HARDWARE, Command, Envelope, Item, ObjectResult, Section

_BLACKLIST_CLASSES = ("core", "memory")


def _list_devices(ctx, cmd: Command, opts) -> list[ObjectResult]:
    manager = ctx.manager
    every, blacklisted = opts.has("-a"), opts.has("-B")
    results: list[ObjectResult] = []
    for data in cmd.data:
        if data.envelope is None:
            classes = list(_BLACKLIST_CLASSES if blacklisted else DEVICE_CLASSES)
        else:
            classes = [it.rtype for s in data.envelope.sections for it in s.items]
            classes += [it.rtype for c in data.envelope.contents for it in c.items()]
        for cls in classes:
            try:
                if cls not in resources.ACTION_RESOURCES["list-devices"]:
                    raise LdmError(messages.wrong_resource(cls, "list-devices"))
                rows = manager.devices(cls, include_bound=every, blacklisted=blacklisted)
            except LdmError as err:
                selector = Envelope([Section(VIRTUAL_HARDWARE, [Item(cls)])])
                results.append(ObjectResult(selector, ok=False, messages=[str(err)]))
                continue
            section = resources.device_section(cls, [dict(r.props) for r in rows],
                                               blacklisted=blacklisted)
            results.append(ObjectResult(Envelope([section])))
    return results or [ObjectResult(None)]


HANDLERS = {"list-devices": _list_devices}
