"""Adapter: the manager's ``GuestPort`` on top of an ``agent.hypervisor`` Hypervisor.

A stopped domain keeps its bindings but no guest, so ``halt`` stops and destroys the
guest; a reset or a panic restarts it. The Hypervisor interface reports no CPU
utilisation, so ``utilisation`` is unknown (None) and the lists show it empty.
"""

from __future__ import annotations

from agent.hypervisor.base import OS_CAPABILITIES, GuestSpec, Hypervisor


class HypervisorGuests:
    """Runs guests on a Hypervisor (the simulated one by default)."""

    def __init__(self, hypervisor: Hypervisor, workload: str = "idle",
                 os_capabilities: tuple[str, ...] = OS_CAPABILITIES) -> None:
        self.hv = hypervisor
        self.workload = workload
        self.os_capabilities = tuple(os_capabilities)

    def launch(self, name: str, vcpus: int, memory_bytes: int) -> None:
        if name in self.hv.list():
            self.hv.destroy(name)  # a leftover guest of an earlier run of this domain
        self.hv.create(GuestSpec(name, memory_bytes, vcpus, self.workload,
                                 os_capabilities=self.os_capabilities))
        self.hv.start(name)

    def halt(self, name: str, force: bool) -> None:
        if name in self.hv.list():
            self.hv.stop(name, force=force)
            self.hv.destroy(name)

    def reset(self, name: str) -> None:
        self.hv.stop(name, force=True)
        self.hv.start(name)

    def panic(self, name: str) -> None:
        # A panicking guest reboots; the simulator has no separate panic path.
        self.reset(name)

    def utilisation(self, name: str) -> float | None:
        return None
