"""Plain-dict descriptions that phase 1 works on (migration.md §2.4 item 2).

* :func:`describe_host` — a machine as ``mig-hello``/``mig-check`` carry it (cpu-type,
  frequency, firmware version and features, API groups, agent version, protocol range).
* :func:`describe_source` — the ``mig-check`` payload: the source machine and the domain
  (state, flags, softstate, OS capabilities, negotiated API groups, constraints, bindings,
  MACs, host ID, UUID). JSON-ready.
* :func:`source_facts` — what only the source-side checks read (its control domain's delayed
  reconfiguration, services of the domain used by others). Local only.
* :func:`describe_target` — what the target-side checks read of the target's own state
  (free strands and memory, services, names and identities). Local only, never sent.

The checks read only these dicts, so a test can state any scenario, including facts the
manager does not model yet. Those facts get neutral defaults here and can be supplied by the
caller (``guest=``) or by the platform description:

* softstate, OS capabilities and negotiated API groups come from the guest (``guest=``);
  without it an active domain is "Solaris running" with every capability, and has negotiated
  the performance-counter groups its ``perf-counters`` need, when its machine offers them;
* named cores and named memory blocks, alternate MAC addresses, volume ``storage-id`` and EFI
  labels: not in the manager; the keys exist and are empty. NIU attachment of a switch's
  ``net-dev`` (an optional ``net_devs`` list of each ``[[nius]]`` entry of the platform
  description) and hybrid usage come from the manager (``niu_of``, ``hybrid_in_use``);
* firmware features, hypervisor API groups and the largest page size are read from the
  platform description (``firmware_features``, ``hv_api_groups``, ``largest_page_size``),
  else the §1.3 defaults of the CPU type (``firmware_features`` absent = both features).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.ldm.alloc import free_memory
from agent.ldm.model import ACTIVE, CONTROL_DOMAIN, SUSPENDED
from agent.ldm.sizes import parse_size
from agent.migration import versions
from agent.migration.versions import DEFAULT_RULES, CpuRules

if TYPE_CHECKING:
    from agent.ldm.manager import Manager

SOLARIS_RUNNING = "Solaris running"
ALL_CAPABILITIES = ["suspend", "migration-v2", "cpu-dr", "crypto-dr", "mem-dr"]
DEFAULT_FEATURES = ["efi-gpt", "migration"]


def describe_host(manager: "Manager", server_name: str, agent_version: str, *,
                  rules: CpuRules = DEFAULT_RULES) -> dict:
    """The machine facts of §1.2 that checks and ``mig-hello`` use."""
    plat = manager.platform
    machine = plat.raw.get("machine", {})
    largest = machine.get("largest_page_size")
    return {
        "hostname": plat.hostname,
        "server-name": server_name,
        "machine-id": plat.machine_id,
        "cpu-type": plat.cpu_type,
        "cpu-freq-mhz": plat.cpu_freq_mhz,
        "strands-per-core": plat.strands_per_core,
        "largest-page-size": (parse_size(largest) if largest is not None
                              else rules.cpu(plat.cpu_type).largest_page),
        "mem-granule": plat.granule,
        "firmware-version": plat.firmware_version or "0",
        "firmware-features": sorted(machine.get("firmware_features", DEFAULT_FEATURES)),
        "hv-api-groups": [list(g) for g in machine.get("hv_api_groups",
                                                       rules.default_api_groups(plat.cpu_type))],
        "agent-version": agent_version,
        "protocol": list(versions.protocol_range()),
        "pm-policy": plat.pm_policy,
    }


def describe_source(manager: "Manager", domain: str, host: dict, *,
                    guest: dict | None = None) -> dict:
    """The ``mig-check`` payload for ``domain``; raises LdmError if the domain is unknown."""
    summary = manager.summary(domain)
    cons = manager.constraints(domain)
    binds = manager.bindings(domain)
    running = summary.state in (ACTIVE, SUSPENDED)
    desc = {
        "name": summary.name, "uuid": summary.uuid, "mac": summary.mac,
        "hostid": summary.hostid, "state": summary.state, "flags": summary.flags,
        "cpu-arch": cons.cpu_arch, "perf-counters": list(cons.perf_counters),
        "vcpus": binds.vcpus, "whole-cores": cons.resources.wcore, "named-cores": [],
        "memory": binds.memory,
        "memory-blocks": [{"ra": b.ra, "pa": b.pa, "size": b.size, "named": False}
                          for b in binds.memory_blocks],
        "named-memory": [],
        "mau": cons.resources.mau, "mau-bound": len(binds.mau_units),
        "io": _io(manager, cons.resources.io),
        "vdisks": [_vdisk(manager, d) for d in sorted(cons.vdisks.values(), key=lambda d: d.id)],
        "vnets": [{"name": n.name, "service": n.service, "mac": n.mac, "alt-macs": [],
                   "mode": n.mode} for n in sorted(cons.vnets.values(), key=lambda n: n.id)],
        "console": {
            "service": cons.console.service,
            "port": binds.console.port if binds.console else cons.console.port,
            "port-constraint": cons.console.port is not None,
        },
    }
    desc.update(_guest_facts(desc, host, guest, running))
    return {"host": host, "domain": desc}


def _guest_facts(desc: dict, host: dict, guest: dict | None, running: bool) -> dict:
    if guest is not None:
        return {"softstate": guest.get("softstate", ""),
                "os-capabilities": sorted(guest.get("os-capabilities", [])),
                "api-groups": [list(g) for g in guest.get("api-groups", [])]}
    if not running:
        return {"softstate": "", "os-capabilities": [], "api-groups": []}
    return running_guest(desc["perf-counters"], host)


def running_guest(perf_counters: list[str], host: dict,
                  capabilities: list[str] | None = None) -> dict:
    """The facts of a guest running Solaris: ``capabilities`` (default: all of them), and the
    performance-counter API groups its ``perf-counters`` need, where ``host`` offers them."""
    wanted = []
    if "global" in perf_counters:
        wanted.append(versions.GLOBAL_COUNTERS)
    if {"strand", "htstrand"} & set(perf_counters):
        wanted.append(versions.STRAND_COUNTERS)
    groups = [[g, "1.0"] for g in wanted
              if versions.api_supported(host.get("hv-api-groups", []), g, "1.0")]
    caps = list(ALL_CAPABILITIES) if capabilities is None else sorted(capabilities)
    return {"softstate": SOLARIS_RUNNING, "os-capabilities": caps, "api-groups": groups}


def _io(manager, names: list[str]) -> dict:
    out: dict[str, list[str]] = {"buses": [], "endpoints": [], "vfs": []}
    for name in sorted(names):
        dev = manager.platform.io_device(name)
        kind = dev.type if dev else "pcie"
        out["buses" if kind == "bus" else "vfs" if kind == "vf" else "endpoints"].append(name)
    return out


def _vdisk(manager, disk) -> dict:
    volume = _volume(manager, disk.service, disk.volume)
    return {
        "name": disk.name, "volume": disk.volume, "service": disk.service,
        "options": sorted(volume.options) if volume else [],
        "mpgroup": volume.mpgroup if volume else "",
        "storage-id": None, "efi": False,
    }


def _volume(manager, service: str, volume: str):
    for dom in manager.domains.values():
        vds = dom.vdss.get(service)
        if vds is not None:
            return vds.volumes.get(volume)
    return None


def source_facts(manager: "Manager", domain: str) -> dict:
    """What only the source-side checks read: its control domain's delayed reconfiguration
    (K04) and the services of ``domain`` that other domains use (K12 rule 7)."""
    doms = manager.domains
    primary = doms.get(CONTROL_DOMAIN)
    dom = doms[domain]
    others = [d for d in doms.values() if d.name != domain]
    used = set()
    for other in others:
        used.update(disk.service for disk in other.vdisks.values())
        used.update(net.service for net in other.vnets.values())
        if other.binding and other.binding.console_service:
            used.add(other.binding.console_service)
        if other.console.service:
            used.add(other.console.service)
    provided = set(dom.vdss) | set(dom.vsws) | set(dom.vccs)
    return {
        "reconf": CONTROL_DOMAIN if primary is not None and primary.pending is not None else None,
        "provided-to-others": sorted(provided & used),
    }


def describe_target(manager: "Manager", *, rules: CpuRules = DEFAULT_RULES) -> dict:
    """The target's own state as the target-side checks read it (never leaves the target)."""
    plat = manager.platform
    doms = manager.domains
    used_strands = {s for d in doms.values() if d.binding for s in d.binding.strands}
    used_mau = {u for d in doms.values() if d.binding for u in d.binding.mau}
    used_memory = [b for d in doms.values() if d.binding for b in d.binding.memory]
    used_memory += manager.scrubbing()  # memory under scrub is not free (§10.11)
    primary = doms.get(CONTROL_DOMAIN)
    return {
        "host": describe_host(manager, "", "", rules=rules),
        "reconf": CONTROL_DOMAIN if primary is not None and primary.pending is not None else None,
        "domains": [_identity(d) for d in doms.values()],
        "cores": [{"id": c, "strands": plat.strands_of_core(c),
                   "free": [s for s in plat.strands_of_core(c) if s not in used_strands]}
                  for c in plat.usable_cores()],
        "free-crypto": [[u, plat.core_of_crypto_unit(u)] for u in plat.crypto_units()
                        if u not in used_mau],
        "free-memory": [[r.pa, r.size] for r in free_memory(plat, used_memory)],
        "vdss": {name: {"owner": d.name, "owner-state": d.state, "volumes": {
            v.name: {"options": sorted(v.options), "mpgroup": v.mpgroup, "storage-id": None}
            for v in vds.volumes.values()}}
            for d in doms.values() for name, vds in d.vdss.items()},
        "vsws": {name: {"owner": d.name, "owner-state": d.state, "mac": vsw.mac,
                        "niu": manager.niu_of(vsw.dev_path)}
                 for d in doms.values() for name, vsw in d.vsws.items()},
        "vccs": {name: {"owner": d.name, "owner-state": d.state, "min": vcc.min_port,
                        "max": vcc.max_port, "used": _ports_used(doms, name)}
                 for d in doms.values() for name, vcc in d.vccs.items()},
        "nius": {n.name: {"capacity": n.hybrid_capacity, "in-use": manager.hybrid_in_use()[n.name]}
                 for n in plat.nius},
    }


def _identity(dom) -> dict:
    macs = [dom.mac]
    for net in dom.vnets.values():
        macs.append(net.mac)
    return {"name": dom.name, "uuid": dom.uuid, "hostid": dom.hostid, "state": dom.state,
            "macs": macs}


def _ports_used(doms, vcc: str) -> list[int]:
    return sorted(d.binding.console_port for d in doms.values()
                  if d.binding and d.binding.console_service == vcc
                  and d.binding.console_port is not None)
