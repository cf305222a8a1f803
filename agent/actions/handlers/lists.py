"""The list actions (spec ldm-xml §3.5, §6.19–§6.23): manager views → list-output Items.

The manager returns plain values; ``views`` and ``agent.xmlapi.resources`` turn them into
ordered, formatted Items. Here we only decide which objects a request asks for and how the
answer is split into ``data``: an empty request data gets one response data per object, a
data naming objects gets them filled in (an unknown one fails that data only), and a
request finding no object at all gets one data holding only a success response (C114, C115).
"""

from __future__ import annotations

from typing import Callable

from agent.actions.handlers import views
from agent.ldm import LdmError
from agent.xmlapi import messages, resources
from agent.xmlapi.model import (RESOURCE_ALLOCATION, Command, Data, Envelope, Item,
                                ObjectResult, Section)

Build = Callable[[object, str], Envelope]  # (session context, domain name) -> Envelope


def _per_domain(action: str, build: Build, everyone: Callable[[object], list[str]] | None = None):
    """A handler answering one data per domain (of ``everyone``, default all) for an empty
    request data, else the named domains of each data filled in."""

    def handle(ctx, cmd: Command, opts) -> list[ObjectResult]:
        manager = ctx.manager
        results: list[ObjectResult] = []
        for data in cmd.data:
            names = _named_domains(data)
            if not names:
                listed = everyone(manager) if everyone else manager.domain_names()
                results.extend(ObjectResult(build(ctx, n)) for n in listed)
                continue
            problems = _problems(manager, action, data)
            if problems:
                results.append(ObjectResult(data.envelope, ok=False, messages=problems))
                continue
            parts = [part for n in names for part in build(ctx, n).parts]
            results.append(ObjectResult(Envelope(parts)))
        return results or [ObjectResult(None)]

    return handle


def _named_domains(data: Data) -> list[str]:
    if data.envelope is None:
        return []
    return [c.name for c in data.envelope.contents]


def _problems(manager, action: str, data: Data) -> list[str]:
    """Unknown domains, then Items of a type the action does not take, in request order."""
    assert data.envelope is not None
    allowed = resources.ACTION_RESOURCES[action]
    contents = data.envelope.contents
    out = [messages.unknown_domain(c.name) for c in contents if c.name not in manager.domains]
    for content in contents:
        out += [messages.wrong_resource(it.rtype, action)
                for it in content.items() if it.rtype not in allowed]
    return out


# -- per-domain views ----------------------------------------------------------------------

def _migration_keys(ctx, name: str) -> list[tuple[str, str]]:
    """The migration keys of ``name`` while migration information is attached to it on this
    agent (C155, C157): ``progress``, ``status``, ``source`` and the further keys."""
    migrations = getattr(ctx, "migrations", None)
    return (migrations.listing(name) or []) if migrations is not None else []


def _domain_summary(ctx, name: str) -> Envelope:
    props = dict(ctx.manager.summary(name).list_domain_props())
    props.update(_migration_keys(ctx, name))
    item = resources.item_for_output("ldom_info", props, resources.LIST_DOMAIN)
    return resources.domain_envelope(name, [item])


def _domain_bindings(ctx, name: str) -> Envelope:
    items = views.binding_items(ctx.manager.bindings(name), _migration_keys(ctx, name))
    return resources.domain_envelope(name, items)


def _domain_constraints(ctx, name: str) -> Envelope:
    return resources.domain_envelope(name, views.constraint_items(ctx.manager.constraints(name)))


def _domain_services(ctx, name: str) -> Envelope:
    items = views.service_items(ctx.manager.constraints(name))
    return resources.domain_envelope(name, items)


def _domain_variables(ctx, name: str) -> Envelope:
    return _variables_envelope(name, ctx.manager.variables(name))


def _variables_envelope(name: str, pairs: list[tuple[str, str]]) -> Envelope:
    items = [resources.item_for_output("var", {"name": n, "value": v}, resources.LIST_VARIABLE)
             for n, v in pairs]
    return resources.domain_envelope(name, items)


# -- list-variable: filters per Content (§6.23, C164) ---------------------------------------

def _list_variable(ctx, cmd: Command, opts) -> list[ObjectResult]:
    manager = ctx.manager
    results: list[ObjectResult] = []
    for data in cmd.data:
        if data.envelope is None or not data.envelope.contents:
            results.extend(ObjectResult(_domain_variables(ctx, n))
                           for n in manager.domain_names())
            continue
        problems = _problems(manager, "list-variable", data)
        if problems:
            results.append(ObjectResult(data.envelope, ok=False, messages=problems))
            continue
        parts = []
        try:
            for content in data.envelope.contents:
                wanted = [it.get("name") or "" for it in content.items()]
                pairs = manager.variables(content.name, wanted or None)
                parts += _variables_envelope(content.name, pairs).parts
        except LdmError as err:
            results.append(ObjectResult(data.envelope, ok=False, messages=[str(err)]))
            continue
        results.append(ObjectResult(Envelope(parts)))
    return results or [ObjectResult(None)]


# -- list-spconfig (§6.13, C149, C162) -------------------------------------------------------

def _list_spconfig(ctx, cmd: Command, opts) -> list[ObjectResult]:
    manager = ctx.manager
    autosave = opts.has("-r")
    only = opts.flags.get("-r")
    results: list[ObjectResult] = []
    for data in cmd.data:
        items = _spconfig_items(data)
        try:
            configs = manager.spconfigs(autosave=autosave, name=only)
        except LdmError as err:
            results.append(ObjectResult(data.envelope, ok=False, messages=[str(err)]))
            continue
        if not items:
            results.extend(ObjectResult(resources.spconfig_envelope(n, s)) for n, s in configs)
            continue
        status = dict(configs)
        problems = [messages.wrong_resource(it.rtype, cmd.action)
                    for it in items if it.rtype != "spconfig"]
        names = [it.get("spconfig_name") or "" for it in items if it.rtype == "spconfig"]
        problems += [messages.unknown_spconfig(n) for n in names if n not in status]
        if problems:
            results.append(ObjectResult(data.envelope, ok=False, messages=problems))
            continue
        listed = [resources.item_for_output(
            "spconfig", {"spconfig_name": n, "spconfig_status": status[n]},
            resources.LIST_SPCONFIG) for n in names]
        results.append(ObjectResult(Envelope([Section(RESOURCE_ALLOCATION, listed)])))
    return results or [ObjectResult(None)]


def _spconfig_items(data: Data) -> list[Item]:
    if data.envelope is None:
        return []
    return [it for s in data.envelope.sections for it in s.items] + [
        it for c in data.envelope.contents for it in c.items()]


HANDLERS = {
    "list-domain": _per_domain("list-domain", _domain_summary),
    "list-bindings": _per_domain("list-bindings", _domain_bindings),
    "list-constraints": _per_domain("list-constraints", _domain_constraints),
    "list-services": _per_domain("list-services", _domain_services,
                              everyone=lambda m: m.service_domains()),
    "list-variable": _list_variable,
    "list-spconfig": _list_spconfig,
}
