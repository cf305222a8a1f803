"""The simulated machine: CPUs, crypto units, memory ranges, PCIe devices, NIUs.

A platform is read from a TOML description (migration.md §1.2). Strand ids are
``core * strands_per_core + i``; crypto unit ids are ``core * crypto_units_per_core + j``
(so, with one unit per core, the unit id is the core id). The default machine ships inside
the package as ``agent/ldm/platforms/default.toml``.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from agent.ldm.errors import LdmError
from agent.ldm.sizes import parse_size


@dataclass(frozen=True)
class MemRange:
    """A physical memory range."""

    pa: int
    size: int

    @property
    def end(self) -> int:
        return self.pa + self.size


@dataclass(frozen=True)
class IoDevice:
    """A PCIe root complex (``bus``), endpoint (``pcie``/``pf``) or virtual function (``vf``)."""

    name: str
    type: str
    device: str
    bus: str


@dataclass(frozen=True)
class Niu:
    """A network interface unit with its hybrid I/O capacity."""

    name: str
    hybrid_capacity: int


@dataclass(frozen=True)
class Platform:
    """An immutable machine description; ``raw`` keeps the parsed TOML for other rooms."""

    hostname: str
    machine_id: str
    platform: str
    cpu_type: str
    cpu_freq_mhz: int
    sockets: int
    cores_per_socket: int
    strands_per_core: int
    crypto_units_per_core: int
    pm_policy: str
    firmware_version: str
    mac_address: str
    hostid: str
    granule: int
    memory: tuple[MemRange, ...]
    blacklisted_memory: tuple[MemRange, ...] = ()
    blacklisted_cores: tuple[int, ...] = ()
    io: tuple[IoDevice, ...] = ()
    nius: tuple[Niu, ...] = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def cores(self) -> list[int]:
        return list(range(self.sockets * self.cores_per_socket))

    def strands_of_core(self, core: int) -> list[int]:
        base = core * self.strands_per_core
        return list(range(base, base + self.strands_per_core))

    def core_of_strand(self, strand: int) -> int:
        return strand // self.strands_per_core

    def usable_cores(self) -> list[int]:
        return [c for c in self.cores if c not in self.blacklisted_cores]

    def usable_strands(self) -> list[int]:
        return [s for c in self.usable_cores() for s in self.strands_of_core(c)]

    def crypto_units(self) -> list[int]:
        n = self.crypto_units_per_core
        return [c * n + j for c in self.usable_cores() for j in range(n)]

    def core_of_crypto_unit(self, unit: int) -> int:
        return unit // self.crypto_units_per_core

    def usable_memory(self) -> list[MemRange]:
        """Installed ranges minus blacklisted ranges, in address order."""
        out: list[MemRange] = []
        for rng in sorted(self.memory, key=lambda r: r.pa):
            pieces = [rng]
            for bad in self.blacklisted_memory:
                pieces = [p for piece in pieces for p in _subtract(piece, bad)]
            out.extend(pieces)
        return out

    def io_device(self, name: str) -> IoDevice | None:
        for dev in self.io:
            if dev.name == name or dev.device == name:
                return dev
        return None


def _subtract(rng: MemRange, bad: MemRange) -> list[MemRange]:
    if bad.end <= rng.pa or bad.pa >= rng.end:
        return [rng]
    out = []
    if bad.pa > rng.pa:
        out.append(MemRange(rng.pa, bad.pa - rng.pa))
    if bad.end < rng.end:
        out.append(MemRange(bad.end, rng.end - bad.end))
    return out


def parse_platform(text: str) -> Platform:
    """Build a :class:`Platform` from TOML text; raises LdmError naming what is wrong."""
    try:
        doc = tomllib.loads(text)
        return platform_from_doc(doc)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LdmError(f"Invalid platform description: {exc!r}") from exc


def load_platform(path: str | Path) -> Platform:
    """Read a platform description file."""
    return parse_platform(Path(path).read_text(encoding="utf-8"))


def default_platform() -> Platform:
    """The embedded default machine shipped with the package."""
    res = importlib.resources.files("agent.ldm") / "platforms" / "default.toml"
    return parse_platform(res.read_text(encoding="utf-8"))


def _ranges(items: list[dict], granule: int) -> tuple[MemRange, ...]:
    out = []
    for item in items:
        rng = MemRange(int(item["pa"]), parse_size(item["size"]))
        if rng.pa % granule or rng.size % granule or rng.size <= 0:
            raise ValueError(f"memory range {item} is not aligned to the granule")
        out.append(rng)
    return tuple(out)


def platform_from_doc(doc: dict) -> Platform:
    """Build a :class:`Platform` from a parsed TOML document (also how the store keeps it)."""
    m = doc["machine"]
    mem = doc["memory"]
    granule = parse_size(mem.get("granule", "4M"))
    io = doc.get("io", {})
    devices = [IoDevice(b["name"], "bus", b["device"], b["name"]) for b in io.get("buses", [])]
    devices += [
        IoDevice(e["name"], e.get("type", "pcie"), e["device"], e["bus"])
        for e in io.get("endpoints", [])
    ]
    devices += [IoDevice(v["name"], "vf", v["device"], v["bus"]) for v in io.get("vfs", [])]
    buses = {d.name for d in devices if d.type == "bus"}
    for dev in devices:
        if dev.bus not in buses:
            raise ValueError(f"device {dev.name} names unknown bus {dev.bus}")
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise ValueError("duplicate I/O device names")
    plat = Platform(
        hostname=m["hostname"],
        machine_id=m["machine_id"],
        platform=m.get("platform", ""),
        cpu_type=m["cpu_type"],
        cpu_freq_mhz=int(m["cpu_freq_mhz"]),
        sockets=int(m["sockets"]),
        cores_per_socket=int(m["cores_per_socket"]),
        strands_per_core=int(m["strands_per_core"]),
        crypto_units_per_core=int(m.get("crypto_units_per_core", 1)),
        pm_policy=m.get("pm_policy", "performance"),
        firmware_version=m.get("firmware_version", ""),
        mac_address=m["mac_address"].lower(),
        hostid=m["hostid"].lower(),
        granule=granule,
        memory=_ranges(mem["ranges"], granule),
        blacklisted_memory=_ranges(mem.get("blacklisted", []), granule),
        blacklisted_cores=tuple(int(c) for c in m.get("blacklisted_cores", [])),
        io=tuple(devices),
        nius=tuple(Niu(n["name"], int(n["hybrid_capacity"])) for n in doc.get("nius", [])),
        raw=doc,
    )
    if min(plat.sockets, plat.cores_per_socket, plat.strands_per_core) < 1:
        raise ValueError("sockets, cores and strands must be positive")
    if plat.pm_policy not in ("performance", "elastic"):
        raise ValueError(f"unknown pm_policy {plat.pm_policy}")
    return plat
