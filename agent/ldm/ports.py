"""What the manager needs from outside, as small protocols: guests, persistence, time.

``GuestPort`` is the manager's view of the hypervisor (an adapter to
``agent.hypervisor`` satisfies it); ``StatePort`` is the persistence it commits to
(``agent.store``). Both are injected, so the manager itself does no I/O.
"""

from __future__ import annotations

from typing import Callable, Protocol

Clock = Callable[[], float]  # seconds since the epoch


class GuestPort(Protocol):
    """Runs guest domains. Each call either does its job or raises (any exception)."""

    def launch(self, name: str, vcpus: int, memory_bytes: int) -> None: ...
    def halt(self, name: str, force: bool) -> None: ...
    def reset(self, name: str) -> None: ...
    def panic(self, name: str) -> None: ...
    def utilisation(self, name: str) -> float | None: ...


RowKey = tuple[str, str]  # (kind, key): ("domain", name), ("meta", "host"), ...


class StatePort(Protocol):
    """Durable rows of JSON-ready dicts; ``commit`` is one atomic transaction."""

    def load(self) -> dict[RowKey, dict]: ...
    def commit(self, upserts: dict[RowKey, dict], deletes: list[RowKey]) -> None: ...
