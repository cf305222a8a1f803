"""Read-only views for the list actions (ldm-xml §6.19–§6.23), as plain values.

Values are typed, not formatted: counts are ints, sizes and addresses are int bytes,
``util`` is a float, and ``None`` means "emit empty text". The codec formats them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from agent.ldm.alloc import free_memory
from agent.ldm.core import ManagerCore
from agent.ldm.errors import LdmError
from agent.ldm.model import ACTIVE, CONTROL_DOMAIN, FACTORY_DEFAULT, SUSPENDED, Domain, MemBlock
from agent.ldm.model import Console, Vcc, Vdisk, Vds, Vnet, Volume, Vsw


@dataclass(frozen=True)
class DomainSummary:
    """The ``ldom_info`` of list-domain and list-bindings (§6.19, §6.20)."""

    name: str
    uuid: str
    mac: str
    hostid: str
    state: str
    flags: str
    console: str  # port number, "UART" for the control domain, "" when none is bound
    ncpu: int
    memory: int
    util: float | None
    uptime: int | None
    master: str  # comma-separated
    failure_policy: str
    extended_mapin_space: str
    rc_add_policy: str
    perf_counters: str  # comma-separated
    cpu_arch: str

    def list_domain_props(self) -> list[tuple[str, object]]:
        """The twelve keys of list-domain, in wire order (§6.19)."""
        return [
            ("uuid", self.uuid), ("rasd:Address", self.mac), ("hostid", self.hostid),
            ("state", self.state), ("flags", self.flags), ("console", self.console),
            ("ncpu", self.ncpu), ("memory", self.memory), ("util", self.util),
            ("uptime", self.uptime), ("master", self.master),
            ("failure-policy", self.failure_policy),
        ]

    def list_bindings_props(self) -> list[tuple[str, object]]:
        """list-domain keys followed by the four extra keys of list-bindings (§6.20)."""
        return self.list_domain_props() + [
            ("extended-mapin-space", self.extended_mapin_space),
            ("rc-add-policy", self.rc_add_policy),
            ("perf-counters", self.perf_counters),
            ("cpu-arch", self.cpu_arch),
        ]


@dataclass(frozen=True)
class CpuBinding:
    vid: int
    pid: int
    cid: int
    util: float | None


@dataclass(frozen=True)
class MauBinding:
    id: int
    cpuset: tuple[int, ...]


@dataclass(frozen=True)
class IoView:
    name: str
    device: str
    type: str


@dataclass(frozen=True)
class ConsoleView:
    """A bound console: actual values plus the domain providing the concentrator."""

    port: int | None
    service: str | None
    group: str
    log: str
    service_domain: str | None


@dataclass
class DomainBindings:
    """Everything list-bindings shows for one domain; device lists are ordered by name."""

    summary: DomainSummary
    vcpus: int
    wcore: int
    cpus: list[CpuBinding]
    mau: int
    mau_units: list[MauBinding]
    memory: int
    memory_blocks: list[MemBlock]
    io: list[IoView]
    variables: list[tuple[str, str]]
    vccs: list[tuple[Vcc, list[tuple[str, int]]]]  # clients: (ldom, port)
    vdss: list[tuple[Vds, list[Volume], list[tuple[str, str, str]]]]  # (vdisk, ldom, vol)
    vsws: list[tuple[Vsw, list[tuple[str, str, str]]]]  # ports: (vnet, ldom, mac)
    vnets: list[tuple[Vnet, int, str | None]]  # (vnet, effective mtu, switch's domain)
    vdisks: list[tuple[Vdisk, str | None]]  # (disk, server's domain)
    console: ConsoleView | None
    policies: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@dataclass(frozen=True)
class DeviceItem:
    """One list-devices Item: its resource type and wire-keyed properties in order."""

    rtype: str
    props: tuple[tuple[str, object], ...]


DEVICE_CLASSES = ("cpu", "core", "mau", "memory", "physio_device")


class Queries(ManagerCore):
    """The list-* views."""

    def domain_names(self) -> list[str]:
        """All domains: the control domain first, then the others in byte order of name."""
        others = sorted((n for n in self.domains if n != CONTROL_DOMAIN), key=str.encode)
        return ([CONTROL_DOMAIN] if CONTROL_DOMAIN in self.domains else []) + others

    def summary(self, name: str) -> DomainSummary:
        """list-domain's view of one domain (raises LdmError if unknown)."""
        dom = self._get(name)
        b = dom.binding
        running = dom.state in (ACTIVE, SUSPENDED)
        if dom.is_control:
            console = "UART"
        elif b is not None and b.console_port is not None:
            console = str(b.console_port)
        else:
            console = ""
        uptime = None
        if running and dom.started_at is not None:
            uptime = max(0, int(self.clock() - dom.started_at))
        return DomainSummary(
            name=dom.name, uuid=dom.uuid, mac=dom.mac, hostid=dom.hostid, state=dom.state,
            flags=self.flags(dom), console=console,
            ncpu=len(b.strands) if b else dom.resources.vcpus,
            memory=sum(m.size for m in b.memory) if b else dom.resources.memory,
            util=self._util(dom) if running else None, uptime=uptime,
            master=",".join(dom.master), failure_policy=dom.failure_policy,
            extended_mapin_space=dom.extended_mapin_space, rc_add_policy=dom.rc_add_policy,
            perf_counters=",".join(dom.perf_counters), cpu_arch=dom.cpu_arch,
        )

    @staticmethod
    def flags(dom: Domain) -> str:
        """The six-position flags (ldm-xml §6.19, migration.md §7.1)."""
        status = "n" if dom.state in (ACTIVE, SUSPENDED) else "-"
        reconf = "d" if dom.pending is not None else ("r" if dom.memdr else "-")
        control = "c" if dom.is_control else "-"
        service = "v" if dom.provides_services() else "-"
        return "-" + status + reconf + control + service + (dom.migration_flag or "-")

    def _util(self, dom: Domain) -> float | None:
        try:
            return self.guests.utilisation(dom.name)
        except Exception:  # a guest the hypervisor cannot report on shows no figure
            return None

    def bindings(self, name: str) -> DomainBindings:
        """list-bindings' view of one domain."""
        dom = self._get(name)
        plat = self.platform
        b = dom.binding
        res = dom.resources
        running = dom.state in (ACTIVE, SUSPENDED)
        vcpu_util = self._util(dom) if running else None
        cpus = [
            CpuBinding(vid, pid, plat.core_of_strand(pid), vcpu_util)
            for vid, pid in enumerate(b.strands if b else [])
        ]
        units = [
            MauBinding(u, tuple(plat.strands_of_core(plat.core_of_crypto_unit(u))))
            for u in sorted(b.mau if b else [])
        ]
        io = []
        for dev_name in sorted(res.io):
            dev = plat.io_device(dev_name)
            io.append(IoView(dev_name, dev.device if dev else "", dev.type if dev else ""))
        return DomainBindings(
            summary=self.summary(name),
            vcpus=len(b.strands) if b else res.vcpus,
            wcore=res.wcore,
            cpus=cpus,
            mau=len(b.mau) if b else res.mau,
            mau_units=units,
            memory=sum(m.size for m in b.memory) if b else res.memory,
            memory_blocks=sorted(b.memory if b else [], key=lambda m: m.ra),
            io=io,
            variables=sorted(dom.variables.items()),
            vccs=[(v, self._console_clients(v.name)) for _, v in sorted(dom.vccs.items())],
            vdss=[
                (v, [vol for _, vol in sorted(v.volumes.items())], self._disk_clients(v.name))
                for _, v in sorted(dom.vdss.items())
            ],
            vsws=[(v, self._switch_ports(v.name)) for _, v in sorted(dom.vsws.items())],
            vnets=[
                (v, v.mtu if v.mtu is not None else self._switch_mtu(v.service),
                 self._owner_name(v.service))
                for _, v in sorted(dom.vnets.items())
            ],
            vdisks=[(d, self._owner_name(d.service)) for _, d in sorted(dom.vdisks.items())],
            console=self._console_view(dom),
            policies=[(k, dict(v)) for k, v in sorted(dom.policies.items())],
        )

    def _owner_name(self, service: str) -> str | None:
        found = self._find_service(service)
        return found[0].name if found else None

    def _switch_mtu(self, service: str) -> int:
        found = self._find_service(service)
        return found[1].mtu if found and isinstance(found[1], Vsw) else 1500

    def _console_clients(self, vcc: str) -> list[tuple[str, int]]:
        return sorted(
            (d.name, d.binding.console_port)
            for d in self.domains.values()
            if d.binding and d.binding.console_service == vcc and d.binding.console_port is not None
        )

    def _disk_clients(self, vds: str) -> list[tuple[str, str, str]]:
        return sorted(
            (disk.name, d.name, disk.volume)
            for d in self.domains.values()
            for disk in d.vdisks.values()
            if disk.service == vds
        )

    def _switch_ports(self, vsw: str) -> list[tuple[str, str, str]]:
        return sorted(
            (net.name, d.name, net.mac)
            for d in self.domains.values()
            for net in d.vnets.values()
            if net.service == vsw
        )

    def _console_view(self, dom: Domain) -> ConsoleView | None:
        if dom.binding is None or dom.is_control:
            return None
        svc = dom.binding.console_service
        return ConsoleView(
            port=dom.binding.console_port,
            service=svc,
            group=self._group(dom),
            log=dom.console.log or "on",
            service_domain=self._owner_name(svc) if svc else None,
        )

    def constraints(self, name: str) -> Domain:
        """A detached copy of the domain whose ``resources`` are its requested constraints.

        While a delayed reconfiguration is pending these are the pending (next) ones. Its
        ``console`` holds only explicitly set values (§6.15: emit the Item only if
        ``console.explicit``).
        """
        dom = copy.deepcopy(self._get(name))
        dom.resources = dom.next_resources
        dom.pending = None
        return dom

    def service_domains(self) -> list[str]:
        """Domains providing at least one virtual I/O service, in list order."""
        return [n for n in self.domain_names() if self.domains[n].provides_services()]

    def service_owner(self, service: str) -> str:
        """The domain providing the vds, vsw or vcc named ``service``."""
        found = self._find_service(service)
        if found is None:
            raise LdmError(f"Service {service} does not exist")
        return found[0].name

    def variables(self, name: str, names: list[str] | None = None) -> list[tuple[str, str]]:
        """The domain's variables in name order, only ``names`` if given (each must exist)."""
        dom = self._get(name)
        if names is None:
            return sorted(dom.variables.items())
        missing = [n for n in names if n not in dom.variables]
        if missing:
            raise LdmError(f"Variable {missing[0]} does not exist in domain {name}")
        return sorted((n, dom.variables[n]) for n in set(names))

    def console_settings(self, name: str) -> Console:
        """The domain's console as requested (None where not set)."""
        return copy.deepcopy(self._get(name).console)

    def spconfigs(self, autosave: bool = False, name: str | None = None) -> list[tuple[str, str | None]]:
        """(name, status) per SP configuration, factory-default first (§6.13).

        Without ``autosave``: status ``current``, ``next`` or None. With it: the autosave
        copies, status ``newer`` when the copy is newer than the saved configuration.
        """
        meta = self.meta
        names = [FACTORY_DEFAULT] + sorted(n for n in meta.spconfigs if n != FACTORY_DEFAULT)
        out: list[tuple[str, str | None]] = []
        for cfg_name in names:
            cfg = meta.spconfigs[cfg_name]
            if autosave:
                if cfg.autosave_serial is None or (name is not None and cfg_name != name):
                    continue
                out.append((cfg_name, "newer" if cfg.autosave_serial > cfg.saved_serial else None))
            elif cfg_name == meta.current_config:
                out.append((cfg_name, "current"))
            elif cfg_name == meta.next_config:
                out.append((cfg_name, "next"))
            else:
                out.append((cfg_name, None))
        if autosave and name is not None and not out:
            raise LdmError(f"Autosave configuration {name} does not exist")
        return out

    # -- list-devices ---------------------------------------------------------------------

    def devices(self, cls: str, include_bound: bool = False,
                blacklisted: bool = False) -> list[DeviceItem]:
        """list-devices Items of one class (§6.22); unknown class raises LdmError."""
        if cls not in DEVICE_CLASSES:
            raise LdmError(f"Unknown device class {cls}")
        if blacklisted:
            return self._blacklisted(cls)
        return getattr(self, "_devices_" + cls)(include_bound)

    def _owners(self) -> tuple[dict[int, str], dict[int, str]]:
        strands: dict[int, str] = {}
        units: dict[int, str] = {}
        for d in self.domains.values():
            if d.binding:
                strands.update((s, d.name) for s in d.binding.strands + d.binding.reserved)
                units.update((u, d.name) for u in d.binding.mau + d.binding.held_mau)
        return strands, units

    def _devices_cpu(self, include_bound: bool) -> list[DeviceItem]:
        owner, _ = self._owners()
        return [
            DeviceItem("cpu", (("pid", s), ("bound", owner.get(s, ""))))
            for s in self.platform.usable_strands()
            if include_bound or s not in owner
        ]

    def _devices_core(self, include_bound: bool) -> list[DeviceItem]:
        owner, _ = self._owners()
        out = []
        for c in self.platform.usable_cores():
            strands = self.platform.strands_of_core(c)
            free = sum(1 for s in strands if s not in owner) * 100 // len(strands)
            if include_bound or free > 0:
                cpuset = ",".join(str(s) for s in strands)
                out.append(DeviceItem("core", (("cid", c), ("free", free), ("cpuset", cpuset))))
        return out

    def _devices_mau(self, include_bound: bool) -> list[DeviceItem]:
        _, owner = self._owners()
        plat = self.platform
        out = []
        for u in plat.crypto_units():
            if include_bound or u not in owner:
                cpuset = ",".join(str(s) for s in plat.strands_of_core(plat.core_of_crypto_unit(u)))
                out.append(DeviceItem("mau", (("id", u), ("cpuset", cpuset),
                                              ("bound", owner.get(u, "")))))
        return out

    def _devices_memory(self, include_bound: bool) -> list[DeviceItem]:
        rows: list[tuple[int, int, str]] = []
        used: list[MemBlock] = []
        for d in self.domains.values():
            for blk in d.binding.memory if d.binding else []:
                used.append(blk)
                if include_bound:
                    rows.append((blk.pa, blk.size, d.name))
        # Memory under scrub is neither free nor owned: it is not listed at all (§10.11).
        used += self.scrubbing()
        rows += [(r.pa, r.size, "") for r in free_memory(self.platform, used)]
        return [DeviceItem("memory", (("pa", pa), ("size", size), ("bound", who)))
                for pa, size, who in sorted(rows)]

    def _devices_physio_device(self, include_bound: bool) -> list[DeviceItem]:
        owner = {}
        for d in self.domains.values():
            for name in d.resources.io + (d.pending.io if d.pending else []):
                owner.setdefault(name, d.name)
        out = []
        for dev in sorted(self.platform.io, key=lambda d: d.name):
            if not include_bound and dev.name in owner:
                continue
            props: list[tuple[str, object]] = [("name", dev.name)]
            if dev.type == "bus":
                props.append(("iov", "on" if self.meta.iov.get(dev.name) else "off"))
            props += [("device", dev.device), ("type", dev.type), ("bound", owner.get(dev.name, ""))]
            out.append(DeviceItem("physio_device", tuple(props)))
        return out

    def _blacklisted(self, cls: str) -> list[DeviceItem]:
        if cls == "core":
            return [DeviceItem("core", (("cid", c), ("status", "blacklisted")))
                    for c in sorted(self.platform.blacklisted_cores)]
        if cls == "memory":
            return [DeviceItem("memory", (("pa", r.pa), ("size", r.size), ("status", "blacklisted")))
                    for r in sorted(self.platform.blacklisted_memory, key=lambda r: r.pa)]
        return []
