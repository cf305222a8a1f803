"""Domain lifecycle and properties (spec ldm-xml §5.2; C116, C125, C126, C136–C141, C163).

``add-domain`` also replays a ``list-constraints`` Content: after the domain is created
with its ``ldom_info`` properties, each resource Item is applied in the §5.2 order by the
add- (``set-vconsole`` for ``console``, ``set-domain`` for ``policy``) action of its type,
all in one transaction. Only the ``add-domain`` domain event is emitted for a replay: §4.4
says so explicitly, and the resource Items are part of creating the domain, not changes to
an existing one that a console would need to hear about separately.
"""

from __future__ import annotations

from typing import Any, Callable

from agent.actions.dispatch import CommandError, Options
from agent.actions.handlers import quantities, settings, vio
from agent.actions.handlers.objects import (CONTENT, Refused, ResourceAction, answer,
                                            apply_items, check_items, find_target, on_off)
from agent.ldm import events as ldm_events
from agent.ldm.model import ACTIVE, BOUND, CONTROL_DOMAIN
from agent.xmlapi import messages, resources
from agent.xmlapi.model import Command, Content, Data, Envelope, ObjectResult

# ldom_info wire keys → the manager's set-domain keywords.
_DOMAIN_KEYS = {"rasd:Address": "mac", "hostid": "hostid", "master": "master",
                "failure-policy": "failure_policy", "extended-mapin-space": "extended_mapin_space",
                "rc-add-policy": "rc_add_policy", "perf-counters": "perf_counters",
                "cpu-arch": "cpu_arch", "uuid": "uuid"}


def _domain_props(props: dict[str, str]) -> dict[str, Any]:
    """Manager keywords for ldom_info properties; an empty value (set-domain) means reset."""
    out: dict[str, Any] = {}
    for key, text in props.items():
        if key not in _DOMAIN_KEYS:
            continue  # migration-only keys never reach here (check_item refuses them)
        if text == "":
            out[_DOMAIN_KEYS[key]] = None
        elif key == "extended-mapin-space":
            out[_DOMAIN_KEYS[key]] = on_off(text, key)
        else:
            out[_DOMAIN_KEYS[key]] = text
    return out


def _set_ldom_info(m, domain, props, opts):
    return m.set_domain(domain, **_domain_props(props))


def _set_policy(m, domain, props, opts):
    rest = {k: (on_off(v) if k == "policy_enable" and v else v)
            for k, v in props.items() if k != "policy_name"}
    return m.set_policy(domain, props["policy_name"], rest)


_SET_DOMAIN = {
    "ldom_info": ResourceAction("ldom_info", CONTENT, _set_ldom_info, setting=True),
    "policy": ResourceAction("policy", CONTENT, _set_policy, ("policy_name",), setting=True),
}

# add-domain replay: the action applying each resource type, in the §5.2 order.
_REPLAY: dict[str, tuple[str, ResourceAction]] = {
    "cpu": ("add-vcpu", quantities.SPECS["add-vcpu"]),
    "mau": ("add-mau", quantities.SPECS["add-mau"]),
    "memory": ("add-memory", quantities.SPECS["add-memory"]),
    "physio_device": ("add-io", quantities.SPECS["add-io"]),
    "var": ("add-variable", settings.SPECS["add-variable"]),
    "vcc": ("add-vconscon", vio.SPECS["add-vconscon"]),
    "vds": ("add-vdiskserver", vio.SPECS["add-vdiskserver"]),
    "vds_volume": ("add-vdiskserverdevice", vio.SPECS["add-vdiskserverdevice"]),
    "vsw": ("add-vswitch", vio.SPECS["add-vswitch"]),
    "network": ("add-vnet", vio.SPECS["add-vnet"]),
    "disk": ("add-vdisk", vio.SPECS["add-vdisk"]),
    "console": ("set-vconsole", vio.SPECS["set-vconsole"]),
    "policy": ("set-domain", _SET_DOMAIN["policy"]),
}
_ORDER = list(_REPLAY)


def _add_domain(ctx, cmd: Command, opts: Options) -> list[ObjectResult]:
    manager = ctx.manager

    def work(data: Data):
        target = find_target(manager, "add-domain", data, CONTENT)
        required = {rtype: spec.required for rtype, (_, spec) in _REPLAY.items()}
        problems = check_items("add-domain", target.items, required, setting=False)
        infos = [it for it in target.items if it.rtype == "ldom_info"]
        if len(infos) > 1:
            problems.append(messages.duplicate_property("ldom_info", "Content"))
        if problems:
            raise Refused(problems)
        name = target.domain
        assert name is not None
        info = resources.usable_props("add-domain", infos[0], setting=False) if infos else {}
        outcome = manager.add_domain(name, **_domain_props(info))
        rest = sorted((it for it in target.items if it.rtype != "ldom_info"),
                      key=lambda it: _ORDER.index(it.rtype))
        for it in rest:
            action, spec = _REPLAY[it.rtype]
            outcome.extend(apply_items(manager, action, spec, name, [it], Options()))
        return outcome

    return [answer(ctx, d, lambda d=d: work(d), keep=_domain_events_only) for d in cmd.data]


def _domain_events_only(ev: ldm_events.Event) -> bool:
    return ev.category == ldm_events.DOMAIN


def _set_domain(ctx, cmd: Command, opts: Options) -> list[ObjectResult]:
    manager = ctx.manager

    def work(data: Data):
        target = find_target(manager, "set-domain", data, CONTENT)
        required = {rtype: spec.required for rtype, spec in _SET_DOMAIN.items()}
        problems = check_items("set-domain", target.items, required, setting=True)
        if not problems and not target.items:
            problems = [messages.resource_required("ldom_info", "set-domain")]
        if problems:
            raise Refused(problems)
        outcome = ldm_events.Outcome()
        for it in target.items:
            outcome.extend(apply_items(manager, "set-domain", _SET_DOMAIN[it.rtype],
                                       target.domain, [it], opts))
        return outcome

    # §4.3: set-domain emits no domain event (and the manager reports none).
    return [answer(ctx, d, lambda d=d: work(d)) for d in cmd.data]


# -- the state transitions and their -a forms ------------------------------------------------

Select = Callable[[Any], list[str]]


def transition(action: str, call: Callable[[Any, str, Options], ldm_events.Outcome],
                select_all: Select | None = None):
    """A handler for an action on named domains (one Content per data), or with ``-a`` on
    every domain ``select_all`` picks, answered per domain (§3.5, C116)."""

    def handle(ctx, cmd: Command, opts: Options) -> list[ObjectResult]:
        manager = ctx.manager
        if select_all is not None and opts.has("-a"):
            if any(d.envelope is not None and d.envelope.contents for d in cmd.data):
                raise CommandError(messages.all_with_names(action))
            datas = [Data(Envelope([Content(n)])) for n in select_all(manager)]
            return [_one(ctx, d, opts) for d in datas] or [ObjectResult(None)]
        return [_one(ctx, d, opts) for d in cmd.data]

    def _one(ctx, data: Data, opts: Options) -> ObjectResult:
        def work():
            target = find_target(ctx.manager, action, data, CONTENT)
            problems = check_items(action, target.items, {}, setting=False)
            if problems:
                raise Refused(problems)
            assert target.domain is not None
            return call(ctx.manager, target.domain, opts)
        return answer(ctx, data, work)

    return handle


def _in_state(state: str, control: bool) -> Select:
    return lambda m: [n for n in m.domain_names()
                      if m.domains[n].state == state and (control or n != CONTROL_DOMAIN)]


HANDLERS = {
    "add-domain": _add_domain,
    "set-domain": _set_domain,
    "remove-domain": transition(
        "remove-domain", lambda m, n, o: m.remove_domain(n),
        lambda m: [n for n in m.domain_names() if n != CONTROL_DOMAIN]),
    "start-domain": transition("start-domain", lambda m, n, o: m.start_domain(n),
                                _in_state(BOUND, control=True)),
    "stop-domain": transition("stop-domain", lambda m, n, o: m.stop_domain(n, o.has("-f")),
                               _in_state(ACTIVE, control=False)),
    "bind-domain": transition("bind-domain", lambda m, n, o: m.bind_domain(n, o.has("-f"))),
    "unbind-domain": transition("unbind-domain", lambda m, n, o: m.unbind_domain(n)),
}
