"""The Logical Domains Manager core: platform, domains, bindings, services, SP configs.

Pure: no sockets, threads, wall clock or XML. Time, randomness, the hypervisor and the
store are injected. See :class:`agent.ldm.manager.Manager`.
"""

from agent.ldm.errors import LdmError
from agent.ldm.events import Event, Outcome
from agent.ldm.manager import Manager
from agent.ldm.platform import Platform, default_platform, load_platform, parse_platform

__all__ = [
    "Event", "LdmError", "Manager", "Outcome", "Platform",
    "default_platform", "load_platform", "parse_platform",
]
