"""Run the blocking data plane in a dedicated thread and hand its result to Twisted.

The copy uses blocking TLS sockets in its own thread, so the reactor never waits on bulk
I/O (the benchmark compares this with Twisted producer writes; see
docs/migration-protocol.md). The reactor side gets a ``Deferred`` and a two-valued stop
signal, like libvirt's tunnel thread woken with "finish" or "abort".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from agent.migration import channel
from agent.migration.dataplane import SourceEngine, StopSignal, TransferOptions, TransferResult
from agent.migration.stats import MigrationStatistics


@dataclass(frozen=True)
class DataTarget:
    """Where and how to reach the target's data port (values from the prepare reply)."""

    host: str
    port: int
    fingerprint: str
    token: bytes


class SourceTransfer:
    """A source transfer running in its own thread; ``deferred`` fires with its result."""

    def __init__(self, reactor, deferred: Deferred, stop: StopSignal) -> None:
        self.reactor = reactor
        self.deferred = deferred
        self.stop = stop
        self.engine: SourceEngine | None = None

    def finish(self) -> None:
        """Switch over at the next round end, whatever the budget says."""
        self.stop.finish()

    def abort(self) -> None:
        """Stop copying; the source guest keeps (or goes back to) running."""
        self.stop.abort()

    def statistics(self) -> MigrationStatistics | None:
        engine = self.engine
        return engine.statistics() if engine is not None else None


def start_source_transfer(
    reactor,
    hypervisor,
    name: str,
    target: DataTarget,
    options: TransferOptions | None = None,
    on_round: Callable[[MigrationStatistics], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SourceTransfer:
    """Connect and copy ``name`` in a new thread; return at once.

    ``deferred`` fires in the reactor thread with a ``TransferResult`` (ok or not), or
    errs back when the channel cannot be opened. ``on_round`` is called in the reactor
    thread with each round's statistics.
    """
    stop = StopSignal()
    transfer = SourceTransfer(reactor, Deferred(), stop)

    def report_round(stats: MigrationStatistics) -> None:
        if on_round is not None:
            reactor.callFromThread(on_round, stats)

    def work() -> None:
        try:
            pages = hypervisor.map_ram(name).nbytes // hypervisor.page_size
            chan = channel.connect(
                target.host, target.port, target.fingerprint, target.token, pages
            )
            transfer.engine = SourceEngine(
                hypervisor, name, chan, options, stop, clock, on_round=report_round
            )
            outcome: TransferResult | Failure = transfer.engine.run()
            chan.close()
        except BaseException:
            outcome = Failure()
        if isinstance(outcome, Failure):
            reactor.callFromThread(transfer.deferred.errback, outcome)
        else:
            reactor.callFromThread(transfer.deferred.callback, outcome)

    threading.Thread(target=work, name=f"ldmx-data-{name}", daemon=True).start()
    return transfer
