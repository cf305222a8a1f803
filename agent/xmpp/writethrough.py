"""Send a write at once when a Twisted socket transport has nothing queued (spec ldm-xml §1.12).

Twisted's socket transports queue every write and send it on a later reactor iteration, once
the poller reports the socket writable. For a front-door response that costs a whole extra
reactor round per request (register for writability, poll, ``doWrite``, unregister) although
the socket's send buffer is almost always empty at that moment. :func:`write_through` sends
straight away in that case and leaves everything else to Twisted: bytes the kernel does not
take, writes behind queued bytes, closing or closed transports, and send errors (the queued
bytes meet the error again on the next ``doWrite``, which then closes the connection the usual
way). Write order is kept: a direct send happens only when nothing is queued before it.

A call is still one write of one document (§1.12 rule 1): at most one direct ``send``, and
whatever it leaves over goes out behind it on Twisted's path, as a partial send always did.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from twisted.internet.abstract import FileDescriptor


def _idle(conn: Any) -> bool:
    """True when ``conn`` is open for writing and has nothing queued."""
    return (conn.connected and not conn.disconnecting and not conn._writeDisconnected
            and not conn._tempDataBuffer and conn.offset == len(conn.dataBuffer)
            and not getattr(conn, "_sendmsgQueue", None))


def write_through(conn: FileDescriptor, data: bytes) -> None:
    """Write ``data`` on socket transport ``conn``: now if nothing is queued, else queued."""
    if data and _idle(conn):
        try:
            sent = conn.socket.send(data)  # type: ignore[attr-defined]
        except OSError:
            # EAGAIN/EINTR: queue it. Any other error: queue it too; the next doWrite gets
            # the same error and reports the connection lost through Twisted's usual path.
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    FileDescriptor.write(conn, data)


def writer_for(transport: Any) -> Callable[[bytes], None] | None:
    """A write-through function for a plain socket transport, or None for any other kind
    (test transports, TLS-wrapped ones: see :func:`bypass_tls_buffer`)."""
    if (isinstance(transport, FileDescriptor) and hasattr(transport, "socket")
            and not getattr(transport, "TLS", False)):
        return partial(write_through, transport)
    return None


def bypass_tls_buffer(transport: Any) -> bool:
    """Make the TLS layer of a socket transport started with ``startTLS`` send its records
    through :func:`write_through`. Returns False (and changes nothing) for other transports."""
    tls = getattr(transport, "protocol", None)
    raw = getattr(tls, "transport", None)  # Twisted's _BypassTLS: writes below the TLS layer
    if (not isinstance(transport, FileDescriptor) or not hasattr(transport, "socket")
            or raw is None or getattr(raw, "_connection", None) is not transport):
        return False
    raw.write = partial(write_through, transport)
    return True
