"""Builders shared by the phase-1 check tests: small simulated machines and descriptions.

Machines are real ``Manager`` objects over ``MemoryStore`` and the fake guest port, built
from platform TOML text; the source side can also be a plain description dict (the form
``mig-check`` carries) when a test needs facts the manager does not model.
"""

from __future__ import annotations

import copy

from agent.ldm.platform import parse_platform
from agent.migration.describe import describe_host, describe_source
from agent.migration.request import MigrationRequest
from tests.ldm.fakes import make_manager

G = 1 << 30
M = 1 << 20


def _tag(hostname: str) -> int:
    return sum(ord(ch) * 31 ** i for i, ch in enumerate(hostname)) % 0xFFFFFF


def platform_toml(hostname: str, *, cpu_type: str = "SPARC-T4", freq: int = 2850,
                  cores: int = 4, spc: int = 8, ranges: str = '{ pa = 0x0, size = "8G" }',
                  firmware: str = "8.4.0", features: str = '["migration", "efi-gpt"]',
                  pm_policy: str = "performance", extra_machine: str = "",
                  tail: str = "") -> str:
    return f"""
[machine]
hostname = "{hostname}"
machine_id = "SIM-{hostname}"
cpu_type = "{cpu_type}"
cpu_freq_mhz = {freq}
sockets = 1
cores_per_socket = {cores}
strands_per_core = {spc}
pm_policy = "{pm_policy}"
firmware_version = "{firmware}"
firmware_features = {features}
mac_address = "00:10:e0:00:{_tag(hostname) % 256:02x}:01"
hostid = "85{_tag(hostname):06x}"
{extra_machine}

[memory]
granule = "4M"
ranges = [{ranges}]

[io]
buses = [{{ name = "pci_0", device = "pci@400" }}]
endpoints = [
  {{ name = "/SYS/MB/PCIE1", bus = "pci_0", device = "pci@400/pci@1" }},
  {{ name = "/SYS/MB/NET0", bus = "pci_0", device = "pci@400/pci@2", type = "pf" }},
]
vfs = [{{ name = "/SYS/MB/NET0/IOVNET.PF0.VF0", bus = "pci_0", device = "pci@400/pci@2/n@0,80" }}]
{tail}
"""


def machine(hostname: str, *, seed: int = 1, primary_vcpus: int = 8,
            primary_memory: int = 1 * G, services: bool = True, **platform):
    """A machine whose primary keeps one core, 1G and one crypto unit, offering
    primary-vcc0 (5000-5010), primary-vds0 (vol0, vol1) and primary-vsw0."""
    mgr = make_manager(parse_platform(platform_toml(hostname, **platform)), seed=seed)
    mgr.set_vcpu("primary", primary_vcpus)
    mgr.set_memory("primary", primary_memory)
    mgr.set_mau("primary", 1)
    if services:
        mgr.add_vcc("primary", "primary-vcc0", 5000, 5010)
        mgr.add_vds("primary", "primary-vds0")
        mgr.add_vdsdev("primary-vds0", "vol0", "/images/vol0")
        mgr.add_vdsdev("primary-vds0", "vol1", "/images/vol1")
        mgr.add_vsw("primary", "primary-vsw0")
    return mgr


def guest(mgr, name: str = "ldg1", *, vcpus: int = 8, memory: int = 1 * G,
          state: str = "active", disks: bool = True, nets: bool = True) -> None:
    """A guest using vol0 and primary-vsw0, left in ``state``."""
    mgr.add_domain(name)
    mgr.set_vcpu(name, vcpus)
    mgr.set_memory(name, memory)
    if disks:
        mgr.add_vdisk(name, "vdisk0", "primary-vds0", "vol0")
    if nets:
        mgr.add_vnet(name, "vnet0", "primary-vsw0")
    if state in ("bound", "active"):
        mgr.bind_domain(name)
    if state == "active":
        mgr.start_domain(name)


def request(source: str = "ldg1", host: str = "system2", *, target_name: str | None = None,
            force: bool = False, dry_run: bool = True, cidmap=(), mblockmap=()) -> MigrationRequest:
    return MigrationRequest(
        source=source, target_host=host, target_port=None, target_name=target_name or source,
        user="root", password="secret", dry_run=dry_run, force=force, cert_mode=False,
        cidmap=tuple(cidmap), mblockmap=tuple(mblockmap), tuning={})


def describe(mgr, name: str = "ldg1", guest_facts: dict | None = None, **domain) -> dict:
    """``describe_source`` of a real domain, with ``domain`` keys overriding its facts."""
    desc = describe_source(mgr, name, describe_host(mgr, mgr.platform.hostname, "3.0.0.2"),
                           guest=guest_facts)
    desc = copy.deepcopy(desc)
    desc["domain"].update(domain)
    return desc


def example_source() -> dict:
    """The guest of migration.md §11 on system1 (SPARC-T4, 2848 MHz), as a description."""
    host = {
        "hostname": "system1", "server-name": "system1", "machine-id": "SIM-system1",
        "cpu-type": "SPARC-T4", "cpu-freq-mhz": 2848, "strands-per-core": 8,
        "largest-page-size": 2 * G, "mem-granule": 4 * M, "firmware-version": "8.4.0",
        "firmware-features": ["efi-gpt", "migration"], "hv-api-groups": [[0, 0x1FF, 1, 999]],
        "agent-version": "3.0.0.2", "protocol": [1, 2], "pm-policy": "performance",
    }
    domain = {
        "name": "ldg1", "uuid": "5b1f3ab2-7a4e-4c1e-9d3e-1f2a3b4c5d6e",
        "mac": "00:14:4f:fa:00:01", "hostid": "84fa0001", "state": "active", "flags": "-n----",
        "softstate": "Solaris running",
        "os-capabilities": ["cpu-dr", "crypto-dr", "mem-dr", "migration-v2", "suspend"],
        "api-groups": [], "cpu-arch": "native", "perf-counters": [],
        "vcpus": 8, "whole-cores": 0, "named-cores": [], "memory": 8 * G,
        "memory-blocks": [
            {"ra": 0x80000000, "pa": 0x400000000, "size": 2 * G, "named": False},
            {"ra": 0x400000000, "pa": 0x880000000, "size": 6 * G, "named": False},
        ],
        "named-memory": [], "mau": 0, "mau-bound": 0,
        "io": {"buses": [], "endpoints": [], "vfs": []},
        "vdisks": [
            {"name": "vdisk0", "volume": "vol0", "service": "primary-vds0", "options": [],
             "mpgroup": "", "storage-id": None, "efi": False},
            {"name": "vdisk1", "volume": "vol1", "service": "primary-vds0", "options": [],
             "mpgroup": "", "storage-id": None, "efi": False},
        ],
        "vnets": [
            {"name": "vnet0", "service": "primary-vsw0", "mac": "00:14:4f:fb:2c:01",
             "alt-macs": [], "mode": ""},
            {"name": "vnet1", "service": "primary-vsw1", "mac": "00:14:4f:fb:2c:02",
             "alt-macs": [], "mode": ""},
        ],
        "console": {"service": None, "port": 5000, "port-constraint": False},
    }
    return {"host": host, "domain": domain}


SOURCE_FACTS = {"reconf": None, "provided-to-others": []}


def example_target():
    """system2 of §11.2: SPARC-T4 at 2998 MHz, 6 free vCPUs, 7G free with no 2G-congruent
    6G range, no vol1 and no primary-vsw1, and domain web3 using vnet0's MAC address."""
    mgr = machine("system2", seed=2, freq=2998, cores=2,
                  ranges='{ pa = 0x0, size = "5G" }, { pa = 0x400000000, size = "4G" }')
    mgr.remove_vdsdev("primary-vds0", "vol1")
    mgr.add_domain("web3")
    mgr.set_vcpu("web3", 2)
    mgr.set_memory("web3", 1 * G)
    mgr.add_vnet("web3", "vnet0", "primary-vsw0", mac="00:14:4f:fb:2c:01")
    mgr.bind_domain("web3")
    return mgr
