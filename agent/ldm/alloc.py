"""Allocation of strands, whole cores, crypto units, memory blocks and console ports.

Pure functions over "what the other domains hold"; they prefer to keep what a domain
already has, so a dynamic change moves as little as possible. Each raises LdmError naming
the domain and the shortage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.ldm.errors import LdmError
from agent.ldm.model import GUEST_RA_BASE, MemBlock
from agent.ldm.platform import MemRange, Platform


@dataclass
class Usage:
    """Resources held by domains other than the one being allocated for."""

    strands: set[int] = field(default_factory=set)
    mau: set[int] = field(default_factory=set)
    memory: list[MemBlock] = field(default_factory=list)
    ports: dict[tuple[str, int], str] = field(default_factory=dict)  # (vcc, port) -> group


def pick_strands(plat: Platform, used: set[int], keep: list[int], count: int, who: str) -> list[int]:
    """``count`` strands: the first of ``keep``, then free ones on cores already in use."""
    chosen = list(keep[:count])
    if len(chosen) == count:
        return chosen
    taken = used | set(chosen)
    free = [s for s in plat.usable_strands() if s not in taken]
    own_cores = {plat.core_of_strand(s) for s in chosen}
    free.sort(key=lambda s: (plat.core_of_strand(s) not in own_cores, s))
    need = count - len(chosen)
    if len(free) < need:
        raise LdmError(
            f"Could not bind {who}: not enough free vCPUs (requested {count}, "
            f"{len(chosen) + len(free)} available)"
        )
    return chosen + free[:need]


def pick_cores(plat: Platform, used: set[int], keep: list[int], cores: int, who: str) -> list[int]:
    """Strands of ``cores`` whole cores, keeping ``keep``'s complete cores first."""
    spc = plat.strands_per_core
    mine = set(keep)
    kept_cores: list[int] = []
    for s in keep:
        c = plat.core_of_strand(s)
        if c not in kept_cores and set(plat.strands_of_core(c)) <= mine:
            kept_cores.append(c)
    kept_cores = kept_cores[:cores]
    free_cores = [
        c for c in plat.usable_cores()
        if c not in kept_cores and not (set(plat.strands_of_core(c)) & used)
    ]
    need = cores - len(kept_cores)
    if len(free_cores) < need:
        raise LdmError(
            f"Could not bind {who}: not enough free whole cores (requested {cores}, "
            f"{len(kept_cores) + len(free_cores)} available)"
        )
    chosen = kept_cores + free_cores[:need]
    # Keep vCPU ids stable for the strands the domain keeps.
    kept = [s for s in keep if plat.core_of_strand(s) in kept_cores]
    added = [s for c in chosen[len(kept_cores):] for s in plat.strands_of_core(c)]
    assert len(kept) + len(added) == cores * spc
    return kept + added


def pick_mau(plat: Platform, used: set[int], keep: list[int], count: int, strands: list[int],
             who: str) -> list[int]:
    """``count`` crypto units, preferring units on the cores of the domain's strands."""
    chosen = list(keep[:count])
    if len(chosen) == count:
        return chosen
    own_cores = {plat.core_of_strand(s) for s in strands}
    free = [u for u in plat.crypto_units() if u not in used and u not in chosen]
    free.sort(key=lambda u: (plat.core_of_crypto_unit(u) not in own_cores, u))
    need = count - len(chosen)
    if len(free) < need:
        raise LdmError(
            f"Could not bind {who}: not enough free crypto units (requested {count}, "
            f"{len(chosen) + len(free)} available)"
        )
    return chosen + free[:need]


def free_memory(plat: Platform, used: list[MemBlock]) -> list[MemRange]:
    """Usable memory minus the blocks in ``used``, in address order."""
    out: list[MemRange] = []
    blocks = sorted(used, key=lambda b: b.pa)
    for rng in plat.usable_memory():
        start = rng.pa
        for b in blocks:
            if b.pa + b.size <= start or b.pa >= rng.end:
                continue
            if b.pa > start:
                out.append(MemRange(start, b.pa - start))
            start = max(start, b.pa + b.size)
        if start < rng.end:
            out.append(MemRange(start, rng.end - start))
    return out


def pick_memory(plat: Platform, used: list[MemBlock], keep: list[MemBlock], size: int,
                who: str, ra_base: int = GUEST_RA_BASE) -> list[MemBlock]:
    """Blocks totalling ``size``: ``keep`` trimmed from the top, or extended first-fit."""
    kept: list[MemBlock] = []
    total = 0
    for b in sorted(keep, key=lambda b: b.ra):
        if total >= size:
            break
        take = min(b.size, size - total)
        kept.append(MemBlock(b.ra, b.pa, take))
        total += take
    if total == size:
        return kept
    taken = used + kept
    free = free_memory(plat, taken)
    available = sum(r.size for r in free)
    if available < size - total:
        raise LdmError(
            f"Could not bind {who}: not enough free memory (requested {size} bytes, "
            f"{total + available} available)"
        )
    ra = max((b.ra + b.size for b in kept), default=ra_base)
    out = list(kept)
    for rng in free:
        if total == size:
            break
        take = min(rng.size, size - total)
        out.append(MemBlock(ra, rng.pa, take))
        ra += take
        total += take
    return out


def pick_port(vcc: str, low: int, high: int, group: str, ports: dict[tuple[str, int], str],
              wanted: int | None, who: str) -> int:
    """A console port of ``vcc`` for ``group``: the wanted one, the group's, or the lowest free."""
    if wanted is not None:
        if not low <= wanted <= high:
            raise LdmError(
                f"Could not bind {who}: console port {wanted} is outside the range "
                f"{low}-{high} of {vcc}"
            )
        holder = ports.get((vcc, wanted))
        if holder is not None and holder != group:
            raise LdmError(f"Could not bind {who}: console port {wanted} of {vcc} is in use")
        return wanted
    for (svc, port), grp in sorted(ports.items()):
        if svc == vcc and grp == group:
            return port
    for port in range(low, high + 1):
        if (vcc, port) not in ports:
            return port
    raise LdmError(f"Could not bind {who}: no free console port in {vcc}")
