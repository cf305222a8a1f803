"""The live data plane: blocking source and target engines over a ``DataChannel``.

``run_source`` copies a running guest's RAM (pre-copy rounds, then stop-and-copy) and
``run_target`` applies the frames to the receiving guest's RAM and reports ready once
every frame checked out and every page is accounted for. Both run in a data-plane thread
(see ``datathread``) or directly, in benchmarks. Decisions come from
``precopy.Convergence``; the engines only move bytes and read the injected clock.

Failure contract: until the end frame is acknowledged, any failure (local or remote) on
the source leaves the source guest running and unthrottled; the target guest is never
resumed here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.migration import faults, frames, messages, pagescan, precopy, verify
from agent.migration.channel import ChannelError, DataChannel, Login
from agent.migration.stats import MigrationStatistics, StatsRecorder

COMPRESSION_NONE = "none"
COMPRESSION_ZSTD = "zstd"

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


@dataclass(frozen=True)
class TransferOptions:
    """Per-migration choices of the source."""

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
    memory_digest: str | None = None  # §10.7, read at the suspend (hex)


class _Compressor:
    """zstd per PAGES payload, keeping the raw form when compression does not pay."""

    def __init__(self, method: str) -> None:
        if method not in (COMPRESSION_NONE, COMPRESSION_ZSTD):
            raise ValueError(f"unknown compression method {method!r}")
        self.method = method
        self._zstd = None
        if method == COMPRESSION_ZSTD:
            import zstandard

            self._zstd = zstandard.ZstdCompressor(level=1)

    def pack(self, view: memoryview) -> tuple[bytes | memoryview, int]:
        if self._zstd is None:
            return view, 0
        packed = self._zstd.compress(view)
        if len(packed) >= view.nbytes:
            return view, 0
        return packed, frames.FLAG_ZSTD


class SourceEngine:
    """Copies one guest to the target over an open channel (call ``run`` once)."""

    def __init__(
        self,
        hypervisor,
        name: str,
        channel: DataChannel,
        options: TransferOptions | None = None,
        stop: StopSignal | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_round: Callable[[MigrationStatistics], None] | None = None,
    ) -> None:
        self.hv = hypervisor
        self.name = name
        self.channel = channel
        self.options = options or TransferOptions()
        self.stop = stop or StopSignal()
        self.clock = clock
        self.on_round = on_round
        self.page_size = hypervisor.page_size
        self.ram = hypervisor.map_ram(name)
        self.page_count = self.ram.nbytes // self.page_size
        self.scanner = pagescan.ZeroScanner(self.ram, self.page_size, self.options.max_run_pages)
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
        self._frames_sent = 1  # the HELLO
        self._paused_at: float | None = None
        self._throttle = 0
        self._pending = b""  # the dirty bitmap of the latest sync, not yet sent
        self._switch_ms: dict[str, float] = {}
        self._last_mark = 0.0
        self._snapshot = memoryview(bytearray(self.options.max_run_pages * self.page_size))
        self._memory_digest: str | None = None

    def statistics(self) -> MigrationStatistics:
        return self.stats.snapshot()

    def run(self) -> TransferResult:
        """Pre-copy, stop-and-copy, end frame; wait for the target's READY."""
        try:
            switchover = self._precopy()
            self._stop_and_copy(switchover)
        except Exception as error:  # every failure gives the guest back, then reports
            return self._fail(error)
        self.stats.update(status="done", switchover=switchover)
        return TransferResult(
            True, switchover, None, self.stats.snapshot(), self._paused_at, self._switch_ms,
            self._memory_digest,
        )

    def _precopy(self) -> str:
        self.hv.get_and_clear_dirty(self.name)  # round 0 must see every write after it
        verify.start_first_read(self.hv, self.name)
        runs = self._round0_runs()
        round_number = 0
        while True:
            started = self.clock()
            payload, raw, handled = self._send_runs(runs)
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
            # Outside the round's duration, so B (§10.5) measures the link, not the hashes.
            verify.keep_current(self.hv, self.name)
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

    def _send_runs(self, runs: list[tuple[bool, int, int]]) -> tuple[int, int, int]:
        """Send every page of ``(is_hole, first, count)`` runs; return (payload, raw, pages)."""
        ps = self.page_size
        ram = self.ram
        send = self.channel.send
        pack = self.compressor.pack
        stop = self.stop
        stats = self.stats
        snapshot = self._snapshot
        payload_total = raw_total = handled = 0
        for is_hole, first, count in runs:
            pieces = [(True, first, count)] if is_hole else self.scanner.pieces(first, count)
            for is_zero, start, length in pieces:
                if stop.value == ABORT:
                    raise TransferAborted("the migration was cancelled")
                if is_zero:
                    send(frames.ZERO, start, length)
                    stats.pages(True, length, 0)
                else:
                    # Snapshot first: the guest keeps writing, and the checksum and the
                    # bytes sent must describe the same content. Later writes are in the
                    # dirty log and travel in the next round.
                    size = length * ps
                    snapshot[:size] = ram[start * ps : start * ps + size]
                    payload, flags = pack(snapshot[:size])
                    size = send(frames.PAGES, start, length, payload, flags)
                    stats.pages(False, length, size)
                    payload_total += size
                    raw_total += length * ps
                self._frames_sent += 1
                handled += length
                if not self._frames_sent % _POLL_FRAMES:
                    self._check_peer()
        return payload_total, raw_total, handled

    def _check_peer(self) -> None:
        """Stop early when the target has something to say mid-round (always an ERROR)."""
        frame = self.channel.poll_frame()
        if frame is not None:
            if frame.header.kind == frames.ERROR:
                reason = frame.payload.decode("utf-8", "replace")
                raise TransferAborted("target reported: " + reason)
            raise frames.FrameError(f"unexpected {frame.header.name} frame from the target")

    def _round_end(self, round_number: int, dirty: int) -> None:
        snapshot = json.dumps(self.stats.snapshot().as_dict()).encode()
        self.channel.send(frames.ROUND_END, round_number, self._frames_sent, snapshot)
        self._frames_sent += 1
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

    def _stop_and_copy(self, switchover: str) -> None:
        # While the guest still runs: the read at the suspend then re-hashes only what is
        # written between this read and the pause, not a whole round's writes.
        verify.keep_current(self.hv, self.name)
        self._last_mark = self.clock()
        try:
            faults.data_point("source-suspend")
            self.hv.pause(self.name)
        except Exception as error:  # the guest runs on: the abort has nothing to resume
            raise TransferAborted(messages.suspend_failed(self.name)) from error
        self._paused_at = self.clock()
        self._mark("pause")
        if self._throttle:
            self.hv.throttle(self.name, 0)  # the throttle ends with the suspend (§10.6)
            self._throttle = 0
        # The final set is what the last round's sync found plus what was written since.
        final = self.hv.get_and_clear_dirty(self.name)
        merged = int.from_bytes(final, "little") | int.from_bytes(self._pending, "little")
        bitmap = merged.to_bytes(max(len(final), len(self._pending)), "little")
        runs = self._to_send(pagescan.dirty_runs(bitmap, self.page_count))
        self._mark("sync")
        self._send_runs(runs)
        self._mark("pages")
        # After the last dirty sync, suspended (§10.7); the target hashes the final pages
        # meanwhile.
        memory = verify.source_memory_digest(self.hv, self.name, self.ram, self.page_size)
        self._memory_digest = memory.hex()
        self._mark("digest")
        blob = self.hv.get_vcpu_state(self.name)
        self.channel.send(frames.VCPU, len(blob), 0, blob)
        self.stats.state(len(blob))
        self._frames_sent += 1
        self.stats.update(switchover=switchover)
        snap = self.stats.snapshot()
        totals = {"transferred": snap.transferred, "switchover": switchover,
                  **verify.end_fields(memory, blob)}
        totals_json = json.dumps(totals).encode()
        self.channel.send(frames.EOS, self._frames_sent, self.page_count, totals_json)
        self._frames_sent += 1
        self._mark("state")
        self._expect(frames.READY)
        self._mark("ready")

    def _fail(self, error: Exception) -> TransferResult:
        message = str(error) or type(error).__name__
        try:
            self.channel.send(frames.ERROR, payload=message.encode("utf-8")[:4096])
        except Exception:
            pass  # best effort: the channel may be the thing that broke
        self.channel.close()
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


class TargetEngine:
    """Applies one incoming transfer to the receiving guest's RAM (call ``run`` once).

    The receiving guest's memory must be all zero beforehand (phase 2 zero-fills it), so
    round-0 ZERO runs need no writes.
    """

    def __init__(
        self,
        hypervisor,
        name: str,
        channel: DataChannel,
        login: Login,
        clock: Callable[[], float] = time.monotonic,
        load_vcpu: bool = True,
        compare_digests: bool = True,
    ) -> None:
        self.hv = hypervisor
        self.name = name
        self.channel = channel
        self.login = login
        self.load_vcpu = load_vcpu
        self.page_size = hypervisor.page_size
        self.ram = hypervisor.map_ram(name, writable=True)
        self.page_count = self.ram.nbytes // self.page_size
        self.stats = StatsRecorder("target", self.ram.nbytes, self.page_size, 0, 0.0, "none", clock)
        self._seen = bytearray(self.page_count)  # 1 once a page has been accounted for
        self._ones = memoryview(b"\x01" * self.page_count)
        self._zeros = bytes(self.page_size * 64)
        self._frames = 1  # the HELLO
        self._round = 0
        self._vcpu: bytes | None = None
        self._decompressor = None
        self.compare_digests = compare_digests  # migration_verify (§10.7)
        self.digest = verify.TargetDigest(self.page_count, self.page_size)
        self._verdict: verify.Verdict | None = None

    def statistics(self) -> MigrationStatistics:
        return self.stats.snapshot()

    def run(self) -> ReceiveResult:
        try:
            if self.login.page_count != self.page_count:
                raise frames.FrameError(
                    f"source guest has {self.login.page_count} pages, target {self.page_count}"
                )
            switchover = self._receive()
        except Exception as error:
            message = str(error) or type(error).__name__
            try:
                self.channel.send(frames.ERROR, payload=message.encode("utf-8")[:4096])
                # Closing with unread data would reset the connection and could destroy
                # the ERROR frame before the source reads it.
                self.channel.drain(_DRAIN_S)
            except Exception:
                pass
            self.channel.close()
            self.stats.update(status="failed", error=message)
            snapshot = self.stats.snapshot()
            return ReceiveResult(False, message, snapshot, self._frames, self._round, None)
        self.stats.update(status="done", switchover=switchover)
        return ReceiveResult(
            True, None, self.stats.snapshot(), self._frames, self._round, self._vcpu, switchover,
            self._verdict,
        )

    def _receive(self) -> str:
        channel = self.channel
        while True:
            header, raw = channel.read_header()
            kind = header.kind
            if kind == frames.PAGES:
                self._pages(header, raw)
            elif kind == frames.ZERO:
                self._zero(header, raw)
            elif kind == frames.ROUND_END:
                self._round_end(header, raw)
            elif kind == frames.VCPU:
                self._vcpu = self._small_payload(header, raw)
                self.stats.state(len(self._vcpu))
            elif kind == frames.EOS:
                return self._end(header, raw)
            elif kind == frames.ERROR:
                reason = self._small_payload(header, raw).decode("utf-8", "replace")
                raise TransferAborted("source aborted the transfer: " + reason)
            else:
                raise frames.FrameError(f"unexpected {header.name} frame from the source")
            self._frames += 1

    def _span(self, header: frames.Header) -> tuple[int, int]:
        first, count = header.arg0, header.arg1
        if count <= 0 or first + count > self.page_count:
            raise frames.FrameError(f"{header.name} frame pages {first}+{count} out of range")
        return first, count

    def _pages(self, header: frames.Header, raw: bytes) -> None:
        first, count = self._span(header)
        ps = self.page_size
        view = self.ram[first * ps : (first + count) * ps]
        if header.compressed:
            packed = self._small_payload(header, raw, limit=frames.MAX_PAYLOAD)
            if self._decompressor is None:
                import zstandard

                self._decompressor = zstandard.ZstdDecompressor()
            try:
                data = self._decompressor.decompress(packed, max_output_size=view.nbytes)
            except Exception as error:
                reason = f"undecodable compressed pages at {first}: {error}"
                raise frames.FrameError(reason) from None
            if len(data) != view.nbytes:
                raise frames.FrameError(f"compressed pages at {first} have the wrong size")
            view[:] = data
        else:
            if header.length != view.nbytes:
                raise frames.FrameError(f"PAGES frame at {first} has {header.length} bytes")
            # Straight into guest RAM: the guest does not run until READY, and a bad
            # checksum fails the whole transfer.
            self.channel.read_into(view)
            frames.check_payload(raw, header, view, self.channel.checksum)
        self.digest.applied(first, view)
        self._seen[first : first + count] = self._ones[:count]
        self.stats.pages(False, count, header.length)

    def _zero(self, header: frames.Header, raw: bytes) -> None:
        first, count = self._span(header)
        frames.check_payload(raw, header, b"", self.channel.checksum)
        if self._round > 0:  # round 0 lands on zero-filled memory: nothing to clear
            ps = self.page_size
            zeros = self._zeros
            for start in range(first * ps, (first + count) * ps, len(zeros)):
                end = min(start + len(zeros), (first + count) * ps)
                self.ram[start:end] = zeros[: end - start]
        self.digest.cleared(first, count)
        self._seen[first : first + count] = self._ones[:count]
        self.stats.pages(True, count, 0)

    def _round_end(self, header: frames.Header, raw: bytes) -> None:
        payload = self._small_payload(header, raw)
        if header.arg0 != self._round:
            raise frames.FrameError(f"round marker {header.arg0} arrived in round {self._round}")
        if header.arg1 != self._frames:
            raise frames.FrameError(
                f"round {header.arg0}: source sent {header.arg1} frames, target got {self._frames}"
            )
        source = json.loads(payload)
        # The target's own view of the throughput: payload received per second so far.
        seen = self.stats.snapshot()
        rate = seen.transferred / (seen.time_elapsed_ms / 1000.0) if seen.time_elapsed_ms > 0 else 0.0
        self.stats.round_end(self._round, 0, expected_downtime_ms=source.get("expected-downtime"),
                             throughput=rate)
        self.channel.send(frames.ACK, self._round, self.stats.snapshot().transferred)
        self._round += 1
        faults.data_point("target-data-round")

    def _end(self, header: frames.Header, raw: bytes) -> str:
        totals = json.loads(self._small_payload(header, raw))
        if header.arg0 != self._frames:
            raise frames.FrameError(
                f"end of stream: source sent {header.arg0} frames, target got {self._frames}"
            )
        faults.data_point("target-before-ready", ram=self.ram, on_write=self.digest.written)
        missing = self._seen.count(0)
        if missing:
            raise frames.FrameError(f"{missing} pages were never sent")
        if self._vcpu is None:
            raise frames.FrameError("the vCPU state never arrived")
        self._verdict = self.digest.check(self.ram, totals, self._vcpu, self.compare_digests)
        if self.load_vcpu:
            self.hv.set_vcpu_state(self.name, self._vcpu)
        self._frames += 1
        self.channel.send(frames.READY, self._frames, self.page_count)
        self.channel.flush()
        return totals.get("switchover", "")

    def _small_payload(self, header: frames.Header, raw: bytes, limit: int = 1 << 20) -> bytes:
        if header.length > limit:
            raise frames.FrameError(f"{header.name} payload too large ({header.length} bytes)")
        buffer = bytearray(header.length)
        if header.length:
            self.channel.read_into(memoryview(buffer))
        frames.check_payload(raw, header, buffer, self.channel.checksum)
        return bytes(buffer)
