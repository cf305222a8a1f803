"""Requests through a live agent over real TLS sessions: samples, authorization, registration."""

from pathlib import Path

import pytest
from lxml import etree

from agent.actions.handlers import HANDLERS
from agent.cli.connection import LdmConnection
from agent.xmlapi import messages

from .conftest import ADMIN, ADMIN_PW, VIEWER, VIEWER_PW

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "requests"


@pytest.fixture(scope="module")
def admin(live_agent):
    conn = LdmConnection.tcp(*live_agent.listen)
    conn.negotiate(ADMIN, ADMIN_PW)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def viewer(live_agent):
    conn = LdmConnection.tcp(*live_agent.listen)
    conn.negotiate(VIEWER, VIEWER_PW)
    yield conn
    conn.close()


def messages_of(response: bytes) -> list[str]:
    return [m.text or "" for m in etree.fromstring(response).iter("resp_msg")]


def sample_files():
    return sorted(p for p in SAMPLES.glob("*.xml"))


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.stem)
def test_every_sample_is_understood(admin, path):
    """Issue 2 item 8: no sample gets a parse or schema error; actions without a handler yet
    answer the specific not-available failure, the others get past the command level."""
    response = admin.request(path.read_bytes())
    root = etree.fromstring(response)
    action = root.findtext("cmd/action")
    msgs = messages_of(response)
    assert not any(m.startswith(("XML parse error", "Invalid request")) for m in msgs), msgs
    assert root.find("response/resp_msg") is None, msgs  # never a document-level failure
    if action in HANDLERS:
        assert root.find("cmd/response/resp_msg") is None, msgs
    else:
        assert msgs == [messages.not_available_yet(action)]


def test_review_user_is_refused_write_actions_over_the_wire(viewer):
    """C135 over TLS/SASL: the fixed authorization text at command level."""
    response = viewer.request((SAMPLES / "stop-domain.xml").read_bytes())
    assert messages_of(response) == [messages.not_authorized("stop-domain", "write")]
    response = viewer.request((SAMPLES / "list-domain.xml").read_bytes())
    assert etree.fromstring(response).findtext("response/status") == "success"


def test_list_domain_reports_the_control_domain(admin):
    """C155/C156: primary first with the twelve keys, flags of an active control domain."""
    response = admin.request((SAMPLES / "list-domain.xml").read_bytes())
    root = etree.fromstring(response)
    assert root.findtext("response/status") == "success"
    content = root.find("cmd/data/Envelope/Content")
    assert content.get("{./schemas/envelope}id") == "primary"
    item = content.find("Section/Item")
    keys = [c.get("key") or etree.QName(c).localname for c in item][1:]
    assert keys == ["uuid", "Address", "hostid", "state", "flags", "console", "ncpu", "memory",
                    "util", "uptime", "master", "failure-policy"]
    props = {c.get("key"): c.text for c in item if c.get("key")}
    assert props["state"] == "active"
    assert props["flags"][3] == "c" and props["flags"][1] == "n"


def test_registration_response_is_short_and_exact(admin):
    """C120 with R9's literal registration: answered in under 1024 bytes, action echoed."""
    reg = (b'<LDM_interface version="1.1">   <cmd>      <action>reg-domain-events</action>'
           b'      <data version="3.0"> </data>   </cmd></LDM_interface>')
    response = admin.request(reg)
    assert len(response) < 1024
    root = etree.fromstring(response)
    assert root.get("version") == "1.1"
    assert root.findtext("cmd/action") == "reg-domain-events"
    assert root.findtext("cmd/response/status") == "success"


def test_malformed_document_fails_alone_and_session_goes_on(admin):
    """C118-ish: an unknown undeclared prefix is an XML parse error; the next request works."""
    bad = b'<LDM_interface version="1.3"><cmd><action>list-domain</action><zz:x/></cmd></LDM_interface>'
    msgs = messages_of(admin.request(bad))
    assert len(msgs) == 1 and msgs[0].startswith("XML parse error: ")
    good = admin.request((SAMPLES / "list-domain.xml").read_bytes())
    assert etree.fromstring(good).findtext("response/status") == "success"
