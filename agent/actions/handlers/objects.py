"""How a non-list action answers each request ``data`` (spec ldm-xml §3.4, §3.7, §5.1).

One ``data`` is one object. Its target is found by the action's placement (a domain's
``Content``, or resources directly under the ``Envelope``), every Item is checked (resource
type allowed for the action, the Item-level rules of §2.6, required keys) and only then
applied, inside one manager transaction: the manager checks each Item against the state the
earlier Items left and refuses without changing anything, so a failing Item leaves the whole
``data`` unapplied. A success echoes the request Envelope with the warnings and notices of the
manager and emits the events of the change; a failure echoes it with the reasons and emits
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from agent.actions.dispatch import Options
from agent.actions.handlers.events import translate
from agent.ldm import LdmError, Outcome
from agent.xmlapi import messages, resources, values
from agent.xmlapi.model import Command, Data, Item, ObjectResult

CONTENT = "Content"    # the domain is the data's one Content (§5.1 "Takes")
ENVELOPE = "Envelope"  # resources under the Envelope; a Content, if given, must own them

Apply = Callable[[Any, "str | None", dict[str, str], Options], Outcome]


class Refused(Exception):
    """An object-level failure found before anything was applied; carries every reason."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class ResourceAction:
    """A resource action: the Item type it reads, where, and how one Item is applied.

    ``apply(manager, domain, props, opts)`` gets the Item's usable properties keyed by
    canonical wire name (``usable_props``); ``domain`` is None for an Envelope-placed
    resource without a Content. ``required`` keys must be present; ``setting`` is True for
    set-* actions, where an empty value resets the property (§2.6).
    """

    rtype: str
    placement: str
    apply: Apply
    required: tuple[str, ...] = ()
    setting: bool = False


@dataclass
class Target:
    """The domain a data names (if any) and every Item it carries."""

    domain: str | None
    items: list[Item]


def find_target(manager, action: str, data: Data, placement: str) -> Target:
    """The data's domain and Items; raises Refused for a missing or unknown domain."""
    envelope = data.envelope
    if envelope is None:
        if placement == CONTENT:
            raise Refused([messages.domain_required(action)])
        return Target(None, [])
    contents = envelope.contents
    if len(contents) > 1:
        raise Refused([messages.one_domain_per_data(action)])
    if not contents and placement == CONTENT:
        raise Refused([messages.domain_required(action)])
    domain = contents[0].name if contents else None
    # add-domain names the domain it creates; the manager refuses a name in use.
    if domain is not None and domain not in manager.domains and action != "add-domain":
        raise Refused([messages.unknown_domain(domain)])
    items = [it for c in contents for it in c.items()]
    items += [it for s in envelope.sections for it in s.items]
    return Target(domain, items)


def check_items(action: str, items: list[Item], required: dict[str, tuple[str, ...]],
                setting: bool) -> list[str]:
    """Every problem of the Items (§2.6, §5.1): wrong type, Item rules, missing keys."""
    allowed = resources.ACTION_RESOURCES[action]
    problems: list[str] = []
    for it in items:
        if it.rtype not in allowed:
            problems.append(messages.wrong_resource(it.rtype or "(none)", action))
            continue
        errors = resources.check_item(action, it, setting=setting)
        if not errors:
            props = resources.usable_props(action, it, setting=setting)
            errors = [messages.property_required(k, it.rtype, action)
                      for k in required.get(it.rtype, ()) if k not in props]
        problems += errors
    return problems


def answer(ctx, data: Data, work: Callable[[], Outcome],
           keep: Callable[[Any], bool] = lambda ev: True) -> ObjectResult:
    """Run ``work`` for one data in a transaction; emit the kept events on success."""
    try:
        with ctx.manager.transaction():
            outcome = work()
    except Refused as refusal:
        return ObjectResult(data.envelope, ok=False, messages=refusal.reasons)
    except LdmError as err:
        return ObjectResult(data.envelope, ok=False, messages=[str(err)])
    except values.InvalidValue as bad:
        # A value the Item check let through (an empty "reset" where the key has no default):
        # the transaction is rolled back and the data fails with the value's message.
        return ObjectResult(data.envelope, ok=False, messages=[bad.message])
    for event in translate([ev for ev in outcome.events if keep(ev)]):
        ctx.emit(event)
    return ObjectResult(data.envelope, messages=list(outcome.messages))


def apply_items(manager, action: str, spec: ResourceAction, domain: str | None,
                items: list[Item], opts: Options) -> Outcome:
    """Apply checked Items in order with ``spec``; the outcomes are merged."""
    outcome = Outcome()
    for it in items:
        props = resources.usable_props(action, it, setting=spec.setting)
        outcome.extend(spec.apply(manager, domain, props, opts))
    return outcome


def resource_handler(action: str, spec: ResourceAction):
    """The handler of a resource action: each data checked, then applied (§3.7)."""

    def handle(ctx, cmd: Command, opts: Options) -> list[ObjectResult]:
        manager = ctx.manager

        def work(data: Data) -> Outcome:
            target = find_target(manager, action, data, spec.placement)
            problems = check_items(action, target.items, {spec.rtype: spec.required},
                                   spec.setting)
            if not problems and not any(it.rtype == spec.rtype for it in target.items):
                problems = [messages.resource_required(spec.rtype, action)]
            if problems:
                raise Refused(problems)
            return apply_items(manager, action, spec, target.domain, target.items, opts)

        return [answer(ctx, data, lambda d=data: work(d)) for data in cmd.data]

    return handle


# -- typed values for the manager ----------------------------------------------------------

def typed(rtype: str, props: dict[str, str], key: str) -> Any:
    """The parsed value of ``key`` (ints, sizes, lists...), or None when absent or empty."""
    text = props.get(key)
    if text is None or text == "":
        return None
    return resources.parse_value(rtype, key, text)


def on_off(text: str, key: str = "on/off") -> str:
    """An on/off value in the manager's spelling; an invalid one raises InvalidValue naming
    ``key`` (an empty value included: it is not a reset for an on/off switch)."""
    return values.format_on_off(values.parse_on_off(text, key))


def check_owner(manager, domain: str | None, service: str) -> None:
    """For an Envelope action given a Content: the service must belong to that domain."""
    if domain is not None and manager.service_owner(service) != domain:
        raise LdmError(messages.not_owned_by("Service", service, domain))
