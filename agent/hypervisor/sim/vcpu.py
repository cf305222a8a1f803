"""The simulated guest's vCPU state: the small blob that travels with the final copy.

It holds what guest memory cannot vouch for by itself: the write counter and the ledger's
CRC at suspend time (so a target can tell a complete final copy from one that was dropped
as a whole), the workload's position so the writer carries on where it stopped, and the
time-of-day offset (guest time minus host time, migration.md §10.8), so that the guest's
clock goes on after a move without losing the downtime. The encoding is JSON, versioned by
``format``; a blob without the offset (an older agent) decodes with offset 0.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from agent.hypervisor.sim.layout import Geometry

FORMAT = "ldmx-sim-vcpu/1"


@dataclass(frozen=True)
class VcpuState:
    """Register file of a simulated guest, as far as the simulation needs one."""

    vcpus: int
    workload: str
    page_size: int
    npages: int
    pages_written: int
    ledger_crc: int
    cursor: int
    tod_offset_ns: int = 0

    def to_bytes(self) -> bytes:
        fields = asdict(self)
        # One program counter per vCPU, so the blob grows with the vCPU count as real
        # register files do.
        fields["pc"] = [0x400000 + 4 * (self.cursor + cpu) for cpu in range(self.vcpus)]
        return json.dumps({"format": FORMAT, **fields}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "VcpuState":
        """Decode a blob; ValueError if it is not one of ours."""
        try:
            fields = json.loads(blob)
            if fields.pop("format") != FORMAT:
                raise ValueError
            fields.pop("pc")
            return cls(**fields)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError("not a simulated vCPU state blob (format " + FORMAT + ")") from None

    def check_fits(self, geo: Geometry) -> None:
        """ValueError unless the blob was taken from memory of this geometry."""
        if (self.page_size, self.npages) != (geo.page_size, geo.npages):
            raise ValueError(
                f"vCPU state is for {self.npages} pages of {self.page_size} bytes, "
                f"this guest has {geo.npages} pages of {geo.page_size} bytes"
            )
