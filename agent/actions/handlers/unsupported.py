"""Netra data-plane channel actions (spec ldm-xml §5.8): recognised, never supported here.

They fail at object level, once per ``data``, after the command-level checks — so a session
without the write authorization still gets the authorization failure first.
"""

from __future__ import annotations

from agent.xmlapi import messages
from agent.xmlapi.model import Command, ObjectResult


def _unsupported(ctx, cmd: Command, opts) -> list[ObjectResult]:
    return [ObjectResult(envelope=d.envelope, ok=False,
                         messages=[messages.not_supported_on_platform(cmd.action)])
            for d in cmd.data]


HANDLERS = {name: _unsupported for name in ("add-vdpcs", "remove-vdpcs", "add-vdpcc", "remove-vdpcc")}
