"""Variable and SP-configuration actions (spec ldm-xml §5.9, §5.10; C149, C150).

Each ``var`` Item is applied on its own inside the data's transaction, so a duplicate or
unknown name anywhere leaves every variable of the data unchanged; the per-variable events
are merged into one event per data (``events.translate``).
"""

from __future__ import annotations

from agent.actions.handlers.objects import (CONTENT, ENVELOPE, Refused, ResourceAction, answer,
                                            check_items, find_target, resource_handler)
from agent.xmlapi import messages
from agent.xmlapi.model import Command, Data, ObjectResult


def _add_var(m, domain, props, opts):
    return m.add_variables(domain, {props["name"]: props["value"]})


def _set_var(m, domain, props, opts):
    return m.set_variables(domain, {props["name"]: props["value"]})


def _remove_var(m, domain, props, opts):
    return m.remove_variables(domain, [props["name"]])


def _set_spconfig(m, domain, props, opts):
    return m.set_spconfig(props["spconfig_name"])


def _remove_spconfig(m, domain, props, opts):
    return m.remove_spconfig(props["spconfig_name"], autosave_only=opts.has("-r"))


SPECS: dict[str, ResourceAction] = {
    "add-variable": ResourceAction("var", CONTENT, _add_var, ("name", "value")),
    "set-variable": ResourceAction("var", CONTENT, _set_var, ("name", "value"), setting=True),
    "remove-variable": ResourceAction("var", CONTENT, _remove_var, ("name",)),
    "set-spconfig": ResourceAction("spconfig", ENVELOPE, _set_spconfig, ("spconfig_name",)),
    "remove-spconfig": ResourceAction("spconfig", ENVELOPE, _remove_spconfig,
                                      ("spconfig_name",)),
}


def _add_spconfig(ctx, cmd: Command, opts) -> list[ObjectResult]:
    """Save under the Item's name; with ``-r NAME`` restore NAME from its autosave copy,
    the Item then being optional (it must name NAME if given)."""
    manager = ctx.manager
    restore = opts.flags.get("-r")

    def work(data: Data):
        target = find_target(manager, "add-spconfig", data, ENVELOPE)
        problems = check_items("add-spconfig", target.items, {"spconfig": ("spconfig_name",)},
                               setting=False)
        names = [it.get("spconfig_name") for it in target.items if it.rtype == "spconfig"]
        if not problems and restore is None and len(names) != 1:
            problems = [messages.resource_required("spconfig", "add-spconfig")]
        if not problems and restore is not None and any(n != restore for n in names):
            problems = [messages.invalid_value(n or "", "spconfig_name")
                        for n in names if n != restore]
        if problems:
            raise Refused(problems)
        if restore is not None:
            return manager.restore_spconfig(restore)
        return manager.add_spconfig(names[0])

    return [answer(ctx, data, lambda d=data: work(d)) for data in cmd.data]


HANDLERS = {action: resource_handler(action, spec) for action, spec in SPECS.items()}
HANDLERS["add-spconfig"] = _add_spconfig
