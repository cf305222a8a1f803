"""Recognising local peers by the uid owning their socket (spec ldm-xml §1.10).

Unix-socket peers: ``SO_PEERCRED``, read in the accept path (before STARTTLS replaces the
transport's handle). Loopback TCP peers: the kernel's ``/proc/net/tcp`` and ``/proc/net/tcp6``
tables, looking for the peer's own socket (local endpoint = the peer, remote endpoint = the
agent) in state ESTABLISHED. Anything not found is remote (None).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Callable, Iterable, Iterator

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

_ESTABLISHED = "01"
_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _normalise(address: str | IpAddress) -> IpAddress:
    """Parse and fold IPv4-mapped IPv6 addresses onto IPv4."""
    parsed = ipaddress.ip_address(address.split("%")[0] if isinstance(address, str) else address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ::ffff:127.x.y.z."""
    try:
        return _normalise(address).is_loopback
    except ValueError:
        return False


def _decode_endpoint(text: str) -> tuple[IpAddress, int]:
    """Decode ``HEXADDR:HEXPORT`` as printed by the kernel (address words in host order)."""
    hex_address, _, hex_port = text.partition(":")
    words = [int(hex_address[i:i + 8], 16) for i in range(0, len(hex_address), 8)]
    packed = b"".join(struct.pack("=I", word) for word in words)
    return _normalise(ipaddress.ip_address(packed)), int(hex_port, 16)


def parse_tcp_table(text: str) -> Iterator[tuple[tuple[IpAddress, int], tuple[IpAddress, int], str, int]]:
    """Yield (local endpoint, remote endpoint, state, uid) for each line of a proc TCP table."""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            yield (_decode_endpoint(fields[1]), _decode_endpoint(fields[2]), fields[3],
                   int(fields[7]))
        except ValueError:
            continue


def find_owner_uid(tables: Iterable[str], peer: tuple[str, int],
                   agent: tuple[str, int]) -> int | None:
    """The uid owning the established socket whose local end is ``peer`` and remote ``agent``."""
    want_local = (_normalise(peer[0]), peer[1])
    want_remote = (_normalise(agent[0]), agent[1])
    for text in tables:
        for local, remote, state, uid in parse_tcp_table(text):
            if state == _ESTABLISHED and local == want_local and remote == want_remote:
                return uid
    return None


def _read_tables() -> list[str]:
    texts = []
    for path in _TABLES:
        try:
            with open(path, encoding="ascii") as table:
                texts.append(table.read())
        except OSError:
            continue
    return texts


def unix_peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix-domain socket."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def peer_uid(transport: object, read_tables: Callable[[], list[str]] = _read_tables) -> int | None:
    """The uid of a local peer on this accepted transport, or None for a remote peer."""
    peer = transport.getPeer()  # type: ignore[attr-defined]
    if isinstance(peer, UNIXAddress):
        return unix_peer_uid(transport.getHandle())  # type: ignore[attr-defined]
    host = transport.getHost()  # type: ignore[attr-defined]
    if not isinstance(peer, (IPv4Address, IPv6Address)) or not is_loopback(peer.host):
        return None
    return find_owner_uid(read_tables(), (peer.host, peer.port), (host.host, host.port))
