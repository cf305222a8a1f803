"""A domain's resources as list-output Items (spec ldm-xml §6.0, §6.20, §6.21, §6.23).

The manager's views are plain values (``agent.ldm.queries``); here they become the property
dicts that ``agent.xmlapi.resources.item_for_output`` orders and formats. One function per
resource type keeps list-bindings, list-constraints and list-services on the same keys.
"""

from __future__ import annotations

from typing import Any

from agent.ldm.model import Domain, Vdisk, Vnet, Volume, Vsw
from agent.ldm.queries import DomainBindings
from agent.xmlapi import resources
from agent.xmlapi.model import Item
from agent.xmlapi.resources import LIST_BINDINGS, LIST_CONSTRAINTS, item_for_output

Props = dict[str, Any]


def volume_props(service: str, vol: Volume) -> Props:
    return {"vol_name": vol.name, "service_name": service, "block_dev": vol.block_dev,
            "vol_opts": vol.options, "mpgroup": vol.mpgroup}


def vsw_props(vsw: Vsw) -> Props:
    return {"service_name": vsw.name, "rasd:Address": vsw.mac,
            "default-vlan-id": vsw.default_vlan_id, "dev_path": vsw.dev_path, "id": vsw.id,
            "inter_vnet_link": vsw.inter_vnet_link, "linkprop": vsw.linkprop, "mode": vsw.mode,
            "pvid": vsw.pvid, "mtu": vsw.mtu, "vid": vsw.vid}


def vnet_props(net: Vnet, mtu: int | None) -> Props:
    return {"vnet_name": net.name, "service_name": net.service, "rasd:Address": net.mac,
            "linkprop": net.linkprop, "pvid": net.pvid, "vid": net.vid, "mode": net.mode,
            "id": net.id, "mtu": mtu}


def vdisk_props(disk: Vdisk) -> Props:
    return {"vdisk_name": disk.name, "service_name": disk.service, "vol_name": disk.volume,
            "timeout": disk.timeout, "id": disk.id}


def _policy_items(policies: list[tuple[str, dict[str, str]]], view: str) -> list[Item | None]:
    return [item_for_output("policy", {"policy_name": name, **props}, view)
            for name, props in policies]


# -- list-bindings (§6.20) -----------------------------------------------------------------

def binding_items(b: DomainBindings, extra: list[tuple[str, str]] = ()) -> list[Item | None]:
    """Every Item of one domain's list-bindings Content, with its ``bind:Binding`` children;
    ``extra`` are further ldom_info keys (the migration keys while a migration is attached)."""
    view = LIST_BINDINGS
    items: list[Item | None] = [
        item_for_output("ldom_info", {**dict(b.summary.list_bindings_props()), **dict(extra)}, view),
        item_for_output("cpu", {"rasd:AllocationUnits": b.vcpus, "wcore": b.wcore}, view,
                        bindings=[{"vid": c.vid, "pid": c.pid, "cid": c.cid, "util": c.util}
                                  for c in b.cpus]),
        item_for_output("mau", {"rasd:AllocationUnits": b.mau}, view,
                        bindings=[{"id": u.id, "cpuset": u.cpuset} for u in b.mau_units]),
        item_for_output("memory", {"rasd:AllocationUnits": b.memory}, view,
                        bindings=[{"ra": m.ra, "pa": m.pa, "size": m.size}
                                  for m in b.memory_blocks]),
    ]
    items += [item_for_output("physio_device", {"name": d.name, "device": d.device,
                                                "type": d.type}, view) for d in b.io]
    items += [item_for_output("var", {"name": n, "value": v}, view) for n, v in b.variables]
    for vcc, clients in b.vccs:
        items.append(item_for_output(
            "vcc", {"service_name": vcc.name, "min_port": vcc.min_port,
                    "max_port": vcc.max_port}, view,
            bindings=[{"ldom": ldom, "port": port} for ldom, port in clients]))
    for vds, volumes, disks in b.vdss:
        items.append(item_for_output(
            "vds", {"service_name": vds.name}, view,
            bindings=[{"vdisk_name": d, "ldom": ldom, "vol_name": vol}
                      for d, ldom, vol in disks]))
        items += [item_for_output("vds_volume", volume_props(vds.name, v), view) for v in volumes]
    for vsw, ports in b.vsws:
        items.append(item_for_output(
            "vsw", {**vsw_props(vsw), "device": f"switch@{vsw.id}"}, view,
            bindings=[{"vnet_name": n, "ldom": ldom, "rasd:Address": mac}
                      for n, ldom, mac in ports]))
    for net, mtu, switch_domain in b.vnets:
        items.append(item_for_output(
            "network", {**vnet_props(net, mtu), "device": f"network@{net.id}"}, view,
            bindings=[{"service_name": net.service, "ldom": switch_domain}]))
    for disk, server_domain in b.vdisks:
        items.append(item_for_output(
            "disk", {**vdisk_props(disk), "device": f"disk@{disk.id}"}, view,
            bindings=[{"vol_name": disk.volume, "service_name": disk.service,
                       "ldom": server_domain}]))
    if b.console is not None:
        c = b.console
        items.append(item_for_output(
            "console", {"port": c.port, "service_name": c.service, "group": c.group,
                        "enable-log": c.log}, view,
            bindings=[{"service_name": c.service, "ldom": c.service_domain}]))
    return items + _policy_items(b.policies, view)


# -- list-constraints (§6.21) and list-services (§6.23) ------------------------------------

def constraint_items(dom: Domain) -> list[Item | None]:
    """Every Item of one domain's list-constraints Content: exactly the ``Both`` keys, so the
    Content replays through add-domain (C137, C159)."""
    view = LIST_CONSTRAINTS
    res = dom.resources
    items: list[Item | None] = [
        item_for_output("ldom_info", {
            "uuid": dom.uuid, "rasd:Address": dom.mac, "hostid": dom.hostid,
            "master": dom.master, "failure-policy": dom.failure_policy,
            "extended-mapin-space": dom.extended_mapin_space,
            "rc-add-policy": dom.rc_add_policy, "perf-counters": dom.perf_counters,
            "cpu-arch": dom.cpu_arch}, view),
        item_for_output("cpu", {"rasd:AllocationUnits": res.vcpus, "wcore": res.wcore}, view),
        item_for_output("mau", {"rasd:AllocationUnits": res.mau}, view),
        item_for_output("memory", {"rasd:AllocationUnits": res.memory}, view),
    ]
    items += [item_for_output("physio_device", {"name": d}, view) for d in res.io]
    items += [item_for_output("var", {"name": n, "value": v}, view)
              for n, v in sorted(dom.variables.items())]
    items += service_items(dom, view)
    items += [item_for_output("network", vnet_props(n, n.mtu), view) for n in dom.vnets.values()]
    items += [item_for_output("disk", vdisk_props(d), view) for d in dom.vdisks.values()]
    if dom.console.explicit:
        c = dom.console
        items.append(item_for_output("console", {"port": c.port, "service_name": c.service,
                                                 "group": c.group, "enable-log": c.log}, view))
    return items + _policy_items(sorted(dom.policies.items()), view)


def service_items(dom: Domain, view: str = resources.LIST_SERVICES) -> list[Item | None]:
    """The domain's vcc, vds (with their volumes) and vsw Items with their constraint keys."""
    items: list[Item | None] = [
        item_for_output("vcc", {"service_name": v.name, "min_port": v.min_port,
                                "max_port": v.max_port}, view) for v in dom.vccs.values()]
    for vds in dom.vdss.values():
        items.append(item_for_output("vds", {"service_name": vds.name}, view))
        items += [item_for_output("vds_volume", volume_props(vds.name, v), view)
                  for v in vds.volumes.values()]
    items += [item_for_output("vsw", vsw_props(s), view) for s in dom.vsws.values()]
    return items
