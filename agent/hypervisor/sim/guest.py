"""A simulated guest: one process per domain, ``python -m agent.hypervisor.sim.guest DIR``.

The agent starts it in its own session (so it outlives an agent crash) and talks to it
over a Unix socket (``control``). The process maps the guest's RAM file and the shared
dirty bitmap, then runs one loop on its main thread: every millisecond of vCPU time it
records a heartbeat in the header page and writes the pages its workload is due, stamping
each (``oracle``) and updating the ledger. A second thread answers control requests.

One lock orders the two threads. The loop holds it for a whole tick (heartbeat and burst),
so a request that takes it — pause, dirty sync, get-vCPU — sees the writer between two
ticks, never in the middle of a page. Pause is therefore exact: it returns only after
clearing ``running`` under the lock, and the loop writes nothing while ``running`` is off.

Readiness: the process prints ``ready <pid>`` on stdout once it listens, or an error
message and exits 1; after ``ready`` its stdout and stderr go to ``guest.log``.
"""

from __future__ import annotations

import json
import mmap
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from agent.hypervisor.sim import layout, oracle, workload
from agent.hypervisor.sim.control import read_message, write_message
from agent.hypervisor.sim.vcpu import VcpuState

TICK_S = 0.001  # heartbeat_interval of spec/migration.md Appendix B
THROTTLE_PERIOD_NS = 10_000_000  # a throttled vCPU runs (100-p)% of each 10 ms
_DIR_CHECK_TICKS = 100


class Guest:
    """The state of one running guest process."""

    def __init__(self, guest_dir: Path) -> None:
        self.dir = guest_dir
        spec = json.loads((guest_dir / layout.SPEC_FILE).read_text())
        self.name = spec["name"]
        self.vcpus = spec["vcpus"]
        self.profile = workload.profile(spec["workload"])
        self.geo = layout.geometry_for(spec["memory_bytes"], spec["page_size"])
        self._ram_file = open(guest_dir / layout.RAM_FILE, "r+b")
        self._dirty_file = open(guest_dir / layout.DIRTY_FILE, "r+b")
        try:
            self.ram = memoryview(mmap.mmap(self._ram_file.fileno(), self.geo.memory_bytes))
            self.dirty = memoryview(mmap.mmap(self._dirty_file.fileno(), 0))
        except (OSError, ValueError) as exc:
            raise SystemExit(
                f"guest {self.name}: cannot map {self.geo.memory_bytes} bytes of memory: {exc}"
            ) from None
        self.bitmap_len = len(self.dirty) // 2
        self.ledger = oracle.ledger_view(self.ram, self.geo)
        self.words = self.ram.cast("Q")  # for reading page stamps without unpacking
        self.painter = oracle.PagePainter(self.geo.page_size)
        self.pacer = workload.Pacer(workload.pages_per_second(self.profile, self.geo.page_size))
        self.picker = workload.PagePicker(
            self.profile, self.geo.first_data_page, self.geo.data_pages, seed=os.getpid()
        )
        self.lock = threading.Lock()
        self.running = False
        self.booted = False
        self.parked = False  # the writer is held (verify in progress); heartbeat goes on
        self.throttle = 0
        self.corruption = ""
        self.quit = threading.Event()
        self.restored: VcpuState | None = None
        self._last_tick = 0.0
        self._resumed = False  # the next heartbeat is the first after a resume
        # The guest's time of day is the host's plus this offset (§10.8). A freshly booted
        # guest sets its own clock (here: a random offset within half an hour); a restored
        # one takes the offset from the vCPU state, which is how a migration preserves it.
        self.tod_offset_ns = 0

    # ---- the vCPU loop ------------------------------------------------------------------

    def run(self) -> None:
        """Tick until told to stop or until the state directory disappears."""
        next_tick = time.monotonic()
        ticks = 0
        while not self.quit.is_set():
            with self.lock:
                if self.running:
                    self._tick(time.monotonic_ns())
            ticks += 1
            if ticks % _DIR_CHECK_TICKS == 0 and not (self.dir / layout.SPEC_FILE).exists():
                return
            next_tick += TICK_S
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.monotonic()  # late (stalled): do not replay missed ticks

    def _tick(self, now_ns: int) -> None:
        now = now_ns / 1e9
        if self.throttle and now_ns % THROTTLE_PERIOD_NS >= (
            THROTTLE_PERIOD_NS * (100 - self.throttle) // 100
        ):
            self._last_tick = now  # the vCPU is held: no heartbeat, no writes, no credit
            return
        running_s = now - self._last_tick
        self._last_tick = now
        self._heartbeat(now_ns)
        if not self.parked and not self.corruption:
            self._write(self.pacer.due(running_s))

    def _heartbeat(self, now_ns: int) -> None:
        ram = self.ram
        last = layout.read_field(ram, "last_beat_ns")
        if last and now_ns - last > layout.read_field(ram, "longest_gap_ns"):
            layout.write_field(ram, "longest_gap_ns", now_ns - last)
            layout.write_field(ram, "longest_gap_end_ns", now_ns)
        if self._resumed:
            self._resumed = False
            layout.write_field(ram, "resume_gap_ns", now_ns - last if last else 0)
        layout.write_field(ram, "last_beat_ns", now_ns)
        layout.write_field(ram, "beats", layout.read_field(ram, "beats") + 1)
        layout.seal_header(ram)
        self.dirty[0] |= 1

    def _write(self, count: int) -> None:
        if count <= 0:
            return
        ram, ledger, dirty, words = self.ram, self.ledger, self.dirty, self.words
        paint = self.painter.paint
        words_per_page = self.geo.page_size // 8
        indexes = self.picker.pick(count)
        for done, index in enumerate(indexes):
            gen = ledger[index]
            # The guest's own check: the page must still hold its last write.
            word = index * words_per_page
            if gen and (words[word] != index or words[word + 1] != gen):
                self._found_corruption(index, gen)
                indexes, count = indexes[:done], done
                break
            paint(ram, index, gen + 1)
            ledger[index] = gen + 1
            # Bits are set after the data they cover and under the tick lock, so a dirty
            # sync (which takes the same lock) never falls between a write and its bit:
            # every page written before a sync is in that sync's bitmap, and one written
            # after it is in the next. A reader that copies a page while the writer
            # rewrites it is therefore always told about that page again later: no false
            # negatives. (Setting the bit first would be as safe under the lock, but not
            # without it; this order stays right if the lock is ever narrowed.)
            dirty[index >> 3] |= 1 << (index & 7)
        entries_per_page = self.geo.page_size // 4
        for page in {1 + index // entries_per_page for index in indexes}:
            dirty[page >> 3] |= 1 << (page & 7)  # the ledger pages written above
        layout.write_field(ram, "pages_written", layout.read_field(ram, "pages_written") + count)
        layout.seal_header(ram)
        dirty[0] |= 1

    def _found_corruption(self, index: int, gen: int) -> None:
        size = self.geo.page_size
        page = self.ram[index * size : (index + 1) * size].tobytes()
        self.corruption = oracle.page_problem(page, index, gen) or f"page {index} changed"

    # ---- requests from the agent (control thread) ---------------------------------------

    def handle(self, request: dict) -> dict:
        op = request.get("op")
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            return {"error": f"unknown request {op!r}"}
        return handler(request)

    def op_hello(self, request: dict) -> dict:
        return {"name": self.name, "pid": os.getpid()}

    def op_status(self, request: dict) -> dict:
        with self.lock:
            header = {f: layout.read_field(self.ram, f) for f in layout.HEADER_FIELDS}
            state = "running" if self.running else "paused"
        booted = layout.has_header(self.ram)
        return {
            "state": state,
            "pid": os.getpid(),
            "throttle": self.throttle,
            "corruption": self.corruption,
            "pages_written": header["pages_written"] if booted else 0,
            "longest_gap_ns": header["longest_gap_ns"] if booted else 0,
            "beats": header["beats"] if booted else 0,
            "resume_gap_ns": header["resume_gap_ns"] if booted else 0,
            "tod_offset_ns": self.tod_offset_ns,
        }

    def op_pause(self, request: dict) -> dict:
        with self.lock:
            self.running = False
        return {}

    def op_resume(self, request: dict) -> dict:
        with self.lock:
            if not self.booted:
                self._boot()
            self.running = True
            self._resumed = True
            self._last_tick = time.monotonic()
        return {}

    def op_throttle(self, request: dict) -> dict:
        percent = int(request["percent"])
        if not 0 <= percent <= 99:
            return {"error": f"throttle {percent}% is outside 0..99"}
        with self.lock:
            self.throttle = percent
        return {}

    def op_dirty(self, request: dict) -> dict:
        """Get-and-clear: copy the live bitmap to the snapshot half, then zero it."""
        half = self.bitmap_len
        with self.lock:
            self.dirty[half:] = self.dirty[:half]
            self.dirty[:half] = bytes(half)
        return {}

    def op_get_vcpu(self, request: dict) -> dict:
        # Taken between two ticks, so it matches memory at that instant; only a paused
        # guest keeps it matching (a running guest may be asked just for its size).
        with self.lock:
            return {"blob": self._vcpu_state().to_bytes().decode()}

    def op_suspend(self, request: dict) -> dict:
        """Pause, throttle 0, dirty get-and-clear and the vCPU state, all under one lock."""
        half = self.bitmap_len
        with self.lock:
            self.running = False
            self.throttle = 0
            self.dirty[half:] = self.dirty[:half]
            self.dirty[:half] = bytes(half)
            return {"blob": self._vcpu_state().to_bytes().decode()}

    def _vcpu_state(self) -> VcpuState:
        booted = layout.has_header(self.ram)
        return VcpuState(
            vcpus=self.vcpus,
            workload=self.profile.name,
            page_size=self.geo.page_size,
            npages=self.geo.npages,
            pages_written=layout.read_field(self.ram, "pages_written") if booted else 0,
            ledger_crc=oracle.ledger_crc(self.ram, self.geo),
            cursor=self.picker.cursor,
            tod_offset_ns=self.tod_offset_ns,
        )

    def op_set_vcpu(self, request: dict) -> dict:
        try:
            state = VcpuState.from_bytes(request["blob"].encode())
            state.check_fits(self.geo)
        except ValueError as exc:
            return {"error": str(exc)}
        with self.lock:
            if self.running:
                return {"error": f"guest {self.name} is running; vCPU state can only be set while paused"}
            self.restored = state
            self.booted = False  # the next resume boots from the restored state
        return {}

    def op_verify(self, request: dict) -> dict:
        with self.lock:
            self.parked = True
            header = self.ram[: self.geo.page_size].tobytes()
        try:
            # Only page 0 changes while parked (the heartbeat); judge the copy taken
            # under the lock together with the rest of memory as it stands.
            problem = oracle.verify_ram(self.ram, self.geo, header=header)
        finally:
            with self.lock:
                self.parked = False
        if problem and not self.corruption:
            self.corruption = problem
        return {"problem": problem}

    def op_stop(self, request: dict) -> dict:
        with self.lock:
            self.running = False
            self.quit.set()
        return {}

    def _boot(self) -> None:
        """Prepare memory on the first run: fresh, rebooted, or restored from a blob."""
        ram = self.ram
        if self.restored is not None:
            state, self.restored = self.restored, None
            self.picker.cursor = state.cursor % self.picker.size
            self.tod_offset_ns = state.tod_offset_ns
            written = layout.read_field(ram, "pages_written") if layout.has_header(ram) else 0
            crc = oracle.ledger_crc(ram, self.geo)
            if written != state.pages_written or crc != state.ledger_crc:
                self.corruption = (
                    f"restored memory does not match the vCPU state: {written} writes and "
                    f"ledger CRC {crc:#010x} in memory, {state.pages_written} and "
                    f"{state.ledger_crc:#010x} at suspend"
                )
        elif not layout.has_header(ram):
            layout.init_header(ram, self.geo)
            self.tod_offset_ns = _own_clock_offset()
        else:
            # A reboot on kept memory: the time spent stopped is not a pause.
            layout.write_field(ram, "last_beat_ns", 0)
            layout.seal_header(ram)
            self.tod_offset_ns = _own_clock_offset()
        self.dirty[0] |= 1
        self.booted = True


def _own_clock_offset() -> int:
    """The offset a booting guest's clock starts with: within ±30 min of the host's, in ns."""
    half_hour_ns = 1_800_000_000_000
    return int.from_bytes(os.urandom(8), "big") % (2 * half_hour_ns) - half_hour_ns


def serve(guest: Guest, listener: socket.socket) -> None:
    """Answer control requests, one connection at a time, until the guest quits."""
    listener.settimeout(0.05)
    while not guest.quit.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(5.0)
            try:
                request = read_message(conn)
                write_message(conn, guest.handle(request))
            except (OSError, ValueError):
                continue  # the agent went away mid-request; it will ask again


def main(argv: list[str]) -> int:
    guest_dir = Path(argv[0])
    start_paused = "--paused" in argv[1:]
    sys.setswitchinterval(0.0005)  # keep the heartbeat thread prompt while verify runs
    try:
        guest = Guest(guest_dir)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(layout.socket_name(guest_dir))
        listener.listen(16)
        pending = guest_dir / layout.PENDING_VCPU_FILE
        if pending.exists():
            guest.restored = VcpuState.from_bytes(pending.read_bytes())
            guest.restored.check_fits(guest.geo)
            pending.unlink()
        (guest_dir / layout.STOPPED_FILE).unlink(missing_ok=True)
        (guest_dir / layout.PID_FILE).write_text(f"{os.getpid()}\n")
        if not start_paused:
            guest.op_resume({})
    except (OSError, ValueError, KeyError) as exc:
        print(f"guest in {guest_dir}: {exc}", flush=True)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: guest.quit.set())
    print(f"ready {os.getpid()}", flush=True)
    log = os.open(guest_dir / layout.LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    server = threading.Thread(target=serve, args=(guest, listener), daemon=True)
    server.start()
    guest.run()
    guest.quit.set()
    server.join(timeout=1.0)  # let the answer to "stop" reach the agent
    if (guest_dir / layout.SPEC_FILE).exists():
        (guest_dir / layout.STOPPED_FILE).write_text("stopped on request\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
