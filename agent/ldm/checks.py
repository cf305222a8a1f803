"""Value checks shared by the action families; each raises LdmError with the operator text."""

from __future__ import annotations

import re
import uuid as uuidlib

from agent.ldm.errors import LdmError

_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_HOSTID = re.compile(r"^(0x)?[0-9a-f]{1,8}$")

FAILURE_POLICIES = ("ignore", "panic", "reset", "stop")
CPU_ARCHS = ("native", "generic", "migration-class1", "sparc64-class1")
PERF_COUNTERS = ("global", "strand", "htstrand")
CLASS1 = {"SPARC-T4", "SPARC-T5", "SPARC-M5", "SPARC-M6", "SPARC-T7", "SPARC-M7"}
SPARC64_CLASS1 = {"SPARC64-X", "SPARC64-X+"}


def mac(value: str) -> str:
    """A MAC address, normalised to lower case."""
    norm = value.strip().lower()
    if not _MAC.match(norm):
        raise LdmError(f"Invalid MAC address \"{value}\"")
    return norm


def hostid(value: str) -> str:
    """A 32-bit host ID, normalised to eight lower-case hex digits."""
    norm = value.strip().lower()
    if not _HOSTID.match(norm):
        raise LdmError(f"Invalid host ID \"{value}\"")
    return f"{int(norm, 16):08x}"


def uuid(value: str) -> str:
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        raise LdmError(f"Invalid UUID \"{value}\"") from None


def choice(key: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise LdmError(f"Invalid value \"{value}\" for {key}; expected one of {', '.join(allowed)}")
    return value


def positive(key: str, value: int, minimum: int = 1) -> int:
    if not isinstance(value, int) or value < minimum:
        raise LdmError(f"Invalid value \"{value}\" for {key}; must be at least {minimum}")
    return value


def in_range(key: str, value: int, low: int, high: int) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise LdmError(f"Invalid value \"{value}\" for {key}; must be {low} to {high}")
    return value


def vlan_list(key: str, values: list[int]) -> list[int]:
    for v in values:
        in_range(key, v, 1, 4094)
    return sorted(set(values))


def on_off(key: str, value: str) -> str:
    return choice(key, value, ("on", "off"))
