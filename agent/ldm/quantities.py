"""vCPUs, crypto units, memory and physical I/O of a domain (ldm-xml §5.3, §5.4).

An inactive domain only records the new constraints. A bound or active one is rebound at
once, keeping what it holds (dynamic reconfiguration). Physical I/O changes of the active
control domain start a delayed reconfiguration instead: they, and every later change to
that domain, take effect when it reboots.
"""

from __future__ import annotations

import copy

from agent.ldm.errors import LdmError
from agent.ldm.events import Outcome, allocation_event, resource_event
from agent.ldm.lifecycle import Lifecycle
from agent.ldm.model import ACTIVE, INACTIVE, SUSPENDED, Domain, Resources
from agent.ldm.sizes import format_size

RECONF_STARTED = (
    "Notice: A delayed reconfiguration of domain {0} has started. Changes to other domains "
    "are refused until {0} reboots; its new configuration takes effect then."
)
RECONF_PENDING = (
    "Notice: Domain {0} has a delayed reconfiguration pending; this change takes effect when "
    "{0} reboots."
)


class Quantities(Lifecycle):
    """add/set/remove of vcpu, mau, memory; add/remove/set io."""

    def _resize(self, dom: Domain, new: Resources, io_change: bool = False) -> list[str]:
        """Apply new quantity constraints as the domain's state allows; return notices."""
        reconf = dom.pending is not None or (io_change and dom.is_control and dom.state == ACTIVE)
        if reconf and dom.pending is None and any(d.migration_flag for d in self.domains.values()):
            raise LdmError("A delayed reconfiguration cannot be started while a domain "
                           "migration is in progress")
        if dom.state != INACTIVE:
            self._check_no_migration()
        if reconf:
            self._allocate(dom, new, None)  # refuse now what could not be bound at reboot
            started = dom.pending is None
            dom.pending = new
            return [(RECONF_STARTED if started else RECONF_PENDING).format(dom.name)]
        if dom.state != INACTIVE:
            dom.binding = self._allocate(dom, new, dom.binding)
        dom.resources = new
        return []

    # -- vCPUs --------------------------------------------------------------------------

    def _cpu_request(self, dom: Domain, count: int | None, wcore: int) -> tuple[int, int]:
        """(vcpus, cores) asked for; whole-core requests must agree with the core size."""
        if dom.cpu_dr_disabled and dom.state in (ACTIVE, SUSPENDED):
            raise LdmError(f"CPU dynamic reconfiguration is disabled for domain {dom.name} "
                           f"until it is rebooted")  # after a legacy-mode migration (§6.1)
        spc = self.platform.strands_per_core
        if wcore < 0:
            raise LdmError(f"Invalid value \"{wcore}\" for wcore")
        if wcore > 0:
            if count is not None and count != wcore * spc:
                raise LdmError(
                    f"rasd:AllocationUnits {count} does not match wcore {wcore}: "
                    f"{wcore} whole cores are {wcore * spc} vCPUs")
            return wcore * spc, wcore
        if count is None or count < 1:
            raise LdmError(f"Invalid vCPU count \"{count}\"; must be at least 1")
        return count, 0

    def _vcpu_result(self, action: str, name: str, new: Resources) -> Outcome:
        dom = self._modify(name)
        if new.vcpus < 1 and dom.state != INACTIVE:
            raise LdmError(f"Domain {name} is {dom.state}; it must keep at least one vCPU")
        messages = self._resize(dom, new)
        return Outcome([allocation_event(action, name, "cpu", new.vcpus)], messages)

    def add_vcpu(self, name: str, count: int | None, wcore: int = 0) -> Outcome:
        """Add ``count`` vCPUs, or ``wcore`` whole cores."""
        with self.transaction():
            dom = self._modify(name)
            vcpus, cores = self._cpu_request(dom, count, wcore)
            new = copy.deepcopy(dom.next_resources)
            if cores:
                if new.wcore == 0 and new.vcpus > 0:
                    raise LdmError(
                        f"Domain {name} is not constrained to whole cores; use set-vcpu with wcore")
                new.wcore += cores
                new.vcpus = new.wcore * self.platform.strands_per_core
            else:
                if new.wcore:
                    raise LdmError(
                        f"Domain {name} is constrained to whole cores; add vCPUs with wcore")
                new.vcpus += vcpus
            return self._vcpu_result("add-vcpu", name, new)

    def set_vcpu(self, name: str, count: int | None, wcore: int = 0) -> Outcome:
        """Set the vCPU count, or (``wcore`` > 0) a whole-core constraint of that many cores."""
        with self.transaction():
            dom = self._modify(name)
            vcpus, cores = self._cpu_request(dom, count, wcore)
            new = copy.deepcopy(dom.next_resources)
            new.vcpus, new.wcore = vcpus, cores
            return self._vcpu_result("set-vcpu", name, new)

    def remove_vcpu(self, name: str, count: int | None, wcore: int = 0) -> Outcome:
        """Remove ``count`` vCPUs, or ``wcore`` whole cores."""
        with self.transaction():
            dom = self._modify(name)
            vcpus, cores = self._cpu_request(dom, count, wcore)
            new = copy.deepcopy(dom.next_resources)
            if cores:
                if new.wcore < cores:
                    raise LdmError(f"Domain {name} has only {new.wcore} whole cores")
                new.wcore -= cores
                new.vcpus = new.wcore * self.platform.strands_per_core
            else:
                if new.wcore:
                    raise LdmError(
                        f"Domain {name} is constrained to whole cores; remove vCPUs with wcore")
                if vcpus > new.vcpus:
                    raise LdmError(f"Domain {name} has only {new.vcpus} vCPUs")
                new.vcpus -= vcpus
            return self._vcpu_result("remove-vcpu", name, new)

    # -- crypto units -------------------------------------------------------------------

    def _mau_result(self, action: str, name: str, units: int) -> Outcome:
        dom = self._modify(name)
        new = copy.deepcopy(dom.next_resources)
        new.mau = units
        messages = self._resize(dom, new)
        return Outcome([allocation_event(action, name, "mau", units)], messages)

    def add_mau(self, name: str, count: int) -> Outcome:
        """Add ``count`` (≥ 1) crypto units; the event is named add-crypto."""
        with self.transaction():
            if count < 1:
                raise LdmError(f"Invalid crypto unit count \"{count}\"; must be at least 1")
            dom = self._modify(name)
            return self._mau_result("add-crypto", name, dom.next_resources.mau + count)

    def set_mau(self, name: str, count: int) -> Outcome:
        """Set the number of crypto units (0 allowed)."""
        with self.transaction():
            if count < 0:
                raise LdmError(f"Invalid crypto unit count \"{count}\"; must be 0 or more")
            self._modify(name)
            return self._mau_result("set-crypto", name, count)

    def remove_mau(self, name: str, count: int) -> Outcome:
        """Remove ``count`` (≥ 1) crypto units."""
        with self.transaction():
            if count < 1:
                raise LdmError(f"Invalid crypto unit count \"{count}\"; must be at least 1")
            dom = self._modify(name)
            have = dom.next_resources.mau
            if count > have:
                raise LdmError(f"Domain {name} has only {have} crypto units")
            return self._mau_result("remove-crypto", name, have - count)

    # -- memory -------------------------------------------------------------------------

    def _round(self, size: int, messages: list[str]) -> int:
        if size <= 0:
            raise LdmError(f"Invalid memory size \"{size}\"; must be greater than 0")
        granule = self.platform.granule
        rounded = -(-size // granule) * granule
        if rounded != size:
            messages.append(
                f"Warning: memory size {format_size(size)} is not a multiple of "
                f"{format_size(granule)}; rounded up to {format_size(rounded)}")
        return rounded

    def _memory_result(self, action: str, name: str, total: int, messages: list[str]) -> Outcome:
        dom = self._modify(name)
        if total <= 0 and dom.state != INACTIVE:
            raise LdmError(f"Domain {name} is {dom.state}; it must keep some memory")
        new = copy.deepcopy(dom.next_resources)
        new.memory = total
        messages += self._resize(dom, new)
        return Outcome([allocation_event(action, name, "memory", total)], messages)

    def add_memory(self, name: str, size: int) -> Outcome:
        """Add ``size`` bytes (rounded up to the granule with a warning)."""
        with self.transaction():
            messages: list[str] = []
            size = self._round(size, messages)
            dom = self._modify(name)
            return self._memory_result("add-memory", name, dom.next_resources.memory + size,
                                       messages)

    def set_memory(self, name: str, size: int) -> Outcome:
        """Set the memory size in bytes."""
        with self.transaction():
            messages: list[str] = []
            size = self._round(size, messages)
            return self._memory_result("set-memory", name, size, messages)

    def remove_memory(self, name: str, size: int) -> Outcome:
        """Remove ``size`` bytes."""
        with self.transaction():
            messages: list[str] = []
            size = self._round(size, messages)
            dom = self._modify(name)
            have = dom.next_resources.memory
            if size > have:
                raise LdmError(
                    f"Domain {name} has only {format_size(have)} of memory; cannot remove "
                    f"{format_size(size)}")
            return self._memory_result("remove-memory", name, have - size, messages)

    # -- physical I/O -------------------------------------------------------------------

    def _io_name(self, device: str) -> str:
        dev = self.platform.io_device(device)
        if dev is None:
            raise LdmError(f"I/O device {device} does not exist")
        return dev.name

    def io_owner(self, device: str) -> str | None:
        """The domain holding the device (by constraint, or still bound while reconfiguring)."""
        name = self._io_name(device)
        for dom in self.domains.values():
            if name in dom.resources.io or (dom.pending is not None and name in dom.pending.io):
                return dom.name
        return None

    def add_io(self, name: str, device: str) -> Outcome:
        """Assign a bus, endpoint or virtual function to the domain."""
        with self.transaction():
            dom = self._modify(name)
            dev = self._io_name(device)
            owner = self.io_owner(dev)
            if owner is not None:
                raise LdmError(f"I/O device {dev} is already assigned to domain {owner}")
            if dom.state == ACTIVE and not dom.is_control:
                raise LdmError(f"Domain {name} is active; add-io requires it to be inactive or bound")
            new = copy.deepcopy(dom.next_resources)
            new.io = sorted(new.io + [dev])
            messages = self._resize(dom, new, io_change=True)
            return Outcome([resource_event("add-io", name, "physio_device", name=dev)], messages)

    def remove_io(self, name: str, device: str, dry_run: bool = False) -> Outcome:
        """Remove a device from the domain; ``dry_run`` only checks (no change, no event)."""
        with self.transaction():
            dom = self._modify(name)
            dev = self._io_name(device)
            if dev not in dom.next_resources.io:
                raise LdmError(f"I/O device {dev} is not assigned to domain {name}")
            if dom.state == ACTIVE and not dom.is_control:
                raise LdmError(
                    f"Domain {name} is active; remove-io requires it to be inactive or bound")
            if dry_run:
                return Outcome(messages=[f"Notice: I/O device {dev} can be removed from {name}"])
            new = copy.deepcopy(dom.next_resources)
            new.io = [d for d in new.io if d != dev]
            messages = self._resize(dom, new, io_change=True)
            return Outcome([resource_event("remove-io", name, "physio_device", name=dev)],
                           messages)

    def set_io(self, bus: str, iov: bool) -> Outcome:
        """Turn I/O virtualisation of a root complex on or off."""
        with self.transaction():
            dev = self.platform.io_device(bus)
            if dev is None or dev.type != "bus":
                raise LdmError(f"Root complex {bus} does not exist")
            owner = self.io_owner(dev.name)
            if owner is not None:
                dom = self._modify(owner)
                if dom.state == ACTIVE and not dom.is_control:
                    raise LdmError(
                        f"Domain {owner} is active; set-io of {dev.name} requires it to be "
                        f"inactive or bound")
            self._edit_meta().iov[dev.name] = iov
            return Outcome([resource_event("set-io", owner, "physio_device", name=dev.name)])
