"""The ldm sub-commands of ``ldmx``: the CLI table and the requests it builds.

The sub-commands are derived from the action table (:data:`agent.actions.table.ACTIONS`):
every action whose ``cli`` column names an ldm command gets a sub-command of that name. The
one table here, :data:`CLI`, adds what the action table does not say: further ldm names and
aliases, the operand slots, the resource type the operands describe and the ``prop=value``
names with the XML keys they stand for (spec ldm-xml §5, §6). ``remove-X`` is also ``rm-X``
and ``list-X`` also ``ls-X``, as in ldm.

Operand slots: ``ldom`` (a domain: the object is that domain's ``Content``), ``ldoms`` (zero
or more domains, one ``data`` each; ``-a`` instead where the action takes it), ``units`` (a
quantity), ``vol@svc`` (volume and disk server), ``vars=`` / ``vars`` / ``vars*`` (variables
as ``name=value``, names, or optional names), ``classes`` (``list-devices`` classes), ``word``
(the operation word of ``cancel-operation``), and otherwise the XML key the operand fills. A
trailing ``?`` makes a slot optional. Without an ``ldom`` slot the Item is identified without
a domain (a ``Section`` directly under the ``Envelope``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from agent.actions.table import ACTIONS, OPTIONAL, REQUIRED, Action
from agent.cli import requests
from agent.cli.answers import read_envelope
from agent.xmlapi import model

VARIADIC = {"ldoms": 0, "vars=": 1, "vars": 1, "vars*": 0, "classes": 0}

# list-devices class words (ldm) -> resource types (XML).
DEVICE_CLASSES = {"core": "core", "cpu": "cpu", "crypto": "mau", "mau": "mau",
                  "memory": "memory", "mem": "memory", "io": "physio_device"}

_DOMAIN = {"mac-addr": "rasd:Address", "hostid": "hostid", "failure-policy": "failure-policy",
           "extended-mapin-space": "extended-mapin-space", "master": "master",
           "rc-add-policy": "rc-add-policy", "perf-counters": "perf-counters",
           "cpu-arch": "cpu-arch"}
_VSW = {"mac-addr": "rasd:Address", "net-dev": "dev_path", "default-vlan-id": "default-vlan-id",
        "pvid": "pvid", "vid": "vid", "mode": "mode", "linkprop": "linkprop", "mtu": "mtu",
        "inter-vnet-link": "inter_vnet_link"}
_VNET = {"mac-addr": "rasd:Address", "mode": "mode", "pvid": "pvid", "vid": "vid",
         "linkprop": "linkprop", "mtu": "mtu"}
PORT_RANGE = "port-range"  # one CLI property that is two XML keys (min_port, max_port)


class UsageError(Exception):
    """The command line is wrong; nothing was sent."""


@dataclass(frozen=True)
class Sub:
    """One row of the CLI table: how an ldm sub-command fills the request of its action."""

    action: str
    operands: tuple[str, ...] = ()
    rtype: str | None = None
    props: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    help: str = ""
    flag_help: dict[str, str] = field(default_factory=dict)

    @property
    def row(self) -> Action:
        return ACTIONS[self.action]

    @property
    def name(self) -> str:
        """The ldm name: the first word of the action table's ``cli`` column."""
        return self.row.cli.split()[0]

    def names(self) -> list[str]:
        """Every name the sub-command answers to, the ldm name first."""
        names = [self.name, *self.aliases, self.action]
        for n in list(names):
            for long, short in (("remove-", "rm-"), ("list-", "ls-")):
                if n.startswith(long):
                    names.append(short + n[len(long):])
        return list(dict.fromkeys(names))


def _s(action: str, operands: str = "", rtype: str | None = None, props: dict | None = None,
       aliases: str = "", help: str = "", **flag_help: str) -> Sub:
    return Sub(action, tuple(operands.split()), rtype, dict(props or {}), tuple(aliases.split()),
               help, {"-" + k: v for k, v in flag_help.items()})


CLI: tuple[Sub, ...] = (
    # §5.2 domains (list-domain has its own renderer, see agent.cli.listing)
    _s("add-domain", "ldom", "ldom_info", {**_DOMAIN, "uuid": "uuid"}, "create",
       "create an inactive domain (-i FILE: replay list-constraints -x output)"),
    _s("remove-domain", "ldoms", aliases="destroy", help="destroy inactive domains",
       a="every domain except primary"),
    _s("start-domain", "ldoms", aliases="start", help="start bound domains", a="every bound domain"),
    _s("stop-domain", "ldoms", aliases="stop", help="stop active domains",
       a="every active domain except primary", f="do not wait for the guest to shut down"),
    _s("bind-domain", "ldom", aliases="bind", help="bind a domain's resources",
       f="bind even if back ends fail validation"),
    _s("unbind-domain", "ldom", aliases="unbind", help="release a domain's resources"),
    _s("set-domain", "ldom", "ldom_info", _DOMAIN, help="change domain properties"),
    _s("list-domain", "ldoms", aliases="list ls ls-dom", help="list domains"),
    # §5.3 quantities (-c: whole cores, the wcore property)
    _s("add-vcpu", "units ldom", "cpu", help="add virtual CPUs"),
    _s("set-vcpu", "units ldom", "cpu", help="set the number of virtual CPUs"),
    _s("remove-vcpu", "units ldom", "cpu", help="remove virtual CPUs"),
    _s("add-mau", "units ldom", "mau", aliases="add-mau", help="add cryptographic units"),
    _s("set-mau", "units ldom", "mau", aliases="set-mau", help="set cryptographic units"),
    _s("remove-mau", "units ldom", "mau", aliases="rm-mau", help="remove cryptographic units"),
    _s("add-memory", "units ldom", "memory", aliases="add-mem", help="add memory"),
    _s("set-memory", "units ldom", "memory", aliases="set-mem", help="set the memory size"),
    _s("remove-memory", "units ldom", "memory", aliases="rm-mem", help="remove memory"),
    # §5.4 physical I/O
    _s("add-io", "name ldom", "physio_device", help="assign an I/O device to a domain"),
    _s("remove-io", "name ldom", "physio_device", help="remove an I/O device from a domain",
       n="only check whether the removal would succeed"),
    _s("set-io", "name", "physio_device", {"iov": "iov"}, help="set I/O virtualisation of a bus"),
    # §5.5 virtual disks
    _s("add-vdiskserver", "service_name ldom", "vds", help="add a virtual disk server"),
    _s("remove-vdiskserver", "service_name", "vds", help="remove a virtual disk server",
       f="even if it still has volumes"),
    _s("add-vdiskserverdevice", "block_dev vol@svc", "vds_volume",
       {"options": "vol_opts", "mpgroup": "mpgroup"}, "add-vdsdev",
       "export a back end as a volume", f="allow a back end exported by another volume",
       q="skip back-end validation"),
    _s("remove-vdiskserverdevice", "vol@svc", "vds_volume", help="remove a volume",
       f="even if a virtual disk uses it"),
    _s("add-vdisk", "vdisk_name vol@svc ldom", "disk", {"timeout": "timeout", "id": "id"},
       help="add a virtual disk to a domain"),
    _s("remove-vdisk", "vdisk_name ldom", "disk", help="remove a virtual disk",
       f="even if the guest uses it"),
    # §5.6 virtual network
    _s("add-vswitch", "service_name ldom", "vsw", {**_VSW, "id": "id"}, "add-vswitch",
       "add a virtual switch"),
    _s("set-vswitch", "service_name", "vsw", _VSW, help="change a virtual switch"),
    _s("remove-vswitch", "service_name", "vsw", help="remove a virtual switch",
       f="even if virtual networks are attached"),
    _s("add-vnet", "vnet_name service_name ldom", "network", {**_VNET, "id": "id"},
       help="add a virtual network device"),
    _s("set-vnet", "vnet_name ldom", "network", {**_VNET, "vswitch": "service_name"},
       help="change a virtual network device"),
    _s("remove-vnet", "vnet_name ldom", "network", help="remove a virtual network device",
       f="even if the guest uses it"),
    # §5.7 consoles
    _s("add-vconscon", "service_name ldom", "vcc", {PORT_RANGE: PORT_RANGE},
       help="add a virtual console concentrator"),
    _s("set-vconscon", "service_name", "vcc", {PORT_RANGE: PORT_RANGE},
       help="change a console concentrator's port range"),
    _s("remove-vconscon", "service_name", "vcc", help="remove a console concentrator",
       f="even if consoles are bound to it"),
    _s("set-vconsole", "ldom", "console", {"port": "port", "group": "group",
                                            "service": "service_name", "log": "enable-log"},
       aliases="set-vconsole", help="change a domain's console"),
    # §5.8 data-plane channels (the agent answers "not supported on this platform")
    _s("add-vdpcs", "service_name ldom", "vdpcs", help="add a data-plane channel service"),
    _s("remove-vdpcs", "service_name", "vdpcs", help="remove a data-plane channel service"),
    _s("add-vdpcc", "vdpcc_name service_name ldom", "vdpcc",
       help="add a data-plane channel client"),
    _s("remove-vdpcc", "vdpcc_name ldom", "vdpcc", help="remove a data-plane channel client"),
    # §5.9 SP configurations
    _s("add-spconfig", "spconfig_name?", "spconfig", aliases="add-config",
       help="save the configuration on the SP", r="restore from this autosave copy"),
    _s("set-spconfig", "spconfig_name", "spconfig", aliases="set-config",
       help="select the configuration for the next power-on"),
    _s("remove-spconfig", "spconfig_name", "spconfig", aliases="remove-config rm-config",
       help="delete an SP configuration", r="delete only its autosave copy"),
    _s("list-spconfig", "", aliases="list-config ls-config", help="list SP configurations",
       r="list autosave copies (optionally only NAME)"),
    # §5.10 variables
    _s("add-variable", "vars= ldom", "var", aliases="add-var", help="add variables"),
    _s("set-variable", "vars= ldom", "var", aliases="set-var", help="set variables"),
    _s("remove-variable", "vars ldom", "var", aliases="rm-var", help="remove variables"),
    _s("list-variable", "vars* ldom?", "var", aliases="ls-var", help="list variables"),
    # §5.11 listing
    _s("list-bindings", "ldoms", help="list domains with their bindings"),
    _s("list-constraints", "ldoms", help="list the constraints of domains (-x: as XML)"),
    _s("list-devices", "classes", help="list free devices (classes: core cpu crypto memory io)",
       a="include bound devices", B="list evacuated cores and memory"),
    _s("list-services", "ldoms", help="list the virtual services of domains"),
    # §5.13 pending operations (migrate-domain has its own module, agent.cli.migrate)
    _s("cancel-operation", "ldom", aliases="cancel-op",
       help="cancel a migration, delayed reconfiguration or memory DR",
       f="forced recovery of a migration with an unresolved outcome"),
    _s("remove-reconf", "ldom", aliases="cancel-reconf", help="discard a delayed reconfiguration"),
)

BY_ACTION: dict[str, Sub] = {s.action: s for s in CLI}
BY_NAME: dict[str, Sub] = {n: s for s in CLI for n in s.names()}

# Flags of the CLI only (no XML option): they change how the request is built or shown.
CLI_FLAGS = {
    "add-vcpu": {"-c": "whole cores (the wcore property)"},
    "set-vcpu": {"-c": "whole cores (the wcore property)"},
    "remove-vcpu": {"-c": "whole cores (the wcore property)"},
    "list-constraints": {"-x": "print an add-domain request that recreates the domains"},
}


# -- argument parsing ------------------------------------------------------------------------

def parser_for(sub: Sub, prog: str) -> argparse.ArgumentParser:
    """The argument parser of a sub-command: the action's flags, the CLI-only flags, operands."""
    row = sub.row
    extras = [f"[{flag}]" for flag in CLI_FLAGS.get(sub.action, {}) if flag not in row.cli]
    extras += ["[-i FILE]"] if sub.action == "add-domain" else []
    usage = " ".join(["ldmx", prog.split()[-1], *extras, *row.cli.split()[1:]])
    p = argparse.ArgumentParser(prog=prog, usage=usage, description=(
        f"{sub.help} (XML action {sub.action}, {row.auth} authorization)"))
    for flag in row.flags:
        text = sub.flag_help.get(flag, "")
        kind = row.flag_args.get(flag)
        if kind == REQUIRED:
            p.add_argument(flag, dest=_dest(flag), metavar="NAME", help=text)
        elif kind == OPTIONAL:
            p.add_argument(flag, dest=_dest(flag), nargs="?", const="", metavar="NAME", help=text)
        else:
            p.add_argument(flag, dest=_dest(flag), action="store_true", help=text)
    for flag, text in CLI_FLAGS.get(sub.action, {}).items():
        p.add_argument(flag, dest=_dest(flag), action="store_true", help=text)
    if sub.action == "add-domain":
        p.add_argument("-i", dest="input_file", metavar="FILE",
                       help="create the domains described in FILE (list-constraints -x output)")
    if sub.action == "cancel-operation":
        p.add_argument("word", choices=row.words, help="the operation to cancel")
        p.add_argument("operands", nargs="*", metavar="ldom")
        return p
    if sub.props:
        p.epilog = "properties: " + " ".join(f"{name}=" for name in sub.props)
    p.add_argument("operands", nargs="*", metavar=" ".join(sub.operands) or "operand")
    return p


def _dest(flag: str) -> str:
    return "flag_" + flag.lstrip("-")


def flags_of(sub: Sub, ns: argparse.Namespace) -> list[str]:
    """The XML option tokens for the flags given on the command line."""
    tokens: list[str] = []
    for flag in sub.row.flags:
        value = getattr(ns, _dest(flag))
        if value is None or value is False:
            continue
        tokens.append(flag)
        if isinstance(value, str) and value:
            tokens.append(value)
    if sub.action == "cancel-operation":
        tokens.append(ns.word)
    return tokens


def split_operands(sub: Sub, tokens: list[str]) -> tuple[dict[str, str], dict[str, object]]:
    """Separate ``prop=value`` operands from the others and assign the others to slots."""
    props: dict[str, str] = {}
    rest: list[str] = []
    for token in tokens:
        name, eq, value = token.partition("=")
        if eq and sub.props:
            if name not in sub.props:
                raise UsageError(f"Unknown property {name}")
            if name in props:
                raise UsageError(f"Property {name} given more than once")
            props[name] = value
        else:
            rest.append(token)
    return props, assign(sub.operands, rest)


def assign(slots: tuple[str, ...], tokens: list[str]) -> dict[str, object]:
    """Give each slot its operands: fixed slots around at most one variadic slot."""
    tokens = list(tokens)
    at = next((i for i, s in enumerate(slots) if s in VARIADIC), None)
    head, tail = (slots, ()) if at is None else (slots[:at], slots[at + 1:])
    out: dict[str, object] = {}
    for slot in head:
        if tokens:
            out[slot.rstrip("?")] = tokens.pop(0)
        elif not slot.endswith("?"):
            raise UsageError("Missing operand")
    for slot in reversed(tail):
        if tokens:
            out[slot.rstrip("?")] = tokens.pop()
        elif not slot.endswith("?"):
            raise UsageError("Missing operand")
    if at is not None:
        if len(tokens) < VARIADIC[slots[at]]:
            raise UsageError("Missing operand")
        out[slots[at]], tokens = tokens, []
    if tokens:
        raise UsageError(f"Unexpected operand {tokens[0]}")
    return out


# -- request building ------------------------------------------------------------------------

def build_request(sub: Sub, ns: argparse.Namespace) -> bytes:
    """The request document for a parsed sub-command line (raises :class:`UsageError`)."""
    options = flags_of(sub, ns)
    if getattr(ns, "input_file", None):
        if ns.operands:
            raise UsageError("-i cannot be combined with operands")
        return requests.request(sub.action, replay_data(Path(ns.input_file)))
    props, slots = split_operands(sub, ns.operands)
    return requests.request(sub.action, data_for(sub, ns, props, slots), options=options)


def data_for(sub: Sub, ns: argparse.Namespace, props: dict[str, str],
             slots: dict[str, object]) -> list[model.Envelope | None]:
    """The request's data: one Envelope per object, None for an empty data."""
    if "ldoms" in slots:
        names = slots["ldoms"]
        if getattr(ns, "flag_a", False) and sub.action != "list-devices":
            if names:
                raise UsageError("-a cannot be combined with domain names")
            return [None]
        if not names and "-a" in sub.row.flags:
            raise UsageError("Missing operand")
        return [requests.domain(n) for n in names] or [None]
    if "classes" in slots:
        return [device_selector(slots["classes"])]
    items = items_for(sub, ns, props, slots)
    if "ldom" in slots:
        return [requests.domain(slots["ldom"], items)]
    if sub.operands and sub.operands[-1] == "ldom?":  # list-variable of every domain
        if items:
            raise UsageError("Missing operand")
        return [None]
    return [requests.unowned(items) if items else None]


def items_for(sub: Sub, ns: argparse.Namespace, props: dict[str, str],
              slots: dict[str, object]) -> list[model.Item]:
    """The resource Items the operands and properties describe."""
    if sub.rtype == "var":
        return var_items(slots)
    fields: list[tuple[str, str]] = []
    for slot, value in slots.items():
        if slot == "units":
            whole = getattr(ns, "flag_c", False)
            fields.append(("wcore" if whole else "rasd:AllocationUnits", value))
        elif slot == "vol@svc":
            fields += volume_at_service(value)
        elif slot != "ldom":
            fields.append((slot, value))
    for name, value in props.items():
        fields += port_range(value) if name == PORT_RANGE else [(sub.props[name], value)]
    if not fields and sub.rtype in (None, "ldom_info", "spconfig"):
        return []
    return [requests.item(sub.rtype, fields)] if sub.rtype else []


def var_items(slots: dict[str, object]) -> list[model.Item]:
    """``name=value`` operands (add/set) or names (remove/list) as ``var`` Items."""
    if "vars=" in slots:
        items = []
        for token in slots["vars="]:
            name, eq, value = token.partition("=")
            if not eq or not name:
                raise UsageError(f"Invalid variable {token}: expected name=value")
            items.append(requests.item("var", [("name", name), ("value", value)]))
        return items
    names = slots.get("vars", slots.get("vars*", []))
    return [requests.item("var", [("name", n)]) for n in names]


def volume_at_service(text: str) -> list[tuple[str, str]]:
    """``volume@service`` as the ``vol_name`` and ``service_name`` keys."""
    vol, at, svc = text.partition("@")
    if not (vol and at and svc):
        raise UsageError(f"Invalid volume {text}: expected volume@service")
    return [("vol_name", vol), ("service_name", svc)]


def port_range(text: str) -> list[tuple[str, str]]:
    """``port-range=min-max`` as the ``min_port`` and ``max_port`` keys."""
    low, dash, high = text.partition("-")
    if not (low.isdigit() and dash and high.isdigit()):
        raise UsageError(f"Invalid port-range {text}: expected min-max")
    return [("min_port", low), ("max_port", high)]


def device_selector(words: list[str]) -> model.Envelope | None:
    """``list-devices`` class words as selector Items (None: every class)."""
    items = []
    for word in words:
        if word not in DEVICE_CLASSES:
            raise UsageError(f"Unknown device class {word}; expected one of "
                             + ", ".join(sorted(set(DEVICE_CLASSES) - {"mau", "mem"})))
        items.append(requests.item(DEVICE_CLASSES[word]))
    return requests.unowned(items) if items else None


def replay_data(path: Path) -> list[model.Envelope]:
    """Every domain ``Content`` of an XML file (``list-constraints -x`` output or a saved
    response), one ``data`` each, for ``add-domain -i``."""
    try:
        root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True,
                                                      load_dtd=False)).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise UsageError(f"Unable to read {path}: {exc}") from None
    contents = []
    for envelope in root.iter("{*}Envelope"):
        contents += read_envelope(envelope).contents
    if not contents:
        raise UsageError(f"{path} describes no domain")
    return [model.Envelope([c]) for c in contents]
