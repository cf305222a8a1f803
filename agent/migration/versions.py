"""Version facts of migration.md §1.2, §1.3, §1.6 and §3: protocol numbers, firmware
versions, CPU types and their migration classes, hypervisor API groups.

Pure values and functions. The CPU table, the exclusion tables and the minimum firmware column
live in one :class:`CpuRules` value so that tests (and a platform description) can change them
(§1.3: "The simulator must let tests change this exclusion table, the minimum firmware column
and the API-group sets").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PROTOCOL = 2  # the migration protocol this agent speaks (§3.1); it also accepts PROTOCOL - 1
G = 1 << 30
M = 1 << 20

CPU_ARCHS = ("native", "generic", "migration-class1", "sparc64-class1")
CLASS_VALUES = ("migration-class1", "sparc64-class1")


# -- protocol (§3.1) ---------------------------------------------------------------------------

def protocol_range(number: int = PROTOCOL) -> tuple[int, int]:
    """The protocol numbers an agent advertising ``number`` accepts: itself and the one before."""
    return (max(1, number - 1), number)


def choose_protocol(local: tuple[int, int], peer: tuple[int, int]) -> int | None:
    """The protocol the session runs: the highest number both ranges hold, None if none."""
    low, high = max(local[0], peer[0]), min(local[1], peer[1])
    return high if low <= high else None


def common_features(local: list[str] | set[str], peer: list[str] | set[str]) -> list[str]:
    """Features both ``mig-hello`` messages list; a one-sided feature is simply off (M24)."""
    return sorted(set(local) & set(peer))


# -- firmware versions (§1.2) ------------------------------------------------------------------

_DOTTED = re.compile(r"^(\d+(?:\.\d+)*)(?:\.([a-z]))?$")
_XCP = re.compile(r"^XCP(\d+)$")
_WIDTH = 8  # a letter suffix is compared as the field after this many numbers


def firmware_key(version: str) -> tuple[str, tuple[int, ...]]:
    """A sort key: ("xcp", (n,)) or ("dotted", fields...) with a letter ranked after the number.

    ``8.2.2`` < ``8.2.2.c`` < ``8.2.3``; a missing field counts as 0. Raises ValueError for
    text that is neither form.
    """
    xcp = _XCP.match(version)
    if xcp:
        return ("xcp", (int(xcp.group(1)),))
    dotted = _DOTTED.match(version)
    if not dotted:
        raise ValueError(f"Invalid firmware version {version!r}")
    numbers = [int(n) for n in dotted.group(1).split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()  # 8.2.0 == 8.2
    letter = dotted.group(2)
    # The letter is one more field after the numbers: 8.2.2 (…, 0) < 8.2.2.c (…, 0, 3).
    fields = numbers + ([0] * (_WIDTH - len(numbers)) if letter else [])
    if letter:
        fields.append(ord(letter) - ord("a") + 1)
    return ("dotted", tuple(fields))


def firmware_at_least(version: str, minimum: str) -> bool | None:
    """True/False, or None when the two cannot be compared (XCP against dotted)."""
    a, b = firmware_key(version), firmware_key(minimum)
    if a[0] != b[0]:
        return None
    return _padded(a[1], b[1])[0] >= _padded(a[1], b[1])[1]


def _padded(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


def firmware_family(version: str) -> str:
    """``7``, ``8``, ... for dotted versions; ``XCP`` for XCP ones."""
    kind, fields = firmware_key(version)
    return "XCP" if kind == "xcp" else str(fields[0])


# -- CPU types (§1.3) --------------------------------------------------------------------------

@dataclass(frozen=True)
class CpuType:
    """One row of the §1.3 table."""

    strands_per_core: int
    largest_page: int
    migration_class1: bool = False
    sparc64_class1: bool = False
    min_firmware: str | None = None  # None: any version; "XCP": any XCP version


_T2 = CpuType(8, 256 * M, min_firmware="7.4.5")
_CLASS1 = CpuType(8, 2 * G, migration_class1=True)
_SPARC64 = CpuType(2, 2 * G, sparc64_class1=True, min_firmware="XCP")

CPU_TYPES: dict[str, CpuType] = {
    "UltraSPARC-T2": _T2,
    "UltraSPARC-T2+": _T2,
    "SPARC-T3": CpuType(8, 256 * M, min_firmware="8.2.2.c"),
    "SPARC-T4": CpuType(8, 2 * G, migration_class1=True, min_firmware="8.2.2.c"),
    **{t: _CLASS1 for t in ("SPARC-T5", "SPARC-M5", "SPARC-M6", "SPARC-T7", "SPARC-M7")},
    "SPARC64-X": _SPARC64,
    "SPARC64-X+": _SPARC64,
}

# Hypervisor API groups: entries (first group, last group, major, highest minor).
BASE_API_GROUPS = ((0x000, 0x1FF, 1, 999),)
PERF_API_GROUPS = ((0x20B, 0x20B, 1, 0), (0x214, 0x214, 1, 0))
GLOBAL_COUNTERS, STRAND_COUNTERS = 0x20B, 0x214


@dataclass(frozen=True)
class CpuRules:
    """The changeable parts of §1.3: CPU table, live-migration exclusions, API-group sets."""

    cpu_types: dict[str, CpuType] = field(default_factory=lambda: dict(CPU_TYPES))
    excluded_cpu_groups: tuple[frozenset[str], frozenset[str]] = (
        frozenset({"UltraSPARC-T2", "UltraSPARC-T2+", "SPARC-T3"}),
        frozenset({"SPARC-T5", "SPARC-M5", "SPARC-M6", "SPARC-T7", "SPARC-M7"}),
    )
    excluded_firmware_families: tuple[frozenset[str], ...] = (frozenset({"7", "8"}),)

    def cpu(self, cpu_type: str) -> CpuType:
        # An unknown type gets the most conservative row: no class, T3-sized pages.
        return self.cpu_types.get(cpu_type, CpuType(8, 256 * M))

    def cpu_pair_excluded(self, a: str, b: str) -> bool:
        one, two = self.excluded_cpu_groups
        return (a in one and b in two) or (a in two and b in one)

    def firmware_pair_excluded(self, a: str, b: str) -> bool:
        pair = {firmware_family(a), firmware_family(b)}
        return len(pair) == 2 and any(pair == set(ex) for ex in self.excluded_firmware_families)

    def min_firmware(self, cpu_type: str) -> str | None:
        return self.cpu(cpu_type).min_firmware

    def default_api_groups(self, cpu_type: str) -> list[list[int]]:
        groups = list(BASE_API_GROUPS)
        if cpu_type in ("SPARC-T7", "SPARC-M7"):
            groups += PERF_API_GROUPS
        return [list(g) for g in groups]


DEFAULT_RULES = CpuRules()


def in_class(arch: str, cpu_type: str, rules: CpuRules = DEFAULT_RULES) -> bool:
    """Whether ``cpu_type`` belongs to the migration class named by ``arch`` (§1.6)."""
    row = rules.cpu(cpu_type)
    return row.migration_class1 if arch == "migration-class1" else row.sparc64_class1


def bindable(arch: str, cpu_type: str, rules: CpuRules = DEFAULT_RULES) -> bool:
    """A class value binds only on a member machine; native and generic bind anywhere (§1.6)."""
    return arch not in CLASS_VALUES or in_class(arch, cpu_type, rules)


def meets_minimum(version: str, cpu_type: str, rules: CpuRules = DEFAULT_RULES) -> bool:
    """Firmware at or above the live-migration minimum of its CPU type (§1.3, §3.2)."""
    minimum = rules.min_firmware(cpu_type)
    if minimum is None:
        return True
    if minimum == "XCP":
        return firmware_key(version)[0] == "xcp"
    return firmware_at_least(version, minimum) is True


def api_supported(groups: list[list[int]], group: int, version: str) -> bool:
    """Same major, at least the same minor, for ``group`` in the entries ``groups``."""
    major, _, minor = version.partition(".")
    for first, last, gmajor, max_minor in groups:
        if first <= group <= last and gmajor == int(major) and int(minor or 0) <= max_minor:
            return True
    return False
