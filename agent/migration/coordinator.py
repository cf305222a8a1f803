"""All migrations of one agent: intake, incoming control messages, cancel, restart recovery.

:class:`Migrations` is the object the action handlers talk to. It owns the journal, the data
port, the outgoing runs (:class:`~agent.migration.sourcerun.SourceRun`, one per domain) and
the incoming runs (:class:`~agent.migration.targetrun.TargetRun`, one per migration id), and
the small domain operations both sides share (flags, suspend, removal, events). At start it
finishes every open record without operator action (§9.2, §9.3): a source record before the
point of no return is aborted and its domain restored; one past it goes back to resolution;
a target record without a commit is aborted; one in ``committing`` completes its resume.
"""

from __future__ import annotations

import secrets
import ssl as stdlib_ssl
import time
import uuid

from twisted.internet import defer, task
from twisted.logger import Logger

from agent.ldm import LdmError
from agent.migration import control, describe, messages, phase1, source, target
from agent.migration.channel import fingerprint
from agent.migration.faults import Faults
from agent.migration.request import MigrationRequest
from agent.migration.journal import (SOURCE, TARGET, Journal, JournalError, Record, token_digest,
                                     token_matches)
from agent.migration.sourcerun import SourceRun
from agent.migration.targetrun import TargetRun
from agent.xmlapi import messages as xml_messages
from agent.xmlapi import resources

log = Logger()

DEFAULT_PORT = 6482


class Migrations:
    """The migration room's face towards the rest of the agent."""

    def __init__(self, *, reactor, manager, hypervisor, journal: Journal, server_name: str,
                 publish, cert_file: str | None = None, faults: Faults | None = None,
                 clock=time.monotonic, resolve_wait: float = 30.0, resolve_scale: float = 1.0,
                 cancel_on_client_loss: bool = True, incoming_enabled: bool = True,
                 outgoing_enabled: bool = True, max_concurrent: int = 1,
                 keepalive: tuple[float, int] = (5.0, 3), peer_trust=None,
                 record_retention: float = 7 * 86400.0,
                 data_defaults: dict | None = None) -> None:
        self.reactor = reactor
        self.manager = manager
        self.hv = hypervisor
        self.journal = journal
        self.server_name = server_name
        self.publish = publish
        self.faults = faults or Faults()
        self.clock = clock
        self.resolve_wait = resolve_wait
        self.resolve_scale = resolve_scale
        self.cancel_on_client_loss = cancel_on_client_loss
        self.incoming_enabled = incoming_enabled  # incoming_migration_enabled (§4.3)
        self.outgoing_enabled = outgoing_enabled  # outgoing_migration_enabled (§2.3)
        self.max_concurrent = max_concurrent  # migration_max_concurrent (§2.13)
        # migration_keepalive_interval (s) and _count (§9.1): both sides send keepalives on
        # the control channel and count interval × count of silence as a lost peer.
        self.keepalive = keepalive
        # PeerTrust: target-certificate checks (§4.4) and our certificate for -c (§4.1).
        self.peer_trust = peer_trust
        self.record_retention = record_retention  # migration_record_retention (§2.14)
        # migration_parallel_streams, migration_compression, migration_max_bandwidth (§10):
        # this agent's data-plane defaults; tuning operands override them per run (M50).
        self.data_defaults = dict(data_defaults or {})
        self.fingerprint = ""
        if cert_file:
            pem = open(cert_file, encoding="ascii").read()
            self.fingerprint = fingerprint(stdlib_ssl.PEM_cert_to_DER_cert(pem))
        self.data_port = None
        self.outgoing: dict[str, SourceRun] = {}  # by source domain
        self.incoming: dict[str, TargetRun] = {}  # by migration id
        # domain → (its UUID, the final listing keys): the final MIGRATION block (§7.3, M88).
        self.finished: dict[str, tuple[str, list[tuple[str, str]]]] = {}

    # -- wiring ---------------------------------------------------------------------------
    def attach_data_port(self, port) -> None:
        self.data_port = port

    def deliver(self, mid: str, result) -> None:
        """From the data-port thread: the verdict on an incoming transfer."""
        self.reactor.callFromThread(self._deliver, mid, result)

    def _deliver(self, mid: str, result) -> None:
        run = self.incoming.get(mid)
        if run is not None:
            run.transfer_result(result)

    def guest_of(self, mid: str) -> str | None:
        run = self.incoming.get(mid)
        return run.tdomain if run is not None else None

    def every_second(self, tick):
        loop = task.LoopingCall(tick)
        loop.clock = self.reactor
        loop.start(1.0, now=False)
        return loop

    # -- source side ----------------------------------------------------------------------
    def migrate(self, request: MigrationRequest, requester=None):
        """Start an outgoing migration (intake, §2.3); a Deferred firing with (ok, lines)."""
        if not self.outgoing_enabled:
            return defer.succeed((False, [messages.OUTGOING_DISABLED, _summary(request)]))
        try:
            summary = self.manager.summary(request.source)
        except LdmError as error:
            return defer.succeed((False, [str(error), _summary(request)]))
        if request.cert_mode and self.peer_trust is None:
            return defer.succeed((False, [messages.NO_OWN_CERTIFICATE, _summary(request)]))
        if request.source in self.outgoing:
            return defer.succeed((False, [messages.being_migrated(request.source),
                                          _summary(request)]))
        if self._at_limit():
            return defer.succeed((False, [messages.concurrency_limit(self.max_concurrent,
                                                                     self.server_name),
                                          _summary(request)]))
        record = self.journal.create(Record(str(uuid.uuid4()), SOURCE, "intake", {
            "domain": request.source, "tdomain": request.target_name,
            "host": request.target_host, "port": request.target_port or DEFAULT_PORT,
            "user": request.user, "cert": request.cert_mode,
            "state": summary.state, "uuid": summary.uuid,
            "dry_run": request.dry_run, "force": request.force, "view": request.view(),
            "tuning": dict(request.tuning), "data-defaults": self.data_defaults}))
        run = SourceRun(self, record, request, live=summary.state == "active",
                        requester=requester)
        self.outgoing[request.source] = run
        return run.start()

    def cancel(self, domain: str, force: bool):
        """``cancel-operation [-f] migration``: None (done), lines, or a Deferred of lines."""
        if any(r.tdomain == domain for r in self.incoming.values()):
            return [messages.cancel_on_target(domain)]
        run = self.outgoing.get(domain)
        if run is None:
            return [messages.no_migration(domain)]
        state = source.state_name(run.machine)
        if force and state != "unresolved":
            return [messages.FORCE_ONLY_UNRESOLVED]
        if state != "unresolved":
            refusal = run.machine.cancel()
            return [refusal] if refusal else None
        return run.resolution_attempt().addCallback(self._after_attempt, run, force)

    def _after_attempt(self, outcome, run: SourceRun, force: bool):
        host, ldom, tldom = run.host, run.domain, run.data["tdomain"]
        if outcome in ("completed", "resolved-completed"):
            return ("ok", [messages.cancel_found_completed(ldom, host)])
        if outcome in ("aborted", "resolved-aborted"):
            return ("ok", [messages.cancel_found_aborted(ldom, host)])
        if force:
            run.machine.force()
            return ("ok", [messages.forced_restore(ldom, host)])
        return ("fail", messages.cancel_unreachable(ldom, tldom, host))

    # -- target side ----------------------------------------------------------------------
    def incoming_message(self, session, message: str, mid: str, body: dict):
        """Answer one control message from a source agent (ObjectResult or Deferred)."""
        name = session.identity.name
        if name.startswith("migration/") and (name != f"migration/{mid}" or message not in (
                "mig-outcome", "mig-abort", "mig-release")):
            return control.refusal([xml_messages.not_authorized(message, "write")])
        if message == "mig-hello":
            return self._hello(session, mid, body)
        run = self.incoming.get(mid)
        if run is None:
            record = self.journal.get(mid, TARGET)
            if record is None:
                return self._unknown(mid, message, body)
            run = TargetRun(self, record)  # a resolution after a restart or a lost session
        return run.handle(message, body)

    def _hello(self, session, mid: str, body: dict):
        local = self.host_facts()
        refusal = phase1.hello_refusal(local, body.get("protocol") or [0, 0],
                                       str(body.get("agent-version", "")))
        if refusal:
            return control.refusal(refusal)
        if not self.incoming_enabled:
            return control.refusal([messages.incoming_disabled(self.server_name)])
        if self._at_limit():
            return control.refusal([messages.concurrency_limit(self.max_concurrent,
                                                               self.server_name)])
        token = secrets.token_hex(32)
        record = self.journal.create(Record(mid, TARGET, "greeted", {
            "token": token_digest(token), "peer": (body.get("host") or {}).get("server-name", ""),
            "dry_run": bool(body.get("dry-run"))}))
        self.incoming[mid] = TargetRun(self, record, session)
        return control.answer(mid, {"host": local, "token": token})

    def _unknown(self, mid: str, message: str, body: dict):
        if message != "mig-outcome":
            return control.answer(mid, {"answer": "aborted"})
        # No record: say what a domain with that UUID is doing here, if any (§9.3 table).
        wanted = body.get("uuid")
        for name in self.manager.domain_names():
            summary = self.manager.summary(name)
            if summary.uuid == wanted:
                if body.get("forced") and summary.state in ("active", "suspended"):
                    log.critical("domain {name} with UUID {uuid} runs here, but its source "
                                 "restored it by a forced cancel (split brain)", name=name,
                                 uuid=wanted)
                return control.answer(mid, {"answer": "unknown", "domain-state": summary.state})
        return control.answer(mid, {"answer": "unknown", "domain-state": None})

    def _open_incoming(self) -> int:
        """How many incoming migrations are still undecided or committing."""
        return sum(target.state_name(r.machine) in ("greeted", "prepared", "ready", "committing")
                   for r in self.incoming.values())

    def _at_limit(self) -> bool:
        """True when this machine already takes part in ``migration_max_concurrent`` migrations
        as source or target (§2.13)."""
        return len(self.outgoing) + self._open_incoming() >= self.max_concurrent

    def control_auth(self, data: dict) -> dict:
        """``open_control``'s trust arguments for a migration record: the target-certificate
        checks, and certificate mode when the migration was asked with ``-c`` (§4.1, §4.2)."""
        return {"trust": self.peer_trust, "cert_mode": bool(data.get("cert"))}

    def check_token(self, user: str, token: str) -> bool:
        """For the authenticator: ``migration/<id>`` with that migration's resolution token."""
        mid = user.partition("/")[2]
        record = self.journal.get(mid, TARGET)
        return record is not None and token_matches(token, record.data.get("token", ""))

    def target_checks(self, body: dict) -> list:
        return phase1.target_results(self.manager, body["description"], body["request"])

    def host_facts(self) -> dict:
        return phase1.host(self.manager, self.server_name)

    # -- sessions -------------------------------------------------------------------------
    def session_closed(self, session) -> None:
        """A session ended: a requester's loss cancels before the PNR (C176); a source's loss
        aborts an undecided incoming migration (§9.2)."""
        for run in list(self.outgoing.values()):
            if run.requester is session and self.cancel_on_client_loss:
                if source.state_name(run.machine) in {s.name for s in source.BEFORE_PNR}:
                    run.machine.cancel()
        for run in list(self.incoming.values()):
            if run.session is session:
                run.session_lost()

    def ended(self, run) -> None:
        if isinstance(run, SourceRun):
            if self.outgoing.get(run.domain) is run:
                del self.outgoing[run.domain]
            # A dry run leaves no trace on either machine (M2): no final block to list.
            if not run.data.get("dry_run"):
                self._keep_block(run.record, run.domain, run.progress.listing())
        else:
            if run.progress is not None:
                self._keep_block(run.record, run.tdomain, run.progress.listing())

    def _keep_block(self, record: Record, domain: str, block: list[tuple[str, str]]) -> None:
        """Keep the final MIGRATION block of ``domain`` until its next migration or its removal
        (§7.3, M88): in memory, and in the record so that it survives an agent restart."""
        uuid_ = record.data.get("uuid", "")
        self.finished[domain] = (uuid_, block)
        try:
            self.journal.advance(record, record.state, final_block=[list(kv) for kv in block],
                                 ended_at=time.time())
        except JournalError as error:
            log.info("final block of {mid} not stored: {error}", mid=record.id, error=error)

    def _load_blocks(self) -> None:
        """The final blocks of ended migrations, latest per domain (at start)."""
        ended = [r for r in self.journal.all_records() if r.final and r.data.get("final_block")]
        for record in sorted(ended, key=lambda r: r.data.get("ended_at", 0)):
            domain = record.data.get("domain" if record.role == SOURCE else "tdomain", "")
            self.finished[domain] = (record.data.get("uuid", ""),
                                     [tuple(kv) for kv in record.data["final_block"]])

    def listing(self, domain: str) -> list[tuple[str, str]] | None:
        """The list-domain migration keys of ``domain`` (§7.4), or None."""
        run = self.outgoing.get(domain)
        if run is not None:
            return run.progress.listing()
        for trun in self.incoming.values():
            if trun.tdomain == domain and trun.progress is not None and \
                    target.state_name(trun.machine) not in ("committed", "aborted"):
                return trun.progress.listing()
        kept = self.finished.get(domain)
        if kept is None:
            return None
        # The block belongs to the domain that migrated: once it is removed (a later domain of
        # the same name has another UUID, or none exists), the block is gone too (M88).
        try:
            if self.manager.summary(domain).uuid != kept[0]:
                return None
        except LdmError:
            return None
        return kept[1]

    # -- shared domain operations ---------------------------------------------------------
    def guest_shape(self, domain: str) -> dict:
        """What the target needs to create the receiving guest: size, vCPUs and, for a guest
        that exists, its workload and page size, so it runs the same profile after the move."""
        summary = self.manager.summary(domain)
        shape = {"vcpus": summary.ncpu, "memory": summary.memory}
        if domain in self.hv.list():
            spec = self.hv.spec(domain)
            shape.update(memory=self.hv.map_ram(domain).nbytes,
                         workload=spec.workload, **{"page-size": spec.page_size,
                                                    "os-capabilities": list(spec.os_capabilities)})
        return shape

    def guest_facts(self, domain: str, host: dict) -> dict | None:
        """The running guest's facts for the checks (§1.4): its OS capabilities as the
        hypervisor reports them; None (the describe defaults) for a domain without a guest."""
        if domain not in self.hv.list():
            return None
        perf = list(self.manager.constraints(domain).perf_counters)
        return describe.running_guest(perf, host, list(self.hv.spec(domain).os_capabilities))

    def page_count(self, domain: str) -> int:
        return self.hv.map_ram(domain).nbytes // self.hv.page_size

    def set_flag(self, domain: str, flag: str) -> None:
        try:
            self.manager.set_migration_flag(domain, flag)
        except LdmError as error:
            log.info("migration flag of {domain} not changed: {error}", domain=domain, error=error)

    def set_suspended(self, domain: str, suspended: bool) -> None:
        try:
            if not suspended and domain in self.hv.list():
                self.hv.resume(domain)
            if self.manager.summary(domain).state in ("active", "suspended"):
                self.manager.set_suspended(domain, suspended)
        except (LdmError, Exception) as error:  # a restore must go on whatever failed
            log.warn("suspend state of {domain} not changed: {error}", domain=domain, error=error)

    def hold_devices(self, domain: str) -> None:
        try:
            self.manager.hold_devices(domain)
        except LdmError as error:
            log.warn("devices of {domain} not held: {error}", domain=domain, error=error)

    def give_back_devices(self, domain: str) -> None:
        try:
            self.manager.give_back_devices(domain)
        except LdmError as error:  # a restore must go on whatever failed
            log.warn("devices of {domain} not given back: {error}", domain=domain, error=error)

    def remove_domain(self, domain: str, live: bool) -> None:
        """Remove this agent's copy of ``domain``: its guest, if the hypervisor has one, then
        the domain itself.

        The guest goes whatever ``live`` says: a domain that is not active may still have one
        (a guest that died on its own keeps its directory and memory file until the domain
        starts again), and nothing else would ever remove it once the domain has left.
        """
        if domain in self.hv.list():
            if live:
                try:
                    self.hv.stop(domain, force=True)
                except Exception:  # noqa: BLE001 - destroy below kills whatever still runs
                    pass
            self.hv.destroy(domain)
        try:
            self.manager.evict_domain(domain)
        except LdmError as error:
            log.info("domain {domain} not removed: {error}", domain=domain, error=error)

    def domain_event(self, action: str, domain: str) -> None:
        self.publish(resources.domain_event(action, domain))

    # -- retention (§2.14) ----------------------------------------------------------------
    RETENTION_SWEEP_S = 3600.0

    def expire_records(self) -> list[str]:
        """Drop finished records past ``migration_record_retention`` (at start, then hourly).

        Kept longer: a forced recovery the target has not yet confirmed (the source still asks,
        §9.4), and a record holding the final MIGRATION block of a domain that still exists
        (M88 outlives the retention; the spec asks for "at least" the retention)."""

        def needed(record: Record) -> bool:
            if record.role == SOURCE and record.state == "forced" and \
                    not record.data.get("confirmed"):
                return True
            domain = record.data.get("domain" if record.role == SOURCE else "tdomain", "")
            kept = self.finished.get(domain)
            return bool(record.data.get("final_block")) and kept is not None and \
                kept[0] == record.data.get("uuid") and self.listing(domain) is not None

        dropped = self.journal.expire(self.record_retention, needed)
        for mid in dropped:
            log.info("migration record {mid} dropped after the retention", mid=mid)
        return dropped

    # -- restart (§9.2, §9.3) -------------------------------------------------------------
    def recover(self) -> None:
        self._load_blocks()
        self.expire_records()
        sweep = task.LoopingCall(self.expire_records)
        sweep.clock = self.reactor
        sweep.start(self.RETENTION_SWEEP_S, now=False)
        for record in self.journal.open_records(TARGET):
            self._recover_target(record)
        for record in self.journal.open_records(SOURCE):
            self._recover_source(record)
        for record in self.journal.all_records():
            if record.role == SOURCE and record.state == "forced" and \
                    not record.data.get("confirmed"):
                # A forced recovery not yet confirmed goes on asking the target (§9.4).
                SourceRun(self, record, live=record.data.get("state") == "active") \
                    .confirm_forced()

    def _recover_target(self, record: Record) -> None:
        run = TargetRun(self, record)
        if record.state == "committing":
            try:
                run.start_domain()
                run.machine._resumed()
            except Exception:
                run.machine._resume_failed()
            log.info("incoming migration {mid} completed its commit at restart", mid=record.id)
            return
        run.machine.abort()
        log.info("incoming migration {mid} aborted at restart", mid=record.id)

    def _recover_source(self, record: Record) -> None:
        run = SourceRun(self, record, live=record.data.get("state") == "active")
        if record.state in ("commit-sent", "unresolved"):
            self.outgoing[run.domain] = run
            run.resume_unresolved()
            log.info("outgoing migration {mid} is unresolved at restart", mid=record.id)
            return
        try:
            self.journal.advance(record, "aborted", outcome="aborted",
                                 error=messages.LOCAL_LOST)
        except JournalError:
            return
        self.set_suspended(run.domain, False)
        self.give_back_devices(run.domain)
        self.set_flag(run.domain, "")
        log.info("outgoing migration {mid} aborted at restart; {domain} restored", mid=record.id,
                 domain=run.domain)
        self._tell_abort(record)

    def _tell_abort(self, record: Record) -> None:
        """Best effort: tell the target with the resolution token (§9.2)."""
        from agent.migration.peer import open_control

        token = self.journal.load_token(record.id)
        if not token:
            return
        d = open_control(self.reactor, record.data["host"], record.data["port"],
                         f"migration/{record.id}", token, timeout=10.0,
                         **self.control_auth(record.data))

        def send(conn):
            q = conn.request(control.encode_request("mig-abort", record.id, {"reason": "restart"}))
            q.addBoth(lambda r: (conn.close(), r)[1])
            return q

        d.addCallback(send)
        d.addErrback(lambda f: log.info("target of {mid} not told of the abort: {why}",
                                        mid=record.id, why=f.getErrorMessage()))


def _summary(request: MigrationRequest) -> str:
    if request.dry_run:
        return messages.would_fail(request.source)
    return messages.failed(request.source)
