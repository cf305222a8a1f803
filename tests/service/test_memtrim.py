"""The agent hands freed heap memory back to the OS every half minute (issue #8 item 1:
memory stays bounded under a long fuzz campaign)."""

from __future__ import annotations

import platform

from twisted.internet.task import Clock

from agent import memtrim


def test_trim_runs_on_the_reactor_clock_every_interval(monkeypatch):
    calls = []
    monkeypatch.setattr(memtrim, "malloc_trim", lambda: lambda: calls.append(1))
    clock = Clock()
    loop = memtrim.start(clock, interval=30.0)
    assert calls == []  # not at start: nothing to hand back yet
    clock.advance(30.0)
    clock.advance(30.0)
    assert len(calls) == 2
    loop.stop()


def test_without_malloc_trim_nothing_is_scheduled(monkeypatch):
    monkeypatch.setattr(memtrim, "malloc_trim", lambda: None)
    clock = Clock()
    assert memtrim.start(clock) is None
    assert clock.getDelayedCalls() == []


def test_glibc_trim_is_found_and_callable():
    trim = memtrim.malloc_trim()
    if platform.libc_ver()[0] != "glibc":
        assert trim is None or callable(trim)
        return
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was released, 0: none could be
