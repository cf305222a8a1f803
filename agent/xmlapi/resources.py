"""The resource property table (spec ldm-xml §6) and everything derived from it.

One table, :data:`RESOURCES`, lists every resource type with its keys in output order: form,
direction (Req/Resp/Both, plus Event), value format, the list outputs that emit the key and,
for request-only keys, the actions that take it. From it come

* the Item-level request rules of §2.6 (:func:`check_item`, :func:`usable_props`),
* which resource types each of the 63 actions takes (:data:`ACTION_RESOURCES`, §5),
* list-output Items in the right key order (:func:`item_for_output`), grouped and ordered
  inside a domain's ``Content`` (:func:`content_for_output`, §6.0) or a device class
  ``Section`` (:func:`device_section`, §6.22),
* event Envelopes (§4.3–§4.6).

Inputs are plain strings and dicts so the domain manager never meets XML types. The ldom_info
keys are listed in the order that makes the §6.19, §6.20 and §6.21 outputs fall out of one
table: the list-domain keys, then the migration keys, then the four list-bindings extras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from agent.xmlapi import messages, model, values

# Directions (§6.0 legend).
REQ = "Req"
RESP = "Resp"
BOTH = "Both"

# Output views: the list actions, the -B form of list-devices, and events.
LIST_DOMAIN = "list-domain"
LIST_BINDINGS = "list-bindings"
LIST_CONSTRAINTS = "list-constraints"
LIST_DEVICES = "list-devices"
LIST_DEVICES_B = "list-devices -B"
LIST_SERVICES = "list-services"
LIST_VARIABLE = "list-variable"
LIST_SPCONFIG = "list-spconfig"
EVENT = "event"
VIEWS = (LIST_DOMAIN, LIST_BINDINGS, LIST_CONSTRAINTS, LIST_DEVICES, LIST_DEVICES_B,
         LIST_SERVICES, LIST_VARIABLE, LIST_SPCONFIG, EVENT)

_LISTS = frozenset({LIST_BINDINGS, LIST_CONSTRAINTS})
_SERVICES = _LISTS | {LIST_SERVICES}


@dataclass(frozen=True)
class Key:
    """One property of a resource type (a row of a §6 table)."""

    name: str                                  # wire spelling: "uuid", "rasd:Address", gprop key
    dir: str = BOTH                            # REQ, RESP or BOTH
    fmt: str = "text"                          # value format, see _parse_formatted
    views: frozenset[str] = frozenset()        # outputs that emit it
    actions: frozenset[str] = frozenset()      # REQ keys: the only actions taking it (empty = any)
    only_when: bool = False                    # emitted only when a value is given
    alias_of: str | None = None                # input spelling of another key
    ident: bool = False                        # names the resource; never empty when setting
    lo: int | None = None                      # inclusive bounds for integers
    hi: int | None = None
    choices: tuple[str, ...] = ()              # allowed words for "choice"/"choices"


@dataclass(frozen=True)
class Resource:
    """A resource type: its keys in output order and how it is placed in output."""

    rtype: str
    keys: tuple[Key, ...]
    section: str = model.VIRTUAL_HARDWARE
    quantity: bool = False                     # an AllocationUnits count; omitted when 0
    binding_type: str | None = None            # inner Item type of its bind:Binding children
    binding_keys: tuple[str, ...] = ()
    name_key: str | None = None                # orders Items of this type (§6.0)

    def key(self, name: str) -> Key | None:
        """The key row for ``name`` (exact spelling, aliases included), or None."""
        return _KEY_INDEX[self.rtype].get(name)


def _k(name: str, dir: str = BOTH, fmt: str = "text", views: Iterable[str] = (), **kw: Any) -> Key:
    return Key(name, dir, fmt, frozenset(views), **kw)


_LD = frozenset({LIST_DOMAIN, LIST_BINDINGS})
_LD_ALL = _LD | {LIST_CONSTRAINTS}
_MIGRATE = frozenset({"migrate-domain"})
_DOMAIN_PROPS = frozenset({"add-domain", "set-domain"})
_FEV = frozenset({LIST_DOMAIN, LIST_BINDINGS, EVENT})

# Migration keys that follow `source` (migration spec §7.4, §7.5, §10.10, in §10.10 order);
# the flag says whether progress events carry them too.
_MIGRATION_KEYS = (
    ("migration-id", True), ("role", True), ("peer", True), ("peer-ldom", True),
    ("phase", True), ("outcome", True), ("time-elapsed", False), ("setup-time", False),
    ("round", True), ("memory-total", False), ("memory-processed", False),
    ("memory-remaining", False), ("data-total", False), ("data-processed", False),
    ("data-remaining", True), ("transferred", False), ("constant-pages", False),
    ("normal-pages", False), ("normal-bytes", False), ("page-size", False),
    ("dirty-rate", False), ("throughput", False), ("compression", False),
    ("compression-ratio", False), ("throttle", False), ("downtime-budget", False),
    ("expected-downtime", True), ("downtime", True), ("switchover", False), ("error", True),
)

_VLAN = {"lo": 1, "hi": 4094}
_MTU = {"lo": 1500, "hi": 16000}
_PORT = {"lo": 1, "hi": 65535}

RESOURCES: dict[str, Resource] = {r.rtype: r for r in (
    Resource("ldom_info", section=model.RESOURCE_ALLOCATION, keys=(
        _k("uuid", BOTH, "uuid", _LD_ALL),
        _k("rasd:Address", BOTH, "mac", _LD_ALL),
        _k("mac-addr", REQ, "mac", alias_of="rasd:Address", actions=_DOMAIN_PROPS),
        _k("hostid", BOTH, "hostid", _LD_ALL),
        _k("state", RESP, "choice", _LD, choices=("active", "bound", "inactive", "suspended")),
        _k("flags", RESP, "text", _LD),
        _k("console", RESP, "text", _LD),
        _k("ncpu", RESP, "int", _LD),
        _k("memory", RESP, "size", _LD),
        _k("util", RESP, "percent", _LD),
        _k("uptime", RESP, "int", _LD),
        _k("master", BOTH, "domains", _LD_ALL),
        _k("failure-policy", BOTH, "choice", _LD_ALL,
           choices=("ignore", "panic", "reset", "stop")),
        _k("progress", RESP, "progress", _FEV, only_when=True),
        _k("status", RESP, "choice", _FEV, only_when=True, choices=("ongoing", "done", "failed")),
        _k("source", RESP, "text", _FEV, only_when=True),
        *(_k(name, RESP, "text", _FEV if in_event else _LD, only_when=True)
          for name, in_event in _MIGRATION_KEYS),
        _k("extended-mapin-space", BOTH, "onoff", _LISTS),
        _k("rc-add-policy", BOTH, "choice", _LISTS, choices=("iov",)),
        _k("perf-counters", BOTH, "choices", _LISTS, choices=("global", "strand", "htstrand")),
        _k("cpu-arch", BOTH, "choice", _LISTS,
           choices=("native", "generic", "migration-class1", "sparc64-class1")),
        _k("target", REQ, "text", actions=_MIGRATE),
        _k("username", REQ, "base64", actions=_MIGRATE),
        _k("password", REQ, "base64", actions=_MIGRATE),
    )),
    Resource("cpu", quantity=True, binding_type="cpu", binding_keys=("vid", "pid", "cid", "util"),
             keys=(
        _k("rasd:AllocationUnits", BOTH, "int", _LISTS | {EVENT}, lo=1),
        _k("wcore", BOTH, "int", _LISTS, lo=0),
        _k("pid", RESP, "int", {LIST_DEVICES}),
        _k("bound", RESP, "text", {LIST_DEVICES}),
    )),
    Resource("mau", quantity=True, binding_type="mau", binding_keys=("id", "cpuset"), keys=(
        _k("rasd:AllocationUnits", BOTH, "int", _LISTS | {EVENT}, lo=0),
        _k("id", RESP, "int", {LIST_DEVICES}),
        _k("cpuset", RESP, "ints", {LIST_DEVICES}),
        _k("bound", RESP, "text", {LIST_DEVICES}),
    )),
    Resource("memory", quantity=True, binding_type="memory", binding_keys=("ra", "pa", "size"),
             keys=(
        _k("rasd:AllocationUnits", BOTH, "size", _LISTS | {EVENT}, lo=1),
        _k("pa", RESP, "address", {LIST_DEVICES, LIST_DEVICES_B}),
        _k("size", RESP, "size", {LIST_DEVICES, LIST_DEVICES_B}),
        _k("bound", RESP, "text", {LIST_DEVICES}),
        _k("status", RESP, "choice", {LIST_DEVICES_B}, choices=("blacklisted",)),
    )),
    Resource("physio_device", name_key="name", keys=(
        _k("name", BOTH, "device", _LISTS | {LIST_DEVICES, EVENT}, ident=True),
        _k("iov", BOTH, "onoff", {LIST_DEVICES}, only_when=True),
        _k("iov_bus_enable_iov", REQ, "onoff", alias_of="iov"),
        _k("device", RESP, "text", {LIST_DEVICES, LIST_BINDINGS}),
        _k("type", RESP, "choice", {LIST_DEVICES, LIST_BINDINGS},
           choices=("bus", "pcie", "pf", "vf")),
        _k("bound", RESP, "text", {LIST_DEVICES}),
    )),
    Resource("var", name_key="name", keys=(
        _k("name", BOTH, "varname", _LISTS | {LIST_VARIABLE, EVENT}, ident=True),
        _k("value", BOTH, "text", _LISTS | {LIST_VARIABLE}),
    )),
    Resource("vcc", name_key="service_name", binding_type="console",
             binding_keys=("ldom", "port"), keys=(
        _k("service_name", BOTH, "name", _SERVICES | {EVENT}, ident=True),
        _k("min_port", BOTH, "int", _SERVICES, **_PORT),
        _k("max_port", BOTH, "int", _SERVICES, **_PORT),
    )),
    Resource("vds", name_key="service_name", binding_type="disk",
             binding_keys=("vdisk_name", "ldom", "vol_name"), keys=(
        _k("service_name", BOTH, "name", _SERVICES | {EVENT}, ident=True),
    )),
    Resource("vds_volume", name_key="vol_name", keys=(
        _k("vol_name", BOTH, "name", _SERVICES | {EVENT}, ident=True),
        _k("service_name", BOTH, "name", _SERVICES | {EVENT}, ident=True),
        _k("block_dev", BOTH, "path", _SERVICES),
        _k("vol_opts", BOTH, "choices", _SERVICES, choices=("ro", "slice", "excl")),
        _k("mpgroup", BOTH, "name", _SERVICES),
    )),
    Resource("vsw", name_key="service_name", binding_type="network",
             binding_keys=("vnet_name", "ldom", "rasd:Address"), keys=(
        _k("service_name", BOTH, "name", _SERVICES | {EVENT}, ident=True),
        _k("rasd:Address", BOTH, "mac", _SERVICES),
        _k("default-vlan-id", BOTH, "int", _SERVICES, **_VLAN),
        _k("dev_path", BOTH, "device", _SERVICES),
        _k("dev-path", REQ, "device", alias_of="dev_path"),
        _k("id", BOTH, "int", _SERVICES),
        _k("inter_vnet_link", BOTH, "onoff", _SERVICES),
        _k("linkprop", BOTH, "choice", _SERVICES, choices=("phys-state",)),
        _k("mode", BOTH, "choice", _SERVICES, choices=("sc",)),
        _k("pvid", BOTH, "int", _SERVICES, **_VLAN),
        _k("mtu", BOTH, "int", _SERVICES, **_MTU),
        _k("vid", BOTH, "ints", _SERVICES, **_VLAN),
        _k("device", RESP, "text", {LIST_BINDINGS}),
    )),
    Resource("network", name_key="vnet_name", binding_type="vsw",
             binding_keys=("service_name", "ldom"), keys=(
        _k("vnet_name", BOTH, "name", _LISTS | {EVENT}, ident=True),
        _k("service_name", BOTH, "name", _LISTS),
        _k("rasd:Address", BOTH, "mac", _LISTS),
        _k("linkprop", BOTH, "choice", _LISTS, choices=("phys-state",)),
        _k("pvid", BOTH, "int", _LISTS, **_VLAN),
        _k("vid", BOTH, "ints", _LISTS, **_VLAN),
        _k("mode", BOTH, "choice", _LISTS, choices=("hybrid",)),
        _k("id", BOTH, "int", _LISTS),
        _k("mtu", BOTH, "int", _LISTS, **_MTU),
        _k("device", RESP, "text", {LIST_BINDINGS}),
    )),
    Resource("disk", name_key="vdisk_name", binding_type="vds_volume",
             binding_keys=("vol_name", "service_name", "ldom"), keys=(
        _k("vdisk_name", BOTH, "name", _LISTS | {EVENT}, ident=True),
        _k("service_name", BOTH, "name", _LISTS),
        _k("vol_name", BOTH, "name", _LISTS),
        _k("timeout", BOTH, "int", _LISTS),
        _k("id", BOTH, "int", _LISTS),
        _k("device", RESP, "text", {LIST_BINDINGS}),
    )),
    Resource("console", binding_type="vcc", binding_keys=("service_name", "ldom"), keys=(
        _k("port", BOTH, "int", _LISTS | {EVENT}, **_PORT),
        _k("service_name", BOTH, "name", _LISTS | {EVENT}),
        _k("group", BOTH, "name", _LISTS),
        _k("enable-log", BOTH, "onoff", _LISTS),
    )),
    Resource("policy", name_key="policy_name", keys=(
        _k("policy_name", BOTH, "name", _LISTS, ident=True),
        _k("policy_enable", BOTH, "onoff", _LISTS),
        _k("policy_priority", BOTH, "int", _LISTS, lo=1),
        _k("policy_vcpu_min", BOTH, "int", _LISTS, lo=1),
        _k("policy_vcpu_max", BOTH, "int_or_unlimited", _LISTS, lo=1),
        _k("policy_util_lower", BOTH, "int", _LISTS, lo=1, hi=100),
        _k("policy_util_upper", BOTH, "int", _LISTS, lo=1, hi=100),
        _k("policy_tod_begin", BOTH, "tod", _LISTS),
        _k("policy_tod_end", BOTH, "tod", _LISTS),
        _k("policy_sample_rate", BOTH, "int", _LISTS, lo=1),
        _k("policy_elastic_margin", BOTH, "int", _LISTS, lo=0),
        _k("policy_attack", BOTH, "int", _LISTS, lo=1),
        _k("policy_decay", BOTH, "int", _LISTS, lo=1),
    )),
    Resource("spconfig", section=model.RESOURCE_ALLOCATION, name_key="spconfig_name", keys=(
        _k("spconfig_name", BOTH, "name", {LIST_SPCONFIG, EVENT}, ident=True),
        _k("spconfig_status", RESP, "choice", {LIST_SPCONFIG}, only_when=True,
           choices=("current", "next", "degraded", "newer")),
    )),
    Resource("vdpcs", keys=(
        _k("service_name", REQ, "name", actions=frozenset({"add-vdpcs", "remove-vdpcs"})),
    )),
    Resource("vdpcc", keys=(
        _k("vdpcc_name", REQ, "name", actions=frozenset({"add-vdpcc", "remove-vdpcc"})),
        _k("service_name", REQ, "name", actions=frozenset({"add-vdpcc"})),
    )),
    Resource("core", keys=(
        _k("cid", RESP, "int", {LIST_DEVICES, LIST_DEVICES_B}),
        _k("free", RESP, "int", {LIST_DEVICES}),
        _k("cpuset", RESP, "ints", {LIST_DEVICES}),
        _k("status", RESP, "choice", {LIST_DEVICES_B}, choices=("blacklisted",)),
    )),
)}

_KEY_INDEX: dict[str, dict[str, Key]] = {
    r.rtype: {k.name: k for k in r.keys} for r in RESOURCES.values()}

# CIM elements the schema accepts in any Item and the agent ignores (§2.6).
_CIM_IGNORED = frozenset("rasd:" + n for n in (
    "Caption", "Description", "ElementName", "InstanceID", "ResourceType", "ResourceSubType",
    "PoolID", "ConsumerVisibility", "HostResource", "VirtualQuantity", "Reservation", "Limit",
    "Weight", "AutomaticAllocation", "AutomaticDeallocation", "Parent", "Connection",
    "AddressOnParent", "MappingBehavior"))

# Formats of binding-Item keys (§6.2-§6.15), for typed values handed to item_for_output.
_BINDING_FORMATS = {"util": "percent", "cpuset": "ints", "ra": "address", "pa": "address",
                    "size": "size", "rasd:Address": "mac"}

# §6.0: order of Item types inside a domain's hardware Section (vds_volume follows its vds).
HARDWARE_ORDER = ("cpu", "mau", "memory", "physio_device", "var", "vcc", "vds", "vsw",
                  "network", "disk", "console", "policy")

# §5 "Takes": the resource types each of the 63 actions accepts in its Items.
_REPLAY = frozenset({"ldom_info", "cpu", "mau", "memory", "physio_device", "var", "vcc", "vds",
                     "vds_volume", "vsw", "network", "disk", "console", "policy"})
_NONE: frozenset[str] = frozenset()


def _same(rtype: str, *actions: str) -> dict[str, frozenset[str]]:
    return {a: frozenset({rtype}) for a in actions}


ACTION_RESOURCES: dict[str, frozenset[str]] = {
    "add-domain": _REPLAY,
    "set-domain": frozenset({"ldom_info", "policy"}),
    "migrate-domain": frozenset({"ldom_info"}),
    "list-devices": frozenset({"cpu", "core", "mau", "memory", "physio_device"}),
    **{a: _NONE for a in (
        "remove-domain", "start-domain", "stop-domain", "bind-domain", "unbind-domain",
        "list-domain", "list-bindings", "list-constraints", "list-services",
        "reg-domain-events", "unreg-domain-events", "reg-resource-events",
        "unreg-resource-events", "reg-hardware-events", "unreg-hardware-events",
        "reg-all-events", "unreg-all-events", "cancel-operation", "remove-reconf")},
    **_same("cpu", "add-vcpu", "set-vcpu", "remove-vcpu"),
    **_same("mau", "add-mau", "set-mau", "remove-mau"),
    **_same("memory", "add-memory", "set-memory", "remove-memory"),
    **_same("physio_device", "add-io", "remove-io", "set-io"),
    **_same("vds", "add-vdiskserver", "remove-vdiskserver"),
    **_same("vds_volume", "add-vdiskserverdevice", "remove-vdiskserverdevice"),
    **_same("disk", "add-vdisk", "remove-vdisk"),
    **_same("vsw", "add-vswitch", "set-vswitch", "remove-vswitch"),
    **_same("network", "add-vnet", "set-vnet", "remove-vnet"),
    **_same("vcc", "add-vconscon", "set-vconscon", "remove-vconscon"),
    **_same("console", "set-vconsole"),
    **_same("vdpcs", "add-vdpcs", "remove-vdpcs"),
    **_same("vdpcc", "add-vdpcc", "remove-vdpcc"),
    **_same("spconfig", "add-spconfig", "set-spconfig", "remove-spconfig", "list-spconfig"),
    **_same("var", "add-variable", "set-variable", "remove-variable", "list-variable"),
}


# -- values --------------------------------------------------------------------------------

# Formats that need nothing from the key row but its name.
_PARSERS = {"uuid": values.parse_uuid, "mac": values.parse_mac, "hostid": values.parse_hostid,
            "onoff": values.parse_on_off, "percent": values.parse_percent,
            "progress": values.parse_progress, "base64": values.parse_base64,
            "address": values.parse_address, "tod": values.parse_tod}
_FORMATTERS = {"size": values.format_size, "mac": values.format_mac,
               "hostid": values.format_hostid, "uuid": values.format_uuid,
               "address": values.format_address, "onoff": values.format_on_off,
               "percent": values.format_percent, "progress": values.format_progress,
               "base64": values.format_base64}


def _parse_formatted(key: Key, text: str) -> Any:
    """Parse ``text`` by the key's format; raises values.InvalidValue."""
    name, fmt = key.name, key.fmt
    if fmt == "int":
        return values.parse_int(text, name, minimum=key.lo, maximum=key.hi)
    if fmt == "int_or_unlimited":
        return text if text == "unlimited" else values.parse_int(text, name, minimum=key.lo)
    if fmt == "ints":
        return values.parse_list(
            text, name, lambda t, k: values.parse_int(t, k, minimum=key.lo, maximum=key.hi))
    if fmt == "size":
        size = values.parse_size(text, name)
        if key.lo is not None and size < key.lo:
            raise values.InvalidValue(text, name)
        return size
    if fmt == "choice":
        return values.parse_choice(text, name, key.choices)
    if fmt == "choices":
        return values.parse_list(text, name, lambda t, k: values.parse_choice(t, k, key.choices))
    if fmt == "domains":
        names = values.parse_list(text, name, values.parse_domain_name)
        if len(names) > 4:
            raise values.InvalidValue(text, name)
        return names
    if fmt == "name":
        return values.parse_name(text, name)
    if fmt == "varname":
        return values.parse_name(text, name, variable=True)
    if fmt == "device":
        # Device paths and slot names may carry '@' and '/': any text without whitespace.
        if not text or any(c.isspace() for c in text):
            raise values.InvalidValue(text, name)
        return text
    if fmt == "path":
        if not text.startswith("/"):
            raise values.InvalidValue(text, name)
        return text
    parse = _PARSERS.get(fmt)
    return text if parse is None else parse(text, name)  # "text": any value


def parse_value(rtype: str, key: str, text: str) -> Any:
    """The typed value of property ``key`` of ``rtype`` (aliases accepted); raises InvalidValue."""
    row = _require_key(rtype, key)
    return _parse_formatted(row, text)


def _format_by(fmt: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    formatter = _FORMATTERS.get(fmt)
    if formatter is not None:
        return formatter(value)
    if isinstance(value, (list, tuple)):
        return values.format_list(value)
    if isinstance(value, bool):
        return values.format_on_off(value)
    return str(value)


def format_value(rtype: str, key: str, value: Any) -> str:
    """Canonical text for a typed value (strings pass through unchanged, None is empty)."""
    return _format_by(_require_key(rtype, key).fmt, value)


def _require_key(rtype: str, key: str) -> Key:
    row = _KEY_INDEX.get(rtype, {}).get(key)
    if row is None:
        raise KeyError(f"{rtype} has no property {key}")
    return row


# -- request Items (§2.6) ------------------------------------------------------------------

def check_item(action: str, item: model.Item, *, setting: bool) -> list[str]:
    """Item-level errors of a request Item (§2.6), as operator messages; empty when valid.

    Checks, in key order: a key given twice (an alias counts as its key), a key unknown for
    the type, a request-only key outside the actions that take it, and the value format of
    every non-empty request value. ``setting`` is True for set-* actions, where an empty value
    means "reset to default"; an empty value for a key that names the resource is then an
    error. In add-* actions (``setting`` False) an empty value means "not given".
    Response-only keys and ignored CIM elements are skipped. Whether the action accepts the
    type at all is :data:`ACTION_RESOURCES`' business.
    """
    if not item.rtype:
        # The decoder leaves rtype empty and keeps the type elements as properties when an
        # Item has none or several (C94).
        given = [k for k in item.keys() if k == "rasd:OtherResourceType"]
        return [messages.REPEATED_RESOURCE_TYPE if given else messages.NO_RESOURCE_TYPE]
    resource = RESOURCES.get(item.rtype)
    if resource is None:
        return [messages.unknown_resource(item.rtype)]
    index = _KEY_INDEX[item.rtype]
    errors: list[str] = []
    seen: set[str] = set()
    reported: set[str] = set()
    for key, text in item.props:
        if key in _CIM_IGNORED:
            continue
        row = index.get(key)
        if row is None:
            errors.append(messages.unknown_property(key, item.rtype))
            continue
        canonical = row.alias_of or key
        if canonical in seen:
            if canonical not in reported:
                errors.append(messages.duplicate_property(key, item.rtype))
                reported.add(canonical)
            continue
        seen.add(canonical)
        if row.dir == RESP:
            continue
        if row.dir == REQ and row.actions and action not in row.actions:
            errors.append(messages.property_not_for_action(key, item.rtype, action))
            continue
        if text == "":
            if setting and index[canonical].ident:
                errors.append(messages.invalid_value(text, key))
            continue
        try:
            _parse_formatted(row, text)
        except values.InvalidValue as exc:
            errors.append(exc.message)
    return errors


def usable_props(action: str, item: model.Item, *, setting: bool) -> dict[str, str]:
    """The request properties an action acts on, keyed by canonical name, in request order.

    Response-only keys and ignored CIM elements are dropped and aliases are renamed to their
    key (``mac-addr`` -> ``rasd:Address``). Empty values are dropped unless ``setting`` (where
    they mean reset). Meant for Items that passed :func:`check_item`; for a repeated key the
    first value wins.
    """
    index = _KEY_INDEX.get(item.rtype)
    if index is None:
        raise KeyError(f"unknown resource type {item.rtype}")
    props: dict[str, str] = {}
    for key, text in item.props:
        row = index.get(key)
        if row is None or row.dir == RESP:
            continue
        if text == "" and not setting:
            continue
        props.setdefault(row.alias_of or key, text)
    return props


# -- output Items --------------------------------------------------------------------------

# Output sets per (type, view), in order: computed once, looked up for every Item built.
_VIEW_KEYS: dict[tuple[str, str], tuple[Key, ...]] = {
    (r.rtype, view): tuple(k for k in r.keys if view in k.views)
    for r in RESOURCES.values() for view in VIEWS}


def output_keys(rtype: str, view: str) -> tuple[str, ...]:
    """The keys ``view`` emits for ``rtype``, in emission order (only-when keys included)."""
    return tuple(k.name for k in _VIEW_KEYS[rtype, view])


_VIEW_NAMES: dict[tuple[str, str], frozenset[str]] = {}


def _view_names(rtype: str, view: str) -> frozenset[str]:
    """Every key (aliases included) that ``view`` may carry for ``rtype``; memoised."""
    names = _VIEW_NAMES.get((rtype, view))
    if names is None:
        names = frozenset(k for k, row in _KEY_INDEX[rtype].items() if view in row.views)
        _VIEW_NAMES[rtype, view] = names
    return names


def item_for_output(rtype: str, vals: Mapping[str, Any], view: str = LIST_DOMAIN, *,
                    bindings: Iterable[Mapping[str, Any]] = ()) -> model.Item | None:
    """An output Item with every key of the view's output set, in order (§6.0, §6.19-§6.23).

    Missing or None values become empty text, except "only when" keys, which are left out.
    Typed values are formatted canonically (sizes, MACs, host IDs, on/off, lists...). A
    quantity Item (cpu, mau, memory) whose ``rasd:AllocationUnits`` is 0 is omitted: the
    function returns None (C154). ``bindings`` are dicts of binding-key values, one
    ``bind:Binding`` each (list-bindings only). A key outside the view's set is a
    programming error (ValueError), so nothing unlisted can leak into output.
    """
    resource = RESOURCES[rtype]
    keys = _VIEW_KEYS[rtype, view]
    allowed = _view_names(rtype, view)
    stray = [k for k in vals if k not in allowed]
    if stray:
        raise ValueError(f"{rtype} in {view} has no output key {', '.join(stray)}")
    if resource.quantity and view != EVENT:
        units = vals.get("rasd:AllocationUnits")
        if units is not None and units != "" and _is_zero(units):
            return None
    props = []
    for key in keys:
        value = vals.get(key.name)
        if key.only_when and value is None:
            continue
        props.append((key.name, _format_by(key.fmt, value)))
    item = model.Item(rtype, props)
    if bindings:
        if view != LIST_BINDINGS or resource.binding_type is None:
            raise ValueError(f"{rtype} carries no bindings in {view}")
        item.bindings = [binding_item(rtype, b) for b in bindings]
    return item


def _is_zero(units: Any) -> bool:
    if isinstance(units, str):
        try:
            return values.parse_size(units, "rasd:AllocationUnits") == 0
        except values.InvalidValue:
            return False
    return units == 0


def binding_item(rtype: str, vals: Mapping[str, Any]) -> model.Item:
    """The inner Item of one ``bind:Binding`` of a ``rtype`` Item (§6.2-§6.15), keys in order."""
    resource = RESOURCES[rtype]
    if resource.binding_type is None:
        raise ValueError(f"{rtype} has no binding Items")
    stray = [k for k in vals if k not in resource.binding_keys]
    if stray:
        raise ValueError(f"{rtype} binding has no key {', '.join(stray)}")
    props = [(k, _format_by(_BINDING_FORMATS.get(k, "text"), vals.get(k)))
             for k in resource.binding_keys]
    return model.Item(resource.binding_type, props)


def _order_hardware(items: list[model.Item]) -> list[model.Item]:
    by_type: dict[str, list[model.Item]] = {}
    for item in items:
        by_type.setdefault(item.rtype, []).append(item)
    unknown = set(by_type) - set(HARDWARE_ORDER) - {"vds_volume"}
    if unknown:
        raise ValueError(f"no hardware-section place for {', '.join(sorted(unknown))}")

    def by_name(group: list[model.Item]) -> list[model.Item]:
        if not group:
            return group
        name_key = RESOURCES[group[0].rtype].name_key
        if name_key is None:
            return group
        return sorted(group, key=lambda it: (it.get(name_key) or "").encode())

    volumes = by_name(by_type.get("vds_volume", []))
    ordered: list[model.Item] = []
    for rtype in HARDWARE_ORDER:
        for item in by_name(by_type.get(rtype, [])):
            ordered.append(item)
            if rtype == "vds":
                server = item.get("service_name")
                ordered.extend(v for v in volumes if v.get("service_name") == server)
        if rtype == "vds":
            # Volumes of a server not listed here still belong with the disk servers.
            servers = {i.get("service_name") for i in by_type.get("vds", [])}
            ordered.extend(v for v in volumes if v.get("service_name") not in servers)
    return ordered


def content_for_output(name: str, items: Iterable[model.Item | None]) -> model.Content:
    """A domain's list-output Content (§6.0): ldom_info in a ResourceAllocationSection, then
    every other Item in one VirtualHardwareSection in the §6.0 order, by name within a type.
    None entries (omitted quantity Items) are skipped; empty sections are left out."""
    info: list[model.Item] = []
    hardware: list[model.Item] = []
    for item in items:
        if item is None:
            continue
        (info if item.rtype == "ldom_info" else hardware).append(item)
    if len(info) > 1:
        raise ValueError(f"domain {name} has {len(info)} ldom_info Items")
    sections = []
    if info:
        sections.append(model.Section(model.RESOURCE_ALLOCATION, info))
    if hardware:
        sections.append(model.Section(model.VIRTUAL_HARDWARE, _order_hardware(hardware)))
    return model.Content(name, sections)


def domain_envelope(name: str, items: Iterable[model.Item | None]) -> model.Envelope:
    """An Envelope holding one domain's list-output Content."""
    return model.Envelope([content_for_output(name, items)])


_DEVICE_ORDER = {"cpu": "pid", "core": "cid", "mau": "id", "memory": "pa", "physio_device": "name"}


def device_section(rtype: str, rows: Iterable[Mapping[str, Any]], *,
                   blacklisted: bool = False) -> model.Section:
    """One list-devices class (§6.22): a hardware Section of one Item per device, in ascending
    numeric order (``cid``, ``pid``, ``id``, ``pa``) or name order (physio_device)."""
    if rtype not in _DEVICE_ORDER:
        raise ValueError(f"{rtype} is not a list-devices class")
    view = LIST_DEVICES_B if blacklisted else LIST_DEVICES
    items = [item_for_output(rtype, row, view) for row in rows]
    order_key = _DEVICE_ORDER[rtype]

    def sort_key(item: model.Item) -> Any:
        text = item.get(order_key) or ""
        if rtype == "physio_device":
            return (0, text.encode())
        return (0, _parse_formatted(_KEY_INDEX[rtype][order_key], text)) if text else (1, 0)

    return model.Section(model.VIRTUAL_HARDWARE, sorted(items, key=sort_key))


def spconfig_envelope(name: str, status: str | None = None) -> model.Envelope:
    """One list-spconfig object (§6.13): a ResourceAllocationSection directly in the Envelope."""
    item = item_for_output("spconfig", {"spconfig_name": name, "spconfig_status": status},
                           LIST_SPCONFIG)
    return model.Envelope([model.Section(model.RESOURCE_ALLOCATION, [item])])


# -- events (§4.3-§4.6) --------------------------------------------------------------------

DOMAIN_EVENTS = frozenset({"add-domain", "remove-domain", "bind-domain", "unbind-domain",
                           "start-domain", "stop-domain", "domain-reset", "panic-domain",
                           "migrate-domain"})
HARDWARE_EVENTS = frozenset({"add-spconfig", "set-spconfig", "remove-spconfig"})
PROGRESS_EVENT = "migration-process"

# §4.4: the resource actions that emit events, and the event name when it differs.
RESOURCE_EVENTS: dict[str, str] = {
    **{a: a for a in (
        "add-vcpu", "set-vcpu", "remove-vcpu", "add-memory", "set-memory", "remove-memory",
        "add-io", "remove-io", "set-io", "add-variable", "set-variable", "remove-variable",
        "add-vconscon", "set-vconscon", "remove-vconscon", "set-vconsole",
        "add-vdiskserver", "remove-vdiskserver", "add-vdiskserverdevice",
        "remove-vdiskserverdevice", "add-vdisk", "remove-vdisk", "add-vswitch", "set-vswitch",
        "remove-vswitch", "add-vnet", "set-vnet", "remove-vnet")},
    "add-mau": "add-crypto", "set-mau": "set-crypto", "remove-mau": "remove-crypto",
}


def domain_event(action: str, name: str) -> model.Event:
    """A domain event (§4.3): one self-closed Content naming the domain."""
    if action not in DOMAIN_EVENTS:
        raise ValueError(f"{action} is not a domain event")
    return model.Event(model.DOMAIN, action, model.Envelope([model.Content(name)]))


def resource_event(action: str, owner: str | None, rtype: str,
                   items: Mapping[str, Any] | list[Mapping[str, Any]]) -> model.Event:
    """A resource event (§4.4) for request ``action``: the owner's Content (None: the Section
    sits directly in the Envelope, for an unowned set-io device) with one hardware Section
    holding the event Item(s) (several only for variables)."""
    name = RESOURCE_EVENTS.get(action)
    if name is None:
        raise ValueError(f"{action} emits no resource event")
    rows = [items] if isinstance(items, Mapping) else list(items)
    section = model.Section(model.VIRTUAL_HARDWARE,
                            [item_for_output(rtype, row, EVENT) for row in rows])
    part: model.Part = section if owner is None else model.Content(owner, [section])
    return model.Event(model.RESOURCE, name, model.Envelope([part]))


def hardware_event(action: str, spconfig_name: str) -> model.Event:
    """A hardware event (§4.5): a spconfig Item in a ResourceAllocationSection under Envelope."""
    if action not in HARDWARE_EVENTS:
        raise ValueError(f"{action} is not a hardware event")
    item = item_for_output("spconfig", {"spconfig_name": spconfig_name}, EVENT)
    return model.Event(model.HARDWARE, action, model.Envelope(
        [model.Section(model.RESOURCE_ALLOCATION, [item])]))


def progress_event(domain: str, vals: Mapping[str, Any]) -> model.Event:
    """A ``migration-process`` event (§4.6): ``progress``, ``status``, ``source`` first, then the
    migration statistics given (migration spec §7.5). Progress is an int or ``"N%"``."""
    for required in ("progress", "status", "source"):
        if vals.get(required) is None:
            raise ValueError(f"progress event needs {required}")
    item = item_for_output("ldom_info", vals, EVENT)
    return model.Event(model.HARDWARE, PROGRESS_EVENT, model.Envelope(
        [model.Content(domain, [model.Section(model.RESOURCE_ALLOCATION, [item])])]))
