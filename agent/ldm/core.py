"""The manager's backbone: state, loading, factory default, transactions, allocation.

Every mutating call runs inside :meth:`ManagerCore.transaction`: domains are copied the
first time a call touches them, so a call that raises leaves the state exactly as it was;
a call that returns has had its rows committed to the store first.
"""

from __future__ import annotations

import copy
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from random import Random
from typing import Iterator

from agent.ldm import alloc
from agent.ldm.errors import LdmError
from agent.ldm.model import (
    ACTIVE,
    CONTROL_DOMAIN,
    FACTORY_DEFAULT,
    Binding,
    Domain,
    MemBlock,
    Meta,
    Resources,
    SpConfig,
    Vcc,
    Vds,
    Vsw,
)
from agent.ldm.platform import Platform, platform_from_doc
from agent.ldm.ports import Clock, GuestPort, RowKey, StatePort
from agent.ldm.serial import domain_from_row, domain_to_row, meta_from_row, meta_to_row

SCRUB_RATE = int(1.2 * (1 << 30))  # scrub_rate = 1.2G/s, bytes per second (migration.md App. B)
PLATFORM_ROW: RowKey = ("platform", "host")
META_ROW: RowKey = ("meta", "host")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")


@dataclass
class _Txn:
    """Snapshots taken by one transaction level (None = the domain did not exist)."""

    parent: "_Txn | None" = None
    domains: dict[str, Domain | None] = field(default_factory=dict)
    meta: Meta | None = None

    def merge_into_parent(self) -> None:
        # What the parent had not touched yet was, at our start, as at the parent's start.
        parent = self.parent
        assert parent is not None
        for name, snap in self.domains.items():
            parent.domains.setdefault(name, snap)
        if parent.meta is None:
            parent.meta = self.meta


class ManagerCore:
    """State, persistence and allocation shared by the action families."""

    def __init__(self, platform: Platform, store: StatePort, guests: GuestPort,
                 clock: Clock, rng: Random) -> None:
        self.store = store
        self.guests = guests
        self.clock = clock
        self.rng = rng
        self.domains: dict[str, Domain] = {}
        self.meta = Meta()
        self._txn: _Txn | None = None
        # Memory being zero-filled before it returns to the free pool (§10.11): each block
        # with the clock time its scrub ends. Neither free nor owned until then. Kept in
        # memory only: after an agent restart the scrub counts as finished.
        self.scrub_rate = SCRUB_RATE
        self._scrubbing: list[tuple[MemBlock, float]] = []
        # Names kept for incoming migrations (§6.13), each with the text add-domain answers.
        self.reserved_names: dict[str, str] = {}
        rows = store.load()
        if rows:
            self._load(rows)
        else:
            self.platform = platform
            self._factory_default()

    # -- loading and the factory default ------------------------------------------------

    def _load(self, rows: dict[RowKey, dict]) -> None:
        # The stored platform wins: bindings refer to its strand ids and addresses.
        self.platform = platform_from_doc(rows[PLATFORM_ROW])
        self.meta = meta_from_row(rows[META_ROW])
        for (kind, _), row in rows.items():
            if kind == "domain":
                dom = domain_from_row(row)
                self.domains[dom.name] = dom

    def _factory_default(self) -> None:
        plat = self.platform
        memory = sum(r.size for r in plat.usable_memory())
        res = Resources(
            vcpus=len(plat.usable_strands()),
            mau=len(plat.crypto_units()),
            memory=memory,
            io=[d.name for d in plat.io],
        )
        primary = Domain(
            name=CONTROL_DOMAIN,
            uuid=self._new_uuid(),
            mac=plat.mac_address,
            hostid=plat.hostid,
            state=ACTIVE,
            resources=res,
            started_at=self.clock(),
        )
        primary.binding = Binding(
            strands=plat.usable_strands(),
            mau=plat.crypto_units(),
            memory=alloc.pick_memory(plat, [], [], memory, "domain primary"),
        )
        self.domains[CONTROL_DOMAIN] = primary
        self.meta = Meta(
            spconfigs={FACTORY_DEFAULT: SpConfig(FACTORY_DEFAULT, 0, None)},
            iov={d.name: False for d in plat.io if d.type == "bus"},
        )
        self.store.commit(
            {
                PLATFORM_ROW: plat.raw,
                META_ROW: meta_to_row(self.meta),
                ("domain", CONTROL_DOMAIN): domain_to_row(primary),
            },
            [],
        )

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group calls: all are committed together at the end, or none if one raises.

        Nested use is a savepoint: an inner block that raises is undone even when the
        outer block catches the error and goes on; only the outermost block commits.
        """
        txn = _Txn(parent=self._txn)
        self._txn = txn
        try:
            yield
            if txn.parent is None:
                self._commit()
            else:
                txn.merge_into_parent()
        except BaseException:
            self._rollback()
            raise
        finally:
            self._txn = txn.parent

    def _commit(self) -> None:
        txn = self._txn
        assert txn is not None
        if not txn.domains and txn.meta is None:
            return
        self._sync_switch_tables()
        meta = self._edit_meta()
        meta.serial += 1
        # The SP keeps an autosave copy of the configuration in use, updated on each change.
        current = meta.spconfigs.get(meta.current_config)
        config_changed = bool(txn.domains) or (txn.meta is not None and txn.meta.iov != meta.iov)
        if config_changed and current is not None and current.name != FACTORY_DEFAULT:
            current.autosave_serial = meta.serial
        upserts: dict[RowKey, dict] = {META_ROW: meta_to_row(meta)}
        deletes: list[RowKey] = []
        for name in txn.domains:
            if name in self.domains:
                upserts[("domain", name)] = domain_to_row(self.domains[name])
            else:
                deletes.append(("domain", name))
        try:
            self.store.commit(upserts, deletes)
        except Exception as exc:
            raise LdmError(f"Could not save the domain configuration: {exc}") from exc

    def _rollback(self) -> None:
        txn = self._txn
        assert txn is not None
        for name, snap in txn.domains.items():
            if snap is None:
                self.domains.pop(name, None)
            else:
                self.domains[name] = snap
        if txn.meta is not None:
            self.meta = txn.meta

    def _edit(self, name: str) -> Domain:
        """The domain, snapshotted for rollback; only inside a transaction."""
        txn = self._txn
        assert txn is not None, "mutation outside a transaction"
        dom = self._get(name)
        if name not in txn.domains:
            txn.domains[name] = copy.deepcopy(dom)
        return dom

    def _insert(self, dom: Domain) -> None:
        txn = self._txn
        assert txn is not None, "mutation outside a transaction"
        txn.domains.setdefault(dom.name, copy.deepcopy(self.domains.get(dom.name)))
        self.domains[dom.name] = dom

    def _delete(self, name: str) -> None:
        self._edit(name)
        del self.domains[name]

    def _edit_meta(self) -> Meta:
        txn = self._txn
        assert txn is not None, "mutation outside a transaction"
        if txn.meta is None:
            txn.meta = copy.deepcopy(self.meta)
        return self.meta

    # -- switch MAC tables and scrubbing ------------------------------------------------

    def _switch_tables(self) -> dict[str, list[str]]:
        """Each switch's MAC table as the current domains make it (see :class:`Vsw`)."""
        tables: dict[str, list[str]] = {n: [] for d in self.domains.values() for n in d.vsws}
        for dom in self.domains.values():
            if dom.binding is None or dom.migration_flag == "t":
                continue  # unbound, or a migration target not yet announced (§10.9)
            for net in dom.vnets.values():
                if net.service in tables:
                    tables[net.service].append(net.mac)
        return {name: sorted(macs) for name, macs in tables.items()}

    def _sync_switch_tables(self) -> None:
        # Runs at each commit, so bind, unbind, removal and a commit's flag change all update
        # the tables in the same transaction as the change that caused them.
        tables = self._switch_tables()
        for dom in list(self.domains.values()):
            for name, vsw in dom.vsws.items():
                if vsw.macs != tables[name]:
                    self._edit(dom.name).vsws[name].macs = tables[name]

    # -- NIU hybrid I/O (§1.7, §6.5) ----------------------------------------------------

    def niu_of(self, net_dev: str) -> str | None:
        """The NIU a switch's ``net-dev`` is attached to (the platform's ``net_devs`` lists)."""
        for entry in self.platform.raw.get("nius", []):
            if net_dev and net_dev in entry.get("net_devs", []):
                return entry["name"]
        return None

    def hybrid_in_use(self) -> dict[str, int]:
        """NIU name → the hybrid-mode devices using it now."""
        used = {n.name: 0 for n in self.platform.nius}
        for dom in self.domains.values():
            for net in dom.vnets.values():
                found = self._find_service(net.service) if net.hybrid else None
                niu = self.niu_of(found[1].dev_path) if found else None
                if niu in used:
                    used[niu] += 1
        return used

    def _attach_hybrid(self, dom: Domain) -> None:
        """Each hybrid-mode device of ``dom`` gets NIU resources where its switch's NIU has
        capacity left; the others stay on the switch path (only a warning, §6.5)."""
        used = self.hybrid_in_use()
        capacity = {n.name: n.hybrid_capacity for n in self.platform.nius}
        for net in sorted(dom.vnets.values(), key=lambda n: n.id):
            found = self._find_service(net.service)
            niu = self.niu_of(found[1].dev_path) if found else None
            if net.mode == "hybrid" and not net.hybrid and niu in used and \
                    used[niu] < capacity[niu]:
                net.hybrid = True
                used[niu] += 1

    @staticmethod
    def _detach_hybrid(dom: Domain) -> list[str]:
        """Move every hybrid device of ``dom`` to the switch path; return their names."""
        moved = [n.name for n in dom.vnets.values() if n.hybrid]
        for name in moved:
            dom.vnets[name].hybrid = False
        return moved

    def scrubbing(self) -> list[MemBlock]:
        """Memory blocks still being scrubbed at the clock's current time (§10.11)."""
        now = self.clock()
        self._scrubbing = [(b, end) for b, end in self._scrubbing if end > now]
        return [b for b, _ in self._scrubbing]

    def _scrub(self, blocks: list[MemBlock]) -> None:
        """Start zero-filling ``blocks`` at ``scrub_rate``, after any scrub already running."""
        end = max([self.clock(), *(e for _, e in self._scrubbing)])
        for block in sorted(blocks, key=lambda b: b.pa):
            end += block.size / self.scrub_rate
            self._scrubbing.append((MemBlock(block.ra, block.pa, block.size), end))

    # -- lookups ------------------------------------------------------------------------

    def _get(self, name: str) -> Domain:
        dom = self.domains.get(name)
        if dom is None:
            raise LdmError(f"Domain {name} does not exist")
        return dom

    @staticmethod
    def _check_name(name: str, what: str = "domain") -> None:
        if not _NAME.match(name):
            raise LdmError(
                f"Invalid {what} name \"{name}\": use 1 to 64 letters, digits, '-', '_' or "
                f"'.', starting with a letter"
            )

    def _find_service(self, name: str) -> tuple[Domain, Vcc | Vds | Vsw] | None:
        for dom in self.domains.values():
            for table in (dom.vccs, dom.vdss, dom.vsws):
                if name in table:
                    return dom, table[name]
        return None

    def _vcc(self, name: str) -> tuple[Domain, Vcc]:
        found = self._find_service(name)
        if found is None or not isinstance(found[1], Vcc):
            raise LdmError(f"Virtual console concentrator {name} does not exist")
        return found  # type: ignore[return-value]

    def _vds(self, name: str) -> tuple[Domain, Vds]:
        found = self._find_service(name)
        if found is None or not isinstance(found[1], Vds):
            raise LdmError(f"Virtual disk server {name} does not exist")
        return found  # type: ignore[return-value]

    def _vsw(self, name: str) -> tuple[Domain, Vsw]:
        found = self._find_service(name)
        if found is None or not isinstance(found[1], Vsw):
            raise LdmError(f"Virtual switch {name} does not exist")
        return found  # type: ignore[return-value]

    # -- identities ---------------------------------------------------------------------

    def _new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _all_macs(self) -> set[str]:
        macs = set()
        for dom in self.domains.values():
            macs.add(dom.mac)
            macs.update(v.mac for v in dom.vnets.values())
            macs.update(s.mac for s in dom.vsws.values())
        return macs

    def _new_mac(self, taken: set[str] | None = None) -> str:
        """A free address in the range the product assigns automatically (00:14:4f:f8-fb)."""
        used = self._all_macs() | (taken or set())
        for _ in range(1000):
            low = 0xF80000 + self.rng.randrange(0x40000)
            mac = "00:14:4f:" + ":".join(f"{(low >> s) & 0xFF:02x}" for s in (16, 8, 0))
            if mac not in used:
                return mac
        raise LdmError("Could not allocate a MAC address: the automatic range is exhausted")

    def _new_hostid(self, mac: str) -> str:
        # The product derives a guest's host ID from its MAC address: 0x84 + low 24 bits.
        used = {d.hostid for d in self.domains.values()}
        hostid = "84" + mac.replace(":", "")[-6:]
        while hostid in used:
            hostid = f"84{self.rng.randrange(1 << 24):06x}"
        return hostid

    # -- allocation ---------------------------------------------------------------------

    def _usage(self, exclude: str) -> alloc.Usage:
        usage = alloc.Usage()
        for dom in self.domains.values():
            if dom.name == exclude or dom.binding is None:
                continue
            usage.strands.update(dom.binding.strands)
            usage.strands.update(dom.binding.reserved)
            usage.mau.update(dom.binding.mau)
            usage.mau.update(dom.binding.held_mau)
            usage.memory.extend(dom.binding.memory)
            if dom.binding.console_port is not None:
                key = (dom.binding.console_service or "", dom.binding.console_port)
                usage.ports[key] = self._group(dom)
        usage.memory.extend(self.scrubbing())  # not free until zero-filled (§10.11)
        return usage

    @staticmethod
    def _group(dom: Domain) -> str:
        return dom.console.group or dom.name

    def _allocate(self, dom: Domain, res: Resources, keep: Binding | None) -> Binding:
        """A binding of ``res`` for ``dom`` that keeps as much of ``keep`` as possible."""
        plat = self.platform
        usage = self._usage(dom.name)
        keep = keep or Binding()
        who = f"domain {dom.name}"
        if res.wcore:
            strands = alloc.pick_cores(plat, usage.strands, keep.strands, res.wcore, who)
        else:
            strands = alloc.pick_strands(plat, usage.strands, keep.strands, res.vcpus, who)
        mau = alloc.pick_mau(plat, usage.mau, keep.mau, res.mau, strands, who)
        memory = alloc.pick_memory(plat, usage.memory, keep.memory, res.memory, who)
        service, port = self._console_binding(dom, usage, keep)
        return Binding(strands, mau, memory, port, service)

    def _console_binding(self, dom: Domain, usage: alloc.Usage,
                         keep: Binding) -> tuple[str | None, int | None]:
        if dom.is_control:
            return None, None  # the control domain's console is the UART
        service = dom.console.service
        if service is None:
            names = sorted(n for d in self.domains.values() for n in d.vccs)
            if not names:
                return None, None  # no concentrator on the host: bound without a console
            service = names[0]
        found = self._find_service(service)
        if found is None or not isinstance(found[1], Vcc):
            raise LdmError(
                f"Could not bind domain {dom.name}: console concentrator {service} does not exist"
            )
        vcc = found[1]
        wanted = dom.console.port
        if wanted is None and keep.console_service == service:
            wanted = keep.console_port
        port = alloc.pick_port(service, vcc.min_port, vcc.max_port, self._group(dom),
                               usage.ports, wanted, f"domain {dom.name}")
        return service, port
