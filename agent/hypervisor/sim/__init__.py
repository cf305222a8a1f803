"""The simulated hypervisor: guests as processes with real, shared, file-backed RAM."""

from agent.hypervisor.sim.hypervisor import SimHypervisor

__all__ = ["SimHypervisor"]
