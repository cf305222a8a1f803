"""Hooks for the migration layer: export and import a domain, lock it, suspend, hand off.

These are the agents' own internal operations (migration.md §2.5, §2.9, §2.12): they are
exempt from the migration locks and emit no events (the migration layer emits
``migrate-domain`` itself). The sixth flag is set with ``set_migration_flag``.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from agent.ldm.errors import LdmError
from agent.ldm.events import Outcome
from agent.ldm.lifecycle import Lifecycle, require_state
from agent.ldm.model import ACTIVE, BOUND, INACTIVE, SUSPENDED, Binding
from agent.ldm.serial import domain_from_row, domain_to_row


class Migrating(Lifecycle):
    """Internal operations used by source and target agents during a migration."""

    def export_domain(self, name: str) -> dict:
        """The domain's identity and constraints as a JSON-ready dict (no bindings)."""
        dom = copy.deepcopy(self._get(name))
        dom.resources = dom.next_resources
        dom.pending = None
        dom.binding = None
        dom.state = INACTIVE
        dom.started_at = None
        dom.memdr = False
        dom.migration_flag = ""
        dom.cpu_dr_disabled = False
        for net in dom.vnets.values():
            net.hybrid = False
        return domain_to_row(dom)

    def import_domain(self, row: dict, name: str | None = None, bind: bool = False,
                      legacy: bool = False) -> Outcome:
        """Create the target domain from ``export_domain`` output, flagged ``t``.

        It keeps the UUID, host ID and MAC addresses; with ``bind`` it is bound at once (its
        memory gets the same real addresses, since RAs are laid out from the same base).
        Its services are not carried over: a service domain is never migrated. ``legacy``
        (a legacy-mode live migration, §1.5, §6.1) binds whole free cores: the spare strands
        of the last core are reserved to the domain, and CPU DR stays off until it reboots.
        """
        with self.transaction():
            dom = domain_from_row(row)
            dom.name = name or dom.name
            self._check_name(dom.name)
            if dom.name in self.domains:
                raise LdmError(f"Domain {dom.name} already exists")
            if dom.vccs or dom.vdss or dom.vsws:
                raise LdmError(f"Domain {dom.name} provides services and cannot be migrated")
            if any(d.uuid == dom.uuid for d in self.domains.values()):
                raise LdmError(f"UUID {dom.uuid} is already used by another domain")
            if any(d.hostid == dom.hostid for d in self.domains.values()):
                raise LdmError(f"Host ID {dom.hostid} is already in use")
            clash = {dom.mac, *(n.mac for n in dom.vnets.values())} & self._all_macs()
            if clash:
                raise LdmError(f"MAC address {sorted(clash)[0]} is already in use")
            dom.master = [m for m in dom.master if m in self.domains]
            dom.state, dom.binding, dom.migration_flag = INACTIVE, None, "t"
            self._insert(dom)
            if bind:
                self._check_backends(dom)
                dom.binding = self._target_binding(dom, legacy)
                dom.state = BOUND
            return Outcome()

    def _target_binding(self, dom, legacy: bool) -> Binding:
        """The target domain's binding. Crypto units come from the domain's own cores only, as
        many as are free there: a shortage is a warning of the checks, not a failure (§6.6).
        In legacy mode, whole free cores in ascending id; the rest of the last core is
        reserved (§6.1 placement). vCPU ids keep their order; only the strands change."""
        res = replace(dom.resources, mau=0)
        if legacy:
            spc = self.platform.strands_per_core
            res = replace(res, wcore=max(res.wcore, -(-res.vcpus // spc)))
            dom.cpu_dr_disabled = True
        binding = self._allocate(dom, res, None)
        if legacy:
            vcpus = dom.resources.vcpus
            binding.strands, binding.reserved = binding.strands[:vcpus], binding.strands[vcpus:]
        plat = self.platform
        own = {plat.core_of_strand(s) for s in binding.strands}
        taken = self._usage(dom.name).mau
        binding.mau = [u for u in plat.crypto_units()
                       if u not in taken and plat.core_of_crypto_unit(u) in own][:dom.resources.mau]
        return binding

    def hold_devices(self, name: str) -> Outcome:
        """Source, before ``mig-prepare`` (§2.5 steps 1-2): crypto DR takes the domain's units
        out of the guest (they stay reserved to it, ``held_mau``), and its hybrid-mode network
        devices move to the switch path (``held_hybrid``)."""
        with self.transaction():
            dom = self._edit(name)
            if dom.binding is not None:
                dom.binding.held_mau = dom.binding.held_mau + dom.binding.mau
                dom.binding.mau = []
                dom.binding.held_hybrid = dom.binding.held_hybrid + self._detach_hybrid(dom)
            return Outcome()

    def give_back_devices(self, name: str) -> Outcome:
        """An abort (§2.7 step 5, §8.2, §9.2): the held units return to the guest and the
        moved devices to hybrid mode. Idempotent."""
        with self.transaction():
            dom = self._edit(name)
            if dom.binding is not None:
                dom.binding.mau = sorted(dom.binding.mau + dom.binding.held_mau)
                dom.binding.held_mau = []
                for vnet in dom.binding.held_hybrid:
                    if vnet in dom.vnets:
                        dom.vnets[vnet].hybrid = True
                dom.binding.held_hybrid = []
            return Outcome()

    def reserve_name(self, name: str, refusal: str) -> None:
        """Keep ``name`` for an incoming migration: a local add-domain of it is refused with
        ``refusal`` until :meth:`release_name` (§6.13). Not stored: a restart aborts the
        migration that held it."""
        self.reserved_names[name] = refusal

    def release_name(self, name: str) -> None:
        self.reserved_names.pop(name, None)

    def evict_domain(self, name: str) -> Outcome:
        """Remove a domain in any state, releasing its bindings (the guest is the caller's).

        Its memory is scrubbed before it is free again (§10.11): the source copy after a
        success and the target domain after an abort both leave through here.
        """
        with self.transaction():
            dom = self._get(name)
            if dom.is_control:
                raise LdmError(f"The control domain {name} cannot be migrated")
            blocks = list(dom.binding.memory) if dom.binding else []
            self._delete(name)
        self._scrub(blocks)
        return Outcome()

    def set_suspended(self, name: str, suspended: bool) -> Outcome:
        """active ↔ suspended (phase 4 of a live migration and its ambiguous window)."""
        with self.transaction():
            dom = self._edit(name)
            if suspended:
                require_state(dom, "suspending", ACTIVE)
                dom.state = SUSPENDED
            else:
                require_state(dom, "resuming", SUSPENDED)
                dom.state = ACTIVE
            return Outcome()

    def mark_running(self, name: str) -> Outcome:
        """bound → active for a guest the migration layer resumed itself (target commit)."""
        with self.transaction():
            dom = self._edit(name)
            require_state(dom, "marking it running", BOUND)
            dom.state = ACTIVE
            dom.started_at = self.clock()
            self._attach_hybrid(dom)  # hybrid resources as available (§2.8 step 3, M71)
            return Outcome()
