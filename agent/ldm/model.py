"""The manager's state as plain dataclasses: domains, their constraints, bindings and devices.

A domain's *constraints* are what was asked (``Resources`` plus virtual devices and
properties); its *binding* is what was allocated from the platform while it is bound or
active. ``pending`` holds the control domain's next constraints while a delayed
reconfiguration is pending (the current ``resources`` stay bound until it reboots).
"""

from __future__ import annotations

from dataclasses import dataclass, field

INACTIVE = "inactive"
BOUND = "bound"
ACTIVE = "active"
SUSPENDED = "suspended"

CONTROL_DOMAIN = "primary"
FACTORY_DEFAULT = "factory-default"
GUEST_RA_BASE = 0x10000000  # guests see their memory from 256M up, as on sun4v


@dataclass
class Resources:
    """Quantity constraints: vCPUs (or whole cores), crypto units, memory, physical I/O."""

    vcpus: int = 0
    wcore: int = 0
    mau: int = 0
    memory: int = 0
    io: list[str] = field(default_factory=list)


@dataclass
class MemBlock:
    """A bound memory block: guest real address, physical address, size."""

    ra: int
    pa: int
    size: int


@dataclass
class Binding:
    """What a bound or active domain holds: strands (index = vCPU id), units, memory, console,
    and strands reserved to it."""

    strands: list[int] = field(default_factory=list)
    mau: list[int] = field(default_factory=list)
    memory: list[MemBlock] = field(default_factory=list)
    console_port: int | None = None
    console_service: str | None = None
    # Strands held for the domain but not given to it: the spare strands of the last core
    # after a legacy-mode migration (``reserved:<domain>`` in migration.md §1.2, §6.1).
    reserved: list[int] = field(default_factory=list)
    # Crypto units taken out of the guest by crypto DR for a migration (§2.5), still reserved
    # to the domain so that an abort gives them back.
    held_mau: list[int] = field(default_factory=list)
    # Hybrid-mode network devices moved to the switch path for a migration (§2.5 step 2).
    held_hybrid: list[str] = field(default_factory=list)


@dataclass
class Volume:
    """A volume exported by a virtual disk server."""

    name: str
    block_dev: str
    options: list[str] = field(default_factory=list)
    mpgroup: str = ""


@dataclass
class Vds:
    """A virtual disk server and its volumes (by name)."""

    name: str
    volumes: dict[str, Volume] = field(default_factory=dict)


@dataclass
class Vsw:
    """A virtual switch; ``macs`` is its MAC table (migration.md §1.7, §10.9).

    The manager keeps the table itself: it holds the MAC of every network device on the
    switch whose domain is bound, active or suspended, except a migration's target domain
    before its commit (its addresses are announced when it resumes). So the table changes at
    bind, unbind, removal and at a migration's commit.
    """

    name: str
    mac: str
    id: int
    dev_path: str = ""
    default_vlan_id: int = 1
    inter_vnet_link: str = "on"
    linkprop: str = ""
    mode: str = ""
    pvid: int = 1
    mtu: int = 1500
    vid: list[int] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)


@dataclass
class Vcc:
    """A virtual console concentrator and its TCP port range."""

    name: str
    min_port: int
    max_port: int


@dataclass
class Vnet:
    """A virtual network device attached to a switch."""

    name: str
    service: str
    mac: str
    id: int
    linkprop: str = ""
    pvid: int = 1
    vid: list[int] = field(default_factory=list)
    mode: str = ""
    mtu: int | None = None
    # Runtime, for mode=hybrid: the device uses NIU hybrid resources (True) or the switch
    # path (False). Set while the domain runs and its switch's NIU has capacity (§6.5).
    hybrid: bool = False


@dataclass
class Vdisk:
    """A virtual disk backed by ``volume@service``."""

    name: str
    service: str
    volume: str
    id: int
    timeout: int | None = None


@dataclass
class Console:
    """A domain's console constraints; ``None`` = not set explicitly (defaults apply)."""

    port: int | None = None
    service: str | None = None
    group: str | None = None
    log: str | None = None

    @property
    def explicit(self) -> bool:
        return any(v is not None for v in (self.port, self.service, self.group, self.log))


@dataclass
class Domain:
    """One logical domain."""

    name: str
    uuid: str
    mac: str
    hostid: str
    master: list[str] = field(default_factory=list)
    failure_policy: str = "ignore"
    extended_mapin_space: str = "off"
    rc_add_policy: str = ""
    perf_counters: list[str] = field(default_factory=list)
    cpu_arch: str = "native"
    state: str = INACTIVE
    resources: Resources = field(default_factory=Resources)
    pending: Resources | None = None
    binding: Binding | None = None
    variables: dict[str, str] = field(default_factory=dict)
    vccs: dict[str, Vcc] = field(default_factory=dict)
    vdss: dict[str, Vds] = field(default_factory=dict)
    vsws: dict[str, Vsw] = field(default_factory=dict)
    vnets: dict[str, Vnet] = field(default_factory=dict)
    vdisks: dict[str, Vdisk] = field(default_factory=dict)
    console: Console = field(default_factory=Console)
    policies: dict[str, dict[str, str]] = field(default_factory=dict)
    started_at: float | None = None
    memdr: bool = False
    migration_flag: str = ""  # "s", "t" or "e" while a migration concerns the domain
    cpu_dr_disabled: bool = False  # after a legacy-mode migration, until a reboot or stop

    @property
    def is_control(self) -> bool:
        return self.name == CONTROL_DOMAIN

    @property
    def next_resources(self) -> Resources:
        """The constraints that the next binding will use (pending ones if any)."""
        return self.pending if self.pending is not None else self.resources

    def provides_services(self) -> bool:
        return bool(self.vccs or self.vdss or self.vsws)


@dataclass
class SpConfig:
    """A saved SP configuration; serials tell whether its autosave copy is newer."""

    name: str
    saved_serial: int = 0
    autosave_serial: int | None = 0


@dataclass
class Meta:
    """Host-wide state that is not a domain: SP configs, I/O virtualisation, change counter."""

    spconfigs: dict[str, SpConfig] = field(default_factory=dict)
    current_config: str = FACTORY_DEFAULT
    next_config: str = FACTORY_DEFAULT
    iov: dict[str, bool] = field(default_factory=dict)
    serial: int = 0
