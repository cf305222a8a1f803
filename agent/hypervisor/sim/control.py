"""The agent-to-guest control channel: one JSON object per line over a Unix socket.

Each request uses its own connection, so callers on different threads never share one;
the guest answers requests one at a time. A reply carrying ``error`` becomes a
``HypervisorError`` with that text.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from agent.hypervisor.base import HypervisorError
from agent.hypervisor.sim import layout

MAX_MESSAGE = 1 << 20
DEFAULT_TIMEOUT_S = 5.0


class GuestGone(HypervisorError):
    """No guest process listens on the guest's control socket."""


def read_message(conn: socket.socket) -> dict:
    """Read one newline-terminated JSON object; ValueError on a malformed or huge one."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("connection closed before a whole message arrived")
        data += chunk
        if len(data) > MAX_MESSAGE:
            raise ValueError("control message too long")
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("control message is not an object")
    return message


def write_message(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def call(guest_dir: Path, request: dict, timeout: float = DEFAULT_TIMEOUT_S) -> dict:
    """Send one request to the guest living in ``guest_dir`` and return its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(layout.socket_name(guest_dir))
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise GuestGone(f"guest in {guest_dir} is not running ({exc.strerror})") from None
        try:
            write_message(conn, request)
            reply = read_message(conn)
        except TimeoutError:
            raise HypervisorError(
                f"guest in {guest_dir} did not answer {request.get('op')!r} within {timeout:g} s"
            ) from None
        except (OSError, ValueError) as exc:
            raise GuestGone(
                f"guest in {guest_dir} dropped the {request.get('op')!r} request: {exc}"
            ) from None
    if reply.get("error"):
        raise HypervisorError(reply["error"])
    return reply
