"""``migrate-domain``, ``cancel-operation migration`` and the internal ``mig-*`` actions.

Spec ldm-xml §7, migration.md §2.14, §5.6, §8. These are the only answers that may come later
than the request: ``migrate-domain`` answers when the migration has ended (C171), a cancel in
the ambiguous window waits for one resolution attempt, and ``mig-transfer-done`` waits for
the data plane. :func:`answer_later` runs such a document: the command-level checks of
``actions.dispatch`` still apply in their order; only the handler's result is a Deferred.
Every other document keeps the synchronous path.
"""

from __future__ import annotations

from twisted.internet import defer

from agent.actions.dispatch import Options, run_command
from agent.actions.handlers.pending import HANDLERS as PENDING
from agent.actions.table import INTERNAL_ACTIONS
from agent.auth.identity import MIGRATION_PEER, WRITE
from agent.migration import control
from agent.migration.request import parse_migrate_data
from agent.xmlapi import messages
from agent.xmlapi.model import Command, CommandResult, Data, ObjectResult, Request, Response

LATER = ("migrate-domain", "cancel-operation", *INTERNAL_ACTIONS)


def answers_later(decoded) -> bool:
    """True when ``decoded`` holds a command whose answer may come later."""
    return isinstance(decoded, Request) and any(c.action in LATER for c in decoded.commands)


def answer_later(decoded: Request, session) -> defer.Deferred:
    """Answer every command in order; fire with the :class:`Response`."""
    results: list[CommandResult] = []
    d: defer.Deferred = defer.succeed(None)
    for cmd in decoded.commands:
        d.addCallback(lambda _, c=cmd: _command(c, session))
        d.addCallback(results.append)
    d.addCallback(lambda _: Response(decoded.version, results))
    return d


def _command(cmd: Command, session) -> defer.Deferred:
    if cmd.action in INTERNAL_ACTIONS:
        return defer.maybeDeferred(_internal, cmd, session)
    later: list[defer.Deferred] = []

    def capture(handler):
        def run(ctx, command, opts):
            objects = handler(ctx, command, opts)
            if isinstance(objects, defer.Deferred):
                later.append(objects)
                return []
            return objects
        return run

    handlers = {**session.service.handlers, "migrate-domain": capture(migrate_domain),
                "cancel-operation": capture(cancel_operation)}
    result = run_command(cmd, session, handlers)
    if not later:
        return defer.succeed(result)
    return later[0].addCallback(lambda objects: CommandResult(cmd, objects=objects))


def _migrations(ctx):
    return getattr(getattr(ctx, "service", None), "migrations", None)


def migrate_domain(ctx, cmd: Command, opts: Options):
    """Start the migration; the Deferred fires with the one object result at its end."""
    migrations = _migrations(ctx)
    data = cmd.data[0] if cmd.data else Data()
    envelope = data.envelope
    if migrations is None:
        return [ObjectResult(envelope, ok=False,
                             messages=[messages.not_available_yet("migrate-domain")])]
    try:
        request = parse_migrate_data(data, set(opts.flags), opts.arguments, ctx.identity.name)
    except ValueError as error:
        return [ObjectResult(envelope, ok=False, messages=[str(error)])]
    d = migrations.migrate(request, requester=ctx)
    return d.addCallback(lambda answer: [ObjectResult(envelope, ok=answer[0],
                                                      messages=list(answer[1]))])


def cancel_operation(ctx, cmd: Command, opts: Options):
    if opts.word != "migration":
        return PENDING["cancel-operation"](ctx, cmd, opts)
    envelope = cmd.data[0].envelope if cmd.data else None
    contents = envelope.contents if envelope is not None else []
    if len(contents) != 1:
        return [ObjectResult(envelope, ok=False,
                             messages=["cancel-operation needs the domain in one Content"])]
    domain = contents[0].name
    if domain not in ctx.manager.domains:
        return [ObjectResult(envelope, ok=False, messages=[messages.unknown_domain(domain)])]
    migrations = _migrations(ctx)
    if migrations is None:
        return [ObjectResult(envelope, ok=False,
                             messages=[messages.no_migration_in_progress(domain)])]
    answer = migrations.cancel(domain, "-f" in opts.flags)
    if answer is None:
        return [ObjectResult(envelope)]
    if isinstance(answer, defer.Deferred):
        return answer.addCallback(
            lambda status_lines: [ObjectResult(envelope, ok=status_lines[0] == "ok",
                                               messages=status_lines[1])])
    return [ObjectResult(envelope, ok=False, messages=answer)]


def _internal(cmd: Command, session):
    """One control message from a source agent (migration.md §2.14, §4.3)."""
    identity = session.identity
    if not (identity.may(WRITE) or identity.authorization == MIGRATION_PEER):
        return CommandResult(cmd, error=messages.not_authorized(cmd.action, WRITE))
    migrations = _migrations(session)
    if migrations is None:
        return CommandResult(cmd, error=messages.unknown_action(cmd.action))
    if cmd.error:
        return CommandResult(cmd, error=cmd.error)
    try:
        mid, body = control.request_body(cmd.data[0].envelope if cmd.data else None)
    except ValueError as error:
        return CommandResult(cmd, objects=[control.refusal([str(error)])])
    answer = migrations.incoming_message(session, cmd.action, mid, body)
    return defer.maybeDeferred(lambda: answer).addCallback(
        lambda obj: CommandResult(cmd, objects=[obj]))


HANDLERS = {"migrate-domain": migrate_domain, "cancel-operation": cancel_operation}
