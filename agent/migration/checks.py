"""Phase-1 checks of a migration (migration.md §6): one table, pure rules, report lines.

``TABLE`` is the single description of the checks: id, report order, side, the classes each
check may give per domain state (empty = not checked) and the rule that evaluates it on each
side. The real run, the dry run and the ``mig-check`` answer all go through it. Each rule reads
only plain dicts (``agent.migration.describe``) and yields ``(rank, class, lines)``: ``rank`` is
the position of the rule inside its check's section, so that results of one check evaluated on
both sides still come out in the section's order after :func:`merge`.

Public API, as agreed, with these additions (all keyword-only, with defaults, or new fields
with defaults, so calls written against the agreed signatures keep working):

* ``CheckResult.rank`` (default 0): the in-check order key used by :func:`merge`.
* ``source_checks(..., guest=None, settings=DEFAULT_SETTINGS)``: ``guest`` supplies the guest
  facts the manager does not model (softstate, OS capabilities, negotiated API groups).
  Call it before the source sets flag ``s`` on the domain: K03 reports a domain that already
  shows ``s``/``t``/``e`` as being migrated.
* ``target_checks(..., settings=DEFAULT_SETTINGS)``: the target's ``supported_cpu_arch``,
  ``migration_elastic_policy`` and CPU rules (Appendix B, §1.3).
* ``protocol_check(local_range, peer_range, *, host, local_version, peer_version)``: the
  K01 text names the host and both agent versions.
* ``report_lines(..., lead=())``: failure lines that precede every check (connection or
  authentication failure when the target cannot be checked, §6.0).
* ``run_source``/``run_target``: the same checks on description dicts, for tests and for the
  protocol layer; ``self_target_check``: the intake K02 test of §6.13.

Table notes. §6.12 keeps the named-resource map rules for inactive domains (K09 part 4 and
the own-block ``mblockmap`` errors of K10), so those two checks list ``hard`` for
``inactive`` where the §6.0 table says "not checked". K12 lists ``warning`` for the storage and
console-port warnings of §6.4. K08 never reports for an inactive domain: the K07 warning
covers its endpoints (§6.10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from agent.migration import messages as msg
from agent.migration import versions
from agent.migration.describe import describe_host, describe_source, describe_target, source_facts
from agent.migration.versions import CPU_ARCHS, DEFAULT_RULES, CpuRules

if TYPE_CHECKING:
    from agent.ldm.manager import Manager
    from agent.migration.request import MigrationRequest

HARD, OVERRIDABLE, WARNING, NOTICE = "hard", "overridable", "warning", "notice"
FAIL, WARN, NOTE = "fail", "warn", "notice"
SOURCE, TARGET, BOTH = "source", "target", "both"
ACTIVE, BOUND, INACTIVE = "active", "bound", "inactive"

_RESULT = {HARD: FAIL, OVERRIDABLE: FAIL, WARNING: WARN, NOTICE: NOTE}
SOLARIS_STATES = ("Solaris running", "Solaris booting", "Solaris halting")
PARKED_STATES = ("OpenBoot Running", "Solaris debugging")


@dataclass(frozen=True)
class CheckResult:
    """One message of one check: its class, its result and its line(s)."""

    check: str  # "K09"
    klass: str  # hard | overridable | warning | notice
    result: str  # fail | warn | notice
    lines: tuple[str, ...]
    rank: int = 0  # the rule's place inside its check (§6 section order)

    @property
    def overridable(self) -> bool:
        return self.klass == OVERRIDABLE

    def to_dict(self) -> dict:
        """The form the target returns in the ``mig-check`` answer (§6.0 last item)."""
        return {"check": self.check, "class": self.klass, "result": self.result,
                "overridable": self.overridable, "lines": list(self.lines), "rank": self.rank}

    @classmethod
    def from_dict(cls, row: dict) -> "CheckResult":
        return cls(row["check"], row["class"], row["result"], tuple(row["lines"]),
                   int(row.get("rank", 0)))


@dataclass(frozen=True)
class CheckSettings:
    """The agent configuration the checks read (Appendix B) and the §1.3 CPU rules."""

    supported_cpu_arch: tuple[str, ...] = CPU_ARCHS
    elastic_policy: str = "allow"  # migration_elastic_policy: allow | refuse
    rules: CpuRules = DEFAULT_RULES


DEFAULT_SETTINGS = CheckSettings()


@dataclass(frozen=True)
class Ctx:
    """What one side's rules read: the domain, both machines, local facts, the request."""

    dom: dict
    source: dict  # source host description
    target: dict  # target host description
    local: dict  # source: source_facts(); target: describe_target()
    request: dict  # MigrationRequest.view()
    settings: CheckSettings

    @property
    def state(self) -> str:
        state = self.dom["state"]
        return ACTIVE if state == "suspended" else state

    @property
    def name(self) -> str:
        return self.dom["name"]

    @property
    def host(self) -> str:
        return self.request["host"]

    @property
    def live(self) -> bool:
        return self.state == ACTIVE


Emission = tuple[int, str, tuple[str, ...]]
Rule = Callable[[Ctx], Iterable[Emission]]


def _one(rank: int, klass: str, line: str) -> Emission:
    return rank, klass, (line,)


def legacy_mode(dom: dict) -> bool:
    """§1.5: no ``migration-v2``, or parked at the OpenBoot prompt or in the debugger."""
    return "migration-v2" not in dom["os-capabilities"] or dom["softstate"] in PARKED_STATES


# -- K01 version, firmware, guest OS (§6.15) ---------------------------------------------------

def _firmware(machine: dict, rules: CpuRules) -> Iterator[Emission]:
    if "migration" not in machine["firmware-features"]:
        yield _one(3, HARD, msg.firmware_no_migration(machine["hostname"]))
    fw, cpu = machine["firmware-version"], machine["cpu-type"]
    if not versions.meets_minimum(fw, cpu, rules):
        minimum = rules.min_firmware(cpu) or ""
        yield _one(4, HARD, msg.firmware_too_old(fw, machine["hostname"], minimum, cpu))


def k01_source(c: Ctx) -> Iterator[Emission]:
    if not c.live:
        return
    yield from _firmware(c.source, c.settings.rules)
    if c.dom["softstate"] in SOLARIS_STATES and "suspend" not in c.dom["os-capabilities"]:
        yield _one(7, HARD, msg.os_no_live_migration(c.name))


def k01_target(c: Ctx) -> Iterator[Emission]:
    arch = c.dom["cpu-arch"]
    if arch not in c.settings.supported_cpu_arch:
        yield _one(2, HARD, msg.cpu_arch_unsupported(c.host, arch))
    src, tgt = c.source, c.target
    if c.live:
        yield from _firmware(tgt, c.settings.rules)
        sfw, tfw = src["firmware-version"], tgt["firmware-version"]
        if c.settings.rules.firmware_pair_excluded(sfw, tfw):
            yield _one(5, HARD, msg.firmware_pair(sfw, tfw))
        missing = sorted((g, v) for g, v in c.dom["api-groups"]
                         if not versions.api_supported(tgt["hv-api-groups"], g, v))
        if missing and src["cpu-type"] == tgt["cpu-type"]:
            yield 6, HARD, msg.firmware_features(c.name)
        elif missing:
            for group, version in missing:
                yield 6, HARD, msg.api_group(group, version)
    if "efi-gpt" not in tgt["firmware-features"]:
        for disk in c.dom["vdisks"]:
            if disk.get("efi"):
                yield _one(8, HARD, msg.efi_label(disk["name"], c.name, c.host))


# -- K02 target name and identity (§6.13) ------------------------------------------------------

def k02_target(c: Ctx) -> Iterator[Emission]:
    domains = c.local["domains"]
    tldom = c.request["target-name"]
    if any(d["name"] == tldom for d in domains):
        yield _one(1, HARD, msg.name_exists(tldom, c.host))
    if any(d["uuid"] == c.dom["uuid"] for d in domains):
        yield _one(2, HARD, msg.uuid_exists(c.dom["uuid"], c.host))


# -- K03 domain state (§6.16) ------------------------------------------------------------------

def k03_source(c: Ctx) -> Iterator[Emission]:
    flags = c.dom["flags"]
    if flags[3] == "c":
        yield _one(1, HARD, msg.control_domain(c.name))
    if flags[5] in ("s", "t"):
        yield _one(2, HARD, msg.being_migrated(c.name))
    if flags[5] == "e":
        yield _one(3, HARD, msg.unresolved(c.name))
    if flags[0] == "s":
        yield _one(4, HARD, msg.transitioning(c.name))
    if flags[2] == "r":
        yield _one(5, HARD, msg.memdr(c.name))


# -- K04 delayed reconfiguration (§6.7), K05 elastic policy (§6.8) -----------------------------

def k04_source(c: Ctx) -> Iterator[Emission]:
    if c.local.get("reconf"):
        yield _one(1, HARD, msg.reconf_source(c.local["reconf"]))


def k04_target(c: Ctx) -> Iterator[Emission]:
    if c.local.get("reconf"):
        yield _one(2, HARD, msg.reconf_target(c.local["reconf"], c.host))


def _elastic(c: Ctx, machine: dict, rank: int) -> Iterator[Emission]:
    if c.settings.elastic_policy == "refuse" and machine["pm-policy"] == "elastic":
        yield _one(rank, HARD, msg.elastic(machine["hostname"]))


def k05_source(c: Ctx) -> Iterator[Emission]:
    yield from _elastic(c, c.source, 1)


def k05_target(c: Ctx) -> Iterator[Emission]:
    yield from _elastic(c, c.target, 2)


# -- K06 OpenBoot / debugger (§6.9), K07 physical I/O (§6.3), K08 endpoints (§6.10) ------------

def k06_source(c: Ctx) -> Iterator[Emission]:
    if legacy_mode(c.dom):
        yield 1, NOTICE, msg.legacy_os(c.name)


def k07_source(c: Ctx) -> Iterator[Emission]:
    io = c.dom["io"]
    if c.state == INACTIVE:
        if io["buses"] or io["endpoints"] or io["vfs"]:
            yield _one(1, WARNING, msg.io_constraints(c.name, c.host))
        return
    for bus in sorted(io["buses"]):
        yield _one(1, HARD, msg.owns_bus(c.name, bus))
    for vf in sorted(io["vfs"]):
        yield _one(2, HARD, msg.has_vf(c.name, vf))


def k08_source(c: Ctx) -> Iterator[Emission]:
    if c.state == INACTIVE:
        return  # the K07 warning covers an inactive domain's endpoints
    for path in sorted(c.dom["io"]["endpoints"]):
        yield _one(1, HARD, msg.has_endpoint(c.name, path))


# -- K09 CPU (§6.1) ----------------------------------------------------------------------------

def k09_target(c: Ctx) -> Iterator[Emission]:
    d, rules = c.dom, c.settings.rules
    arch, stype, ttype = d["cpu-arch"], c.source["cpu-type"], c.target["cpu-type"]
    if c.live:
        if arch == "native" and stype != ttype:
            yield _one(1, HARD, msg.native_arch(c.name, stype, ttype))
        if arch in versions.CLASS_VALUES and not (versions.in_class(arch, stype, rules)
                                                  and versions.in_class(arch, ttype, rules)):
            yield _one(1, HARD, msg.not_in_class(ttype, arch, c.name))
        if rules.cpu_pair_excluded(stype, ttype):
            yield _one(1, HARD, msg.excluded_cpu_pair(stype, ttype))
        sf, tf = c.source["cpu-freq-mhz"], c.target["cpu-freq-mhz"]
        if arch == "native" and stype == ttype and sf != tf:
            yield _one(2, OVERRIDABLE, msg.frequency(tf, sf))
        if arch != "native" and stype != ttype and d["perf-counters"]:
            yield _one(3, OVERRIDABLE, msg.perf_counters(c.name, d["perf-counters"], ttype))
    elif c.state == BOUND and not versions.bindable(arch, ttype, rules):
        yield _one(1, HARD, msg.arch_unbindable(c.name, arch, ttype))
    yield from _named_prerequisites(c)
    if c.state != INACTIVE:
        yield from _cpu_capacity(c)


def _named_prerequisites(c: Ctx) -> Iterator[Emission]:
    named = set(c.dom["named-cores"])
    cidmap = c.request["cidmap"]
    if cidmap and not named:
        yield _one(4, HARD, msg.no_named_cores(c.name))
    elif cidmap:
        for core, _ in cidmap:
            if core not in named:
                yield _one(4, HARD, msg.not_named_core(core, c.name))
    uses_named = named or c.dom["named-memory"] or any(b["named"] for b in c.dom["memory-blocks"])
    if uses_named and not (c.dom["cpu-arch"] == "native" and c.dom["whole-cores"]):
        yield _one(4, HARD, msg.named_needs_native(c.name))


def _whole_cores_needed(c: Ctx) -> int:
    """0 when the domain takes single strands; else the whole cores it needs (§6.1 part 5)."""
    wcore = c.dom["whole-cores"]
    if not wcore and not (c.live and legacy_mode(c.dom)):
        return 0
    return max(math.ceil(c.dom["vcpus"] / c.target["strands-per-core"]), wcore)


def _cpu_capacity(c: Ctx) -> Iterator[Emission]:
    cores = {e["id"]: e for e in c.local["cores"]}
    if c.dom["named-cores"]:
        mapping = {s: t for s, t in c.request["cidmap"]}
        for core in sorted(c.dom["named-cores"]):
            target = mapping.get(core, core)
            entry = cores.get(target)
            if entry is None:
                yield _one(5, HARD, msg.core_missing(target, c.host))
            elif len(entry["free"]) != len(entry["strands"]):
                yield _one(5, HARD, msg.core_busy(target, c.host))
        return
    need_cores = _whole_cores_needed(c)
    if need_cores:
        free = sum(1 for e in cores.values() if len(e["free"]) == len(e["strands"]))
        if free < need_cores:
            yield _one(5, HARD, msg.whole_cores(c.host, free, c.name, need_cores))
        return
    free = sum(len(e["free"]) for e in cores.values())
    if free < c.dom["vcpus"]:
        yield _one(5, HARD, msg.vcpus(c.host, free, c.name, c.dom["vcpus"]))


def planned_cores(c: Ctx) -> set[int]:
    """The target cores on which the target domain will have strands (§6.1 placement)."""
    cores = sorted(c.local["cores"], key=lambda e: e["id"])
    if c.dom["named-cores"]:
        mapping = {s: t for s, t in c.request["cidmap"]}
        ids = {e["id"] for e in cores}
        return {mapping.get(core, core) for core in c.dom["named-cores"]} & ids
    need_cores = _whole_cores_needed(c)
    if need_cores:
        whole = [e["id"] for e in cores if len(e["free"]) == len(e["strands"])]
        return set(whole[:need_cores])
    owner = {s: e["id"] for e in cores for s in e["free"]}
    return {owner[s] for s in sorted(owner)[:c.dom["vcpus"]]}


# -- K10 memory (§6.2) -------------------------------------------------------------------------

def k10_target(c: Ctx) -> Iterator[Emission]:
    if c.state != INACTIVE:
        yield from _place_memory(c)
    yield from _mblockmap_rules(c)


def _mblockmap_rules(c: Ctx) -> Iterator[Emission]:
    mblockmap = c.request["mblockmap"]
    if not mblockmap:
        return
    if c.state == INACTIVE:
        starts = {b["pa"] for b in c.dom["named-memory"]}
    else:
        starts = {b["pa"] for b in c.dom["memory-blocks"] if b["named"]}
    if not starts:
        yield _one(3, HARD, msg.no_named_blocks(c.name))
        return
    for pa, _ in mblockmap:
        if pa not in starts:
            yield _one(3, HARD, msg.not_named_block(pa, c.name))
    if c.state == INACTIVE:
        return  # only the rules about the domain's own blocks apply (§6.12)
    sizes = {b["pa"]: b["size"] for b in c.dom["memory-blocks"]}
    ranges = sorted((t, t + sizes[s]) for s, t in mblockmap if s in sizes)
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        if start < end:
            yield _one(3, HARD, msg.ranges_overlap(start))


def _place_memory(c: Ctx) -> Iterator[Emission]:
    blocks = c.dom["memory-blocks"]
    pool = sorted([pa, pa + size] for pa, size in c.local["free-memory"])
    free_total = sum(end - pa for pa, end in pool)
    need = sum(b["size"] for b in blocks)
    if free_total < need:
        yield _one(1, HARD, msg.free_memory(c.host, free_total, c.name, need))
    # Congruency only matters for a live copy: a bound domain's blocks are laid out afresh.
    congruence = min(c.source["largest-page-size"], c.target["largest-page-size"]) if c.live else 0
    granule = c.target["mem-granule"]
    mapping = {s: t for s, t in c.request["mblockmap"]}
    named = sorted((b for b in blocks if b["named"]), key=lambda b: b["ra"])
    others = sorted((b for b in blocks if not b["named"]), key=lambda b: (-b["size"], b["ra"]))
    for block in named + others:
        if block["named"]:
            pa = mapping.get(block["pa"], block["pa"])
            fits = _fits(pool, pa, block["size"])
            if not fits and block["pa"] in mapping:
                yield _one(2, HARD, msg.range_not_free(pa, c.host))
                continue
            if fits and congruence and pa % congruence != block["ra"] % congruence:
                fits = False
        else:
            pa = _first_fit(pool, block, granule, congruence)
            fits = pa is not None
        if fits:
            _take(pool, pa, block["size"])
        elif c.live:
            yield _one(2, HARD, msg.congruency(block["pa"], block["ra"], block["size"]))
        else:
            yield _one(2, HARD, msg.unable_to_bind(block["size"], block["ra"]))


def _fits(pool: list[list[int]], pa: int, size: int) -> bool:
    return any(start <= pa and pa + size <= end for start, end in pool)


def _first_fit(pool: list[list[int]], block: dict, granule: int, congruence: int) -> int | None:
    for start, end in pool:
        pa = -(-start // granule) * granule
        if congruence:
            pa += (block["ra"] - pa) % congruence
        if pa + block["size"] <= end:
            return pa
    return None


def _take(pool: list[list[int]], pa: int, size: int) -> None:
    for i, (start, end) in enumerate(pool):
        if start <= pa and pa + size <= end:
            pieces = [[start, pa], [pa + size, end]]
            pool[i:i + 1] = [p for p in pieces if p[1] > p[0]]
            return


# -- K11 crypto units (§6.6) -------------------------------------------------------------------

def k11_source(c: Ctx) -> Iterator[Emission]:
    if c.live and c.dom["mau-bound"] and "crypto-dr" not in c.dom["os-capabilities"]:
        yield _one(1, HARD, msg.crypto_no_dr(c.name))


def k11_target(c: Ctx) -> Iterator[Emission]:
    wanted = c.dom["mau"]
    if not wanted:
        return
    cores = planned_cores(c)
    available = sum(1 for _, core in c.local["free-crypto"] if core in cores)
    if available < wanted:
        yield _one(2, WARNING, msg.crypto_shortage(c.host, available, wanted, c.name))


# -- K12 virtual I/O (§6.4) --------------------------------------------------------------------

def _opts(options: list[str]) -> str:
    return ",".join(sorted(options)) or "none"


def k12_source(c: Ctx) -> Iterator[Emission]:
    for svc in c.local.get("provided-to-others", []):
        yield _one(7, HARD, msg.provides_service(c.name, svc))


def k12_target(c: Ctx) -> Iterator[Emission]:
    yield from _disks(c)
    yield from _networks(c)
    yield from _console(c)


def _disks(c: Ctx) -> Iterator[Emission]:
    for disk in c.dom["vdisks"]:
        vds = c.local["vdss"].get(disk["service"])
        vol = vds["volumes"].get(disk["volume"]) if vds else None
        if vol is None:
            yield _one(1, HARD, msg.volume_missing(disk["volume"], disk["service"], disk["name"],
                                                   c.host))
            continue
        if not c.live:
            continue  # a bound domain needs the volume to exist, nothing more
        if vds["owner-state"] != ACTIVE:
            yield _one(1, HARD, msg.service_inactive(disk["service"], c.host, vds["owner"]))
        if sorted(vol["options"]) != sorted(disk["options"]):
            yield _one(1, OVERRIDABLE, msg.volume_options(
                disk["volume"], disk["service"], _opts(vol["options"]), c.host,
                _opts(disk["options"])))
        if disk["mpgroup"] and vol["mpgroup"] != disk["mpgroup"]:
            yield _one(1, OVERRIDABLE, msg.volume_mpgroup(disk["volume"], disk["service"], c.host,
                                                          disk["mpgroup"]))
        ids = disk.get("storage-id"), vol.get("storage-id")
        if all(ids) and ids[0] != ids[1]:
            yield _one(1, WARNING, msg.volume_storage(disk["volume"], disk["service"], c.host))


def _networks(c: Ctx) -> Iterator[Emission]:
    for net in c.dom["vnets"]:
        vsw = c.local["vsws"].get(net["service"])
        if vsw is None:
            yield _one(1, HARD, msg.switch_missing(net["service"], net["name"], c.host))
        elif c.live and vsw["owner-state"] != ACTIVE:
            yield _one(1, HARD, msg.service_inactive(net["service"], c.host, vsw["owner"]))


def _free_ports(vcc: dict) -> list[int]:
    used = set(vcc["used"])
    return [p for p in range(vcc["min"], vcc["max"] + 1) if p not in used]


def _console(c: Ctx) -> Iterator[Emission]:
    console, vccs = c.dom["console"], c.local["vccs"]
    service = console.get("service")
    if service and service not in vccs:
        yield _one(1, HARD, msg.vcc_missing(service, c.host))
        return
    names = [service] if service else sorted(vccs)
    candidates = [n for n in names if _free_ports(vccs[n])]
    if not candidates:
        yield _one(1, HARD, msg.no_free_console(c.host))
        return
    free = _free_ports(vccs[candidates[0]])
    port = console.get("port")
    if console.get("port-constraint") and port not in free:
        yield _one(1, WARNING, msg.console_port(port, c.host, c.request["target-name"], free[0]))


# -- K13 NIU hybrid (§6.5), K14 MAC and host ID (§6.14) ----------------------------------------

def k13_target(c: Ctx) -> Iterator[Emission]:
    for net in c.dom["vnets"]:
        if net.get("mode") != "hybrid":
            continue
        vsw = c.local["vsws"].get(net["service"])
        niu = c.local["nius"].get(vsw["niu"]) if vsw and vsw.get("niu") else None
        if niu is None or niu["capacity"] - niu["in-use"] <= 0:
            yield _one(1, WARNING, msg.hybrid(net["name"], c.host))


def k14_target(c: Ctx) -> Iterator[Emission]:
    klass = TABLE_BY_ID["K14"].classes(c.state)[0]
    prefix = msg.WARNING if klass == WARNING else ""
    users: dict[str, str] = {}
    for dom in c.local["domains"]:
        for mac in dom["macs"]:
            users.setdefault(mac, dom["name"])
    for name, vsw in c.local["vsws"].items():
        users.setdefault(vsw["mac"], msg.mac_user_service(name))
    own = [(c.dom["mac"], msg.mac_of_domain(c.name))]
    for net in c.dom["vnets"]:
        what = msg.mac_of_vnet(net["name"], c.name)
        own += [(mac, what) for mac in [net["mac"], *net.get("alt-macs", [])]]
    for mac, what in own:
        if mac in users:
            yield _one(1, klass, prefix + msg.mac_used(mac, what, users[mac], c.host))
    for dom in c.local["domains"]:
        if dom["hostid"] == c.dom["hostid"]:
            yield _one(2, klass, prefix + msg.hostid_used(c.dom["hostid"], c.name, dom["name"],
                                                          c.host))
            break


# -- the table ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One row of §6.0: id, report order, side, classes per state, the rule of each side."""

    id: str
    order: int
    title: str
    section: str
    side: str
    active: tuple[str, ...]
    bound: tuple[str, ...]
    inactive: tuple[str, ...]
    source: Rule | None = field(default=None, repr=False)
    target: Rule | None = field(default=None, repr=False)

    def classes(self, state: str) -> tuple[str, ...]:
        """The classes this check may give for a domain in ``state``; empty = not checked."""
        return {ACTIVE: self.active, "suspended": self.active, BOUND: self.bound,
                INACTIVE: self.inactive}[state]


H, O, W, N = (HARD,), (OVERRIDABLE,), (WARNING,), (NOTICE,)
TABLE: tuple[Check, ...] = (
    Check("K01", 1, "version, firmware, guest OS", "6.15", BOTH, H, H, H, k01_source, k01_target),
    Check("K02", 2, "target name and identity", "6.13", TARGET, H, H, H, None, k02_target),
    Check("K03", 3, "domain state", "6.16", SOURCE, H, H, H, k03_source),
    Check("K04", 4, "delayed reconfiguration", "6.7", BOTH, H, H, H, k04_source, k04_target),
    Check("K05", 5, "elastic power policy", "6.8", BOTH, H, (), (), k05_source, k05_target),
    Check("K06", 6, "OpenBoot / kernel debugger", "6.9", SOURCE, N, (), (), k06_source),
    Check("K07", 7, "physical I/O", "6.3", SOURCE, H, H, W, k07_source),
    Check("K08", 8, "PCIe endpoint devices", "6.10", SOURCE, H, H, W, k08_source),
    Check("K09", 9, "CPU", "6.1", TARGET, (HARD, OVERRIDABLE), H, H, None, k09_target),
    Check("K10", 10, "memory", "6.2", TARGET, H, H, H, None, k10_target),
    Check("K11", 11, "cryptographic units", "6.6", BOTH, (HARD, WARNING), W, (),
          k11_source, k11_target),
    Check("K12", 12, "virtual I/O", "6.4", BOTH, (HARD, OVERRIDABLE, WARNING), (HARD, WARNING),
          (), k12_source, k12_target),
    Check("K13", 13, "NIU hybrid I/O", "6.5", TARGET, W, W, (), None, k13_target),
    Check("K14", 14, "MAC address and host ID collision", "6.14", TARGET, O, O, W, None,
          k14_target),
)
TABLE_BY_ID = {check.id: check for check in TABLE}


def _run(ctx: Ctx, side: str) -> list[CheckResult]:
    out: list[CheckResult] = []
    for check in TABLE:
        rule = check.source if side == SOURCE else check.target
        allowed = check.classes(ctx.state)
        if rule is None or not allowed:
            continue
        for rank, klass, lines in rule(ctx):
            if klass not in allowed:  # the table is the authority on classes
                raise AssertionError(f"{check.id} gave {klass} for a {ctx.state} domain")
            out.append(CheckResult(check.id, klass, _RESULT[klass], tuple(lines), rank))
    return merge(out)


def run_source(description: dict, local: dict, target_host: dict, request_view: dict,
               settings: CheckSettings = DEFAULT_SETTINGS) -> list[CheckResult]:
    """Source-side checks on a ``describe_source`` payload and ``source_facts``."""
    ctx = Ctx(description["domain"], description["host"], target_host, local, request_view,
              settings)
    return _run(ctx, SOURCE)


def run_target(description: dict, local: dict, request_view: dict,
               settings: CheckSettings = DEFAULT_SETTINGS) -> list[CheckResult]:
    """Target-side checks on a ``describe_source`` payload and ``describe_target`` output."""
    ctx = Ctx(description["domain"], description["host"], local["host"], local, request_view,
              settings)
    return _run(ctx, TARGET)


def source_checks(manager: "Manager", domain: str, request: "MigrationRequest",
                  target_host: dict, *,
                  guest: dict | None = None,
                  settings: CheckSettings = DEFAULT_SETTINGS) -> list[CheckResult]:
    """Every source-side check for ``request``; raises LdmError if the domain does not
    exist (the caller reports it with the summary line, §6.16)."""
    host = describe_host(manager, "", "", rules=settings.rules)
    description = describe_source(manager, domain, host, guest=guest)
    return run_source(description, source_facts(manager, domain), target_host, request.view(),
                      settings)


def target_checks(manager: "Manager", description: dict, request_view: dict, *,
                  settings: CheckSettings = DEFAULT_SETTINGS) -> list[CheckResult]:
    """Every target-side check against this (target) manager's state; changes nothing."""
    return run_target(description, describe_target(manager, rules=settings.rules), request_view,
                      settings)


def protocol_check(local_range: tuple[int, int], peer_range: tuple[int, int], *, host: str,
                   local_version: str, peer_version: str) -> CheckResult | None:
    """K01 part 1 at ``mig-hello`` (§3.1): None when the two ranges share a protocol."""
    if versions.choose_protocol(tuple(local_range), tuple(peer_range)) is not None:
        return None
    line = msg.protocol_mismatch(host, peer_version, local_version)
    return CheckResult("K01", HARD, FAIL, (line,), 1)


def self_target_check(host: str, local_machine_id: str,
                      peer_machine_id: str) -> CheckResult | None:
    """The intake test of §6.13: ``mig-hello`` answered with our own machine id."""
    if local_machine_id != peer_machine_id:
        return None
    return CheckResult("K02", HARD, FAIL, (msg.target_is_self(host),), 0)


# -- ordering, -f and report lines (§6.0, §5.6) ------------------------------------------------

def merge(*result_lists: Iterable[CheckResult]) -> list[CheckResult]:
    """All results in the report order of §6.0; equal keys keep their argument order."""
    flat = [r for results in result_lists for r in results]
    return sorted(flat, key=lambda r: (TABLE_BY_ID[r.check].order, r.rank))


def apply_force(results: Iterable[CheckResult], force: bool) -> list[CheckResult]:
    """With -f, each overridable failure becomes a warning printed as ``Warning: <text>``."""
    out = []
    for r in results:
        if force and r.klass == OVERRIDABLE and r.result == FAIL:
            r = replace(r, result=WARN, lines=(msg.WARNING + r.lines[0],) + r.lines[1:])
        out.append(r)
    return out


def _response_lines(r: CheckResult) -> list[str]:
    # A notice travels as one resp_msg starting "Notice: " (§6.9); the CLI strips the prefix.
    if r.result == NOTE:
        return [msg.NOTICE + "\n".join(r.lines)]
    return list(r.lines)


def report_lines(results: Iterable[CheckResult], domain: str, dry_run: bool, *,
                 lead: Iterable[str] = ()) -> tuple[bool, list[str]]:
    """(ok, resp_msg lines) for the migrate-domain response (§6.0, §5.6).

    A real run that failed gives the first failing message (both lines of a two-line one)
    and the [P] failed line. A dry run that failed gives every failure, then every warning
    and notice, then the [P] would-fail line. When nothing failed: only the warnings and
    notices, in report order. ``lead`` lines are failures that precede every check.
    """
    ordered = merge(results)
    failures = [r for r in ordered if r.result == FAIL]
    others = [r for r in ordered if r.result != FAIL]
    lead = list(lead)
    if not failures and not lead:
        return True, [line for r in others for line in _response_lines(r)]
    if not dry_run:
        first = lead[:1] if lead else list(failures[0].lines)
        return False, first + [msg.failed(domain)]
    lines = lead + [line for r in failures for line in r.lines]
    lines += [line for r in others for line in _response_lines(r)]
    return False, lines + [msg.would_fail(domain)]
