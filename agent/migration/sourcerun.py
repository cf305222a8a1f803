"""The Twisted driver of one outgoing migration: the source machine's effects (migration.md §2.3–§2.8).

:class:`SourceRun` opens the control channel (``peer.open_control``), turns each reply into a
machine input, runs the data plane in a thread for phases 3–4, changes the source domain
through the manager and the hypervisor, reports progress, and answers the ``migrate-domain``
request (``result``, a Deferred) when the operation ends. Unhappy paths are inputs too: a lost
channel is ``peer_lost``, a refused reply is ``failed``, a cancel is ``cancel``.
"""

from __future__ import annotations

import ssl as stdlib_ssl
import time
from dataclasses import replace

from twisted.internet import defer, threads
from twisted.logger import Logger

from agent.hypervisor.base import PAUSED, RUNNING
from agent.migration import checks, control, messages, phase1, source
from agent.migration.channel import connect as data_connect
from agent.migration import precopy
from agent.migration.dataplane import COMPRESSION_NONE, SourceEngine, StopSignal, TransferOptions
from agent.migration.faults import CUT, DROP, HOLD, HOLD_S
from agent.migration.journal import Record
from agent.migration.messages import lost
from agent.migration.peer import PeerError, open_control
from agent.migration.progress import SHARED_STATISTICS, Progress
from agent.xmlapi import messages as xml_messages

log = Logger()

SWITCHOVER_TIMEOUT_S = 10.0
# How long a lost data channel waits to learn whether the control channel went too (F12/F13).
DATA_LOSS_GRACE_S = 1.0
REPLY_TIMEOUT_S = 30.0
PREPARE_TIMEOUT_S = 120.0


def failed_summary(domain: str, dry_run: bool) -> str:
    return messages.would_fail(domain) if dry_run else messages.failed(domain)


class SourceRun:
    """One migration driven from this agent."""

    def __init__(self, svc, record: Record, request=None, live: bool = False,
                 requester=None) -> None:
        self.svc = svc
        self.record = record
        self.data = record.data
        self.domain: str = record.data["domain"]
        self.host: str = record.data["host"]
        self.target_name = ""  # the target's own server name, from its mig-hello answer
        self._password = (request.password or "") if request is not None else ""
        # The checks need the request's maps and options, never its password.
        self.request = replace(request, password=None) if request is not None else None
        self.source_results: list = []
        self.requester = requester
        self.result: defer.Deferred = defer.Deferred()
        self.conn = None
        self.stop = StopSignal()
        self.notes: list[str] = []
        self.progress = Progress(svc.publish, svc.server_name, role="source", domain=self.domain,
                                 peer=self.host, peer_ldom=record.data["tdomain"], mid=record.id,
                                 clock=svc.clock)
        self.core = source.SourceCore(svc.journal, record, self, live)
        self.machine = None
        self._resolving = False
        self._resolve_waiters: list[defer.Deferred] = []
        self._answered = False
        self._unresolved_timer = None
        self._ticker = None

    # -- starting -------------------------------------------------------------------------
    def start(self) -> defer.Deferred:
        self.machine = source.SourceMachine(self.core)
        d = open_control(self.svc.reactor, self.host, self.data["port"], self.data["user"],
                         self._password, keepalive=self.svc.keepalive,
                         **self.svc.control_auth(self.data))
        self._password = ""  # the channel has it now; resolution never needs it (§4.2)
        d.addCallbacks(self._connected, self._connect_failed)
        return self.result

    def resume_unresolved(self) -> None:
        """Restart path: a record past the point of no return without an answer (§9.3)."""
        self.machine = source.SourceMachine(self.core, source.state_for(self.record))
        self._answered = True  # nobody waits for a response after a restart
        self.set_flag("e")
        self.resolve()

    def _connected(self, conn) -> None:
        self.conn = conn
        conn.closed.addCallback(lambda _: self._channel_closed())
        self.machine.connected()

    def _connect_failed(self, failure) -> None:
        message = failure.value.args[0] if failure.check(PeerError) else str(failure.value)
        self.machine.failed([message])

    def _channel_closed(self) -> None:
        self.conn = None
        self.machine.peer_lost([lost(self.host)])

    # -- SourceEffects ----------------------------------------------------------------------
    def send(self, message: str, body: dict) -> None:
        body = {**self._body(message), **body}
        if self.conn is None:
            return  # nothing to tell: the channel is gone (mig-abort is best effort)
        document = control.encode_request(message, self.record.id, body)
        d = self.conn.request(document)
        self.fault(f"source-sent-{message}")  # F18, F40: the channel goes while we wait
        timeout = {"mig-prepare": PREPARE_TIMEOUT_S, "mig-commit": SWITCHOVER_TIMEOUT_S,
                   "mig-transfer-done": SWITCHOVER_TIMEOUT_S}.get(message, REPLY_TIMEOUT_S)
        d.addTimeout(timeout, self.svc.reactor)
        d.addCallbacks(lambda doc: self._reply(message, control.decode_reply(doc)),
                       lambda f: self._no_reply(message, f))
        if message == "mig-release":
            d.addBoth(lambda _: self._close_channel())

    def _body(self, message: str) -> dict:
        if message == "mig-hello":
            local = self.svc.host_facts()
            return {"host": local, "protocol": list(local["protocol"]),
                    "agent-version": local["agent-version"],
                    "dry-run": bool(self.data.get("dry_run"))}
        if message == "mig-check":
            local = self.svc.host_facts()
            return {"description": phase1.description(self.svc.manager, self.domain, local,
                                                      self.svc.guest_facts(self.domain, local)),
                    "request": self.data["view"]}
        if message == "mig-transfer-done":
            # What only the source knows of the switch-over, for the target's block (§10.10).
            return {"statistics": {k: self.progress.stats[k] for k in SHARED_STATISTICS
                                   if self.progress.stats.get(k) is not None}}
        if message == "mig-prepare":
            guest = self.svc.guest_facts(self.domain, self.svc.host_facts())
            return {"domain": self.svc.manager.export_domain(self.domain),
                    "legacy": bool(self.core.live and guest and checks.legacy_mode(guest)),
                    "tdomain": self.data["tdomain"], "source-ldom": self.domain,
                    "source-host": self.svc.server_name,
                    "state": self.data["state"], "guest": self.svc.guest_shape(self.domain),
                    "force": bool(self.data.get("force")), "streams": stream_count(self.data)}
        return {}

    def _reply(self, message: str, reply: control.Reply) -> None:
        m = self.machine
        if message == "mig-hello":
            return self._greeted(reply)
        if message == "mig-check":
            return self._checked(reply)
        if message == "mig-prepare":
            return m.prepared(reply.body) if reply.ok else m.failed(reply.lines)
        if message == "mig-transfer-done":
            return m.target_ready() if reply.ok else m.failed(reply.lines)
        if message == "mig-commit":
            if not reply.ok:
                return m.target_aborted(reply.lines)
            if reply.body.get("answer") == "committed":
                self.progress.stats["downtime"] = reply.body.get("downtime")
                return m.committed()
            return m.target_aborted([reply.body.get("error") or
                                     messages.resume_failed(self.data["tdomain"], self.host)])

    def _greeted(self, reply: control.Reply) -> None:
        """Stage 1 (``mig-hello``) and stage 2 (the source-side checks) of §6.0."""
        m = self.machine
        if not reply.ok:
            lines = reply.lines
            if lines and lines[0] == xml_messages.not_authorized("mig-hello", "write"):
                lines = [messages.target_user_unauthorized(self.data["user"], self.host)]
            return m.failed(lines)
        self.svc.journal.store_token(self.record.id, reply.body.pop("token"))
        target_host = reply.body.get("host") or {}
        self.target_name = target_host.get("server-name") or target_host.get("hostname") or ""
        local = self.svc.host_facts()
        lines = phase1.self_target(self.host, local["machine-id"], target_host.get("machine-id"))
        if lines:
            return m.failed(lines)
        # Before the flag: K03 must see the domain as it was when the request came (§6.16).
        self.source_results = phase1.source_results(
            self.svc.manager, self.domain, self.request, target_host,
            self.svc.guest_facts(self.domain, local))
        m.hello_answered(reply.body)
        force, dry = bool(self.data.get("force")), bool(self.data.get("dry_run"))
        if not dry and phase1.failed(self.source_results, force):
            _, failures, _ = phase1.report(self.source_results, [], self.domain, force, False)
            m.failed(failures)

    def _checked(self, reply: control.Reply) -> None:
        """Stage 3: the target-side checks, merged with ours in report order."""
        dry, force = bool(self.data.get("dry_run")), bool(self.data.get("force"))
        if not reply.ok:
            if dry:
                _, failures, notes = phase1.report(self.source_results, [], self.domain, force,
                                                   True)
                return self.machine.dry_run_ended(False, reply.lines + failures + notes)
            return self.machine.failed(reply.lines)
        ok, failures, self.notes = phase1.report(self.source_results,
                                                 reply.body.get("results", []), self.domain,
                                                 force, dry)
        if dry:
            return self.machine.dry_run_ended(ok, failures + self.notes)
        if not ok:
            return self.machine.failed(failures)
        self.machine.checks_passed()

    def _no_reply(self, message: str, failure) -> None:
        if failure.check(defer.TimeoutError, defer.CancelledError):
            log.warn("no reply to {message} from {host} in time", message=message, host=self.host)
            if self.conn is not None:
                self.conn.abort()  # the lost channel then feeds peer_lost
        # A broken channel is reported once, by _channel_closed.

    def _close_channel(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.closed.addCallback(lambda _: None)
            conn.close()

    def start_transfer(self, prepared: dict) -> None:
        self._ticker = self.svc.every_second(self.progress.tick)
        d = threads.deferToThreadPool(self.svc.reactor, self.svc.reactor.getThreadPool(),
                                      self._transfer, prepared)
        d.addCallbacks(self._transfer_ended, self._transfer_crashed)

    def _transfer(self, prepared: dict):
        """In the data-plane thread: connect with the one-time token and copy (phases 3–4)."""
        # One token per stream; a target that offers one stream sends only "data-token".
        tokens = prepared.get("data-tokens") or [prepared["data-token"]]
        channels = []
        try:
            for stream, token in enumerate(tokens):
                channels.append(data_connect(
                    self.host, prepared["data-port"], prepared["fingerprint"],
                    bytes.fromhex(token), self.svc.page_count(self.domain),
                    context=_client_context(), timeout=30.0, stream=stream,
                    streams=len(tokens)))
        except Exception:
            for channel in channels:
                channel.close()
            raise
        engine = SourceEngine(self.svc.hv, self.domain, channels, transfer_options(self.data),
                              self.stop, on_round=self._round_in_thread)
        return engine.run()

    def _round_in_thread(self, stats) -> None:
        if self.svc.faults.hit("source-round-hold") == HOLD:
            time.sleep(HOLD_S)  # a test's window for a cancel in phase 3 (F17)
        self.svc.reactor.callFromThread(self._round, stats)

    def _round(self, stats) -> None:
        values = stats.as_dict()
        total = (values["memory-processed"] or 0) + (values["memory-remaining"] or 0)
        share = 0 if not total else 85 * values["memory-processed"] // total
        self.progress.update(phase=3, percent=min(90, 5 + share), stats=_stats_only(values))
        action = self.svc.faults.hit("source-round")
        if action == CUT and self.conn is not None:
            self.conn.abort()

    def _transfer_ended(self, result) -> None:
        if result.ok:
            log.info("memory digest of {mid} at the suspend: {digest}", mid=self.record.id,
                     digest=result.memory_digest)
            self.progress.update(phase=4, percent=90,
                                 stats=_stats_only(result.statistics.as_dict()))
            self.machine.transferred()
        else:
            log.info("data plane of {mid} failed: {error}", mid=self.record.id, error=result.error)
            line = messages.transfer_failure(result.error or "", self.domain, self.host,
                                             self._guest_running(),
                                             self.data.get("tdomain", ""), self.target_name)
            if line == messages.data_lost(self.host):
                self._after_data_loss(line)
            else:
                self.machine.failed([line])

    def _after_data_loss(self, line: str) -> None:
        """A target agent that dies drops the data and the control connection together, and
        either loss may be noticed first. Only a data channel lost alone is the data-lost
        line (F12); when the control channel goes too, the lost-connection line of the peer
        loss decides (F13). So the data loss waits a moment for the control channel's fate."""

        def report() -> None:
            if source.state_name(self.machine) == "transferring":
                self.machine.failed([line])

        self.svc.reactor.callLater(DATA_LOSS_GRACE_S, report)

    def _guest_running(self) -> bool:
        try:
            return self.svc.hv.status(self.domain).state in (RUNNING, PAUSED)
        except Exception:  # no guest at all: it did not run on
            return False

    def _transfer_crashed(self, failure) -> None:
        log.info("data channel of {mid} could not be used: {why}", mid=self.record.id,
                 why=failure.getErrorMessage())
        self._after_data_loss(messages.data_lost(self.host))

    def stop_transfer(self) -> None:
        self.stop.abort()

    def set_flag(self, flag: str) -> None:
        self.svc.set_flag(self.domain, flag)

    def set_suspended(self, suspended: bool) -> None:
        self.svc.set_suspended(self.domain, suspended)

    def hold_devices(self) -> None:
        self.svc.hold_devices(self.domain)

    def give_back_devices(self) -> None:
        self.svc.give_back_devices(self.domain)

    def remove_copy(self) -> None:
        self.svc.remove_domain(self.domain, live=self.core.live)

    def report(self, phase: int, percent: int) -> None:
        if not self.progress.started:
            self.progress.start()
        self.progress.update(phase=phase, percent=percent)

    def finish(self, ok: bool, lines: list[str], outcome: str) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        if self._unresolved_timer is not None and self._unresolved_timer.active():
            self._unresolved_timer.cancel()
        if outcome != "dry-run":
            self.progress.final(ok, outcome, None if ok else (lines or [None])[0])
        if ok and outcome != "dry-run":
            # After the final progress event and before the response (ldm-xml §4.6, C172).
            self.svc.domain_event("migrate-domain", self.domain)
        waiters, self._resolve_waiters = self._resolve_waiters, []
        for waiter in waiters:
            waiter.callback(outcome)
        self.svc.ended(self)
        if outcome in ("completed", "resolved-completed"):
            self.svc.journal.drop_token(self.record.id)
        if outcome == "resolved-aborted" and not self._answered:
            lines = [lost(self.host), messages.restored(self.domain)]
        if outcome == "forced":
            lines = [messages.forced_restore(self.domain, self.host)]
        self._answer(ok, lines)
        if self.conn is not None and outcome not in ("completed",):
            self._close_channel()
        if outcome == "forced":
            self.confirm_forced()  # until the target answers (§9.4)

    def _answer(self, ok: bool, lines: list[str]) -> None:
        if self._answered:
            return
        self._answered = True
        dry = bool(self.data.get("dry_run"))
        if ok:
            self.result.callback((True, [ln for ln in lines if ln] or self.notes))
        elif dry:
            self.result.callback((False, [*lines, failed_summary(self.domain, dry)]))
        else:
            self.result.callback((False, [*lines, *self.notes, failed_summary(self.domain, dry)]))

    def fault(self, point: str) -> None:
        action = self.svc.faults.hit(point)
        if action in (CUT, DROP) and self.conn is not None:
            self.conn.abort()
        elif action == HOLD:
            time.sleep(HOLD_S)  # blocks this agent on purpose: a window for another party

    # -- the ambiguous window (§9.3) ----------------------------------------------------------
    def resolve(self) -> None:
        if self._unresolved_timer is None and not self._answered:
            self._unresolved_timer = self.svc.reactor.callLater(
                self.svc.resolve_wait, self._answer_unresolved)
        if not self._resolving:
            self._resolving = True
            self._attempt(0)

    def _answer_unresolved(self) -> None:
        # The series ends here with `failed` and outcome `unresolved` (§7.5); a later
        # resolution sends the one extra final event the spec allows.
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self.progress.final(False, "unresolved", messages.lost_contact(self.host))
        self._answer(False, messages.unresolved_lines(self.domain, self.host))

    def _ask_outcome(self, forced: bool = False) -> defer.Deferred:
        """One ``mig-outcome`` on a new session with the resolution token (§4.2); fires with
        the decoded reply. ``forced`` tells the target the source copy was restored (§9.4)."""
        token = self.svc.journal.load_token(self.record.id) or ""
        d = open_control(self.svc.reactor, self.host, self.data["port"],
                         f"migration/{self.record.id}", token, timeout=10.0,
                         **self.svc.control_auth(self.data))
        body = {"uuid": self.data.get("uuid"), **({"forced": True} if forced else {})}

        def ask(conn):
            q = conn.request(control.encode_request("mig-outcome", self.record.id, body))
            q.addTimeout(10.0, self.svc.reactor)
            q.addBoth(lambda r: (conn.close(), r)[1])
            return q

        return d.addCallback(ask).addCallback(control.decode_reply)

    def _attempt(self, index: int, reschedule: bool = True) -> None:
        if source.state_name(self.machine) != "unresolved":
            self._resolving = False
            return

        def answered(reply):
            answer = settle(reply)
            if answer is not None and source.state_name(self.machine) == "unresolved":
                self._resolving = False
                self.machine.outcome(answer)
            elif answer is None:
                self._no_answer(index, reschedule)

        self._ask_outcome().addCallbacks(answered, lambda f: self._no_answer(index, reschedule))

    # -- after a forced recovery (§9.4) -----------------------------------------------------
    def confirm_forced(self, index: int = 0) -> None:
        """Keep asking the target, on the §9.3 schedule, whether the forced choice was right."""

        def answered(reply):
            verdict = forced_verdict(reply)
            if verdict == "split-brain":
                self._split_brain()
            elif verdict == "confirmed":
                self.svc.journal.advance(self.record, "forced", confirmed=True)
                log.info("forced recovery of migration {mid} confirmed by {host}",
                         mid=self.record.id, host=self.host)
            else:
                retry(None)

        def retry(_):
            delay = (1, 2, 4, 8, 16, 30)[min(index, 5)] * self.svc.resolve_scale
            self.svc.reactor.callLater(delay, self.confirm_forced, index + 1)

        self._ask_outcome(forced=True).addCallbacks(answered, retry)

    def _split_brain(self) -> None:
        """Both copies ran (I1 broken by the operator's force): record, log, report (§9.4).
        Neither copy is stopped: the operator decides."""
        line = messages.split_brain(self.domain, self.host, self.data["tdomain"])
        log.critical("{line}", line=line)
        self.svc.journal.advance(self.record, "split-brain", outcome="split-brain", error=line)
        self.progress.final(False, "split-brain", line)  # the one extra final event (§7.5)
        self.svc.ended(self)

    def _no_answer(self, index: int, reschedule: bool) -> None:
        waiters, self._resolve_waiters = self._resolve_waiters, []
        for waiter in waiters:  # a waiter may end the migration (cancel -f): swap first
            waiter.callback(None)
        if reschedule:
            delay = (1, 2, 4, 8, 16, 30)[min(index, 5)] * self.svc.resolve_scale
            self.svc.reactor.callLater(delay, self._attempt, index + 1)

    def resolution_attempt(self) -> defer.Deferred:
        """One immediate attempt (cancel in the window, §8.4): fires with the outcome, or None."""
        d: defer.Deferred = defer.Deferred()
        self._resolve_waiters.append(d)
        self._attempt(0, reschedule=not self._resolving)
        self._resolving = True
        return d


def settle(reply: control.Reply) -> str | None:
    """The §9.3 table: what a ``mig-outcome`` answer means for the source, or None (keep asking)."""
    if not reply.ok:
        return None
    answer = reply.body.get("answer")
    if answer in ("committed", "aborted"):
        return answer
    state = reply.body.get("domain-state")
    if answer == "unknown" and state in ("active", "suspended"):
        return "committed"  # a domain with the UUID runs on the target
    if answer == "unknown" and state is None:
        return "aborted"  # no such domain on the target
    if answer == "unknown":
        log.critical("outcome of migration unknown and the target holds the domain {state}; "
                     "operator action needed", state=state)
    return None


def forced_verdict(reply: control.Reply) -> str | None:
    """§9.4: after a forced recovery, what a ``mig-outcome`` answer means: ``split-brain`` (the
    target's copy runs too), ``confirmed`` (the forced choice was right), or None (ask again)."""
    if not reply.ok:
        return None
    answer, state = reply.body.get("answer"), reply.body.get("domain-state")
    if answer == "committed" or (answer == "unknown" and state in ("active", "suspended")):
        return "split-brain"
    if answer in ("aborted", "unknown"):
        return "confirmed"
    return None


def transfer_options(data: dict) -> TransferOptions:
    """The data plane's options from the request's tuning operands (§5.3; this run only, M50)."""
    tuning = data.get("tuning") or {}
    defaults = data.get("data-defaults") or {}
    config = precopy.PrecopyConfig(
        downtime_budget_ms=float(tuning.get("max-downtime", 300)),
        max_rounds=int(tuning.get("max-rounds", 30)),
        timeout_s=float(tuning["timeout"]) if "timeout" in tuning else None,
        timeout_action=tuning.get("on-timeout", precopy.TIMEOUT_ABORT),
        auto_converge=tuning.get("auto-converge", "on") == "on",
        max_bandwidth=int(tuning.get("max-bandwidth", defaults.get("max-bandwidth", 0))))
    compression = tuning.get("compression", defaults.get("compression", COMPRESSION_NONE))
    return TransferOptions(precopy=config, compression=compression)


def stream_count(data: dict) -> int:
    """Data streams this source asks for (migration_parallel_streams, §10.1)."""
    return int((data.get("data-defaults") or {}).get("streams", 1))


def _client_context() -> stdlib_ssl.SSLContext:
    context = stdlib_ssl.SSLContext(stdlib_ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = stdlib_ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = stdlib_ssl.CERT_NONE  # the certificate is pinned by fingerprint
    return context


def _stats_only(values: dict) -> dict:
    """The data plane's statistics without its own role and status (the series has its own)."""
    return {k: v for k, v in values.items() if k not in ("role", "status")}
