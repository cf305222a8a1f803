"""vCPU, crypto-unit, memory and physical I/O actions (spec ldm-xml §5.3, §5.4; C142–C144)."""

from __future__ import annotations

from agent.actions.handlers.objects import CONTENT, ENVELOPE, ResourceAction, on_off, typed
from agent.actions.handlers.objects import resource_handler
from agent.ldm import LdmError
from agent.xmlapi import messages

UNITS = "rasd:AllocationUnits"


def _vcpu(call: str, action: str):
    def apply(m, domain, props, opts):
        count, wcore = typed("cpu", props, UNITS), typed("cpu", props, "wcore") or 0
        if count is None and wcore == 0:
            # §6.2: an ordinary request needs the count; a whole-core one needs wcore > 0.
            raise LdmError(messages.property_required(UNITS, "cpu", action))
        return getattr(m, call)(domain, count, wcore=wcore)
    return ResourceAction("cpu", CONTENT, apply)


def _count(rtype: str, call: str) -> ResourceAction:
    return ResourceAction(rtype, CONTENT, lambda m, domain, props, opts: getattr(m, call)(
        domain, typed(rtype, props, UNITS)), required=(UNITS,))


def _add_io(m, domain, props, opts):
    return m.add_io(domain, props["name"])


def _remove_io(m, domain, props, opts):
    return m.remove_io(domain, props["name"], dry_run=opts.has("-n"))


def _set_io(m, domain, props, opts):
    bus = props["name"]
    if domain is not None and m.io_owner(bus) != domain:
        raise LdmError(messages.not_owned_by("I/O device", bus, domain))
    return m.set_io(bus, on_off(props["iov"], "iov") == "on")


SPECS: dict[str, ResourceAction] = {
    "add-vcpu": _vcpu("add_vcpu", "add-vcpu"),
    "set-vcpu": _vcpu("set_vcpu", "set-vcpu"),
    "remove-vcpu": _vcpu("remove_vcpu", "remove-vcpu"),
    "add-mau": _count("mau", "add_mau"),
    "set-mau": _count("mau", "set_mau"),
    "remove-mau": _count("mau", "remove_mau"),
    "add-memory": _count("memory", "add_memory"),
    "set-memory": _count("memory", "set_memory"),
    "remove-memory": _count("memory", "remove_memory"),
    "add-io": ResourceAction("physio_device", CONTENT, _add_io, required=("name",)),
    "remove-io": ResourceAction("physio_device", CONTENT, _remove_io, required=("name",)),
    "set-io": ResourceAction("physio_device", ENVELOPE, _set_io, required=("name", "iov"),
                             setting=True),
}

HANDLERS = {action: resource_handler(action, spec) for action, spec in SPECS.items()}
