"""Virtual I/O: disk servers and volumes, switches, console concentrators (owned by a
service domain) and the virtual disks, networks and console of each domain (§5.5–§5.7).

Service names (vds, vsw, vcc) are unique on the host across the three kinds. Resource
events of services carry the service domain.
"""

from __future__ import annotations

from agent.ldm import checks
from agent.ldm.errors import LdmError
from agent.ldm.events import Outcome, resource_event
from agent.ldm.lifecycle import Lifecycle
from agent.ldm.model import ACTIVE, BOUND, INACTIVE, Domain, Vcc, Vdisk, Vds, Vnet, Volume, Vsw

UNSET = object()  # set-vconsole: "this key was not given"
VOLUME_OPTIONS = ("ro", "slice", "excl")


def _free_id(used: set[int], wanted: int | None, what: str) -> int:
    if wanted is not None:
        if wanted < 0 or wanted in used:
            raise LdmError(f"Device id {wanted} is not available for {what}")
        return wanted
    n = 0
    while n in used:
        n += 1
    return n


class VirtualIo(Lifecycle):
    """vds, vdsdev, vdisk, vsw, vnet, vcc and vconsole actions."""

    def _new_service_name(self, name: str) -> None:
        self._check_name(name, "service")
        if self._find_service(name) is not None:
            raise LdmError(f"Service {name} already exists")

    # -- virtual disk servers and volumes -----------------------------------------------

    def add_vds(self, domain: str, service: str) -> Outcome:
        """Create a virtual disk server in the service domain."""
        with self.transaction():
            dom = self._modify(domain)
            self._new_service_name(service)
            dom.vdss[service] = Vds(service)
            return Outcome([resource_event("add-vdiskserver", domain, "vds", service_name=service)])

    def remove_vds(self, service: str, force: bool = False) -> Outcome:
        """Remove a disk server; without ``force`` it must have no volumes."""
        with self.transaction():
            owner, vds = self._vds(service)
            if vds.volumes and not force:
                raise LdmError(f"Virtual disk server {service} still has volumes")
            del self._modify(owner.name).vdss[service]
            return Outcome([resource_event("remove-vdiskserver", owner.name, "vds",
                                           service_name=service)])

    def add_vdsdev(self, service: str, volume: str, block_dev: str, options: list[str] | None = None,
                   mpgroup: str = "", force: bool = False, quiet: bool = False) -> Outcome:
        """Export ``block_dev`` as ``volume@service``.

        ``force`` allows a back end another volume exports; ``quiet`` skips back-end
        validation (here: that the back end is an absolute path).
        """
        with self.transaction():
            owner, vds = self._vds(service)
            self._check_name(volume, "volume")
            if volume in vds.volumes:
                raise LdmError(f"Volume {volume}@{service} already exists")
            opts = sorted(set(options or []))
            for opt in opts:
                checks.choice("vol_opts", opt, VOLUME_OPTIONS)
            if not quiet and not block_dev.startswith("/"):
                raise LdmError(f"Invalid back end \"{block_dev}\" for volume {volume}: not an "
                               f"absolute path")
            if not force:
                for dom in self.domains.values():
                    for other in dom.vdss.values():
                        for vol in other.volumes.values():
                            if vol.block_dev == block_dev:
                                raise LdmError(f"Back end {block_dev} is already exported as "
                                               f"{vol.name}@{other.name}")
            self._modify(owner.name).vdss[service].volumes[volume] = Volume(
                volume, block_dev, opts, mpgroup)
            return Outcome([resource_event("add-vdiskserverdevice", owner.name, "vds_volume",
                                           vol_name=volume, service_name=service)])

    def remove_vdsdev(self, service: str, volume: str, force: bool = False) -> Outcome:
        """Remove a volume; without ``force`` no virtual disk may use it."""
        with self.transaction():
            owner, vds = self._vds(service)
            if volume not in vds.volumes:
                raise LdmError(f"Volume {volume}@{service} does not exist")
            user = self._disk_using(service, volume)
            if user is not None and not force:
                raise LdmError(f"Volume {volume}@{service} is used by virtual disk {user[1]} of "
                               f"domain {user[0]}")
            del self._modify(owner.name).vdss[service].volumes[volume]
            return Outcome([resource_event("remove-vdiskserverdevice", owner.name, "vds_volume",
                                           vol_name=volume, service_name=service)])

    def _disk_using(self, service: str, volume: str) -> tuple[str, str] | None:
        for dom in self.domains.values():
            for disk in dom.vdisks.values():
                if disk.service == service and disk.volume == volume:
                    return dom.name, disk.name
        return None

    # -- virtual disks ------------------------------------------------------------------

    def add_vdisk(self, domain: str, disk: str, service: str, volume: str,
                  timeout: int | None = None, id: int | None = None) -> Outcome:
        """Give the domain a virtual disk backed by ``volume@service``."""
        with self.transaction():
            dom = self._modify(domain)
            self._check_name(disk, "disk")
            if disk in dom.vdisks:
                raise LdmError(f"Virtual disk {disk} already exists in domain {domain}")
            _, vds = self._vds(service)
            if volume not in vds.volumes:
                raise LdmError(f"Volume {volume}@{service} does not exist")
            user = self._disk_using(service, volume)
            if user is not None:
                raise LdmError(f"Volume {volume}@{service} is already used by virtual disk "
                               f"{user[1]} of domain {user[0]}")
            if timeout is not None and timeout < 0:
                raise LdmError(f"Invalid value \"{timeout}\" for timeout")
            dev_id = _free_id({d.id for d in dom.vdisks.values()}, id, f"disk {disk}")
            dom.vdisks[disk] = Vdisk(disk, service, volume, dev_id, timeout or None)
            return Outcome([resource_event("add-vdisk", domain, "disk", vdisk_name=disk)])

    def remove_vdisk(self, domain: str, disk: str, force: bool = False) -> Outcome:
        """Remove a virtual disk (``force``: even if the guest uses it; no difference here)."""
        with self.transaction():
            dom = self._modify(domain)
            if disk not in dom.vdisks:
                raise LdmError(f"Virtual disk {disk} does not exist in domain {domain}")
            del dom.vdisks[disk]
            return Outcome([resource_event("remove-vdisk", domain, "disk", vdisk_name=disk)])

    # -- virtual switches and networks --------------------------------------------------

    def _switch_fields(self, fields: dict[str, object], own_mac: str | None) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in fields.items():
            if key == "mac":
                mac = checks.mac(str(value))
                if mac != own_mac and mac in self._all_macs():
                    raise LdmError(f"MAC address {mac} is already in use")
                out[key] = mac
            elif key in ("default_vlan_id", "pvid"):
                out[key] = checks.in_range(key.replace("_", "-"), value, 1, 4094)
            elif key == "mtu":
                out[key] = None if value is None else checks.in_range("mtu", value, 1500, 16000)
            elif key == "vid":
                out[key] = checks.vlan_list("vid", list(value))
            elif key == "inter_vnet_link":
                out[key] = checks.on_off("inter_vnet_link", str(value))
            elif key == "linkprop":
                out[key] = checks.choice("linkprop", str(value), ("", "phys-state"))
            elif key in ("dev_path", "mode", "service"):
                out[key] = str(value)
            else:
                raise LdmError(f"Unknown property {key}")
        return out

    def add_vsw(self, domain: str, service: str, *, mac: str | None = None,
                id: int | None = None, **props: object) -> Outcome:
        """Create a virtual switch; ``props``: dev_path, default_vlan_id, inter_vnet_link,
        linkprop, mode (``sc`` or ""), pvid, mtu, vid (list of ints)."""
        with self.transaction():
            dom = self._modify(domain)
            self._new_service_name(service)
            fields = self._switch_fields(props, None)
            if fields.get("mode", "") not in ("", "sc"):
                raise LdmError(f"Invalid value \"{fields['mode']}\" for mode")
            if "mtu" in fields and fields["mtu"] is None:
                del fields["mtu"]
            mac = self._switch_fields({"mac": mac}, None)["mac"] if mac else self._new_mac()
            dev_id = _free_id({s.id for s in dom.vsws.values()}, id, f"switch {service}")
            dom.vsws[service] = Vsw(service, mac, dev_id, **fields)  # type: ignore[arg-type]
            return Outcome([resource_event("add-vswitch", domain, "vsw", service_name=service)])

    def set_vsw(self, service: str, **props: object) -> Outcome:
        """Change switch properties (same keys as add_vsw, plus ``mac``)."""
        with self.transaction():
            owner, vsw = self._vsw(service)
            fields = self._switch_fields(props, vsw.mac)
            if fields.get("mode", vsw.mode) not in ("", "sc"):
                raise LdmError(f"Invalid value \"{fields['mode']}\" for mode")
            if "mtu" in fields and fields["mtu"] is None:
                fields["mtu"] = 1500
            vsw = self._modify(owner.name).vsws[service]
            for key, value in fields.items():
                setattr(vsw, key, value)
            return Outcome([resource_event("set-vswitch", owner.name, "vsw", service_name=service)])

    def remove_vsw(self, service: str, force: bool = False) -> Outcome:
        """Remove a switch; without ``force`` no virtual network may be attached."""
        with self.transaction():
            owner, _ = self._vsw(service)
            for dom in self.domains.values():
                for net in dom.vnets.values():
                    if net.service == service and not force:
                        raise LdmError(f"Virtual switch {service} is used by virtual network "
                                       f"{net.name} of domain {dom.name}")
            del self._modify(owner.name).vsws[service]
            return Outcome([resource_event("remove-vswitch", owner.name, "vsw",
                                           service_name=service)])

    def add_vnet(self, domain: str, vnet: str, service: str, *, mac: str | None = None,
                 id: int | None = None, **props: object) -> Outcome:
        """Give the domain a virtual network on switch ``service``; ``props``: linkprop,
        pvid, vid, mode (``hybrid`` or ""), mtu."""
        with self.transaction():
            dom = self._modify(domain)
            self._check_name(vnet, "network device")
            if vnet in dom.vnets:
                raise LdmError(f"Virtual network {vnet} already exists in domain {domain}")
            self._vsw(service)
            fields = self._switch_fields(props, None)
            if fields.get("mode", "") not in ("", "hybrid"):
                raise LdmError(f"Invalid value \"{fields['mode']}\" for mode")
            mac = self._switch_fields({"mac": mac}, None)["mac"] if mac else self._new_mac()
            dev_id = _free_id({n.id for n in dom.vnets.values()}, id, f"network {vnet}")
            dom.vnets[vnet] = Vnet(vnet, service, mac, dev_id, **fields)  # type: ignore[arg-type]
            return Outcome([resource_event("add-vnet", domain, "network", vnet_name=vnet)])

    def set_vnet(self, domain: str, vnet: str, **props: object) -> Outcome:
        """Change a virtual network; ``service`` moves it to another switch; ``mac`` needs
        the domain not to be active."""
        with self.transaction():
            dom = self._modify(domain)
            net = dom.vnets.get(vnet)
            if net is None:
                raise LdmError(f"Virtual network {vnet} does not exist in domain {domain}")
            fields = self._switch_fields(props, net.mac)
            if "service" in fields:
                self._vsw(str(fields["service"]))
            if fields.get("mode", net.mode) not in ("", "hybrid"):
                raise LdmError(f"Invalid value \"{fields['mode']}\" for mode")
            if "mac" in fields and fields["mac"] != net.mac and dom.state == ACTIVE:
                raise LdmError(f"Domain {domain} is active; changing the MAC address of {vnet} "
                               f"requires it to be inactive or bound")
            for key, value in fields.items():
                setattr(net, key, value)
            return Outcome([resource_event("set-vnet", domain, "network", vnet_name=vnet)])

    def remove_vnet(self, domain: str, vnet: str, force: bool = False) -> Outcome:
        """Remove a virtual network device."""
        with self.transaction():
            dom = self._modify(domain)
            if vnet not in dom.vnets:
                raise LdmError(f"Virtual network {vnet} does not exist in domain {domain}")
            del dom.vnets[vnet]
            return Outcome([resource_event("remove-vnet", domain, "network", vnet_name=vnet)])

    # -- console concentrators and consoles ---------------------------------------------

    def _check_range(self, service: str, low: int, high: int) -> None:
        checks.in_range("min_port", low, 1, 65535)
        checks.in_range("max_port", high, low, 65535)
        for dom in self.domains.values():
            for vcc in dom.vccs.values():
                if vcc.name != service and low <= vcc.max_port and vcc.min_port <= high:
                    raise LdmError(f"Port range {low}-{high} overlaps {vcc.name} "
                                   f"({vcc.min_port}-{vcc.max_port})")

    def add_vcc(self, domain: str, service: str, min_port: int, max_port: int) -> Outcome:
        """Create a console concentrator serving ports ``min_port``..``max_port``."""
        with self.transaction():
            dom = self._modify(domain)
            self._new_service_name(service)
            self._check_range(service, min_port, max_port)
            dom.vccs[service] = Vcc(service, min_port, max_port)
            return Outcome([resource_event("add-vconscon", domain, "vcc", service_name=service)])

    def set_vcc(self, service: str, min_port: int, max_port: int) -> Outcome:
        """Change a concentrator's port range; bound consoles must stay inside it."""
        with self.transaction():
            owner, _ = self._vcc(service)
            self._check_range(service, min_port, max_port)
            for dom in self._console_users(service):
                port = dom.binding.console_port if dom.binding else None
                if port is not None and not min_port <= port <= max_port:
                    raise LdmError(f"Console port {port} of domain {dom.name} would be outside "
                                   f"the range {min_port}-{max_port}")
            vcc = self._modify(owner.name).vccs[service]
            vcc.min_port, vcc.max_port = min_port, max_port
            return Outcome([resource_event("set-vconscon", owner.name, "vcc", service_name=service)])

    def _console_users(self, service: str) -> list[Domain]:
        return [
            d for d in self.domains.values()
            if d.console.service == service or (d.binding and d.binding.console_service == service)
        ]

    def remove_vcc(self, service: str, force: bool = False) -> Outcome:
        """Remove a concentrator; without ``force`` no console may use it (with it, the
        consoles bound to it lose their port)."""
        with self.transaction():
            owner, _ = self._vcc(service)
            users = self._console_users(service)
            if users and not force:
                raise LdmError(f"Console concentrator {service} is used by domain {users[0].name}")
            for user in users:
                user = self._modify(user.name)
                if user.console.service == service:
                    user.console.service = None
                if user.binding and user.binding.console_service == service:
                    user.binding.console_service = None
                    user.binding.console_port = None
            del self._modify(owner.name).vccs[service]
            return Outcome([resource_event("remove-vconscon", owner.name, "vcc",
                                           service_name=service)])

    def set_vconsole(self, domain: str, *, port: object = UNSET, service: object = UNSET,
                     group: object = UNSET, log: object = UNSET) -> Outcome:
        """Change a domain's console; None or "" resets a key to its default. Port,
        concentrator and group need the domain inactive or bound (a bound one is rebound)."""
        with self.transaction():
            dom = self._modify(domain)
            if dom.is_control:
                raise LdmError(f"The console of the control domain {domain} is the UART")
            given = {k: (None if v == "" else v) for k, v in
                     (("port", port), ("service", service), ("group", group), ("log", log))
                     if v is not UNSET}
            if set(given) - {"log"} and dom.state not in (INACTIVE, BOUND):
                raise LdmError(f"Domain {domain} is {dom.state}; changing its console port, "
                               f"service or group requires it to be inactive or bound")
            if given.get("port") is not None:
                checks.in_range("port", given["port"], 1, 65535)  # type: ignore[arg-type]
            if given.get("service") is not None:
                self._vcc(str(given["service"]))
            if given.get("log") is not None:
                checks.on_off("enable-log", str(given["log"]))
            for key, value in given.items():
                setattr(dom.console, key, value)
            if dom.binding is not None and set(given) - {"log"}:
                service_name, port_no = self._console_binding(dom, self._usage(dom.name),
                                                              dom.binding)
                dom.binding.console_service, dom.binding.console_port = service_name, port_no
            if dom.binding is not None:
                ev_service, ev_port = dom.binding.console_service, dom.binding.console_port
            else:
                ev_service, ev_port = dom.console.service, dom.console.port
            return Outcome([resource_event("set-vconsole", domain, "console",
                                           service_name=ev_service or "", port=ev_port)])
