"""Every sample request, in ``samples/requests/ORDER``, over one authenticated session of a
live agent: unmarked lines succeed, ``# expected-failure`` lines fail at object level with
the message their note names (C105–C109, C125, C134)."""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from agent.cli.connection import LdmConnection

from .conftest import ADMIN, ADMIN_PW

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "requests"
OVF_ID = "{./schemas/envelope}id"


def order() -> list[tuple[str, str | None]]:
    entries = []
    for line in (SAMPLES / "ORDER").read_text().splitlines():
        if line.strip():
            name, _, note = line.partition("#")
            reason = note.split("expected-failure:", 1)[1].strip() if note else None
            entries.append((name.strip(), reason))
    return entries


def object_messages(root) -> list[str]:
    return [m.text or "" for m in root.iterfind("cmd/data/response/resp_msg")]


def test_samples_run_in_order_over_one_session(live_agent):
    conn = LdmConnection.tcp(*live_agent.listen)
    conn.negotiate(ADMIN, ADMIN_PW)
    problems = []
    try:
        for name, reason in order():
            root = etree.fromstring(conn.request((SAMPLES / name).read_bytes()))
            status = root.findtext("response/status")
            if reason is None:
                if status != "success":
                    problems.append(f"{name}: {etree.tostring(root).decode()[:2000]}")
                continue
            statuses = [s.text for s in root.iterfind("cmd/data/response/status")]
            wanted = re.search(r"\(([^()]*)\)\s*$", reason)
            if (status != "failure" or root.find("cmd/response/resp_msg") is not None
                    or "failure" not in statuses):
                problems.append(f"{name}: not an object-level failure")
            elif wanted and wanted.group(1) not in object_messages(root):
                problems.append(f"{name}: {object_messages(root)} lacks {wanted.group(1)!r}")
    finally:
        conn.close()
    assert not problems, "\n".join(problems)
    ldg1 = []
    for doc in conn.events:
        event = etree.fromstring(doc)
        content = event.find("cmd/data/Envelope/Content")
        if content is not None and content.get(OVF_ID) == "ldg1" and content.find("Section") is None:
            ldg1.append(event.findtext("cmd/action"))
    assert ldg1 == ["add-domain", "bind-domain", "start-domain", "stop-domain", "unbind-domain",
                    "remove-domain"]
