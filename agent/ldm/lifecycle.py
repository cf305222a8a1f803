"""Domain lifecycle: add/remove, bind/unbind, start/stop, set-domain, platform reports.

Also the delayed reconfiguration of the control domain: it ends when the control domain
reboots (reported by the platform) or is cancelled.
"""

from __future__ import annotations

from agent.ldm import checks
from agent.ldm.core import ManagerCore
from agent.ldm.errors import LdmError
from agent.ldm.events import Outcome, domain_event
from agent.ldm.model import ACTIVE, BOUND, CONTROL_DOMAIN, INACTIVE, SUSPENDED, Domain, Vds, Vsw

# set-domain keys (Python spelling of the §6.1 ``Both`` keys) and their defaults.
DOMAIN_DEFAULTS: dict[str, object] = {
    "mac": None,  # None: keep (mac/hostid have no default to return to)
    "hostid": None,
    "master": [],
    "failure_policy": "ignore",
    "extended_mapin_space": "off",
    "rc_add_policy": "",
    "perf_counters": [],
    "cpu_arch": "native",
}
_NEEDS_INACTIVE = ("mac", "hostid", "cpu_arch")
_WIRE = {"mac": "mac-addr", "failure_policy": "failure-policy", "cpu_arch": "cpu-arch",
         "extended_mapin_space": "extended-mapin-space", "rc_add_policy": "rc-add-policy",
         "perf_counters": "perf-counters", "hostid": "hostid", "master": "master"}


def require_state(dom: Domain, action: str, *states: str) -> None:
    """Refuse unless the domain is in one of ``states`` (ldm-xml §3.6 wording)."""
    if dom.state not in states:
        raise LdmError(
            f"Domain {dom.name} is {dom.state}; {action} requires it to be {' or '.join(states)}"
        )


class Lifecycle(ManagerCore):
    """Domain lifecycle and properties."""

    def _modify(self, name: str) -> Domain:
        """The domain for a requested change, refused while the control domain reconfigures
        or while the domain takes part in a migration (migration.md §2.12)."""
        if self._get(name).migration_flag:
            raise LdmError(f"Domain {name} is being migrated and cannot be modified")
        primary = self.domains.get(CONTROL_DOMAIN)
        if name != CONTROL_DOMAIN and primary is not None and primary.pending is not None:
            raise LdmError(
                f"Domain {name} cannot be changed: a delayed reconfiguration of the control "
                f"domain {CONTROL_DOMAIN} is pending until it reboots"
            )
        return self._edit(name)

    def _check_no_migration(self) -> None:
        """Refuse binding and run-state changes while a migration runs on this machine."""
        if any(d.migration_flag in ("s", "t") for d in self.domains.values()):
            raise LdmError(
                "Operation not permitted while a domain migration is in progress on this machine")

    # -- add, remove, set ---------------------------------------------------------------

    def add_domain(self, name: str, *, uuid: str | None = None, **props: object) -> Outcome:
        """Create an inactive domain; ``props`` are set-domain keys (see DOMAIN_DEFAULTS)."""
        with self.transaction():
            self._check_name(name)
            if name in self.domains:
                raise LdmError(f"Domain {name} already exists")
            if name in self.reserved_names:
                raise LdmError(self.reserved_names[name])
            primary = self.domains.get(CONTROL_DOMAIN)
            if primary is not None and primary.pending is not None:
                raise LdmError(
                    f"Domain {name} cannot be created: a delayed reconfiguration of the control "
                    f"domain {CONTROL_DOMAIN} is pending until it reboots"
                )
            if uuid is not None:
                uuid = checks.uuid(uuid)
                if any(d.uuid == uuid for d in self.domains.values()):
                    raise LdmError(f"UUID {uuid} is already used by another domain")
            dom = Domain(name=name, uuid=uuid or self._new_uuid(), mac="", hostid="")
            self._insert(dom)
            self._set_props(dom, props, creating=True)
            if not dom.mac:
                dom.mac = self._new_mac()
            if not dom.hostid:
                dom.hostid = self._new_hostid(dom.mac)
            return Outcome([domain_event("add-domain", name)])

    def set_domain(self, name: str, **props: object) -> Outcome:
        """Change ldom_info properties; a value of None resets the key to its default."""
        with self.transaction():
            dom = self._modify(name)
            if "uuid" in props:
                raise LdmError(f"The UUID of domain {name} cannot be changed")
            self._set_props(dom, props, creating=False)
            return Outcome()

    def _set_props(self, dom: Domain, props: dict[str, object], creating: bool) -> None:
        for key, value in props.items():
            if key not in DOMAIN_DEFAULTS:
                raise LdmError(f"Unknown domain property {key}")
            if key in _NEEDS_INACTIVE and not creating and dom.state != INACTIVE:
                raise LdmError(
                    f"Domain {dom.name} is {dom.state}; changing {_WIRE[key]} requires it to "
                    f"be inactive"
                )
            if value is None:
                value = DOMAIN_DEFAULTS[key]
                if value is None:
                    continue
            setattr(dom, key, self._checked_prop(dom, key, value))

    def _checked_prop(self, dom: Domain, key: str, value: object) -> object:
        others = [d for d in self.domains.values() if d.name != dom.name]
        if key == "mac":
            mac = checks.mac(str(value))
            if mac in self._all_macs() - {dom.mac}:
                raise LdmError(f"MAC address {mac} is already in use")
            return mac
        if key == "hostid":
            hostid = checks.hostid(str(value))
            if any(d.hostid == hostid for d in others):
                raise LdmError(f"Host ID {hostid} is already in use")
            return hostid
        if key == "master":
            masters = list(value) if isinstance(value, (list, tuple)) else [
                m for m in str(value).split(",") if m]
            if len(masters) > 4:
                raise LdmError(f"Domain {dom.name} can have at most four master domains")
            for m in masters:
                if m == dom.name:
                    raise LdmError(f"Domain {dom.name} cannot be its own master")
                self._get(m)
            return masters
        if key == "failure_policy":
            return checks.choice("failure-policy", str(value), checks.FAILURE_POLICIES)
        if key == "extended_mapin_space":
            return checks.on_off("extended-mapin-space", str(value))
        if key == "rc_add_policy":
            return checks.choice("rc-add-policy", str(value), ("", "iov"))
        if key == "perf_counters":
            items = list(value) if isinstance(value, (list, tuple)) else [
                p for p in str(value).split(",") if p]
            for item in items:
                checks.choice("perf-counters", item, checks.PERF_COUNTERS)
            return items
        return checks.choice("cpu-arch", str(value), checks.CPU_ARCHS)

    def remove_domain(self, name: str) -> Outcome:
        """Destroy an inactive domain (never the control domain)."""
        with self.transaction():
            dom = self._modify(name)
            if dom.is_control:
                raise LdmError(f"The control domain {name} cannot be removed")
            require_state(dom, "remove-domain", INACTIVE)
            for other in self.domains.values():
                if other.name == name:
                    continue
                if name in other.master:
                    raise LdmError(f"Domain {name} is a master of domain {other.name}")
                for disk in other.vdisks.values():
                    if disk.service in dom.vdss:
                        raise LdmError(
                            f"Domain {name} provides {disk.service}, used by domain {other.name}")
                for net in other.vnets.values():
                    if net.service in dom.vsws:
                        raise LdmError(
                            f"Domain {name} provides {net.service}, used by domain {other.name}")
                if other.console.service in dom.vccs or (
                        other.binding and other.binding.console_service in dom.vccs):
                    raise LdmError(
                        f"Domain {name} provides a console concentrator used by domain {other.name}")
            self._delete(name)
            return Outcome([domain_event("remove-domain", name)])

    # -- bind, unbind, start, stop ------------------------------------------------------

    def bind_domain(self, name: str, force: bool = False) -> Outcome:
        """inactive → bound: allocate the constraints from the platform."""
        with self.transaction():
            dom = self._modify(name)
            self._check_no_migration()
            require_state(dom, "bind-domain", INACTIVE)
            res = dom.resources
            if res.vcpus < 1:
                raise LdmError(f"Could not bind domain {name}: it has no vCPUs")
            if res.memory <= 0:
                raise LdmError(f"Could not bind domain {name}: it has no memory")
            self._check_cpu_arch(dom)
            if not force:
                self._check_backends(dom)
            dom.binding = self._allocate(dom, res, None)
            dom.state = BOUND
            return Outcome([domain_event("bind-domain", name)])

    def _check_cpu_arch(self, dom: Domain) -> None:
        cpu = self.platform.cpu_type
        if dom.cpu_arch == "migration-class1" and cpu not in checks.CLASS1:
            raise LdmError(
                f"Could not bind domain {dom.name}: cpu-arch migration-class1 is not supported "
                f"by {cpu}")
        if dom.cpu_arch == "sparc64-class1" and cpu not in checks.SPARC64_CLASS1:
            raise LdmError(
                f"Could not bind domain {dom.name}: cpu-arch sparc64-class1 is not supported "
                f"by {cpu}")

    def _check_backends(self, dom: Domain) -> None:
        for disk in dom.vdisks.values():
            found = self._find_service(disk.service)
            vds = found[1] if found else None
            if not isinstance(vds, Vds) or disk.volume not in vds.volumes:
                raise LdmError(
                    f"Could not bind domain {dom.name}: virtual disk {disk.name} refers to "
                    f"{disk.volume}@{disk.service}, which does not exist")
        for net in dom.vnets.values():
            found = self._find_service(net.service)
            if found is None or not isinstance(found[1], Vsw):
                raise LdmError(
                    f"Could not bind domain {dom.name}: virtual network {net.name} refers to "
                    f"switch {net.service}, which does not exist")

    def unbind_domain(self, name: str) -> Outcome:
        """bound → inactive: release the domain's resources."""
        with self.transaction():
            dom = self._modify(name)
            if dom.is_control:
                raise LdmError(f"The control domain {name} cannot be unbound")
            self._check_no_migration()
            require_state(dom, "unbind-domain", BOUND)
            dom.binding = None
            dom.state = INACTIVE
            return Outcome([domain_event("unbind-domain", name)])

    def start_domain(self, name: str) -> Outcome:
        """bound → active: the hypervisor launches the guest."""
        with self.transaction():
            dom = self._modify(name)
            self._check_no_migration()
            require_state(dom, "start-domain", BOUND)
            b = dom.binding
            assert b is not None
            try:
                self.guests.launch(name, len(b.strands), sum(m.size for m in b.memory))
            except Exception as exc:
                raise LdmError(f"Could not start domain {name}: {exc}") from exc
            dom.state = ACTIVE
            dom.started_at = self.clock()
            self._attach_hybrid(dom)
            return Outcome([domain_event("start-domain", name)])

    def stop_domain(self, name: str, force: bool = False) -> Outcome:
        """active → bound; ``force`` does not wait for the guest to shut down."""
        with self.transaction():
            dom = self._modify(name)
            if dom.is_control:
                raise LdmError(f"The control domain {name} cannot be stopped")
            self._check_no_migration()
            require_state(dom, "stop-domain", ACTIVE, SUSPENDED)
            try:
                self.guests.halt(name, force)
            except Exception as exc:
                raise LdmError(f"Could not stop domain {name}: {exc}") from exc
            dom.state = BOUND
            dom.started_at = None
            self._end_legacy(dom)
            self._detach_hybrid(dom)
            return Outcome([domain_event("stop-domain", name)])

    def panic_domain(self, name: str) -> Outcome:
        """Operator request (``ldm panic-domain``): make the guest's OS panic and reboot."""
        with self.transaction():
            dom = self._modify(name)
            if dom.is_control:
                raise LdmError(f"The control domain {name} cannot be panicked")
            self._check_no_migration()
            require_state(dom, "panic-domain", ACTIVE)
            try:
                self.guests.panic(name)
            except Exception as exc:
                raise LdmError(f"Could not panic domain {name}: {exc}") from exc
            dom.started_at = self.clock()
            self._end_legacy(dom)  # the guest reboots
            return Outcome([domain_event("panic-domain", name)])

    # -- what the platform reports ------------------------------------------------------

    def guest_halted(self, name: str) -> Outcome:
        """The guest stopped by itself: it becomes bound; its slaves get its failure policy."""
        with self.transaction():
            dom = self._edit(name)
            require_state(dom, "a halt", ACTIVE, SUSPENDED)
            dom.state = BOUND
            dom.started_at = None
            self._end_legacy(dom)
            self._detach_hybrid(dom)
            out = Outcome([domain_event("stop-domain", name)])
            self._fail_slaves(dom, out)
            return out

    def guest_reset(self, name: str) -> Outcome:
        """The guest rebooted; a pending delayed reconfiguration of it takes effect now."""
        return self._rebooted(name, "domain-reset")

    def guest_panicked(self, name: str) -> Outcome:
        """The guest panicked (and rebooted)."""
        return self._rebooted(name, "panic-domain")

    def _rebooted(self, name: str, action: str) -> Outcome:
        with self.transaction():
            dom = self._edit(name)
            require_state(dom, "a reboot", ACTIVE)
            dom.started_at = self.clock()
            self._end_legacy(dom)
            if dom.pending is not None:
                dom.binding = self._allocate(dom, dom.pending, dom.binding)
                dom.resources = dom.pending
                dom.pending = None
            out = Outcome([domain_event(action, name)])
            self._fail_slaves(dom, out)
            return out

    @staticmethod
    def _end_legacy(dom: Domain) -> None:
        """A reboot or stop ends what a legacy-mode migration left (§6.1): the reserved
        strands return to the pool and CPU dynamic reconfiguration works again."""
        dom.cpu_dr_disabled = False
        if dom.binding is not None:
            dom.binding.reserved = []

    def _fail_slaves(self, master: Domain, out: Outcome) -> None:
        policy = master.failure_policy
        if policy == "ignore":
            return
        for slave in [d for d in self.domains.values() if master.name in d.master]:
            if slave.state != ACTIVE:
                continue
            try:
                if policy == "stop":
                    self.guests.halt(slave.name, True)
                elif policy == "reset":
                    self.guests.reset(slave.name)
                else:
                    self.guests.panic(slave.name)
            except Exception as exc:
                out.messages.append(
                    f"Warning: failure policy {policy} of {master.name} could not be applied "
                    f"to domain {slave.name}: {exc}")
                continue
            slave = self._edit(slave.name)
            if policy == "stop":
                slave.state = BOUND
                slave.started_at = None
                out.events.append(domain_event("stop-domain", slave.name))
            else:
                slave.started_at = self.clock()
                action = "domain-reset" if policy == "reset" else "panic-domain"
                out.events.append(domain_event(action, slave.name))

    # -- pending operations -------------------------------------------------------------

    def cancel_reconf(self, name: str) -> Outcome:
        """Discard the domain's pending delayed reconfiguration."""
        with self.transaction():
            dom = self._edit(name)
            if dom.pending is None:
                raise LdmError(f"Domain {name} has no delayed reconfiguration pending")
            dom.pending = None
            return Outcome()

    def memory_dr(self, name: str, in_progress: bool) -> Outcome:
        """The platform reports a memory dynamic reconfiguration starting or ending (flag r)."""
        with self.transaction():
            self._edit(name).memdr = in_progress
            return Outcome()

    def cancel_memdr(self, name: str) -> Outcome:
        """Cancel the domain's memory dynamic reconfiguration in progress."""
        with self.transaction():
            dom = self._edit(name)
            if not dom.memdr:
                raise LdmError(f"Domain {name} has no memory dynamic reconfiguration in progress")
            dom.memdr = False
            return Outcome()

    def set_migration_flag(self, name: str, flag: str) -> Outcome:
        """For the migration layer: the sixth flag (``s``, ``t``, ``e``; "" clears)."""
        if flag not in ("", "s", "t", "e"):
            raise LdmError(f"Invalid migration flag \"{flag}\"")
        with self.transaction():
            self._edit(name).migration_flag = flag
            return Outcome()
