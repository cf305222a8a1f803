"""Runs decoded requests: action lookup, authorization, options, then the action's handler.

Pure: no sockets, no clock. The order of the command-level checks is fixed — the action must be
known, then the session must hold the action's authorization (so a review user asking for a
write action is told so whatever else is wrong), then the decoder's verdict on the command, then
options and arguments — and only then does the handler see the command's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from agent.actions.table import ACTIONS, MIGRATE_OPERANDS, REQUIRED, Action
from agent.auth.identity import Identity
from agent.xmlapi import messages
from agent.xmlapi.model import (Command, CommandResult, DocumentFailure, Event, ObjectResult,
                                Request, Response)


class CommandError(Exception):
    """A command-level failure; the message is what the client reads."""


@dataclass
class Options:
    """The parsed option text and arguments of one command."""

    flags: dict[str, str | None] = field(default_factory=dict)
    word: str | None = None
    arguments: dict[str, str] = field(default_factory=dict)

    def has(self, flag: str) -> bool:
        return flag in self.flags


class Context(Protocol):
    """What handlers see of the session and the agent."""

    identity: Identity
    switches: set[str]
    manager: object  # agent.ldm.manager.Manager
    server_name: str

    def emit(self, event: Event) -> None: ...


Handler = Callable[[Context, Command, Options], list[ObjectResult]]


def parse_options(action: Action, cmd: Command) -> Options:
    """Check ``cmd``'s option tokens and arguments against the table row (§2.5)."""
    opts = Options()
    tokens = list(cmd.options)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        i += 1
        if tok.startswith("-"):
            if len(tok) > 2 and tok[1:].isalpha():
                raise CommandError(messages.combined_flags(tok, action.name))
            if len(tok) != 2 or tok not in action.flags or tok in opts.flags:
                raise CommandError(messages.invalid_option(tok, action.name))
            kind = action.flag_args.get(tok)
            value = None
            if kind and i < len(tokens) and not tokens[i].startswith("-"):
                value = tokens[i]
                i += 1
            elif kind == REQUIRED:
                raise CommandError(messages.flag_argument_missing(tok, action.name))
            opts.flags[tok] = value
        elif tok in action.words and opts.word is None:
            opts.word = tok
        else:
            raise CommandError(messages.invalid_option(tok, action.name))
    if action.words:
        if opts.word is None:
            raise CommandError(messages.operation_word_required(action.name, action.words))
        # Only `cancel-operation migration` takes -f (§5.13).
        if "-f" in opts.flags and opts.word != "migration":
            raise CommandError(messages.invalid_option("-f", action.name))
    opts.arguments = _parse_arguments(action, cmd.arguments or "")
    return opts


def _parse_arguments(action: Action, text: str) -> dict[str, str]:
    tokens = text.split()
    if tokens and not action.takes_arguments:
        raise CommandError(messages.invalid_argument(tokens[0], action.name))
    args: dict[str, str] = {}
    for tok in tokens:
        name, sep, value = tok.partition("=")
        if not sep or name not in MIGRATE_OPERANDS or name in args:
            raise CommandError(messages.invalid_argument(tok, action.name))
        args[name] = value
    return args


def run_command(cmd: Command, ctx: Context, handlers: dict[str, Handler]) -> CommandResult:
    """Answer one command: command-level checks, then the handler (or the placeholder)."""
    if cmd.action is None:
        return CommandResult(cmd, error=cmd.error or messages.NO_ACTION)
    action = ACTIONS.get(cmd.action)
    if action is None:
        return CommandResult(cmd, error=messages.unknown_action(cmd.action))
    if not ctx.identity.may(action.auth):
        return CommandResult(cmd, error=messages.not_authorized(action.name, action.auth))
    if cmd.error:
        return CommandResult(cmd, error=cmd.error)
    try:
        opts = parse_options(action, cmd)
    except CommandError as e:
        return CommandResult(cmd, error=str(e))
    handler = handlers.get(action.name)
    if handler is None:
        return CommandResult(cmd, error=messages.not_available_yet(action.name))
    try:
        return CommandResult(cmd, objects=handler(ctx, cmd, opts))
    except CommandError as e:
        return CommandResult(cmd, error=str(e))


def execute(decoded: Request | DocumentFailure, ctx: Context,
            handlers: dict[str, Handler]) -> Response:
    """Answer a decoded document: a document failure as such, else every command in order."""
    if isinstance(decoded, DocumentFailure):
        return Response(decoded.version, error=decoded.message)
    return Response(decoded.version, [run_command(c, ctx, handlers) for c in decoded.commands])
