"""Run a function in a forked child under another uid (for remote and non-root peers).

The test environment's interpreter lives under a directory other users cannot enter, so a
``subprocess`` exec as ``nobody`` cannot start it; a fork needs no exec: the child drops to the
given uid and gid with :func:`os.setgid`/:func:`os.setuid`, calls the function, and sends its
JSON-serialisable result back through a pipe. The child's sockets are owned by that uid, which
is what the agent's local-peer check (§1.10) looks at.
"""

from __future__ import annotations

import json
import os
import pwd
import traceback

# Loaded here, before any fork: the child may not be able to read the standard library's files.
import encodings.idna  # noqa: F401  (socket.create_connection encodes host names with it)
import concurrent.futures.thread  # noqa: F401


def nobody() -> tuple[int, int]:
    """The uid and gid of ``nobody``."""
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def run_as(uid: int, gid: int, func, *args):
    """``func(*args)`` in a child running as ``uid``/``gid``; its result, or RuntimeError."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            payload = {"result": func(*args)}
        except BaseException:  # noqa: BLE001 - report everything to the parent
            payload = {"error": traceback.format_exc()}
            code = 1
        try:
            data = json.dumps(payload).encode()
            while data:
                data = data[os.write(write_fd, data):]
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        chunks.append(pipe.read())
    os.waitpid(pid, 0)
    payload = json.loads(b"".join(chunks) or b'{"error": "child died without an answer"}')
    if "error" in payload:
        raise RuntimeError("child running as uid %d failed:\n%s" % (uid, payload["error"]))
    return payload["result"]
