"""The hypervisor interface the agent drives (simulated by default, QEMU possibly later).

Deliberately narrow: the layers above (manager, migration) use only what is here, so a
second implementation can follow without touching them. Page size defaults to 8 KiB, the
sun4v base page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

PAGE_SIZE = 8192

# Guest run states.
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"
DEAD = "dead"  # the guest process vanished without being told to stop


@dataclass(frozen=True)
class GuestSpec:
    """What a guest is created with."""

    name: str
    memory_bytes: int
    vcpus: int = 1
    workload: str = "idle"  # idle, web, db, stream, diabolical
    page_size: int = PAGE_SIZE


@dataclass(frozen=True)
class GuestStatus:
    """A snapshot of a guest as the hypervisor sees it."""

    name: str
    state: str
    pid: int | None
    throttle_percent: int
    pages_written: int
    corrupt: bool
    longest_pause_ms: float


class Hypervisor(Protocol):
    """Guests on one host."""

    page_size: int

    def create(self, spec: GuestSpec) -> None: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str, force: bool = False) -> None: ...
    def pause(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def throttle(self, name: str, percent: int) -> None: ...
    def status(self, name: str) -> GuestStatus: ...
    def map_ram(self, name: str, writable: bool = False) -> memoryview: ...
    def get_and_clear_dirty(self, name: str) -> bytes: ...
    def get_vcpu_state(self, name: str) -> bytes: ...
    def set_vcpu_state(self, name: str, blob: bytes) -> None: ...
    def destroy(self, name: str) -> None: ...
    def list(self) -> list[str]: ...
    def reattach(self) -> list[str]: ...
