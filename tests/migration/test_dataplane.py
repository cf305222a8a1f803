"""Source and target engines over real loopback TLS with an in-memory hypervisor.

Covers spec §10.2-§10.6 (M105, M106, M107, M109-M111, M118) and the issue's
acceptance: a corrupted frame fails the migration cleanly with the source untouched (the
frame checksum; §10.7's memory digest, M113, is in ``test_dataplane_digest.py``).
"""

import os
import threading
import time
import zlib

import pytest

from agent.migration import channel, dataplane, frames
from agent.migration.dataplane import SourceEngine, TargetEngine, TransferOptions
from agent.migration.precopy import PrecopyConfig

PAGE = 8192


class FakeGuest:
    def __init__(self, pages, vcpu=b"vcpu-state"):
        self.ram = bytearray(pages * PAGE)
        self.bitmap = bytearray((pages + 7) // 8)
        self.state = "running"
        self.vcpu = vcpu
        self.throttles = []
        self.loaded_vcpu = None
        self.on_sync = None  # called with (guest, sync_number) while the guest runs
        self.syncs = 0

    def write(self, page, data):
        self.ram[page * PAGE:(page + 1) * PAGE] = data
        self.bitmap[page // 8] |= 1 << (page % 8)


class FakeHypervisor:
    """The slice of the Hypervisor interface the data plane uses, over bytearrays."""

    page_size = PAGE

    def __init__(self):
        self.guests = {}

    def add(self, name, pages, **kw):
        self.guests[name] = FakeGuest(pages, **kw)
        return self.guests[name]

    def map_ram(self, name, writable=False):
        view = memoryview(self.guests[name].ram)
        return view if writable else view.toreadonly()

    def get_and_clear_dirty(self, name):
        guest = self.guests[name]
        if guest.on_sync and guest.state == "running":
            guest.on_sync(guest, guest.syncs)
        guest.syncs += 1
        out = bytes(guest.bitmap)
        guest.bitmap[:] = bytes(len(guest.bitmap))
        return out

    def pause(self, name):
        self.guests[name].state = "paused"

    def resume(self, name):
        self.guests[name].state = "running"

    def throttle(self, name, percent):
        self.guests[name].throttles.append(percent)

    def get_vcpu_state(self, name):
        return self.guests[name].vcpu

    def set_vcpu_state(self, name, blob):
        self.guests[name].loaded_vcpu = blob


def page_bytes(page, generation):
    seed = f"{page}:{generation}".encode()
    return (seed * (PAGE // len(seed) + 1))[:PAGE - 4] + zlib.crc32(seed).to_bytes(4, "big")


def random_page():
    return os.urandom(PAGE)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    cert, key, fp = channel.make_self_signed(str(tmp_path_factory.mktemp("tls")))
    return channel.server_context(cert, key), fp


def migrate(tls, source_hv, target_hv, options=None, source_channel_class=None, stop=None,
            on_round=None, streams=1, clock=None, sleep=None, name="g", compare=True):
    """Run both engines over loopback TLS with ``streams`` data connections, the target
    comparing the §10.7 digests or not; return (source result, target result)."""
    context, fp = tls
    tokens = [os.urandom(32) for _ in range(streams)]
    listener = channel.DataListener(context)
    pages = source_hv.map_ram(name).nbytes // source_hv.page_size
    box = {}

    def target_side():
        try:
            authorize = channel.token_checker(tokens)
            accepted = [listener.accept(authorize, timeout=10) for _ in range(streams)]
            accepted.sort(key=lambda pair: pair[1].stream)
            chans = [chan for chan, _ in accepted]
            box["target"] = TargetEngine(target_hv, name, chans, accepted[0][1],
                                         compare_digests=compare).run()
        except Exception as error:  # surfaced by the assertion below
            box["target_error"] = error

    thread = threading.Thread(target=target_side, daemon=True)
    thread.start()
    try:
        chans = [channel.connect("127.0.0.1", listener.port, fp, tokens[s], pages,
                                 stream=s, streams=streams) for s in range(streams)]
        if source_channel_class is not None:
            chans[-1].__class__ = source_channel_class
        extra = {k: v for k, v in (("clock", clock), ("sleep", sleep)) if v is not None}
        engine = SourceEngine(source_hv, name, chans, options, stop=stop, on_round=on_round,
                              **extra)
        result = engine.run()
        thread.join(timeout=60)
        assert not thread.is_alive(), "target engine did not finish"
    finally:
        listener.close()
    assert "target_error" not in box, box.get("target_error")
    return result, box["target"]


def make_pair(pages):
    src, dst = FakeHypervisor(), FakeHypervisor()
    guest = src.add("g", pages)
    dst.add("g", pages)
    return src, dst, guest


@pytest.mark.parametrize("streams", [1, 3])
def test_idle_guest_round_trip_copies_memory_and_skips_zero_pages(tls, streams):
    """M105: round 0 sends each non-zero page once; zero pages only as ZERO runs."""
    src, dst, guest = make_pair(1024)
    written = [0, 1, 2, 100, 101, 500, 1023]
    for page in written:
        guest.write(page, page_bytes(page, 1))
    result, received = migrate(tls, src, dst, streams=streams)
    assert result.ok and received.ok, (result.error, received.error)
    assert dst.guests["g"].ram == guest.ram
    assert result.switchover == "empty"
    stats = result.statistics
    assert stats.normal_pages == len(written)
    assert stats.constant_pages == 1024 - len(written)
    assert stats.transferred == len(written) * PAGE + len(guest.vcpu)
    assert stats.round == 1 and received.rounds == 1
    assert guest.state == "paused"  # left for the commit step to decide
    assert dst.guests["g"].loaded_vcpu == guest.vcpu


@pytest.mark.parametrize("streams", [1, 3])
def test_busy_guest_converges_and_target_equals_source_at_suspend(tls, streams):
    """M106: later rounds send the dirty set; the final memory matches page for page."""
    src, dst, guest = make_pair(2048)
    for page in range(2048):
        guest.write(page, random_page())

    def dirty_some(g, sync):
        for page in range(sync * 7 % 50, 2048, 97 + sync):
            g.write(page, page_bytes(page, sync + 2))
        if sync == 3:
            g.write(5, bytes(PAGE))  # a page that becomes zero must travel as ZERO

    guest.on_sync = dirty_some
    # A budget too small to be met until the dirty set is small, then met.
    options = TransferOptions(PrecopyConfig(downtime_budget_ms=0.5, max_rounds=8,
                                            timeout_action="force"))
    result, received = migrate(tls, src, dst, options, streams=streams)
    assert result.ok and received.ok, (result.error, received.error)
    assert dst.guests["g"].ram == guest.ram
    assert bytes(dst.guests["g"].ram[5 * PAGE:6 * PAGE]) == bytes(PAGE)
    assert result.statistics.round >= 2
    assert received.rounds == result.statistics.round


@pytest.mark.parametrize("streams", [1, 3])
def test_compressible_pages_travel_compressed_and_random_ones_raw(tls, streams):
    """M107: with zlib, compressible pages travel compressed and random ones raw; the
    compression-ratio statistic matches the bytes counted (§10.4)."""
    src, dst, guest = make_pair(512)
    for page in range(0, 256):
        guest.write(page, page_bytes(page, 1))  # repetitive: compresses well
    for page in range(256, 512):
        guest.write(page, random_page())
    options = TransferOptions(compression="zlib")
    result, received = migrate(tls, src, dst, options, streams=streams)
    assert result.ok and received.ok, (result.error, received.error)
    assert dst.guests["g"].ram == guest.ram
    stats = result.statistics
    assert stats.normal_bytes == 512 * PAGE
    assert 256 * PAGE < stats.transferred < 300 * PAGE
    assert stats.compression_ratio == pytest.approx(stats.transferred / stats.normal_bytes)


class CorruptingChannel(channel.DataChannel):
    """Flips one byte of the third PAGES payload after its checksum was computed."""

    pages_seen = 0

    def send(self, kind, arg0=0, arg1=0, payload=b"", flags=0):
        if kind == frames.PAGES:
            CorruptingChannel.pages_seen += 1
            if CorruptingChannel.pages_seen == 3:
                header = frames.encode_header(kind, self._send_seq, arg0, arg1, payload, flags,
                                              self.checksum)
                self._send_seq += 1
                bad = bytearray(payload)
                bad[100] ^= 0x40
                self.flush()
                self.sock.sendall(header + bytes(bad))
                return len(bad)
        return super().send(kind, arg0, arg1, payload, flags)


@pytest.mark.parametrize("streams", [1, 3])
def test_corrupted_frame_fails_the_migration_and_leaves_the_source_running(tls, streams):
    """Issue acceptance (frame checksum, not M113): the target detects the bad frame, the
    source is untouched."""
    src, dst, guest = make_pair(4096)
    for page in range(4096):
        guest.write(page, random_page())
    before = bytes(guest.ram)
    CorruptingChannel.pages_seen = 0
    result, received = migrate(tls, src, dst, source_channel_class=CorruptingChannel, streams=streams)
    assert not received.ok and "checksum mismatch" in received.error
    assert not result.ok and "checksum mismatch" in result.error
    assert guest.state == "running"
    assert bytes(guest.ram) == before
    assert result.statistics.status == "failed"
    assert dst.guests["g"].loaded_vcpu is None


@pytest.mark.parametrize("streams", [1, 3])
def test_cancel_during_precopy_resumes_nothing_and_keeps_the_source_running(tls, streams):
    src, dst, guest = make_pair(1024)
    for page in range(1024):
        guest.write(page, random_page())
    stop = dataplane.StopSignal()
    guest.on_sync = lambda g, sync: [g.write(p, random_page()) for p in range(0, 1024, 2)]
    options = TransferOptions(PrecopyConfig(downtime_budget_ms=0.01, auto_converge=False))

    def on_round(stats):
        if stats.round == 2:
            stop.abort()

    result, received = migrate(tls, src, dst, options, stop=stop, on_round=on_round, streams=streams)
    assert not result.ok and result.error == "the migration was cancelled"
    assert not received.ok and "source aborted" in received.error
    assert guest.state == "running"


def test_finish_signal_forces_the_switch_over(tls):
    src, dst, guest = make_pair(1024)
    guest.on_sync = lambda g, sync: [g.write(p, random_page()) for p in range(0, 1024, 2)]
    stop = dataplane.StopSignal()
    options = TransferOptions(PrecopyConfig(downtime_budget_ms=0.01, auto_converge=False))

    def on_round(stats):
        if stats.round == 3:
            stop.finish()

    result, received = migrate(tls, src, dst, options, stop=stop, on_round=on_round)
    assert result.ok and result.switchover == "forced"
    assert result.statistics.round == 3
    assert dst.guests["g"].ram == guest.ram


@pytest.mark.parametrize("streams", [1, 3])
def test_non_converging_guest_is_throttled_then_aborted_at_the_round_cap(tls, streams):
    """M110, M111: throttle steps reach the hypervisor; abort removes the throttle."""
    src, dst, guest = make_pair(512)
    guest.on_sync = lambda g, sync: [g.write(p, random_page()) for p in range(512)]
    options = TransferOptions(PrecopyConfig(downtime_budget_ms=0.01, max_rounds=8))
    result, received = migrate(tls, src, dst, options, streams=streams)
    assert not result.ok
    assert result.error == "Migration of domain g did not converge: the limit of 8 rounds was reached"
    assert guest.throttles[:3] == [20, 30, 40]
    assert guest.throttles[-1] == 0
    assert guest.state == "running"
    assert not received.ok


def test_non_converging_guest_with_force_switches_over_unthrottled(tls):
    src, dst, guest = make_pair(512)
    guest.on_sync = lambda g, sync: [g.write(p, random_page()) for p in range(512)]
    options = TransferOptions(PrecopyConfig(downtime_budget_ms=0.01, max_rounds=5,
                                            timeout_action="force"))
    result, received = migrate(tls, src, dst, options)
    assert result.ok and received.ok
    assert result.switchover == "forced" and received.switchover == "forced"
    assert guest.throttles[-1] == 0  # the throttle ends at the suspend
    assert dst.guests["g"].ram == guest.ram


@pytest.mark.parametrize("streams", [1, 3])
def test_statistics_stay_consistent_at_every_round(tls, streams):
    """M118: data-total = processed + remaining; memory-total constant; rounds counted."""
    src, dst, guest = make_pair(1024)
    for page in range(0, 1024, 3):
        guest.write(page, random_page())
    guest.on_sync = lambda g, sync: [g.write(p, random_page()) for p in range(sync, 300, 5)]
    seen = []
    options = TransferOptions(PrecopyConfig(downtime_budget_ms=0.01, max_rounds=4,
                                            timeout_action="force"))
    result, _ = migrate(tls, src, dst, options, on_round=seen.append, streams=streams)
    assert result.ok
    for stats in seen + [result.statistics]:
        assert stats.data_total == stats.data_processed + stats.data_remaining
        assert stats.memory_total == 1024 * PAGE
    assert [s.round for s in seen] == [1, 2, 3, 4]
    assert seen[0].memory_remaining == (len(range(0, 300, 5))) * PAGE
    assert result.statistics.memory_remaining == 0
    assert result.statistics.data_remaining == 0


def test_target_refuses_a_source_of_a_different_size(tls):
    src, dst = FakeHypervisor(), FakeHypervisor()
    src.add("g", 64)
    dst.add("g", 128)
    result, received = migrate(tls, src, dst)
    assert not received.ok and "64 pages" in received.error
    assert not result.ok and src.guests["g"].state == "running"


@pytest.mark.parametrize("streams", [1, 3])
def test_holes_reported_by_the_hypervisor_travel_as_zero_runs(tls, streams):
    """With memory_extents, round 0 sends known holes as ZERO runs; the copy stays exact."""
    src, dst, guest = make_pair(1024)
    for page in (3, 4, 800):
        guest.write(page, random_page())
    asked = []

    def memory_extents(name):
        asked.append(name)
        return [(0, 8), (800, 1)]

    src.memory_extents = memory_extents
    result, received = migrate(tls, src, dst, streams=streams)
    assert result.ok and received.ok
    assert asked == ["g"]
    assert dst.guests["g"].ram == guest.ram
    assert result.statistics.constant_pages == 1024 - 3


class ConcurrentWriter:
    """A guest vCPU in a thread: rewrites pages continuously until paused."""

    def __init__(self, hv, name, pages):
        self.guest = hv.guests[name]
        self.lock = threading.Lock()
        self.pages = pages
        self.done = threading.Event()
        self.writes = 0
        original_pause, original_sync = hv.pause, hv.get_and_clear_dirty

        def pause(n):
            with self.lock:  # on return no byte changes until resume
                original_pause(n)

        def sync(n):
            with self.lock:
                return original_sync(n)

        hv.pause, hv.get_and_clear_dirty = pause, sync
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        page = 0
        while not self.done.is_set():
            with self.lock:
                if self.guest.state == "running":
                    stamp = self.writes.to_bytes(8, "little")
                    for offset in range(0, PAGE, 512):  # a write that spans the whole page
                        self.guest.ram[page * PAGE + offset:page * PAGE + offset + 8] = stamp
                    self.guest.bitmap[page // 8] |= 1 << (page % 8)
                    self.writes += 1
            page = (page * 7 + 13) % self.pages
            if not page % 16:
                # Let the engines' threads have the GIL: a loop that never sleeps keeps it
                # for the whole switch interval (5 ms) each time one of them gives it up
                # for I/O, and the transfer then took 1 to 4 minutes instead of seconds.
                time.sleep(0.0002)


@pytest.mark.parametrize("streams", [1, 3])
def test_pages_written_while_they_are_sent_arrive_intact(tls, streams):
    """Pages change under the sender; checksums still match and the copy is exact."""
    src, dst, guest = make_pair(4096)
    for page in range(4096):
        guest.write(page, random_page())
    writer = ConcurrentWriter(src, "g", 4096)
    writer.thread.start()
    try:
        options = TransferOptions(PrecopyConfig(downtime_budget_ms=50, max_rounds=10,
                                                timeout_action="force"))
        result, received = migrate(tls, src, dst, options, streams=streams)
    finally:
        writer.done.set()
        writer.thread.join(timeout=5)
    assert result.ok and received.ok, (result.error, received.error)
    assert writer.writes > 0
    assert dst.guests["g"].ram == guest.ram


def test_prepare_target_memory_keeps_it_zero_and_mapped(tmp_path):
    import mmap
    path = tmp_path / "ram"
    path.write_bytes(b"")
    with open(path, "r+b") as f:
        f.truncate(64 * PAGE)
        view = memoryview(mmap.mmap(f.fileno(), 0))
    dataplane.prepare_target_memory(view)
    assert bytes(view) == bytes(64 * PAGE)
    assert os.stat(path).st_blocks * 512 >= 64 * PAGE  # the pages are backed now
    dataplane.prepare_target_memory(memoryview(bytearray(3 * PAGE)))  # no madvise: fallback


class RecordingChannel(channel.DataChannel):
    """Remembers the page indexes each PAGES and ZERO frame of this stream covered."""

    def send(self, kind, arg0=0, arg1=0, payload=b"", flags=0):
        if kind in (frames.PAGES, frames.ZERO):
            stride = self.recorded_streams
            self.recorded.extend(range(arg0, arg0 + arg1 * stride, stride))
        return super().send(kind, arg0, arg1, payload, flags)


def test_page_i_travels_on_stream_i_mod_n(tls):
    """M108, §10.1: with N streams every page travels on stream i mod N, and the copy is exact."""
    src, dst, guest = make_pair(700)
    for page in list(range(0, 300)) + [301, 303, 650]:
        guest.write(page, random_page())
    guest.on_sync = lambda g, sync: [g.write(p, random_page()) for p in range(sync, 700, 37)]
    created = []
    original_connect = channel.connect

    def recording_connect(*args, **kwargs):
        chan = original_connect(*args, **kwargs)
        chan.__class__ = RecordingChannel
        chan.recorded, chan.recorded_streams = [], kwargs["streams"]
        created.append((kwargs["stream"], chan))
        return chan

    channel.connect = recording_connect
    try:
        options = TransferOptions(PrecopyConfig(downtime_budget_ms=0.01, max_rounds=3,
                                                timeout_action="force"))
        result, received = migrate(tls, src, dst, options, streams=4)
    finally:
        channel.connect = original_connect
    assert result.ok and received.ok, (result.error, received.error)
    assert dst.guests["g"].ram == guest.ram
    for stream, chan in created:
        assert chan.recorded and all(page % 4 == stream for page in chan.recorded)
    assert sorted({p for _, c in created for p in c.recorded}) == list(range(700))


class LaggingChannel(channel.DataChannel):
    """A slow stream: sleeps before some of its frames, so the streams interleave unevenly."""

    sent = 0

    def send(self, kind, arg0=0, arg1=0, payload=b"", flags=0):
        LaggingChannel.sent += 1
        if LaggingChannel.sent % 5 == 0:
            time.sleep(0.002)
        return super().send(kind, arg0, arg1, payload, flags)


def test_a_lagging_stream_does_not_change_the_final_memory(tls):
    """M108: one stream far behind the others; pages rewritten every round; exact copy."""
    src, dst, guest = make_pair(1536)
    for page in range(1536):
        guest.write(page, random_page())

    def rewrite(g, sync):
        for page in range(sync % 3, 1536, 3):
            g.write(page, page_bytes(page, sync + 2) if page % 2 else bytes(PAGE))

    guest.on_sync = rewrite
    options = TransferOptions(PrecopyConfig(downtime_budget_ms=0.01, max_rounds=4,
                                            timeout_action="force"))
    result, received = migrate(tls, src, dst, options, source_channel_class=LaggingChannel,
                               streams=3)
    assert result.ok and received.ok, (result.error, received.error)
    assert dst.guests["g"].ram == guest.ram
    assert received.rounds == result.statistics.round == 4


def test_compressed_pages_on_several_streams_arrive_intact(tls):
    """M107 with M108: zlib payloads are per frame and per stream."""
    src, dst, guest = make_pair(600)
    for page in range(600):
        guest.write(page, page_bytes(page, 1) if page % 3 else random_page())
    result, received = migrate(tls, src, dst, TransferOptions(compression="zlib"), streams=2)
    assert result.ok and received.ok, (result.error, received.error)
    assert dst.guests["g"].ram == guest.ram
    stats = result.statistics
    assert stats.compression == "zlib"
    assert stats.transferred < stats.normal_bytes
    assert stats.compression_ratio == pytest.approx(stats.transferred / stats.normal_bytes)


class GarblingChannel(channel.DataChannel):
    """Sends a compressed PAGES frame whose payload is not zlib data (checksum valid)."""

    def send(self, kind, arg0=0, arg1=0, payload=b"", flags=0):
        if kind == frames.PAGES and flags:
            payload = b"not zlib at all" * 10
        return super().send(kind, arg0, arg1, payload, flags)


def test_undecodable_compressed_payload_is_a_data_error(tls):
    """§10.4: a payload the target cannot decompress fails the transfer; the source runs on."""
    src, dst, guest = make_pair(64)
    for page in range(64):
        guest.write(page, page_bytes(page, 1))
    result, received = migrate(tls, src, dst, TransferOptions(compression="zlib"),
                               source_channel_class=GarblingChannel)
    assert not received.ok and "compressed pages" in received.error
    assert not result.ok and guest.state == "running"


def test_bandwidth_cap_paces_the_real_transfer(tls):
    """M112 (integration, generous tolerance): a 2 MiB/s cap over ~1.5 MiB of pages takes
    about 0.75 s and never runs ahead of the cap by more than one frame."""
    src, dst, guest = make_pair(192)
    for page in range(192):
        guest.write(page, random_page())
    cap = 2 * 1024 * 1024
    options = TransferOptions(PrecopyConfig(max_bandwidth=cap))
    started = time.monotonic()
    result, received = migrate(tls, src, dst, options, streams=2)
    elapsed = time.monotonic() - started
    assert result.ok and received.ok, (result.error, received.error)
    assert dst.guests["g"].ram == guest.ram
    sent = result.statistics.transferred
    assert sent / cap * 0.9 <= elapsed < sent / cap * 3 + 2.0


def test_one_round_trip_suspend_is_used_when_the_hypervisor_offers_it(tls):
    """§2.7: with suspend_for_switchover the stop-and-copy asks the hypervisor once (pause,
    throttle off, final dirty set, vCPU state); the copy is exact and the target gets the
    state taken at the suspend."""
    src, dst, guest = make_pair(512)
    for page in range(512):
        guest.write(page, random_page())
    guest.on_sync = lambda g, sync: [g.write(p, random_page()) for p in range(sync, 512, 9)]
    calls = []

    def suspend_for_switchover(name):
        calls.append(name)
        g = src.guests[name]
        g.state = "paused"
        g.throttles.append(0)
        g.vcpu = b"state-at-suspend"
        out = bytes(g.bitmap)
        g.bitmap[:] = bytes(len(g.bitmap))
        return out, g.vcpu

    src.suspend_for_switchover = suspend_for_switchover
    src.pause = None  # the separate pause path would fail loudly
    options = TransferOptions(PrecopyConfig(downtime_budget_ms=0.01, max_rounds=3,
                                            timeout_action="force"))
    result, received = migrate(tls, src, dst, options)
    assert result.ok and received.ok, (result.error, received.error)
    assert calls == ["g"]
    assert dst.guests["g"].ram == guest.ram
    assert dst.guests["g"].loaded_vcpu == b"state-at-suspend"
    assert result.final_pages > 0


class WrongStreamChannel(channel.DataChannel):
    """Puts stream 1's first PAGES frame on an even page (stream 0's)."""

    def send(self, kind, arg0=0, arg1=0, payload=b"", flags=0):
        if kind == frames.PAGES and arg0 % 2:
            arg0 -= 1
        return super().send(kind, arg0, arg1, payload, flags)


def test_a_page_on_the_wrong_stream_fails_the_transfer(tls):
    """M108, §10.1: the target refuses a page that is not on stream i mod N; the source
    guest keeps running."""
    src, dst, guest = make_pair(256)
    for page in range(256):
        guest.write(page, random_page())
    result, received = migrate(tls, src, dst, source_channel_class=WrongStreamChannel,
                               streams=2)
    assert not received.ok and "on stream 1" in received.error
    assert not result.ok and guest.state == "running"


@pytest.mark.parametrize("streams", [1, 2])
def test_engines_let_go_of_guest_memory_without_the_garbage_collector(tls, streams):
    """Each engine maps a guest's RAM; a reference cycle would keep gigabytes mapped until
    the cyclic collector happened to run (the data port serves one migration after another)."""
    import gc
    import weakref

    src, dst, guest = make_pair(64)
    guest.write(3, random_page())
    made = []
    original_target, original_source = TargetEngine.__init__, SourceEngine.__init__

    def track_target(self, *args, **kwargs):
        original_target(self, *args, **kwargs)
        made.append(weakref.ref(self))

    def track_source(self, *args, **kwargs):
        original_source(self, *args, **kwargs)
        made.append(weakref.ref(self))

    gc.disable()
    TargetEngine.__init__, SourceEngine.__init__ = track_target, track_source
    try:
        result, received = migrate(tls, src, dst, streams=streams)
        assert result.ok and received.ok
        del result, received
        assert len(made) == 2 and [ref() for ref in made] == [None, None]
    finally:
        TargetEngine.__init__, SourceEngine.__init__ = original_target, original_source
        gc.enable()


def test_target_backs_only_the_2mib_regions_that_receive_pages(tmp_path):
    """The target maps receiving memory in 2 MiB chunks before writing them, and only
    where data lands: a mostly-zero guest stays sparse."""
    import mmap
    path = tmp_path / "ram"
    with open(path, "wb") as f:
        f.truncate(2048 * PAGE)  # 16 MiB, sparse
    with open(path, "r+b") as f:
        ram = memoryview(mmap.mmap(f.fileno(), 0))
    backer = dataplane._Backer(ram, PAGE)
    backer.back(300, 1)  # page 300 lies in chunk 1 (pages 256..511)
    blocks = os.stat(path).st_blocks * 512
    if blocks == 0:
        pytest.skip("this kernel has no MADV_POPULATE_WRITE (Linux 5.14+)")
    assert blocks == 256 * PAGE  # exactly one 2 MiB chunk
    backer.back(256, 256)  # the same chunk again: nothing more
    backer.back(511, 2)  # crosses into chunk 2
    assert os.stat(path).st_blocks * 512 == 2 * 256 * PAGE
    assert bytes(ram) == bytes(2048 * PAGE)  # backing memory does not change its content
