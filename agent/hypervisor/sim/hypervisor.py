"""``SimHypervisor``: the agent's side of the simulated hypervisor.

Each guest lives in ``<state_dir>/<name>/``: ``spec.json``, the sparse RAM file, the
dirty bitmap file (live half written by the guest, snapshot half filled at each dirty
sync), ``pid``, and ``stopped`` once it ended on request. The guest process is the
agent's child while this agent runs, but in its own session, so it survives an agent
crash; a new ``SimHypervisor`` on the same directory finds it again (``reattach``).

A guest's state is derived, never stored by the agent: a guest process answering on its
socket reports running or paused; no process and a ``stopped`` marker (or no ``pid``
file at all) means stopped; a ``pid`` file without a live process or a marker means the
process died, which ``poll_dead`` reports once per death.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import select
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import agent
from agent.hypervisor import base
from agent.hypervisor.base import GuestSpec, GuestStatus, HypervisorError
from agent.hypervisor.sim import control, layout, oracle, workload
from agent.hypervisor.sim.digestlog import DigestKeeper, DigestLog
from agent.hypervisor.sim.layout import Geometry
from agent.hypervisor.sim.vcpu import VcpuState

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class SimHypervisor:
    """Simulated guests on one host, each a process, kept under ``state_dir``."""

    def __init__(self, state_dir: Path | str, page_size: int = base.PAGE_SIZE) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.page_size = page_size
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            probe = self.state_dir / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise HypervisorError(
                f"hypervisor state directory {self.state_dir} is not writable: {exc.strerror}"
            ) from None
        self._reported_dead: set[str] = set()
        self._sync_lock = threading.Lock()
        self._digests = DigestLog()
        # Keeps each running guest's §10.7 digest current from its start (digestlog).
        self._keeper = DigestKeeper(self.memory_digest)
        # One mapping of each guest's RAM per access mode, kept until the guest is
        # destroyed: unmapping a gigabyte takes this machine 0.3-0.8 s, which must not
        # land in a migration's switch-over, and a reused mapping needs no new page faults.
        self._maps: dict[tuple[str, bool], tuple[mmap.mmap, tuple[int, int]]] = {}
        self._maps_lock = threading.Lock()

    # ---- creation and processes ------------------------------------------------------

    def create(self, spec: GuestSpec) -> None:
        """Reserve a guest's memory (sparse, all zero) and record its spec; it is stopped."""
        if not _NAME.match(spec.name):
            raise HypervisorError(f"invalid guest name {spec.name!r}")
        self._forget_maps(spec.name)
        try:
            workload.profile(spec.workload)
            geo = layout.geometry_for(spec.memory_bytes, spec.page_size)
        except ValueError as exc:
            raise HypervisorError(f"cannot create guest {spec.name}: {exc}") from None
        if spec.vcpus < 1:
            raise HypervisorError(f"cannot create guest {spec.name}: it needs at least one vCPU")
        gdir = self._dir(spec.name)
        try:
            gdir.mkdir()
        except FileExistsError:
            raise HypervisorError(f"guest {spec.name} already exists") from None
        except OSError as exc:
            raise HypervisorError(f"cannot create guest {spec.name}: {exc.strerror}") from None
        try:
            _reserve(gdir / layout.RAM_FILE, geo.memory_bytes)
            # Live half then snapshot half, each rounded up to whole words.
            _reserve(gdir / layout.DIRTY_FILE, 2 * (-(-geo.bitmap_bytes // 8) * 8))
            tmp = gdir / (layout.SPEC_FILE + ".tmp")
            tmp.write_text(json.dumps(spec.__dict__))
            tmp.rename(gdir / layout.SPEC_FILE)  # a guest exists once its spec does
        except OSError as exc:
            shutil.rmtree(gdir, ignore_errors=True)
            raise HypervisorError(
                f"cannot reserve {spec.memory_bytes} bytes of memory for guest {spec.name}: "
                f"{exc.strerror or exc}"
            ) from None

    def start(self, name: str, paused: bool = False) -> None:
        """Start the guest's process; with ``paused`` its vCPUs wait for ``resume``."""
        gdir = self._existing(name)
        if self._live_pid(name) is not None:
            raise HypervisorError(f"guest {name} is already running")
        argv = [sys.executable, "-m", "agent.hypervisor.sim.guest", str(gdir)]
        if paused:
            argv.append("--paused")
        env = dict(os.environ)
        root = str(Path(agent.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        read_end, write_end = os.pipe()
        try:
            pid = os.posix_spawn(
                sys.executable,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, write_end, 1),
                    (os.POSIX_SPAWN_DUP2, write_end, 2),
                ],
                setsid=True,  # its own session: an agent crash or ^C does not reach it
            )
        finally:
            os.close(write_end)
        try:
            answer = _read_until_ready(read_end, START_TIMEOUT_S)
        finally:
            os.close(read_end)
        self._digests.forget(name)  # a new process: its memory is not followed any more
        if not answer.startswith("ready "):
            _kill_and_reap(pid)
            detail = answer.strip().splitlines()[-1] if answer.strip() else "no answer"
            raise HypervisorError(f"guest {name} failed to start: {detail}")
        self._reported_dead.discard(name)
        if not paused:  # a paused start is a migration target: its memory is not final yet
            self._keeper.follow(name)

    def stop(self, name: str, force: bool = False) -> None:
        """End the guest's process, keeping its memory; ``force`` kills it outright."""
        gdir = self._existing(name)
        self._keeper.unfollow(name)
        pid = self._live_pid(name)
        if pid is None:
            if self._state(name) == base.DEAD:
                (gdir / layout.STOPPED_FILE).write_text("dead guest stopped\n")
                return
            raise HypervisorError(f"guest {name} is not running")
        if not force:
            try:
                control.call(gdir, {"op": "stop"})
            except control.GuestGone:
                pass  # it was exiting already
            if _wait_gone(pid, STOP_TIMEOUT_S):
                return
        _kill_and_reap(pid)
        (gdir / layout.STOPPED_FILE).write_text("stopped by force\n")

    def destroy(self, name: str) -> None:
        """Kill the guest if it runs and remove all its files."""
        gdir = self._existing(name)
        pid = self._live_pid(name)
        if pid is not None:
            _kill_and_reap(pid)
        self._keeper.unfollow(name)
        shutil.rmtree(gdir)
        self._reported_dead.discard(name)
        self._digests.forget(name)
        self._forget_maps(name)

    def _forget_maps(self, name: str) -> None:
        with self._maps_lock:
            maps = [self._maps.pop((name, mode), None) for mode in (False, True)]
        for entry in maps:
            if entry is not None:
                try:
                    entry[0].close()
                except BufferError:
                    pass  # a view is still in use: unmapped when the last one goes

    # ---- run control -----------------------------------------------------------------

    def pause(self, name: str) -> None:
        """Hold every vCPU; on return no byte of guest memory changes until ``resume``."""
        self._call(name, {"op": "pause"})

    def resume(self, name: str) -> None:
        self._call(name, {"op": "resume"})
        self._keeper.follow(name)  # from a paused start (a migration target) on

    def throttle(self, name: str, percent: int) -> None:
        """Let the vCPUs run only (100 - percent)% of each 10 ms (0 <= percent <= 99)."""
        self._call(name, {"op": "throttle", "percent": int(percent)})

    def status(self, name: str) -> GuestStatus:
        gdir = self._existing(name)
        pid = self._live_pid(name)
        if pid is not None:
            try:
                reply = control.call(gdir, {"op": "status"})
                return GuestStatus(
                    name=name,
                    state=reply["state"],
                    pid=reply["pid"],
                    throttle_percent=reply["throttle"],
                    pages_written=reply["pages_written"],
                    corrupt=bool(reply["corruption"]),
                    longest_pause_ms=_pause_ms(reply["longest_gap_ns"]),
                    corruption=reply["corruption"],
                    heartbeats=reply["beats"],
                    resume_pause_ms=_pause_ms(reply["resume_gap_ns"]),
                    tod_offset_ns=reply.get("tod_offset_ns", 0),
                )
            except control.GuestGone:
                pass  # died between the two looks: report it as such below
        ram = self.map_ram(name)
        booted = layout.has_header(ram)
        field = (lambda f: layout.read_field(ram, f)) if booted else (lambda f: 0)
        return GuestStatus(
            name=name,
            state=self._state(name),
            pid=None,
            throttle_percent=0,
            pages_written=field("pages_written"),
            corrupt=False,
            longest_pause_ms=_pause_ms(field("longest_gap_ns")),
            heartbeats=field("beats"),
            resume_pause_ms=_pause_ms(field("resume_gap_ns")),
        )

    # ---- memory and state ------------------------------------------------------------

    def ram_file(self, name: str) -> str:
        """The path of the file that holds the guest's memory (for a helper process that
        reads it, like the target's digest process)."""
        return str(self._existing(name) / layout.RAM_FILE)

    def map_ram(self, name: str, writable: bool = False) -> memoryview:
        """The guest's memory, shared with the guest (writes through it are not logged)."""
        path = self._existing(name) / layout.RAM_FILE
        try:
            info = os.stat(path)
        except OSError as exc:
            raise HypervisorError(f"cannot map the memory of guest {name}: {exc}") from None
        identity = (info.st_dev, info.st_ino)  # another instance may have re-created it
        with self._maps_lock:
            entry = self._maps.get((name, writable))
            if entry is None or entry[0].closed or entry[1] != identity:
                try:
                    with open(path, "r+b" if writable else "rb") as f:
                        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
                        mapping = mmap.mmap(f.fileno(), 0, access=access)
                        identity = (os.fstat(f.fileno()).st_dev, os.fstat(f.fileno()).st_ino)
                except (OSError, ValueError) as exc:
                    raise HypervisorError(f"cannot map the memory of guest {name}: {exc}") from None
                entry = (mapping, identity)
                self._maps[(name, writable)] = entry
            return memoryview(entry[0])

    def get_and_clear_dirty(self, name: str) -> bytes:
        """Pages written since the last call, one bit each (``agent.hypervisor.pagescan``)."""
        return self._digests.sync(name, lambda: self._take_dirty(name))

    def memory_digest(self, name: str) -> bytes:
        """The guest's §10.7 memory digest now (exact while it is paused; ``digestlog``).

        The first call scans all of memory; later calls re-hash only the pages written
        since the previous call, so the read at suspend costs the last dirty set's hashes.
        """
        return self._digests.read(name, lambda: self._take_dirty(name),
                                  lambda: self.map_ram(name), self.page_size)

    def adopt_memory_digest(self, name: str, digest) -> None:
        """Take over the §10.7 page terms of a paused guest's memory from the data plane
        that wrote it (a migration target), instead of scanning it again at its resume.

        Optional capability; the caller vouches that ``digest`` matches memory now, while
        the guest is still paused. Bits already in its dirty log only cost a re-hash of
        those pages at the next read.
        """
        self._digests.adopt(name, self.map_ram(name), self.page_size, digest)

    def _take_dirty(self, name: str) -> bytes:
        gdir = self._existing(name)
        geo = self._geometry(name)
        with self._sync_lock, open(gdir / layout.DIRTY_FILE, "r+b") as f:
            shared = mmap.mmap(f.fileno(), 0)
            try:
                half = len(shared) // 2
                if self._live_pid(name) is not None:
                    self._call(name, {"op": "dirty"})  # the guest swaps under its lock
                else:
                    shared[half:] = shared[:half]  # no writer: nothing can race
                    shared[:half] = bytes(half)
                return shared[half : half + geo.bitmap_bytes]
            finally:
                shared.close()

    def suspend_for_switchover(self, name: str) -> tuple[bytes, bytes]:
        """Pause, end any throttle, and return the final dirty bitmap and the vCPU state.

        One round trip to the guest instead of three: the data plane's stop-and-copy
        (migration.md §2.7) is on the guest's downtime, and each request to a guest
        process costs a wake-up of that process. Optional capability: the data plane
        falls back to ``pause``, ``throttle``, ``get_and_clear_dirty`` and
        ``get_vcpu_state`` when a hypervisor lacks it.
        """
        gdir = self._existing(name)
        geo = self._geometry(name)
        blob: list[bytes] = []

        def fetch() -> bytes:
            with self._sync_lock, open(gdir / layout.DIRTY_FILE, "r+b") as f:
                shared = mmap.mmap(f.fileno(), 0)
                try:
                    reply = self._call(name, {"op": "suspend"})  # the guest swaps under its lock
                    blob.append(reply["blob"].encode())
                    half = len(shared) // 2
                    return shared[half : half + geo.bitmap_bytes]
                finally:
                    shared.close()

        # Through the digest log like every dirty sync: the final bits must reach the
        # §10.7 digest-dirty set (and any bits a digest read took must reach the copy).
        bitmap = self._digests.sync(name, fetch)
        return bitmap, blob[0]

    def get_vcpu_state(self, name: str) -> bytes:
        """The vCPU blob; it matches memory only while the guest stays paused."""
        return self._call(name, {"op": "get_vcpu"})["blob"].encode()

    def set_vcpu_state(self, name: str, blob: bytes) -> None:
        """Load a vCPU blob into a paused guest, or into a stopped one for its next start."""
        gdir = self._existing(name)
        if self._live_pid(name) is not None:
            self._call(name, {"op": "set_vcpu", "blob": blob.decode()})
            return
        try:
            VcpuState.from_bytes(blob).check_fits(self._geometry(name))
        except ValueError as exc:
            raise HypervisorError(f"guest {name}: {exc}") from None
        (gdir / layout.PENDING_VCPU_FILE).write_bytes(blob)

    def verify(self, name: str) -> str | None:
        """Run the integrity oracle over the guest's memory: the first problem, or None."""
        if self._live_pid(name) is not None:
            return self._call(name, {"op": "verify"}, timeout=300.0)["problem"]
        return oracle.verify_ram(self.map_ram(name), self._geometry(name))

    # ---- inventory -------------------------------------------------------------------

    def list(self) -> list[str]:
        return sorted(
            p.name for p in self.state_dir.iterdir() if (p / layout.SPEC_FILE).is_file()
        )

    def reattach(self) -> list[str]:
        """Find the guests whose processes still run (after an agent restart)."""
        return [name for name in self.list() if self._live_pid(name) is not None]

    def poll_dead(self) -> list[str]:
        """Guests whose process died since the last call (each death reported once)."""
        dead = []
        for name in self.list():
            if name not in self._reported_dead and self._died(name):
                self._reported_dead.add(name)
                dead.append(name)
        return dead

    def _died(self, name: str) -> bool:
        """A ``pid`` file, no live process and no ``stopped`` marker: the process died.

        Judged by the process alone, never by a control call: a live guest that is slow to
        answer, or drops one request, under load is not dead. Reporting it dead would make the
        agent turn its domain bound while the guest still runs (and a later migration of that
        bound domain would be a cold one, leaving the running guest behind on this host).
        """
        gdir = self._dir(name)
        return (self._live_pid(name) is None and (gdir / layout.PID_FILE).exists()
                and not (gdir / layout.STOPPED_FILE).exists())

    # ---- test hooks ------------------------------------------------------------------

    def inject_stall(self, name: str, seconds: float) -> float:
        """Freeze the guest process (SIGSTOP) for ``seconds``; return the measured stall."""
        pid = self._live_pid(name)
        if pid is None:
            raise HypervisorError(f"guest {name} is not running")
        os.kill(pid, signal.SIGSTOP)
        began = time.monotonic()
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
            ended = time.monotonic()
        return ended - began

    def pid(self, name: str) -> int | None:
        """The guest process id, or None when no process runs."""
        return self._live_pid(name)

    # ---- helpers ---------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self.state_dir / name

    def _existing(self, name: str) -> Path:
        gdir = self._dir(name)
        if not _NAME.match(name) or not (gdir / layout.SPEC_FILE).is_file():
            raise HypervisorError(f"no guest named {name!r}")
        return gdir

    def spec(self, name: str) -> GuestSpec:
        """The spec the guest was created with (its size, vCPUs, workload and page size)."""
        return GuestSpec(**json.loads((self._existing(name) / layout.SPEC_FILE).read_text()))

    def _geometry(self, name: str) -> Geometry:
        spec = json.loads((self._existing(name) / layout.SPEC_FILE).read_text())
        return layout.geometry_for(spec["memory_bytes"], spec["page_size"])

    def _call(self, name: str, request: dict, timeout: float = control.DEFAULT_TIMEOUT_S) -> dict:
        gdir = self._existing(name)
        try:
            return control.call(gdir, request, timeout)
        except control.GuestGone:
            raise HypervisorError(f"guest {name} is not running") from None

    def _live_pid(self, name: str) -> int | None:
        gdir = self._dir(name)
        try:
            pid = int((gdir / layout.PID_FILE).read_text())
        except (OSError, ValueError):
            return None
        return pid if _process_alive(pid, gdir) else None

    def _state(self, name: str) -> str:
        gdir = self._dir(name)
        if self._live_pid(name) is not None:
            try:
                return control.call(gdir, {"op": "status"})["state"]
            except control.GuestGone:
                pass  # died just now: judged by its files below
        if (gdir / layout.STOPPED_FILE).exists() or not (gdir / layout.PID_FILE).exists():
            return base.STOPPED
        return base.DEAD


def _reserve(path: Path, size: int) -> None:
    """Create a sparse file of ``size`` bytes and prove it can be mapped."""
    with open(path, "x+b") as f:
        f.truncate(size)
        try:
            mmap.mmap(f.fileno(), size).close()
        except (OSError, ValueError, OverflowError) as exc:
            raise OSError(f"cannot map {size} bytes: {exc}") from None


def _pause_ms(gap_ns: int) -> float:
    # The gap between two heartbeats includes one regular interval (spec §10.8).
    return max(0.0, gap_ns / 1e6 - 1.0)


def _read_until_ready(fd: int, timeout: float) -> str:
    """Collect the guest's first line (or everything it said before exiting)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data or not data.startswith(b"ready"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return data.decode(errors="replace") or "timed out waiting for the guest"
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def _process_alive(pid: int, gdir: Path) -> bool:
    """Whether ``pid`` is a live guest process for ``gdir`` (reaping it if it is our child)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False  # it had exited; now reaped
    except ChildProcessError:
        pass  # not our child (started by an earlier agent): look in /proc
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    # Guards against the pid having been reused by an unrelated process.
    return str(gdir).encode() in cmdline.split(b"\0")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_exists(pid):
            return True
        time.sleep(0.005)
    return False


def _pid_exists(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not _wait_gone(pid, STOP_TIMEOUT_S):
        raise HypervisorError(f"guest process {pid} did not die after SIGKILL")
