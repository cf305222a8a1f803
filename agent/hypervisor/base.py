"""The hypervisor interface the agent drives (simulated by default, QEMU possibly later).

Deliberately narrow: the layers above (manager, migration) use only what is here, so a
second implementation can follow without touching them. Page size defaults to 8 KiB, the
sun4v base page.

Life of a guest: ``create`` reserves its memory (all zero) and leaves it ``stopped``;
``start`` runs it (``paused=True`` starts it with its vCPUs held, which is how a migration
target waits for the final copy); ``pause``/``resume`` hold and release its vCPUs exactly;
``stop`` ends it with its memory kept; ``destroy`` removes everything. A guest whose process
vanished without being told to stop is ``dead``; ``poll_dead`` reports each such guest once.

Migration target flow: ``create`` → ``start(paused=True)`` → ``map_ram(writable=True)`` and
fill → ``set_vcpu_state`` → ``resume``. ``set_vcpu_state`` also works on a stopped guest,
in which case the blob is applied at the next ``start``. ``get_vcpu_state`` answers for a
running guest too (for its size), but the blob matches memory only while the guest stays
paused, so the final copy reads it after ``pause``.

The dirty bitmap has one bit per page, page ``i`` being bit ``i & 7`` of byte ``i >> 3``;
``agent.hypervisor.pagescan`` scans such bitmaps in bulk.
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

WORKLOADS = ("idle", "web", "db", "stream", "diabolical")
# What a guest's OS can do (migration.md §1.4); a guest without migration-v2 migrates in
# legacy mode (§1.5).
OS_CAPABILITIES = ("suspend", "migration-v2", "cpu-dr", "crypto-dr", "mem-dr")


class HypervisorError(Exception):
    """A hypervisor operation failed; the message is meant for an operator."""


@dataclass(frozen=True)
class GuestSpec:
    """What a guest is created with."""

    name: str
    memory_bytes: int
    vcpus: int = 1
    workload: str = "idle"  # one of WORKLOADS
    page_size: int = PAGE_SIZE
    os_capabilities: tuple[str, ...] = OS_CAPABILITIES  # what its OS reports (§1.4)


@dataclass(frozen=True)
class GuestStatus:
    """A snapshot of a guest as the hypervisor sees it.

    ``longest_pause_ms`` is the longest gap the guest's own heartbeat saw between two
    consecutive ticks, minus one heartbeat interval (spec/migration.md §10.8); it spans
    pauses, throttling, injected stalls and a migration's switch-over, because the
    heartbeat lives in guest memory and travels with it. ``corruption`` says what the
    guest found wrong when ``corrupt`` is true. ``resume_pause_ms`` is the same measure
    for the gap across the latest resume only (a pause, or a migration's switch-over seen
    from the target), unpolluted by earlier stalls. ``tod_offset_ns`` is the guest's time of
    day minus the host's, which a migration preserves (§10.8).
    """

    name: str
    state: str
    pid: int | None
    throttle_percent: int
    pages_written: int
    corrupt: bool
    longest_pause_ms: float
    corruption: str = ""
    heartbeats: int = 0
    resume_pause_ms: float = 0.0
    tod_offset_ns: int = 0  # the guest's time of day minus the host's (§10.8); 0 when stopped


class Hypervisor(Protocol):
    """Guests on one host."""

    page_size: int

    def create(self, spec: GuestSpec) -> None: ...
    def start(self, name: str, paused: bool = False) -> None: ...
    def stop(self, name: str, force: bool = False) -> None: ...
    def pause(self, name: str) -> None: ...
    def resume(self, name: str) -> None: ...
    def throttle(self, name: str, percent: int) -> None: ...
    def status(self, name: str) -> GuestStatus: ...
    def spec(self, name: str) -> GuestSpec: ...
    def map_ram(self, name: str, writable: bool = False) -> memoryview: ...
    def get_and_clear_dirty(self, name: str) -> bytes: ...
    def get_vcpu_state(self, name: str) -> bytes: ...
    def set_vcpu_state(self, name: str, blob: bytes) -> None: ...
    def verify(self, name: str) -> str | None: ...
    def destroy(self, name: str) -> None: ...
    def list(self) -> list[str]: ...
    def reattach(self) -> list[str]: ...
    def poll_dead(self) -> list[str]: ...
