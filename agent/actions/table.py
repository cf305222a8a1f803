"""The action table: every action string of the XML interface, in one place.

Each row gives the authorization the action needs (spec ldm-xml §1.11, §5), the flags it
accepts (§2.5), whether it takes operands in ``arguments`` and its handler. The table drives
dispatch, authorization, option checking, the CLI's sub-commands and the docs. Handlers live
in their own modules (``agent.actions.handlers``); an action without one answers every request
with the "not available yet" failure: it is recognised and authorized, but not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from agent.auth.identity import READ, WRITE

REQUIRED = "required"
OPTIONAL = "optional"


@dataclass(frozen=True)
class Action:
    """One row of the action table."""

    name: str
    auth: str
    section: str  # the spec section that defines it
    cli: str  # the ldm CLI equivalent, for docs and the ldmx CLI
    flags: tuple[str, ...] = ()
    flag_args: dict[str, str] = field(default_factory=dict)  # flag -> REQUIRED | OPTIONAL
    words: tuple[str, ...] = ()  # operation words (cancel-operation)
    takes_arguments: bool = False


def _row(name, auth, section, cli, flags=(), flag_args=None, words=(), takes_arguments=False):
    return Action(name, auth, section, cli, tuple(flags), dict(flag_args or {}), tuple(words),
                  takes_arguments)


_ROWS = [
    # §5.2 Domain lifecycle and properties
    _row("add-domain", WRITE, "5.2", "add-domain [prop=value...] name"),
    _row("remove-domain", WRITE, "5.2", "remove-domain (-a | name...)", ["-a"]),
    _row("start-domain", WRITE, "5.2", "start-domain (-a | name...)", ["-a"]),
    _row("stop-domain", WRITE, "5.2", "stop-domain [-f] (-a | name...)", ["-f", "-a"]),
    _row("bind-domain", WRITE, "5.2", "bind-domain [-f] name", ["-f"]),
    _row("unbind-domain", WRITE, "5.2", "unbind-domain name"),
    _row("set-domain", WRITE, "5.2", "set-domain prop=value... name"),
    _row("list-domain", READ, "5.2", "list-domain [name...]"),
    # §5.3 CPU, cryptographic units, memory
    _row("add-vcpu", WRITE, "5.3", "add-vcpu [-c] number name"),
    _row("set-vcpu", WRITE, "5.3", "set-vcpu [-c] number name"),
    _row("remove-vcpu", WRITE, "5.3", "remove-vcpu [-c] number name"),
    _row("add-mau", WRITE, "5.3", "add-crypto number name"),
    _row("set-mau", WRITE, "5.3", "set-crypto number name"),
    _row("remove-mau", WRITE, "5.3", "remove-crypto number name"),
    _row("add-memory", WRITE, "5.3", "add-memory size name"),
    _row("set-memory", WRITE, "5.3", "set-memory size name"),
    _row("remove-memory", WRITE, "5.3", "remove-memory size name"),
    # §5.4 Physical I/O
    _row("add-io", WRITE, "5.4", "add-io (bus | device | vf-name) name"),
    _row("remove-io", WRITE, "5.4", "remove-io [-n] (bus | device | vf-name) name", ["-n"]),
    _row("set-io", WRITE, "5.4", "set-io iov=on|off bus"),
    # §5.5 Virtual disk services and disks
    _row("add-vdiskserver", WRITE, "5.5", "add-vds service name"),
    _row("remove-vdiskserver", WRITE, "5.5", "remove-vds [-f] service", ["-f"]),
    _row("add-vdiskserverdevice", WRITE, "5.5",
         "add-vdsdev [-f] [-q] [options=] [mpgroup=] backend volume@service", ["-f", "-q"]),
    _row("remove-vdiskserverdevice", WRITE, "5.5", "remove-vdsdev [-f] volume@service", ["-f"]),
    _row("add-vdisk", WRITE, "5.5", "add-vdisk [timeout=] [id=] disk volume@service name"),
    _row("remove-vdisk", WRITE, "5.5", "remove-vdisk [-f] disk name", ["-f"]),
    # §5.6 Virtual network
    _row("add-vswitch", WRITE, "5.6", "add-vsw [prop=value...] switch name"),
    _row("set-vswitch", WRITE, "5.6", "set-vsw [prop=value...] switch"),
    _row("remove-vswitch", WRITE, "5.6", "remove-vsw [-f] switch", ["-f"]),
    _row("add-vnet", WRITE, "5.6", "add-vnet [prop=value...] if-name switch name"),
    _row("set-vnet", WRITE, "5.6", "set-vnet [prop=value...] if-name name"),
    _row("remove-vnet", WRITE, "5.6", "remove-vnet [-f] if-name name", ["-f"]),
    # §5.7 Consoles
    _row("add-vconscon", WRITE, "5.7", "add-vcc port-range=min-max service name"),
    _row("set-vconscon", WRITE, "5.7", "set-vcc port-range=min-max service"),
    _row("remove-vconscon", WRITE, "5.7", "remove-vcc [-f] service", ["-f"]),
    _row("set-vconsole", WRITE, "5.7", "set-vcons [port=] [group=] [service=] [log=] name"),
    # §5.8 Netra data-plane channels (not supported on this platform)
    _row("add-vdpcs", WRITE, "5.8", "add-vdpcs service name"),
    _row("remove-vdpcs", WRITE, "5.8", "remove-vdpcs [-f] service", ["-f"]),
    _row("add-vdpcc", WRITE, "5.8", "add-vdpcc client service name"),
    _row("remove-vdpcc", WRITE, "5.8", "remove-vdpcc [-f] client name", ["-f"]),
    # §5.9 SP configurations
    _row("add-spconfig", WRITE, "5.9", "add-spconfig [-r autosave] name", ["-r"], {"-r": REQUIRED}),
    _row("set-spconfig", WRITE, "5.9", "set-spconfig name"),
    _row("remove-spconfig", WRITE, "5.9", "remove-spconfig [-r] name", ["-r"]),
    _row("list-spconfig", READ, "5.9", "list-spconfig [-r [autosave]]", ["-r"], {"-r": OPTIONAL}),
    # §5.10 Variables
    _row("add-variable", WRITE, "5.10", "add-variable name=value... domain"),
    _row("set-variable", WRITE, "5.10", "set-variable name=value... domain"),
    _row("remove-variable", WRITE, "5.10", "remove-variable name... domain"),
    _row("list-variable", READ, "5.10", "list-variable [name...] domain"),
    # §5.11 Listing
    _row("list-bindings", READ, "5.11", "list-bindings [name...]"),
    _row("list-constraints", READ, "5.11", "list-constraints [name...]"),
    _row("list-devices", READ, "5.11", "list-devices [-a] [-B] [core] [cpu] [crypto] [memory] [io]",
         ["-a", "-B"]),
    _row("list-services", READ, "5.11", "list-services [name...]"),
    # §5.12 Event registration
    _row("reg-domain-events", READ, "5.12", "(XML only)"),
    _row("unreg-domain-events", READ, "5.12", "(XML only)"),
    _row("reg-resource-events", READ, "5.12", "(XML only)"),
    _row("unreg-resource-events", READ, "5.12", "(XML only)"),
    _row("reg-hardware-events", READ, "5.12", "(XML only)"),
    _row("unreg-hardware-events", READ, "5.12", "(XML only)"),
    _row("reg-all-events", READ, "5.12", "(XML only)"),
    _row("unreg-all-events", READ, "5.12", "(XML only)"),
    # §5.13 Migration and pending operations
    _row("migrate-domain", WRITE, "5.13",
         "migrate-domain [-f] [-n] [-c] source [user@]host[:target] [operand=value...]",
         ["-n", "-f", "-c"], takes_arguments=True),
    _row("cancel-operation", WRITE, "5.13", "cancel-operation ([-f] migration | reconf | memdr) name",
         ["-f"], words=("migration", "reconf", "memdr")),
    _row("remove-reconf", WRITE, "5.13", "cancel-reconf name"),
]

ACTIONS: dict[str, Action] = {row.name: row for row in _ROWS}

# The migrate-domain operands accepted in `arguments` (spec §7.1, C170).
MIGRATE_OPERANDS = ("cidmap", "mblockmap", "max-downtime", "max-bandwidth", "max-rounds",
                    "timeout", "on-timeout", "auto-converge", "compression")


# Internal control messages between agents (migration.md §2.14, §4.3): write authorization (or
# a migration-peer session), never part of the public list above.
_INTERNAL_ROWS = [
    _row(name, WRITE, "migration 2.14", "(agent to agent)")
    for name in ("mig-hello", "mig-check", "mig-prepare", "mig-transfer-done", "mig-commit",
                 "mig-abort", "mig-outcome", "mig-release")
]
INTERNAL_ACTIONS: dict[str, Action] = {row.name: row for row in _INTERNAL_ROWS}
