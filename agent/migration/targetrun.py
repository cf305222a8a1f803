"""The Twisted driver of one incoming migration: the target machine's effects (migration.md §2.5, §2.8).

:class:`TargetRun` answers the control messages of one migration id. It creates the receiving
domain at ``mig-prepare`` (flag ``t``; for a live migration a paused guest of the same size
and a one-time data token), waits for the data plane's verdict at ``mig-transfer-done``, and
feeds ``commit``, ``abort``, ``outcome`` and a lost control session to the target machine,
which journals each decision before the reply is written.
"""

from __future__ import annotations

import time

from twisted.internet import defer
from twisted.logger import Logger

from agent.hypervisor.base import OS_CAPABILITIES, PAGE_SIZE, GuestSpec
from agent.ldm import LdmError
from agent.migration import control, messages, target
from agent.migration.faults import DROP, FAIL, HOLD, HOLD_S, InjectedFailure
from agent.migration.journal import Record
from agent.migration.keepalive import Keepalive, watch
from agent.migration.progress import SHARED_STATISTICS, Progress

log = Logger()

TRANSFER_WAIT_S = 10.0
DOWNTIME_WAIT_S = 0.2  # how long the commit waits for the resumed guest's first heartbeat


def guest_spec(name: str, shape: dict) -> GuestSpec:
    """The receiving guest's spec from the source's ``guest`` shape (``mig-prepare``): the same
    size, vCPUs, workload and page size; an older source sends no workload or page size."""
    return GuestSpec(name, int(shape["memory"]), int(shape["vcpus"]),
                     workload=shape.get("workload", "idle"),
                     page_size=int(shape.get("page-size", PAGE_SIZE)),
                     os_capabilities=tuple(shape.get("os-capabilities", OS_CAPABILITIES)))


def guest_downtime(hv, name: str, beats_before: int | None,
                   wait_s: float = DOWNTIME_WAIT_S) -> float | None:
    """The downtime the resumed guest saw (§10.8), in ms, rounded to 0.01 ms; None if unknown.

    The heartbeat lives in guest memory and came over with it, so the first heartbeat after
    the resume measures the gap since the source's last one: the suspend, the final copy,
    the commit and the resume. We wait (briefly) for that first heartbeat to be recorded.
    """
    if beats_before is None:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            status = hv.status(name)
        except Exception:  # a measurement must never fail the commit
            return None
        if status.heartbeats > beats_before:
            return round(status.resume_pause_ms, 2)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.001)


def _heartbeats(hv, name: str) -> int | None:
    """The paused guest's heartbeat count before the resume, or None if it cannot be read."""
    try:
        return hv.status(name).heartbeats
    except Exception:
        return None


class TargetRun:
    """One migration received by this agent."""

    def __init__(self, svc, record: Record, session=None) -> None:
        self.svc = svc
        self.record = record
        self.session = session
        self.tdomain: str = record.data.get("tdomain", "")
        live = record.data.get("domain_state") == "active"
        self.core = target.TargetCore(svc.journal, record, self, live)
        start = None if record.state == "greeted" else target.STATE_BY_NAME[record.state]
        self.machine = (target.TargetMachine(self.core) if start is None
                        else target.TargetMachine(self.core, start))
        self.transfer: defer.Deferred = defer.Deferred()
        self.progress: Progress | None = None
        self.resume_error: str | None = None
        self.downtime: float | None = None  # ms, measured by the guest at its resume
        self._ticker = None  # the once-a-second progress LoopingCall while the run is open
        self._keepalive = None  # the keepalive watch on the source's control session (§9.1)
        self.reserved = ""  # the target name this run keeps from add-domain (§6.13)
        self._source_stats: dict = {}  # statistics the source sends with mig-transfer-done
        if session is not None:
            self._watch_source()

    # -- messages -------------------------------------------------------------------------
    def handle(self, message: str, body: dict):
        """Answer one control message: an ObjectResult, or a Deferred firing with one."""
        mid = self.record.id
        if message == "mig-check":
            results = self.svc.target_checks(body)
            self._reserve_name(body.get("request") or {}, results)
            return control.answer(mid, {"results": results})
        if message == "mig-prepare":
            return self._prepare(body)
        if message == "mig-transfer-done":
            self._source_stats = body.get("statistics") or {}
            d = self.transfer
            d.addTimeout(TRANSFER_WAIT_S, self.svc.reactor)
            return d.addCallbacks(self._transfer_done, self._transfer_missing)
        if message == "mig-commit":
            return self._commit()
        if message == "mig-abort":
            return control.answer(mid, {"answer": self.machine.abort()})
        if message == "mig-outcome":
            answer = self.machine.outcome()
            if body.get("forced") and answer == target.COMMITTED:
                # The source restored its copy by force while ours runs: a split brain (§9.4).
                log.critical("{line}", line=messages.split_brain_target(
                    self.tdomain, self.record.data.get("peer", ""),
                    self.record.data.get("peer_ldom", "")))
            return control.answer(mid, {"answer": answer})
        if message == "mig-release":
            if self.svc.faults.hit("target-release") == DROP:
                self.cut()
                return defer.Deferred()  # the release is lost with the connection (F39)
            self.svc.journal.advance(self.record, self.record.state, released=True)
            return control.answer(mid, {})
        return control.refusal([messages.unexpected_message(message)])

    def _reserve_name(self, request: dict, results: list[dict]) -> None:
        """A real run whose target checks passed keeps its target name until it ends (§6.13)."""
        force = bool(request.get("force"))
        failed = any(r["result"] == "fail" and not (force and r["overridable"]) for r in results)
        name = request.get("target-name") or ""
        if name and not failed and not request.get("dry-run") and \
                target.state_name(self.machine) == "greeted":
            self.reserved = name
            self.svc.manager.reserve_name(name, messages.name_reserved(name))

    def _release_name(self) -> None:
        if self.reserved:
            self.svc.manager.release_name(self.reserved)
            self.reserved = ""

    def _prepare(self, body: dict):
        if target.state_name(self.machine) != "greeted":
            return control.refusal([messages.already_prepared(self.record.id)])
        row, state, shape = body["domain"], body["state"], body.get("guest") or {}
        self.tdomain = body["tdomain"]
        self.svc.journal.advance(self.record, "greeted", tdomain=self.tdomain, domain_state=state,
                                 uuid=row.get("uuid"), peer_ldom=body.get("source-ldom", ""))
        self.core.live = state == "active"
        try:
            self.svc.manager.import_domain(row, self.tdomain, bind=state != "inactive",
                                           legacy=self.core.live and bool(body.get("legacy")))
        except LdmError as error:
            return control.refusal([str(error)])
        reply: dict = {}
        try:
            if self.core.live:
                self.svc.hv.create(guest_spec(self.tdomain, shape))
                self.svc.hv.start(self.tdomain, paused=True)
                # One token per data stream (§4.5); both sides offer 1 to 8 streams (§10.1).
                streams = max(1, min(int(body.get("streams", 1)), 8))
                tokens = self.svc.data_port.tokens.issue_streams(self.record.id, streams)
                reply = {"data-port": self.svc.data_port.port,
                         "fingerprint": self.svc.fingerprint,
                         "data-token": tokens[0].hex(), "data-tokens": [t.hex() for t in tokens]}
        except Exception as error:
            log.failure("receiving guest for {mid} could not be created", mid=self.record.id)
            self.record.data["domain_created"] = True
            self.machine.abort()
            return control.refusal([messages.not_created(self.tdomain, error)])
        self.progress = Progress(self.svc.publish, self.svc.server_name, role="target",
                                 domain=self.tdomain, peer=body.get("source-host", ""),
                                 peer_ldom=body.get("source-ldom", ""), mid=self.record.id,
                                 clock=self.svc.clock)
        self.machine.created({})
        return control.answer(self.record.id, reply)

    def _transfer_done(self, result):
        if isinstance(result, Exception) or not getattr(result, "ok", False):
            error = result if isinstance(result, Exception) else result.error
            log.info("incoming transfer {mid} failed: {error}", mid=self.record.id, error=error)
            self.machine.abort()
            return control.refusal([messages.verification_failed(self.tdomain,
                                                                 self.svc.server_name)])
        if self.progress is not None:
            stats = {k: v for k, v in result.statistics.as_dict().items()
                     if k not in ("role", "status")}
            # The budget and the last estimate are the source's (§10.10: "last value received").
            stats.update({k: v for k, v in self._source_stats.items()
                          if k in SHARED_STATISTICS})
            self.progress.update(phase=4, percent=95, stats=stats)
        self.machine.transfer_verified()
        return control.answer(self.record.id, {"ready": True})

    def _transfer_missing(self, failure):
        self.machine.abort()
        return control.refusal([messages.verification_failed(self.tdomain, self.svc.server_name)])

    def _commit(self):
        answer = self.machine.commit()
        body: dict = {"answer": answer}
        if answer == target.COMMITTED and self.downtime is not None:
            body["downtime"] = self.downtime  # the guest-observed switch-over gap (§10.8)
        if answer == target.ABORTED and self.resume_error:
            body["error"] = messages.resume_failed(self.tdomain, self.svc.server_name)
        if self.svc.faults.hit("target-commit-reply") == DROP:
            self.cut()
            return defer.Deferred()  # the reply is lost with the connection
        return control.answer(self.record.id, body)

    def transfer_result(self, result) -> None:
        if not self.transfer.called:
            self.transfer.callback(result)

    def _front_door(self):
        """The front-door connection that carries this run's control session, or None."""
        protocol = getattr(getattr(self.session, "sink", None), "_protocol", None)
        return protocol if hasattr(protocol, "last_received") else None

    def _watch_source(self) -> None:
        """Keepalives towards the source, and its silence as a lost session (§9.1, M98)."""
        protocol = self._front_door()
        keepalive = getattr(self.svc, "keepalive", None)
        if protocol is None or keepalive is None:
            return
        reactor = self.svc.reactor
        state = Keepalive(keepalive[0], keepalive[1], reactor.seconds())

        def refresh() -> bool:
            if target.state_name(self.machine) in ("committed", "aborted") or \
                    self._front_door() is None:
                return False  # the migration is no longer open, or the session is gone
            state.received(protocol.last_received)
            state.sent(protocol.last_sent)
            return True

        def silent() -> None:
            log.warn("no traffic from the source of {mid} for {s} s: session declared lost",
                     mid=self.record.id, s=state.silence_limit)
            protocol.transport.abortConnection()  # connectionLost then feeds session_lost

        self._keepalive = watch(reactor, state, protocol.send, silent, refresh=refresh)

    def session_lost(self) -> None:
        """The control session that carried ``mig-hello`` is gone (§9.2)."""
        self.machine.peer_lost()

    def cut(self) -> None:
        # Fault injection only: reach the connection behind the session's event sink.
        protocol = getattr(self.session.sink, "_protocol", None) if self.session else None
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            transport.abortConnection()

    # -- TargetEffects ------------------------------------------------------------------------
    def destroy_domain(self) -> None:
        self._release_name()
        if self.svc.data_port is not None:
            self.svc.data_port.tokens.revoke(self.record.id)
        self.svc.remove_domain(self.tdomain, live=True)
        self.svc.ended(self)

    def start_domain(self) -> None:
        try:
            if self.core.live:
                beats = _heartbeats(self.svc.hv, self.tdomain)
                self.fault("target-resume")
                self.svc.hv.resume(self.tdomain)
                self.downtime = guest_downtime(self.svc.hv, self.tdomain, beats)
                if self.progress is not None and self.downtime is not None:
                    self.progress.stats["downtime"] = self.downtime
                # Idempotent: a restart in ``committing`` may find the domain already marked.
                if self.svc.manager.summary(self.tdomain).state == "bound":
                    self.svc.manager.mark_running(self.tdomain)
        except Exception as error:
            self.resume_error = str(error)
            raise
        self.svc.set_flag(self.tdomain, "")

    def report(self, phase: int, percent: int, status: str) -> None:
        if status != "ongoing":
            self._release_name()  # the operation has ended
        if self.progress is None:
            if status == "done":  # a commit completed at restart: no series to end
                self.svc.domain_event("migrate-domain", self.tdomain)
            return
        if status == "ongoing":
            if not self.progress.started:
                self.progress.start()
                # At least one event a second while the migration runs (ldm-xml §4.6, C130).
                self._ticker = self.svc.every_second(self.progress.tick)
            self.progress.update(phase=phase, percent=percent)
        else:
            if self._ticker is not None:
                self._ticker.stop()
                self._ticker = None
            self.progress.final(status == "done", "completed" if status == "done" else "aborted")
            if status == "done":
                self.progress.phase = phase
                # The record has just become committed: the one domain event (§7.5, M86).
                self.svc.domain_event("migrate-domain", self.tdomain)
            self.svc.ended(self)

    def fault(self, point: str) -> None:
        action = self.svc.faults.hit(point, self.svc.hv)
        if action == HOLD:
            time.sleep(HOLD_S)  # the source waits for the reply meanwhile (a cancel window)
        elif action == FAIL:
            raise InjectedFailure(f"injected failure at {point}")
        elif action is not None:
            self.cut()
