"""The live data plane: blocking source and target engines over one or more ``DataChannel``s.

``SourceEngine`` copies a running guest's RAM (pre-copy rounds, then stop-and-copy) and
``TargetEngine`` applies the frames to the receiving guest's RAM and reports ready once
every frame checked out and every page is accounted for. Both run in a data-plane thread
(see ``datathread``) or directly, in benchmarks. Decisions come from
``precopy.Convergence``; the engines only move bytes and read the injected clock.

Streams (spec §10.1): with N channels, page i travels on stream i mod N, so a ``PAGES`` or
``ZERO`` frame on stream s covers pages first, first + N, first + 2N, ... The source scans
each round once and N senders (stream 0 in the calling thread) write their own pages;
every stream carries every ``ROUND-END`` and its own ``EOS``. The target reads each stream
in its own thread and closes a round when every stream has delivered its marker.

Failure contract: until the end frame is acknowledged, any failure (local or remote) on
the source leaves the source guest running and unthrottled; the target guest is never
resumed here.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.migration import (digestproc, faults, frames, messages, pagescan, precopy, ratelimit,
                             verify)
from agent.migration.channel import ChannelError, DataChannel, Login
from agent.migration.stats import MigrationStatistics, StatsRecorder

COMPRESSION_NONE = "none"
COMPRESSION_ZLIB = "zlib"
COMPRESSION_METHODS = (COMPRESSION_NONE, COMPRESSION_ZLIB)
ZLIB_LEVEL = 1  # spec §10.4

_DRAIN_S = 2.0  # how long a failing target reads on so that its ERROR frame gets through
_POLL_FRAMES = 32  # how often the source looks for an ERROR from the target mid-round

FINISH = "finish"  # switch over at the next opportunity, whatever the budget says
ABORT = "abort"  # stop copying and give the guest back


class StopSignal:
    """The two-valued stop signal of a running transfer: ``finish`` or ``abort``."""

    def __init__(self) -> None:
        self.value: str | None = None
        self._lock = threading.Lock()

    def finish(self) -> None:
        with self._lock:
            if self.value is None:
                self.value = FINISH

    def abort(self) -> None:
        with self._lock:
            self.value = ABORT  # an abort overrides an earlier finish


class TransferAborted(Exception):
    """The transfer stopped before the end frame: on request, by policy, or by the peer."""


class _SenderStopped(TransferAborted):
    """A stream's sender stopped because another stream's sender failed first."""


@dataclass(frozen=True)
class TransferOptions:
    """Per-migration choices of the source (the stream count is the number of channels)."""

    precopy: precopy.PrecopyConfig = field(default_factory=precopy.PrecopyConfig)
    compression: str = COMPRESSION_NONE
    max_run_pages: int = 64  # pages per PAGES frame (spec §10.1)
    max_gap_pages: int = 2  # clean pages resent to join two dirty runs into one frame
    ack_timeout_s: float = 60.0


@dataclass(frozen=True)
class TransferResult:
    """How a source transfer ended."""

    ok: bool
    switchover: str | None  # budget, empty or forced when ok
    error: str | None
    statistics: MigrationStatistics
    paused_at: float | None  # clock reading at the suspend; the guest stays paused when ok
    # Milliseconds spent in each step of the stop-and-copy (pause, sync, pages, state,
    # ready), for tuning the downtime.
    switch_ms: dict[str, float] = field(default_factory=dict)
    final_pages: int = 0  # pages sent while the guest was paused
    memory_digest: str | None = None  # §10.7, read at the suspend (hex)


class _Compressor:
    """zlib level 1 per PAGES payload, keeping the raw form when compression does not pay."""

    def __init__(self, method: str) -> None:
        if method not in COMPRESSION_METHODS:
            raise ValueError(f"unknown compression method {method!r}")
        self.method = method

    def pack(self, view: memoryview) -> tuple[bytes | memoryview, int]:
        if self.method == COMPRESSION_NONE:
            return view, 0
        packed = zlib.compress(view, ZLIB_LEVEL)
        if len(packed) >= view.nbytes:
            return view, 0
        return packed, frames.FLAG_ZLIB


def _first_cause(failures: list[BaseException]) -> BaseException:
    """The error to report when several senders failed: the target's own words first
    (an ERROR frame), then any real failure, before "another stream failed"."""
    for error in failures:
        if isinstance(error, TransferAborted) and not isinstance(error, _SenderStopped):
            return error
    for error in failures:
        if not isinstance(error, _SenderStopped):
            return error
    return failures[0]


def stream_share(stream: int, streams: int, first: int, count: int) -> tuple[int, int]:
    """The pages of ``[first, first + count)`` on ``stream``: (its first page, how many)."""
    mine = first + (stream - first) % streams
    end = first + count
    if mine >= end:
        return mine, 0
    return mine, (end - 1 - mine) // streams + 1


class SourceEngine:
    """Copies one guest to the target over open channels (call ``run`` once).

    ``channel`` is one ``DataChannel`` or a list of them, stream 0 first.
    """

    def __init__(
        self,
        hypervisor,
        name: str,
        channel: DataChannel | Sequence[DataChannel],
        options: TransferOptions | None = None,
        stop: StopSignal | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_round: Callable[[MigrationStatistics], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.hv = hypervisor
        self.name = name
        self.channels = [channel] if isinstance(channel, DataChannel) else list(channel)
        if not 1 <= len(self.channels) <= frames.MAX_STREAMS:
            raise ValueError(f"{len(self.channels)} data streams; 1 to {frames.MAX_STREAMS}")
        self.channel = self.channels[0]
        self.streams = len(self.channels)
        self.options = options or TransferOptions()
        self.stop = stop or StopSignal()
        self.clock = clock
        self.sleep = sleep
        self.on_round = on_round
        self.page_size = hypervisor.page_size
        self.ram = hypervisor.map_ram(name)
        self.page_count = self.ram.nbytes // self.page_size
        cap = self.options.precopy.max_bandwidth
        self.pacer = ratelimit.Pacer(cap) if cap else None
        self.frame_pages = ratelimit.frame_pages(cap, self.page_size, self.options.max_run_pages)
        self.scanner = pagescan.ZeroScanner(
            self.ram, self.page_size, self.frame_pages * self.streams
        )
        self.compressor = _Compressor(self.options.compression)
        state_bytes = len(hypervisor.get_vcpu_state(name))
        self.stats = StatsRecorder(
            "source",
            self.ram.nbytes,
            self.page_size,
            state_bytes,
            self.options.precopy.downtime_budget_ms,
            self.options.compression,
            clock,
        )
        self.convergence = precopy.Convergence(
            self.options.precopy, self.page_size, self.ram.nbytes, state_bytes, clock()
        )
        self._frames_sent = [1] * self.streams  # each stream's HELLO
        self._paused_at: float | None = None
        self._final_pages = 0
        self._throttle = 0
        self._pending = b""  # the dirty bitmap of the latest sync, not yet sent
        self._switch_ms: dict[str, float] = {}
        self._last_mark = 0.0
        size = self.frame_pages * self.page_size
        self._snapshots = [memoryview(bytearray(size)) for _ in range(self.streams)]
        self._broken = threading.Event()  # one sender failed: the others stop too
        self._pool: ThreadPoolExecutor | None = None
        self._memory_digest: str | None = None

    def statistics(self) -> MigrationStatistics:
        return self.stats.snapshot()

    def run(self) -> TransferResult:
        """Pre-copy, stop-and-copy, end frame; wait for the target's READY."""
        if self.streams > 1:
            self._pool = ThreadPoolExecutor(self.streams - 1, thread_name_prefix="ldmx-stream")
        try:
            switchover = self._precopy()
            self._stop_and_copy(switchover)
        except Exception as error:  # every failure gives the guest back, then reports
            return self._fail(error)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        self.stats.update(status="done", switchover=switchover)
        return TransferResult(True, switchover, None, self.stats.snapshot(), self._paused_at,
                              self._switch_ms, self._final_pages, self._memory_digest)

    def _precopy(self) -> str:
        self.hv.get_and_clear_dirty(self.name)  # round 0 must see every write after it
        verify.start_first_read(self.hv, self.name)
        runs = self._round0_runs()
        round_number = 0
        while True:
            started = self.clock()
            payload, raw, handled = self._send_runs(runs)
            # Re-hash what the guest wrote during the round (§10.7) inside the round, so
            # that B (§10.5) is the rate of copying and verifying together: the switch-over
            # does both for the final set, and the prediction must cover both.
            verify.keep_current(self.hv, self.name)
            self._pending = self.hv.get_and_clear_dirty(self.name)
            dirty_runs = pagescan.dirty_runs(self._pending, self.page_count)
            dirty = pagescan.run_pages(dirty_runs)
            runs = self._to_send(dirty_runs)
            self._round_end(round_number, dirty)
            report = precopy.RoundReport(
                round_number, started, self.clock(), payload, raw, handled, dirty
            )
            decision = self.convergence.round_finished(report)
            self.stats.round_end(
                round_number,
                dirty,
                dirty_rate=decision.dirty_rate,
                throughput=decision.bandwidth,
                expected_downtime_ms=decision.expected_downtime_ms,
                throttle=self._throttle,
            )
            if self.on_round is not None:
                self.on_round(self.stats.snapshot())
            faults.data_point("source-data-round", channel=self.channel, hypervisor=self.hv,
                              guest=self.name)
            if self.stop.value == ABORT:
                raise TransferAborted("the migration was cancelled")
            if decision.action == precopy.SWITCH:
                return decision.reason
            if self.stop.value == FINISH:
                return precopy.SWITCH_FORCED
            if decision.action == precopy.ABORT:
                raise TransferAborted(precopy.non_convergence_message(self.name, decision.reason))
            if decision.throttle != self._throttle:
                self.hv.throttle(self.name, decision.throttle)
                self._throttle = decision.throttle
                self.stats.update(throttle=decision.throttle)
            round_number += 1

    def _to_send(self, dirty: list[tuple[int, int]]) -> list[tuple[bool, int, int]]:
        merged = pagescan.coalesce(dirty, self.options.max_gap_pages)
        return [(False, first, count) for first, count in merged]

    def _round0_runs(self) -> list[tuple[bool, int, int]]:
        """Every page, with the RAM file's holes marked when the hypervisor can tell them.

        ``memory_extents(name)`` is an optional hypervisor capability: the runs of pages
        that may hold data. It is asked after the dirty log was cleared, so a page written
        into a hole later is in the next round's dirty set.
        """
        extents = getattr(self.hv, "memory_extents", None)
        if extents is None:
            return [(False, 0, self.page_count)]
        return pagescan.cover(extents(self.name), self.page_count)

    def _pieces(self, runs: list[tuple[bool, int, int]]):
        """``(is_zero, first, count)`` pieces of the runs; holes are zero without a look."""
        for is_hole, first, count in runs:
            if is_hole:
                yield True, first, count
            else:
                yield from self.scanner.pieces(first, count)

    def _send_runs(self, runs: list[tuple[bool, int, int]]) -> tuple[int, int, int]:
        """Send every page of ``(is_hole, first, count)`` runs; return (payload, raw, pages).

        One stream sends as it scans. Several streams share one scan of the round, and
        each sends its own pages (stream 0 in this thread, the others in the pool).
        """
        if self.streams == 1:
            return self._send_stream(0, self._pieces(runs))
        pieces = list(self._pieces(runs))
        futures = [self._pool.submit(self._send_stream, s, pieces) for s in range(1, self.streams)]
        totals = [0, 0, 0]
        failures: list[BaseException] = []
        try:
            totals = list(self._send_stream(0, pieces))
        except BaseException as error:
            failures.append(error)
            self._broken.set()
        for future in futures:
            try:
                payload, raw, handled = future.result()
                totals = [totals[0] + payload, totals[1] + raw, totals[2] + handled]
            except BaseException as error:
                failures.append(error)
                self._broken.set()
        if failures:
            raise _first_cause(failures)
        return totals[0], totals[1], totals[2]

    def _send_stream(self, stream: int, pieces) -> tuple[int, int, int]:
        """Send this stream's pages of ``pieces``; return (payload, raw, pages)."""
        ps = self.page_size
        n = self.streams
        chan = self.channels[stream]
        send = chan.send
        pack = self.compressor.pack
        stop = self.stop
        broken = self._broken
        stats = self.stats
        gather = self._gather
        pace = self._pace
        snapshot = self._snapshots[stream]
        payload_total = raw_total = handled = 0
        for is_zero, start, length in pieces:
            if n > 1:
                start, length = stream_share(stream, n, start, length)
                if not length:
                    continue
            if stop.value == ABORT:
                raise TransferAborted("the migration was cancelled")
            if broken.is_set():
                raise _SenderStopped("another data stream failed")
            if is_zero:
                send(frames.ZERO, start, length)
                stats.pages(True, length, 0)
            else:
                # Snapshot first: the guest keeps writing, and the checksum and the
                # bytes sent must describe the same content. Later writes are in the
                # dirty log and travel in the next round.
                view = gather(snapshot, start, length)
                payload, flags = pack(view)
                if pace is not None:
                    pace(len(payload) if flags else view.nbytes)
                size = send(frames.PAGES, start, length, payload, flags)
                stats.pages(False, length, size)
                payload_total += size
                raw_total += length * ps
            self._frames_sent[stream] += 1
            handled += length
            if not self._frames_sent[stream] % _POLL_FRAMES:
                self._check_peer(chan)
        return payload_total, raw_total, handled

    def _gather(self, snapshot: memoryview, first: int, count: int) -> memoryview:
        """Copy this frame's pages (every Nth page from ``first``) into ``snapshot``."""
        ps = self.page_size
        ram = self.ram
        if self.streams == 1:
            size = count * ps
            snapshot[:size] = ram[first * ps : first * ps + size]
            return snapshot[:size]
        step = self.streams * ps
        offset = first * ps
        for at in range(0, count * ps, ps):
            snapshot[at : at + ps] = ram[offset : offset + ps]
            offset += step
        return snapshot[: count * ps]

    @property
    def _pace(self) -> Callable[[int], None] | None:
        if self.pacer is None:
            return None

        def pace(size: int) -> None:
            wait = self.pacer.delay(self.clock(), size)
            if wait > 0:
                self.sleep(wait)

        return pace

    def _check_peer(self, chan: DataChannel) -> None:
        """Stop early when the target has something to say mid-round (always an ERROR)."""
        frame = chan.poll_frame()
        if frame is not None:
            if frame.header.kind == frames.ERROR:
                reason = frame.payload.decode("utf-8", "replace")
                raise TransferAborted("target reported: " + reason)
            raise frames.FrameError(f"unexpected {frame.header.name} frame from the target")

    def _round_end(self, round_number: int, dirty: int) -> None:
        snapshot = json.dumps(self.stats.snapshot().as_dict()).encode()
        for stream, chan in enumerate(self.channels):  # every stream carries every marker
            chan.send(frames.ROUND_END, round_number, self._frames_sent[stream], snapshot)
            self._frames_sent[stream] += 1
            chan.flush()
        # The acknowledgement closes the round: the bandwidth then counts delivered bytes.
        reply = self._expect(frames.ACK)
        if reply.header.arg0 != round_number:
            raise ChannelError(f"target acknowledged round {reply.header.arg0}, not {round_number}")

    def _expect(self, kind: int) -> frames.Frame:
        frame = self.channel.read_frame()
        if frame.header.kind == frames.ERROR:
            raise TransferAborted("target reported: " + frame.payload.decode("utf-8", "replace"))
        if frame.header.kind != kind:
            raise frames.FrameError(f"expected {frames.KIND_NAMES[kind]}, got {frame.header.name}")
        return frame

    def _mark(self, step: str) -> None:
        now = self.clock()
        self._switch_ms[step] = (now - self._last_mark) * 1000.0
        self._last_mark = now

    def _suspend(self) -> tuple[bytes, bytes | None]:
        """Pause the guest and end its throttle (§10.6); return the final dirty bitmap and,
        when the hypervisor can give it in the same round trip, the vCPU state. A suspend
        that fails leaves the guest running: the abort has nothing to resume (F22)."""
        self._paused_at = self.clock()  # from here on, a failure resumes the guest
        combined = getattr(self.hv, "suspend_for_switchover", None)
        try:
            faults.data_point("source-suspend")
            if combined is not None:
                final, blob = combined(self.name)
            else:
                self.hv.pause(self.name)
        except Exception as error:
            self._paused_at = None
            raise TransferAborted(messages.suspend_failed(self.name)) from error
        if combined is not None:
            self._throttle = 0
            self._mark("pause")
            return final, blob
        self._mark("pause")
        if self._throttle:
            self.hv.throttle(self.name, 0)
            self._throttle = 0
        return self.hv.get_and_clear_dirty(self.name), None

    def _stop_and_copy(self, switchover: str) -> None:
        # The last round re-hashed its writes just before its sync: the read at the
        # suspend re-hashes only what was written since (§10.7).
        self._last_mark = self.clock()
        final, blob = self._suspend()
        # The final set is what the last round's sync found plus what was written since.
        merged = int.from_bytes(final, "little") | int.from_bytes(self._pending, "little")
        bitmap = merged.to_bytes(max(len(final), len(self._pending)), "little")
        runs = self._to_send(pagescan.dirty_runs(bitmap, self.page_count))
        self._final_pages = pagescan.run_pages([(first, count) for _, first, count in runs])
        self._mark("sync")
        # After the last dirty sync, suspended (§10.7): the suspend's bitmap went through
        # the digest log, so the read after the pages re-hashes only the final dirty set.
        # Not on a thread beside the sending: the two then handed the GIL back and forth
        # per page, and the final pages took longer than the pages and the read in turn
        # (web: downtime p95 55 ms against 47 ms in 8 runs). The target hashes the pages
        # as they arrive, in its digest process.
        if blob is not None:
            # Ahead of the final pages: the target loads it while they arrive.
            self._send_vcpu(blob)
        self._send_runs(runs)
        self._mark("pages")
        memory = verify.source_memory_digest(self.hv, self.name, self.ram, self.page_size)
        self._memory_digest = memory.hex()
        self._mark("digest")
        if blob is None:
            blob = self.hv.get_vcpu_state(self.name)
            self._send_vcpu(blob)
        self.stats.update(switchover=switchover)
        snap = self.stats.snapshot()
        totals = {"transferred": snap.transferred, "switchover": switchover,
                  **verify.end_fields(memory, blob)}
        totals_json = json.dumps(totals).encode()
        for stream, chan in enumerate(self.channels):
            chan.send(frames.EOS, self._frames_sent[stream], self.page_count, totals_json)
            self._frames_sent[stream] += 1
            chan.flush()
        self._mark("state")
        self._expect(frames.READY)
        self._mark("ready")

    def _send_vcpu(self, blob: bytes) -> None:
        if self.pacer is not None:
            self._pace(len(blob))
        self.channel.send(frames.VCPU, len(blob), 0, blob)
        self.stats.state(len(blob))
        self._frames_sent[0] += 1

    def _fail(self, error: Exception) -> TransferResult:
        message = str(error) or type(error).__name__
        for chan in self.channels:
            try:
                chan.send(frames.ERROR, payload=message.encode("utf-8")[:4096])
            except Exception:
                pass  # best effort: the channel may be the thing that broke
            chan.close()
        if self._throttle:
            self.hv.throttle(self.name, 0)
        if self._paused_at is not None:
            self.hv.resume(self.name)
        self.stats.update(status="failed", error=message)
        return TransferResult(False, None, message, self.stats.snapshot(), None)


MADV_POPULATE_WRITE = 23  # Linux 5.14+: back a whole mapping in one call


def prepare_target_memory(ram: memoryview) -> None:
    """Back every page of the receiving guest's memory before the transfer (phase 2).

    The spec's phase 2 zero-fills the target domain's memory; on a fresh sparse RAM file
    that means allocating it. Done here, first-touch faults stay out of the copy: on this
    machine they cost more than the TLS decryption of the same bytes. One madvise call
    where the kernel has it, else writing zeros (the memory is zero already).
    """
    madvise = getattr(ram.obj, "madvise", None)
    if madvise is not None:
        try:
            madvise(MADV_POPULATE_WRITE)
            return
        except (OSError, ValueError):
            pass  # an older kernel: fall back to touching every page
    zeros = bytes(1 << 20)
    for offset in range(0, ram.nbytes, len(zeros)):
        end = min(offset + len(zeros), ram.nbytes)
        ram[offset:end] = zeros[: end - offset]


@dataclass(frozen=True)
class ReceiveResult:
    """How a target transfer ended; on success the vCPU state is loaded, the guest not run."""

    ok: bool
    error: str | None
    statistics: MigrationStatistics
    frames: int
    rounds: int
    vcpu_state: bytes | None
    switchover: str | None = None
    verdict: verify.Verdict | None = None  # the §10.7 digests, once compared
    end_ms: dict | None = None  # after the last EOS: ms spent per step before READY


class _StreamFailed(Exception):
    """Another stream of the same transfer failed first (its error is the one reported)."""


class TargetEngine:
    """Applies one incoming transfer to the receiving guest's RAM (call ``run`` once).

    ``channel`` is one ``DataChannel`` or the list of a source's streams, by index. The
    receiving guest's memory must be all zero beforehand (phase 2 zero-fills it), so
    round-0 ZERO runs need no writes.
    """

    def __init__(
        self,
        hypervisor,
        name: str,
        channel: DataChannel | Sequence[DataChannel],
        login: Login,
        clock: Callable[[], float] = time.monotonic,
        load_vcpu: bool = True,
        compare_digests: bool = True,
    ) -> None:
        self.hv = hypervisor
        self.name = name
        self.channels = [channel] if isinstance(channel, DataChannel) else list(channel)
        self.channel = self.channels[0]
        self.streams = len(self.channels)
        self.login = login
        self.load_vcpu = load_vcpu
        self.page_size = hypervisor.page_size
        self.ram = hypervisor.map_ram(name, writable=True)
        self.page_count = self.ram.nbytes // self.page_size
        self.stats = StatsRecorder("target", self.ram.nbytes, self.page_size, 0, 0.0, "none", clock)
        self._seen = bytearray(self.page_count)  # 1 once a page has been accounted for
        self._backer = _Backer(self.ram, self.page_size)
        self._ones = memoryview(b"\x01" * self.page_count)
        self._zeros = bytes(self.page_size * 64)
        self._frames = 1  # frames received on all streams, HELLOs included
        self._round = 0  # rounds every stream has closed
        self._vcpu: bytes | None = None
        self._loader: threading.Thread | None = None  # loads the vCPU state into the guest
        self._load_error: str | None = None
        self._switchover = ""
        self._totals: dict = {}  # the source's EOS payload (stream 0's)
        self._source_stats: dict = {}
        self._lock = threading.Lock()
        self._error: str | None = None  # the first failure of any stream
        self._barrier = threading.Barrier(self.streams, action=self._all_streams_marked)
        self._markers: list[int | None] = [None] * self.streams  # round number, None: EOS
        self.compare_digests = compare_digests  # migration_verify (§10.7)
        # One digest per stream, each updated only by its stream's digest worker (no lock);
        # the workers' threads exist while ``run`` runs.
        self.digests = verify.StreamDigests(self.streams, self.page_count, self.page_size)
        self._hashers: list[verify.DigestWorker] = []
        self._verdict: verify.Verdict | None = None
        self._clock = clock
        self._end_ms: dict[str, float] = {}

    def statistics(self) -> MigrationStatistics:
        return self.stats.snapshot()

    def run(self) -> ReceiveResult:
        ram_file = getattr(self.hv, "ram_file", None)
        self._hashers = []
        try:
            for s in range(self.streams):
                self._hashers.append(self._hasher(s, ram_file))
            return self._run()
        finally:
            for hasher in self._hashers:
                hasher.close()
            # The barrier's action refers back to this engine: without this, the cycle
            # would keep the guest's RAM mapped until the garbage collector ran.
            self._barrier = None

    def _hasher(self, stream: int, ram_file):
        """Stream ``stream``'s page hashing: in a child process reading the RAM file when
        the hypervisor names one (no GIL hand-off per page), else on a thread."""
        if ram_file is not None:
            try:
                return digestproc.DigestProcess(self.digests[stream], ram_file(self.name),
                                                self.page_size)
            except digestproc.DigestProcessFailed:
                pass  # the thread computes the same digest, only with more CPU per page
        return verify.DigestWorker(self.digests[stream], self.ram, self.page_size,
                                   name=f"ldmx-digest-{stream}")

    def _run(self) -> ReceiveResult:
        if self.login.page_count != self.page_count:
            self._failed(f"source guest has {self.login.page_count} pages, target {self.page_count}")
        elif self.login.streams != self.streams:
            self._failed(f"source announced {self.login.streams} streams, {self.streams} connected")
        if self._error is not None:
            for stream in range(self.streams):
                self._report_failure(stream)
        elif self.streams == 1:
            self._stream(0)
        else:
            threads = [threading.Thread(target=self._stream, args=(s,), daemon=True,
                                        name=f"ldmx-receive-{s}") for s in range(self.streams)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if self._error is not None:
            self.stats.update(status="failed", error=self._error)
            snapshot = self.stats.snapshot()
            return ReceiveResult(False, self._error, snapshot, self._frames, self._round, None)
        self.stats.update(status="done", switchover=self._switchover)
        return ReceiveResult(True, None, self.stats.snapshot(), self._frames, self._round,
                             self._vcpu, self._switchover, self._verdict, self._end_ms)

    def _failed(self, message: str) -> None:
        with self._lock:
            if self._error is None:
                self._error = message

    def _stream(self, stream: int) -> None:
        """Read one stream to its end; on a failure, tell the source on this stream."""
        try:
            self._receive(stream)
        except Exception as error:
            if not isinstance(error, (_StreamFailed, threading.BrokenBarrierError)):
                self._failed(str(error) or type(error).__name__)
            self._barrier.abort()  # wakes the streams waiting at a round marker
            self._report_failure(stream)

    def _report_failure(self, stream: int) -> None:
        chan = self.channels[stream]
        try:
            chan.send(frames.ERROR, payload=(self._error or "").encode("utf-8")[:4096])
            # Closing with unread data would reset the connection and could destroy
            # the ERROR frame before the source reads it.
            chan.drain(_DRAIN_S)
        except Exception:
            pass
        chan.close()

    def _receive(self, stream: int) -> None:
        chan = self.channels[stream]
        count = 1  # this stream's frames, its HELLO included
        round_number = 0
        buffer = bytearray()  # the stream's PAGES payloads, when they cannot land in place
        while True:
            header, raw = chan.read_header()
            kind = header.kind
            if self._error is not None:
                raise _StreamFailed()
            if kind == frames.PAGES:
                buffer = self._pages(stream, chan, header, raw, buffer)
            elif kind == frames.ZERO:
                self._zero(stream, chan, header, raw, round_number)
            elif kind == frames.ROUND_END:
                self._marker(stream, header, raw, round_number, count)
                round_number += 1
            elif kind == frames.VCPU and stream == 0 and self._vcpu is None:
                self._vcpu = self._small_payload(chan, header, raw)
                self.stats.state(len(self._vcpu))
                self._start_loading(self._vcpu)
            elif kind == frames.EOS:
                self._marker(stream, header, raw, None, count)
                return
            elif kind == frames.ERROR:
                reason = self._small_payload(chan, header, raw).decode("utf-8", "replace")
                raise TransferAborted("source aborted the transfer: " + reason)
            else:
                raise frames.FrameError(f"unexpected {header.name} frame from the source")
            count += 1
            with self._lock:
                self._frames += 1

    def _span(self, stream: int, header: frames.Header) -> tuple[int, int]:
        first, count = header.arg0, header.arg1
        last = first + (count - 1) * self.streams
        if count <= 0 or last >= self.page_count:
            raise frames.FrameError(f"{header.name} frame pages {first}+{count} out of range")
        if first % self.streams != stream:
            raise frames.FrameError(f"{header.name} frame for page {first} on stream {stream}")
        return first, count

    def _pages(self, stream: int, chan: DataChannel, header: frames.Header, raw: bytes,
               buffer: bytearray) -> bytearray:
        first, count = self._span(stream, header)
        ps = self.page_size
        size = count * ps
        n = self.streams
        if header.compressed:
            packed = self._small_payload(chan, header, raw, limit=frames.MAX_PAYLOAD)
            data = _inflate(packed, size, first)
        elif header.length != size:
            raise frames.FrameError(f"PAGES frame at {first} has {header.length} bytes")
        elif n == 1:
            # Straight into guest RAM: the guest does not run until READY, and a bad
            # checksum fails the whole transfer.
            self._backer.back(first, count)
            view = self.ram[first * ps : first * ps + size]
            chan.read_into(view)
            frames.check_payload(raw, header, view, chan.checksum)
            data = None
        else:
            if len(buffer) < size:
                buffer = bytearray(size)
            data = memoryview(buffer)[:size]
            chan.read_into(data)
            frames.check_payload(raw, header, data, chan.checksum)
        if data is not None:
            self._scatter(data, first, count)
        self._hash_applied(stream, first, count)
        self._seen[first : first + count * n : n] = self._ones[:count]
        self.stats.pages(False, count, header.length)
        return buffer

    def _scatter(self, data, first: int, count: int) -> None:
        """Write ``count`` pages, every Nth from ``first``, from contiguous ``data``."""
        ps = self.page_size
        self._backer.back(first, (count - 1) * self.streams + 1)
        if self.streams == 1:
            self.ram[first * ps : (first + count) * ps] = data
            return
        step = self.streams * ps
        offset = first * ps
        for at in range(0, count * ps, ps):
            self.ram[offset : offset + ps] = data[at : at + ps]
            offset += step

    def _hash_applied(self, stream: int, first: int, count: int) -> None:
        """Have this stream's §10.7 digest updated from the pages as they stand in guest
        memory (read back, so a page applied at the wrong place fails the comparison);
        the stream's digest worker does it beside the next reads."""
        self._hashers[stream].applied(first, count, self.streams)

    def _zero(self, stream: int, chan: DataChannel, header: frames.Header, raw: bytes,
              round_number: int) -> None:
        first, count = self._span(stream, header)
        frames.check_payload(raw, header, b"", chan.checksum)
        n = self.streams
        if round_number > 0:  # round 0 lands on zero-filled memory: nothing to clear
            ps = self.page_size
            if n == 1:
                zeros = self._zeros
                for start in range(first * ps, (first + count) * ps, len(zeros)):
                    end = min(start + len(zeros), (first + count) * ps)
                    self.ram[start:end] = zeros[: end - start]
            else:
                zero = self._zeros[:ps]
                for page in range(first, first + count * n, n):
                    self.ram[page * ps : page * ps + ps] = zero
        self._hashers[stream].cleared(first, count, n)
        self._seen[first : first + count * n : n] = self._ones[:count]
        self.stats.pages(True, count, 0)

    def _marker(self, stream: int, header: frames.Header, raw: bytes,
                round_number: int | None, count: int) -> None:
        """A ROUND-END (``round_number``) or EOS (None) of one stream: check it, then wait
        until every stream has delivered it; the last one in acts for the whole round."""
        chan = self.channels[stream]
        payload = json.loads(self._small_payload(chan, header, raw) or b"{}")
        if round_number is None:
            if header.arg0 != count:
                raise frames.FrameError(
                    f"end of stream: source sent {header.arg0} frames, target got {count}"
                )
            self._switchover = payload.get("switchover", "")
            if stream == 0:  # every stream's EOS carries the same totals and digests
                self._totals = payload
        else:
            if header.arg0 != round_number:
                raise frames.FrameError(f"round marker {header.arg0} arrived in round {round_number}")
            if header.arg1 != count:
                raise frames.FrameError(
                    f"round {header.arg0}: source sent {header.arg1} frames, target got {count}"
                )
            self._source_stats = payload
        with self._lock:
            self._frames += 1
        self._markers[stream] = round_number
        self._barrier.wait()
        if self._error is not None:
            raise _StreamFailed()

    def _all_streams_marked(self) -> None:
        """Barrier action, run by one stream while all the others wait (channel 0 is idle)."""
        try:
            if len(set(self._markers)) != 1:
                raise frames.FrameError(f"the streams disagree on the round: {self._markers}")
            if self._markers[0] is None:
                self._end()
            else:
                self._round_closed()
        except Exception as error:
            self._failed(str(error) or type(error).__name__)

    def _round_closed(self) -> None:
        # The target's own view of the throughput: payload received per second so far.
        seen = self.stats.snapshot()
        rate = seen.transferred / (seen.time_elapsed_ms / 1000.0) if seen.time_elapsed_ms > 0 else 0.0
        self.stats.round_end(self._round, 0,
                             expected_downtime_ms=self._source_stats.get("expected-downtime"),
                             throughput=rate,
                             compression=self._source_stats.get("compression", "none"))
        self.channel.send(frames.ACK, self._round, self.stats.snapshot().transferred)
        self.channel.flush()
        self._round += 1
        faults.data_point("target-data-round")

    def _start_loading(self, blob: bytes) -> None:
        """Load the vCPU state into the paused guest while the final pages arrive; the
        guest checks it against its memory only when it is resumed, after READY."""
        if not self.load_vcpu:
            return

        def load() -> None:
            try:
                self.hv.set_vcpu_state(self.name, blob)
            except Exception as error:
                self._load_error = f"the vCPU state could not be loaded: {error}"

        self._loader = threading.Thread(target=load, name="ldmx-load-vcpu", daemon=True)
        self._loader.start()

    def _end(self) -> None:
        mark = self._clock()
        for hasher in self._hashers:  # every stream is at its EOS: no job comes after these
            hasher.finish()
        mark = self._step("hashes", mark)
        faults.data_point("target-before-ready", ram=self.ram, on_write=self.digests.written)
        missing = self._seen.count(0)
        if missing:
            raise frames.FrameError(f"{missing} pages were never sent")
        if self._vcpu is None:
            raise frames.FrameError("the vCPU state never arrived")
        if self._loader is not None:
            self._loader.join()
        if self._load_error is not None:
            raise frames.FrameError(self._load_error)
        mark = self._step("vcpu", mark)
        # Once, after every stream's EOS (the barrier) and the vCPU load (§10.7).
        self._verdict = self.digests.check(self.ram, self._totals, self._vcpu,
                                           self.compare_digests)
        mark = self._step("check", mark)
        adopt = getattr(self.hv, "adopt_memory_digest", None)
        if adopt is not None and self._verdict.matches:
            # The hypervisor keeps the guest's digest from here on (§10.7): with these
            # terms it need not scan the whole memory again when the guest resumes.
            adopt(self.name, self.digests.merged(self.ram))
            self._step("adopt", mark)
        self.channel.send(frames.READY, self._frames, self.page_count)
        self.channel.flush()

    def _step(self, name: str, since: float) -> float:
        now = self._clock()
        self._end_ms[name] = round((now - since) * 1000.0, 2)
        return now

    def _small_payload(self, chan: DataChannel, header: frames.Header, raw: bytes,
                       limit: int = 1 << 20) -> bytes:
        if header.length > limit:
            raise frames.FrameError(f"{header.name} payload too large ({header.length} bytes)")
        buffer = bytearray(header.length)
        if header.length:
            chan.read_into(memoryview(buffer))
        frames.check_payload(raw, header, buffer, chan.checksum)
        return bytes(buffer)


class _Backer:
    """Maps the receiving guest's pages into this process 2 MiB at a time, before they are
    written (MADV_POPULATE_WRITE). Writing through a fresh mapping otherwise takes a page
    fault per 4 KiB page; one madvise per 2 MiB cost 28 % less CPU here. Only regions that
    receive data are touched, so a mostly-zero guest stays cheap. Without the call (an
    older kernel, a plain buffer) the faults simply happen."""

    CHUNK_PAGES = 256  # 2 MiB of 8 KiB pages

    def __init__(self, ram: memoryview, page_size: int) -> None:
        self._madvise = getattr(ram.obj, "madvise", None)
        self._chunk = self.CHUNK_PAGES * page_size
        self._size = ram.nbytes
        self._done = bytearray(ram.nbytes // self._chunk + 1)

    def back(self, first: int, span: int) -> None:
        """Make pages ``first .. first + span - 1`` resident in this mapping."""
        if self._madvise is None:
            return
        for chunk in range(first // self.CHUNK_PAGES, (first + span - 1) // self.CHUNK_PAGES + 1):
            if self._done[chunk]:
                continue
            self._done[chunk] = 1
            start = chunk * self._chunk
            try:
                self._madvise(MADV_POPULATE_WRITE, start, min(self._chunk, self._size - start))
            except (OSError, ValueError):
                self._madvise = None  # not supported here: let the faults happen
                return


def _inflate(packed: bytes, size: int, first: int) -> bytes:
    """The ``size`` bytes a compressed PAGES payload stands for; a data error otherwise."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(packed, size)
    except zlib.error as error:
        raise frames.FrameError(f"undecodable compressed pages at {first}: {error}") from None
    if len(data) != size or not inflater.eof or inflater.unconsumed_tail:
        raise frames.FrameError(f"compressed pages at {first} have the wrong size")
    return data
