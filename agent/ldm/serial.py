"""Domain and host state to JSON-ready dicts and back (the rows the store keeps).

One row per domain and one for the host-wide :class:`Meta`, so a change rewrites only the
rows it touched.
"""

from __future__ import annotations

from dataclasses import asdict

from agent.ldm.model import (
    Binding,
    Console,
    Domain,
    MemBlock,
    Meta,
    Resources,
    SpConfig,
    Vcc,
    Vdisk,
    Vds,
    Vnet,
    Volume,
    Vsw,
)


def domain_to_row(dom: Domain) -> dict:
    """A JSON-ready dict holding everything about ``dom``."""
    return asdict(dom)


def meta_to_row(meta: Meta) -> dict:
    return asdict(meta)


def _resources(row: dict | None) -> Resources | None:
    if row is None:
        return None
    return Resources(**{**row, "io": list(row["io"])})


def _binding(row: dict | None) -> Binding | None:
    if row is None:
        return None
    return Binding(
        strands=list(row["strands"]),
        mau=list(row["mau"]),
        memory=[MemBlock(**b) for b in row["memory"]],
        console_port=row["console_port"],
        console_service=row["console_service"],
        reserved=list(row.get("reserved", [])),
        held_mau=list(row.get("held_mau", [])),
        held_hybrid=list(row.get("held_hybrid", [])),
    )


def _vds(row: dict) -> Vds:
    return Vds(row["name"], {k: Volume(**v) for k, v in row["volumes"].items()})


def domain_from_row(row: dict) -> Domain:
    """Rebuild a :class:`Domain` from :func:`domain_to_row` output."""
    plain = {
        k: v
        for k, v in row.items()
        if k not in ("resources", "pending", "binding", "vccs", "vdss", "vsws", "vnets",
                     "vdisks", "console")
    }
    return Domain(
        **plain,
        resources=_resources(row["resources"]),
        pending=_resources(row["pending"]),
        binding=_binding(row["binding"]),
        vccs={k: Vcc(**v) for k, v in row["vccs"].items()},
        vdss={k: _vds(v) for k, v in row["vdss"].items()},
        vsws={k: Vsw(**v) for k, v in row["vsws"].items()},
        vnets={k: Vnet(**v) for k, v in row["vnets"].items()},
        vdisks={k: Vdisk(**v) for k, v in row["vdisks"].items()},
        console=Console(**row["console"]),
    )


def meta_from_row(row: dict) -> Meta:
    return Meta(
        spconfigs={k: SpConfig(**v) for k, v in row["spconfigs"].items()},
        current_config=row["current_config"],
        next_config=row["next_config"],
        iov=dict(row["iov"]),
        serial=row["serial"],
    )
