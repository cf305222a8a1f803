"""Value formats of LDM property texts (spec ldm-xml §2.7): parse input, emit canonically.

Every ``parse_*`` takes the (already trimmed) text and the property key it came from, and
raises :class:`InvalidValue` on bad input; the exception carries both, and ``str(exc)`` is the
operator message of §3.6 (``Invalid value "VALUE" for KEY``). Every ``format_*`` takes the
Python value and returns the canonical text the agent emits. No I/O, no state.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid as _uuid
from typing import Callable, Iterable

from agent.xmlapi import messages


class InvalidValue(ValueError):
    """A property text that does not match its format; carries ``value`` and ``key``."""

    def __init__(self, value: str, key: str) -> None:
        self.value = value
        self.key = key
        super().__init__(messages.invalid_value(value, key))

    @property
    def message(self) -> str:
        """The §3.6 operator text for this failure."""
        return messages.invalid_value(self.value, self.key)


_DOMAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}")
# "Printable non-space" is taken in the C isgraph sense: ASCII 0x21-0x7e.
_NAME = re.compile(r"[!-~]{1,64}")
_NAME_FORBIDDEN = frozenset("@,=?")
_VARIABLE_FORBIDDEN = frozenset("@,=")
_INTEGER = re.compile(r"[0-9]+")
_SIZE = re.compile(r"([0-9]+)([KkMmGg]?)")
_MAC = re.compile(r"[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){5}")
_HOSTID = re.compile(r"(?:0[xX])?([0-9A-Fa-f]{1,8})")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_ADDRESS = re.compile(r"0[xX]([0-9A-Fa-f]+)")
_PERCENT = re.compile(r"[0-9]+(?:\.[0-9])?")
_PROGRESS = re.compile(r"([0-9]{1,3})%")
_TOD = re.compile(r"([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?")
_B64_ALPHABET = re.compile(r"[A-Za-z0-9+/]*={0,2}")

_UNITS = (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10))
_SUFFIX = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


# -- names ---------------------------------------------------------------------------------

def parse_domain_name(value: str, key: str = "name") -> str:
    """A domain name: 1-64 of ``A-Z a-z 0-9 - _ . +``, starting with a letter or digit."""
    if not _DOMAIN_NAME.fullmatch(value):
        raise InvalidValue(value, key)
    return value


def parse_name(value: str, key: str, *, variable: bool = False) -> str:
    """A service, device, volume or variable name (``variable`` also allows ``?``)."""
    forbidden = _VARIABLE_FORBIDDEN if variable else _NAME_FORBIDDEN
    if not _NAME.fullmatch(value) or any(c in forbidden for c in value):
        raise InvalidValue(value, key)
    return value


# -- numbers -------------------------------------------------------------------------------

def parse_int(value: str, key: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Decimal digits (leading zeros allowed), optionally bounded (inclusive)."""
    if not _INTEGER.fullmatch(value):
        raise InvalidValue(value, key)
    number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise InvalidValue(value, key)
    return number


def format_int(number: int) -> str:
    """Decimal without leading zeros."""
    return str(int(number))


def parse_size(value: str, key: str) -> int:
    """Bytes, or a number with ``K``/``M``/``G`` (either case) meaning 2^10, 2^20, 2^30."""
    match = _SIZE.fullmatch(value)
    if match is None:
        raise InvalidValue(value, key)
    return int(match.group(1)) * _SUFFIX[match.group(2).lower()]


def format_size(nbytes: int) -> str:
    """The largest of G, M, K dividing the size exactly, else plain bytes (``0`` for zero)."""
    if nbytes < 0:
        raise ValueError(f"negative size {nbytes}")
    if nbytes:
        for suffix, unit in _UNITS:
            if nbytes % unit == 0:
                return f"{nbytes // unit}{suffix}"
    return str(nbytes)


def parse_percent(value: str, key: str) -> float:
    """A decimal number with at most one fractional digit (``12.5``)."""
    if not _PERCENT.fullmatch(value):
        raise InvalidValue(value, key)
    return float(value)


def format_percent(number: float) -> str:
    """One fractional digit, e.g. ``12.5``, ``3.0``."""
    return f"{number:.1f}"


def parse_progress(value: str, key: str = "progress") -> int:
    """An integer percentage with a ``%`` sign, ``0%`` to ``100%``."""
    match = _PROGRESS.fullmatch(value)
    if match is None or int(match.group(1)) > 100:
        raise InvalidValue(value, key)
    return int(match.group(1))


def format_progress(percent: int) -> str:
    """``37%``; the only value format carrying a percent sign."""
    if not 0 <= percent <= 100:
        raise ValueError(f"progress {percent} outside 0..100")
    return f"{int(percent)}%"


# -- switches and identifiers --------------------------------------------------------------

def parse_on_off(value: str, key: str) -> bool:
    """``on`` or ``off``, case-insensitive."""
    lowered = value.lower()
    if lowered == "on":
        return True
    if lowered == "off":
        return False
    raise InvalidValue(value, key)


def format_on_off(flag: bool) -> str:
    return "on" if flag else "off"


def parse_mac(value: str, key: str = "rasd:Address") -> int:
    """Six ``:``-separated groups of one or two hex digits; returns the 48-bit number."""
    if not _MAC.fullmatch(value):
        raise InvalidValue(value, key)
    number = 0
    for group in value.split(":"):
        number = (number << 8) | int(group, 16)
    return number


def format_mac(number: int) -> str:
    """Six two-digit lower-case groups, e.g. ``00:14:4f:f9:3a:01``."""
    if not 0 <= number < 1 << 48:
        raise ValueError(f"MAC number {number} out of range")
    raw = f"{number:012x}"
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def parse_hostid(value: str, key: str = "hostid") -> int:
    """Up to 8 hex digits, optional ``0x``."""
    match = _HOSTID.fullmatch(value)
    if match is None:
        raise InvalidValue(value, key)
    return int(match.group(1), 16)


def format_hostid(number: int) -> str:
    """Eight lower-case hex digits, no ``0x``."""
    if not 0 <= number < 1 << 32:
        raise ValueError(f"host ID {number} out of range")
    return f"{number:08x}"


def parse_uuid(value: str, key: str = "uuid") -> _uuid.UUID:
    """8-4-4-4-12 hex digits, either case."""
    if not _UUID.fullmatch(value):
        raise InvalidValue(value, key)
    return _uuid.UUID(value)


def format_uuid(value: _uuid.UUID | str) -> str:
    """Lower-case 8-4-4-4-12 form."""
    return str(value if isinstance(value, _uuid.UUID) else _uuid.UUID(value))


def parse_address(value: str, key: str) -> int:
    """A physical or real address: hex with a ``0x`` prefix."""
    match = _ADDRESS.fullmatch(value)
    if match is None:
        raise InvalidValue(value, key)
    return int(match.group(1), 16)


def format_address(number: int) -> str:
    """``0x`` + lower-case hex."""
    if number < 0:
        raise ValueError(f"negative address {number}")
    return f"0x{number:x}"


def parse_tod(value: str, key: str) -> str:
    """A time of day ``hh:mm`` or ``hh:mm:ss`` (returned as given)."""
    match = _TOD.fullmatch(value)
    if match is None:
        raise InvalidValue(value, key)
    hours, minutes, seconds = match.group(1), match.group(2), match.group(3) or "00"
    if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 59:
        raise InvalidValue(value, key)
    return value


def parse_choice(value: str, key: str, choices: Iterable[str]) -> str:
    """One of a fixed set of words (compared exactly)."""
    if value not in choices:
        raise InvalidValue(value, key)
    return value


# -- lists and base64 ----------------------------------------------------------------------

def parse_list(value: str, key: str,
               element: Callable[[str, str], object] | None = None) -> list:
    """Comma-separated, no spaces; empty text is the empty list.

    ``element(text, key)`` parses each member (strings are kept when it is None); an empty
    member or any whitespace makes the whole value invalid.
    """
    if value == "":
        return []
    parts = value.split(",")
    if any(part == "" or part != part.strip() or " " in part for part in parts):
        raise InvalidValue(value, key)
    if element is None:
        return parts
    try:
        return [element(part, key) for part in parts]
    except InvalidValue:
        raise InvalidValue(value, key) from None


def format_list(members: Iterable[object]) -> str:
    """Comma-separated, no spaces (integers in decimal)."""
    return ",".join(str(m) for m in members)


def parse_base64(value: str, key: str) -> bytes:
    """Standard alphabet with padding; whitespace anywhere is ignored."""
    compact = "".join(value.split())
    if len(compact) % 4 or not _B64_ALPHABET.fullmatch(compact):
        raise InvalidValue(value, key)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(value, key) from None


def format_base64(raw: bytes) -> str:
    """Standard alphabet with padding, no line breaks."""
    return base64.b64encode(raw).decode("ascii")
