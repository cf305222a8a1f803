"""Hands freed heap memory back to the operating system now and then.

A long-running agent parses documents of very different sizes (a 1 MiB request, then
thousands of small ones). CPython and libxml2 free that memory, but glibc keeps most freed
pages inside its heaps and arenas, so the process's RSS stays at its high-water mark.
``malloc_trim(0)`` returns every whole free page; it costs about a millisecond on a heap of a
hundred megabytes, so a call every half minute is cheap. On a C library without
``malloc_trim`` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Callable

TRIM_INTERVAL_S = 30.0


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` as a callable, or None where the C library lacks it."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def start(reactor, interval: float = TRIM_INTERVAL_S):
    """Trim every ``interval`` seconds on ``reactor``; returns the LoopingCall (or None)."""
    from twisted.internet.task import LoopingCall

    trim = malloc_trim()
    if trim is None:
        return None
    call = LoopingCall(trim)
    call.clock = reactor
    call.start(interval, now=False)
    return call
