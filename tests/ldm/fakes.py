"""Test doubles for the manager: a guest port that records calls, a settable clock."""

from __future__ import annotations

import random
from pathlib import Path

from agent.ldm.manager import Manager
from agent.ldm.platform import Platform, default_platform, load_platform
from agent.store.memory import MemoryStore

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "platforms"


class FakeGuests:
    """Records guest operations; ``fail`` makes the next operation of that name raise."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[int, int]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail: set[str] = set()
        self.util: dict[str, float] = {}

    def _call(self, op: str, name: str) -> None:
        self.calls.append((op, name))
        if op in self.fail:
            raise RuntimeError(f"simulated {op} failure")

    def launch(self, name: str, vcpus: int, memory_bytes: int) -> None:
        self._call("launch", name)
        self.running[name] = (vcpus, memory_bytes)

    def halt(self, name: str, force: bool) -> None:
        self._call("halt", name)
        self.running.pop(name, None)

    def reset(self, name: str) -> None:
        self._call("reset", name)

    def panic(self, name: str) -> None:
        self._call("panic", name)

    def utilisation(self, name: str) -> float | None:
        return self.util.get(name)


class Clock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tiny() -> Platform:
    return load_platform(SAMPLES / "tiny.toml")


def make_manager(platform: Platform | None = None, store=None, seed: int = 7,
                 guests: FakeGuests | None = None, clock: Clock | None = None) -> Manager:
    return Manager(
        platform or default_platform(),
        store if store is not None else MemoryStore(),
        guests or FakeGuests(),
        clock or Clock(),
        random.Random(seed),
    )
