"""The control-message encoding between agents (spec migration.md §2.14). Pure.

A control message is an ordinary ``LDM_interface`` request (version 1.7) with one ``cmd``
whose action is the internal message name (``mig-hello``, ``mig-check``, ``mig-prepare``,
``mig-transfer-done``, ``mig-commit``, ``mig-abort``, ``mig-outcome``, ``mig-release``).
Its one ``data`` holds a ``Content`` named by the migration id with one ``ldom_info``-style
Item of type ``migration`` carrying a single generic property ``body``: the message's fields
as JSON. The reply is the ordinary response: on success the same shape with the reply's
fields in ``body``; on refusal a failure whose ``resp_msg`` lines are the operator texts.
A command-level failure (unknown action, not authorized) comes back the same way, as lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lxml import etree

from agent.xmlapi.encode import encode_envelope, escape_text, root_start
from agent.xmlapi.model import (RESOURCE_ALLOCATION, Content, Envelope, Item, ObjectResult,
                                Section)
from agent.xmlapi.parser import GPROP

VERSION = "1.7"
ITEM_TYPE = "migration"
BODY = "body"

MESSAGES = ("mig-hello", "mig-check", "mig-prepare", "mig-transfer-done", "mig-commit",
            "mig-abort", "mig-outcome", "mig-release")


@dataclass
class Reply:
    """A decoded answer: ``ok`` with ``body``, or the refusal ``lines``."""

    ok: bool
    body: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def _envelope(mid: str, body: dict) -> Envelope:
    item = Item(ITEM_TYPE, [(BODY, json.dumps(body, sort_keys=True))])
    return Envelope([Content(mid, [Section(RESOURCE_ALLOCATION, [item])])])


def encode_request(message: str, mid: str, body: dict) -> bytes:
    """The request document for one control message."""
    if message not in MESSAGES:
        raise ValueError(f"not a control message: {message}")
    envelope = encode_envelope(_envelope(mid, body)).decode()
    return (f'{root_start("LDM_interface", VERSION)}<cmd><action>{escape_text(message)}</action>'
            f'<data version="3.0">{envelope}</data></cmd></LDM_interface>').encode()


def request_body(envelope: Envelope | None) -> tuple[str, dict]:
    """(migration id, fields) of a decoded control request; ValueError if it is not one."""
    if envelope is None or len(envelope.contents) != 1:
        raise ValueError("a control message has exactly one Content")
    content = envelope.contents[0]
    items = content.items()
    if len(items) != 1 or items[0].rtype != ITEM_TYPE or items[0].get(BODY) is None:
        raise ValueError("a control message has one migration Item with a body")
    body = json.loads(items[0].get(BODY) or "{}")
    if not isinstance(body, dict):
        raise ValueError("a control message body is a JSON object")
    return content.name, body


def answer(mid: str, body: dict) -> ObjectResult:
    """A successful reply object."""
    return ObjectResult(_envelope(mid, body))


def refusal(lines: list[str]) -> ObjectResult:
    return ObjectResult(None, ok=False, messages=list(lines))


def decode_reply(document: bytes) -> Reply:
    """Decode the response document of a control request."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(document, parser)
    status = root.findtext("./response/status") or root.findtext("./cmd/response/status")
    lines = [m.text or "" for m in root.iter("resp_msg")]
    body_text = None
    for prop in root.iter(f"{{{GPROP}}}GenericProperty"):
        if prop.get("key") == BODY:
            body_text = prop.text or "{}"
    if status == "success" and body_text is not None:
        return Reply(True, json.loads(body_text))
    return Reply(False, lines=lines or ["the target refused the request"])
