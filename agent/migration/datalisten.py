"""The target's migration data port: one-time tokens and the accepting thread (spec migration.md §4.5).

:class:`DataTokens` issues one random 256-bit token per stream, bound to a migration id and a
stream index, single use, valid 60 s. :class:`DataPort` accepts TLS connections in a daemon
thread, checks each HELLO's token (a wrong, reused, expired or other stream's token closes the
connection without a reply), gathers a migration's streams and runs the data plane's
``TargetEngine`` over all of them in its own thread; the result goes back to the reactor
through ``deliver(mid, result)``.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from typing import Callable

from twisted.logger import Logger

from agent.migration.channel import ChannelError, DataListener, server_context
from agent.migration.dataplane import TargetEngine

log = Logger()

TOKEN_LIFETIME_S = 60.0


class DataTokens:
    """Outstanding data tokens (thread-safe: issued on the reactor, used by the accept thread).

    Each token belongs to one migration and one stream index (§4.5, M39).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[bytes, tuple[str, int, float]] = {}
        self.matched: str | None = None  # the migration of the token accepted last

    def issue(self, mid: str, stream: int = 0) -> bytes:
        token = secrets.token_bytes(32)
        with self._lock:
            self._tokens[token] = (mid, stream, self.clock() + TOKEN_LIFETIME_S)
        return token

    def issue_streams(self, mid: str, streams: int) -> list[bytes]:
        """One token per data stream of ``mid``, by stream index."""
        return [self.issue(mid, stream) for stream in range(streams)]

    def revoke(self, mid: str) -> None:
        with self._lock:
            for token in [t for t, (m, _, _) in self._tokens.items() if m == mid]:
                del self._tokens[token]

    def authorize(self, presented: bytes, stream: int = 0) -> bool:
        now = self.clock()
        with self._lock:
            for token, (mid, index, expires) in list(self._tokens.items()):
                if hmac.compare_digest(token, presented):
                    del self._tokens[token]  # single use, even when expired or misused
                    if now > expires:
                        log.info("data connection for migration {mid} refused: token expired", mid=mid)
                        return False
                    if index != stream:
                        log.info("data connection for migration {mid} refused: token of stream "
                                 "{index} presented for stream {stream}", mid=mid, index=index,
                                 stream=stream)
                        return False
                    self.matched = mid
                    return True
        log.info("data connection refused: unknown token")
        return False


class DataPort:
    """The listening data port and its accept thread."""

    def __init__(self, cert_file: str, key_file: str, host: str, port: int, hypervisor,
                 guest_of: Callable[[str], str | None],
                 deliver: Callable[[str, object], None], verify: bool = True) -> None:
        self.tokens = DataTokens()
        self.verify = verify  # migration_verify (§10.7)
        self.listener = DataListener(server_context(cert_file, key_file), host, port)
        self.host, self.port = host, self.listener.port
        self.hv = hypervisor
        self.guest_of = guest_of
        self.deliver = deliver
        self._stopped = threading.Event()
        self._gathering: dict[str, dict[int, tuple]] = {}  # mid -> stream -> (channel, login)
        self._thread = threading.Thread(target=self._accept_loop, name="ldmx-data-port",
                                        daemon=True)

    def start(self) -> "DataPort":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.listener.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                channel, login = self.listener.accept(self.tokens.authorize, timeout=0.5)
            except ChannelError:
                self._drop_abandoned()
                continue  # the poll timeout: look at the stop flag again
            except OSError:
                return  # the socket was closed by stop()
            mid = self.tokens.matched
            guest = self.guest_of(mid) if mid else None
            if guest is None:
                channel.close()
                continue
            # A transfer starts once all of its streams are in (each with its own token).
            streams = self._gathering.setdefault(mid, {})
            streams[login.stream] = (channel, login)
            if len(streams) < login.streams:
                continue
            del self._gathering[mid]
            ordered = [streams[index] for index in sorted(streams)]
            threading.Thread(target=self._receive, args=(mid, guest, ordered),
                             name=f"ldmx-receive-{mid[:8]}", daemon=True).start()

    def _drop_abandoned(self) -> None:
        """Close the streams of a migration that ended before all of its streams came."""
        for mid in [m for m in self._gathering if self.guest_of(m) is None]:
            for channel, _ in self._gathering.pop(mid).values():
                channel.close()

    def _receive(self, mid: str, guest: str, streams: list[tuple]) -> None:
        channels = [channel for channel, _ in streams]
        try:
            result = TargetEngine(self.hv, guest, channels, streams[0][1],
                                  compare_digests=self.verify).run()
            _log_verdict(mid, result)
        except Exception as error:  # a bug in the engine must still end the migration
            log.failure("data plane of migration {mid} failed", mid=mid)
            result = error
        self.deliver(mid, result)


def _log_verdict(mid: str, result) -> None:
    """The §10.7 digests go to the log whether or not they were compared."""
    verdict = getattr(result, "verdict", None)
    if verdict is not None:
        log.info("memory verification of migration {mid}: source {source}, target {target}, "
                 "vCPU {vcpu}; {how} in {ms:.1f} ms", mid=mid, source=verdict.source,
                 target=verdict.target, vcpu=verdict.vcpu_target, ms=verdict.ms,
                 how="compared" if verdict.compared else "not compared (migration_verify off)")
