"""Byte sizes as the CLI writes them (``4G``, ``512M``, ``4097``), parsed and formatted."""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)B?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Bytes for ``value``: an int, or digits with an optional K/M/G/T suffix."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"Invalid size {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def format_size(nbytes: int) -> str:
    """The largest of G, M, K that divides ``nbytes`` exactly, else plain bytes."""
    for suffix in ("G", "M", "K"):
        unit = _UNITS[suffix]
        if nbytes and nbytes % unit == 0:
            return f"{nbytes // unit}{suffix}"
    return str(nbytes)
