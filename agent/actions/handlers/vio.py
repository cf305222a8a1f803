"""Virtual disk, network and console actions (spec ldm-xml §5.5–§5.7; C145–C147).

Services (vds, vsw, vcc) are named host-wide, so the actions that change an existing one
take it from the ``Envelope``; a ``Content`` given with them must be the domain providing it.
"""

from __future__ import annotations

from typing import Any

from agent.actions.handlers.objects import (CONTENT, ENVELOPE, ResourceAction, check_owner,
                                            on_off, resource_handler, typed)

# Switch and network keys (wire) → the manager's keyword, and the default an empty value
# restores in set-vswitch / set-vnet (§2.6); MAC addresses and device ids have no default.
_SWITCH_KEYS = {"rasd:Address": "mac", "default-vlan-id": "default_vlan_id",
                "dev_path": "dev_path", "inter_vnet_link": "inter_vnet_link",
                "linkprop": "linkprop", "mode": "mode", "pvid": "pvid", "mtu": "mtu",
                "vid": "vid", "id": "id"}
_RESETS: dict[str, Any] = {"default_vlan_id": 1, "pvid": 1, "vid": [], "inter_vnet_link": "on",
                           "linkprop": "", "mode": "", "dev_path": "", "mtu": None}


def _switch_props(rtype: str, props: dict[str, str], setting: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name in _SWITCH_KEYS.items():
        if key not in props:
            continue
        if props[key] == "":
            if setting and name in _RESETS:
                out[name] = _RESETS[name]
            continue
        if name in ("mac", "dev_path", "linkprop", "mode"):
            out[name] = props[key]
        elif name == "inter_vnet_link":
            out[name] = on_off(props[key], key)
        else:
            out[name] = typed(rtype, props, key)
    return out


# -- disk servers, volumes, disks -------------------------------------------------------------

def _add_vds(m, domain, props, opts):
    return m.add_vds(domain, props["service_name"])


def _remove_vds(m, domain, props, opts):
    check_owner(m, domain, props["service_name"])
    return m.remove_vds(props["service_name"], force=opts.has("-f"))


def _add_vdsdev(m, domain, props, opts):
    check_owner(m, domain, props["service_name"])
    options = typed("vds_volume", props, "vol_opts") or []
    return m.add_vdsdev(props["service_name"], props["vol_name"], props["block_dev"], options,
                        props.get("mpgroup", ""), force=opts.has("-f"), quiet=opts.has("-q"))


def _remove_vdsdev(m, domain, props, opts):
    check_owner(m, domain, props["service_name"])
    return m.remove_vdsdev(props["service_name"], props["vol_name"], force=opts.has("-f"))


def _add_vdisk(m, domain, props, opts):
    return m.add_vdisk(domain, props["vdisk_name"], props["service_name"], props["vol_name"],
                       timeout=typed("disk", props, "timeout"), id=typed("disk", props, "id"))


def _remove_vdisk(m, domain, props, opts):
    return m.remove_vdisk(domain, props["vdisk_name"], force=opts.has("-f"))


# -- switches and networks ----------------------------------------------------------------

def _add_vsw(m, domain, props, opts):
    return m.add_vsw(domain, props["service_name"], **_switch_props("vsw", props, False))


def _set_vsw(m, domain, props, opts):
    check_owner(m, domain, props["service_name"])
    return m.set_vsw(props["service_name"], **_switch_props("vsw", props, True))


def _remove_vsw(m, domain, props, opts):
    check_owner(m, domain, props["service_name"])
    return m.remove_vsw(props["service_name"], force=opts.has("-f"))


def _add_vnet(m, domain, props, opts):
    return m.add_vnet(domain, props["vnet_name"], props["service_name"],
                      **_switch_props("network", props, False))


def _set_vnet(m, domain, props, opts):
    fields = _switch_props("network", props, True)
    if props.get("service_name"):
        fields["service"] = props["service_name"]  # moves the device to that switch
    return m.set_vnet(domain, props["vnet_name"], **fields)


def _remove_vnet(m, domain, props, opts):
    return m.remove_vnet(domain, props["vnet_name"], force=opts.has("-f"))


# -- console concentrators and consoles ----------------------------------------------------

def _add_vcc(m, domain, props, opts):
    return m.add_vcc(domain, props["service_name"], typed("vcc", props, "min_port"),
                     typed("vcc", props, "max_port"))


def _set_vcc(m, domain, props, opts):
    service = props["service_name"]
    check_owner(m, domain, service)
    # A key not given keeps its value: set-vcc always sets the whole range.
    current = m.constraints(m.service_owner(service)).vccs[service]
    low = typed("vcc", props, "min_port") or current.min_port
    high = typed("vcc", props, "max_port") or current.max_port
    return m.set_vcc(service, low, high)


def _remove_vcc(m, domain, props, opts):
    check_owner(m, domain, props["service_name"])
    return m.remove_vcc(props["service_name"], force=opts.has("-f"))


_CONSOLE_KEYS = {"port": "port", "service_name": "service", "group": "group", "enable-log": "log"}


def _set_vconsole(m, domain, props, opts):
    given: dict[str, Any] = {}
    for key, name in _CONSOLE_KEYS.items():
        if key not in props:
            continue
        text = props[key]
        if text == "":
            given[name] = ""  # resets to the default (§2.6)
        elif key == "port":
            given[name] = typed("console", props, key)
        elif key == "enable-log":
            given[name] = on_off(text, key)
        else:
            given[name] = text
    return m.set_vconsole(domain, **given)


SPECS: dict[str, ResourceAction] = {
    "add-vdiskserver": ResourceAction("vds", CONTENT, _add_vds, ("service_name",)),
    "remove-vdiskserver": ResourceAction("vds", ENVELOPE, _remove_vds, ("service_name",)),
    "add-vdiskserverdevice": ResourceAction("vds_volume", ENVELOPE, _add_vdsdev,
                                            ("vol_name", "service_name", "block_dev")),
    "remove-vdiskserverdevice": ResourceAction("vds_volume", ENVELOPE, _remove_vdsdev,
                                               ("vol_name", "service_name")),
    "add-vdisk": ResourceAction("disk", CONTENT, _add_vdisk,
                                ("vdisk_name", "service_name", "vol_name")),
    "remove-vdisk": ResourceAction("disk", CONTENT, _remove_vdisk, ("vdisk_name",)),
    "add-vswitch": ResourceAction("vsw", CONTENT, _add_vsw, ("service_name",)),
    "set-vswitch": ResourceAction("vsw", ENVELOPE, _set_vsw, ("service_name",), setting=True),
    "remove-vswitch": ResourceAction("vsw", ENVELOPE, _remove_vsw, ("service_name",)),
    "add-vnet": ResourceAction("network", CONTENT, _add_vnet, ("vnet_name", "service_name")),
    "set-vnet": ResourceAction("network", CONTENT, _set_vnet, ("vnet_name",), setting=True),
    "remove-vnet": ResourceAction("network", CONTENT, _remove_vnet, ("vnet_name",)),
    "add-vconscon": ResourceAction("vcc", CONTENT, _add_vcc,
                                   ("service_name", "min_port", "max_port")),
    "set-vconscon": ResourceAction("vcc", ENVELOPE, _set_vcc, ("service_name",), setting=True),
    "remove-vconscon": ResourceAction("vcc", ENVELOPE, _remove_vcc, ("service_name",)),
    "set-vconsole": ResourceAction("console", CONTENT, _set_vconsole, setting=True),
}

HANDLERS = {action: resource_handler(action, spec) for action, spec in SPECS.items()}
