"""The Logical Domains Manager: one object with a method per action family.

Construct it with a platform, a store, a guest port, a clock and an RNG. On an empty store
it starts from the factory default (the control domain ``primary`` owns everything and no
service exists); otherwise it loads the stored state. Every mutating method either raises
:class:`~agent.ldm.errors.LdmError` having changed nothing, or commits and returns an
:class:`~agent.ldm.events.Outcome` with its events and warning/notice lines.
``transaction()`` groups calls (one commit; a nested block is a savepoint).

Families (ldm-xml §5): lifecycle and set-domain (``lifecycle.py``); vcpu, mau, memory,
io (``quantities.py``); vds, vdsdev, vdisk, vsw, vnet, vcc, vconsole (``vio.py``);
variables, policies, spconfig (``settings.py``); migration hooks (``migrating.py``);
list views (``queries.py``).
"""

from __future__ import annotations

from agent.ldm.migrating import Migrating
from agent.ldm.quantities import Quantities
from agent.ldm.queries import Queries
from agent.ldm.settings import Settings
from agent.ldm.vio import VirtualIo


class Manager(Quantities, VirtualIo, Settings, Migrating, Queries):
    """The pure core behind the XML actions."""
