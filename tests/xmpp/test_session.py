"""The negotiation state machine, driven without any I/O (spec ldm-xml §1.2–§1.14)."""

from __future__ import annotations

import base64

import pytest

from agent.auth.identity import READ, Identity
from agent.xmpp import session as s
from tests.xmpp.fakes import REGISTRATION
from tests.xmpp.helpers import (ADMIN, AUTH_ADMIN, HEADER_RE, MINIMAL_HEADER, ROOT,
                                STANDARD_HEADER, STARTTLS, kinds, new_session, to_ready, to_tls,
                                writes)

PRE_TLS_FEATURES = (b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                    b"<required/></starttls></stream:features>")
MECHANISMS = (b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN"
              b"</mechanism></mechanisms>")
BIND_FEATURE = b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"


def stream_error(condition: str) -> bytes:
    return (f"<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            "</stream:error></stream:stream>").encode()


def plain(text: bytes) -> bytes:
    return (b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
            + base64.b64encode(text) + b"</auth>")


def sasl_failure(condition: str) -> bytes:
    return f"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><{condition}/></failure>".encode()


def fail_once(session: s.Session, auth: bytes, identity=None) -> list:
    actions = session.data_received(auth)
    if any(isinstance(a, s.CheckPassword) for a in actions):
        actions = session.password_checked(identity)
    assert s.Wait(1.0) in actions, "a failure is held back by the failure delay"
    assert writes(actions) == []
    return session.wake()


# -- headers (§1.3, §1.4) ---------------------------------------------------------------------

def test_nothing_is_sent_before_the_client_header():
    """C4: accepting a connection and receiving partial header bytes produce no output."""
    session = new_session()
    assert session.data_received(b"<?xml version='1.0'?><stream:str") == []


@pytest.mark.parametrize("header", [
    MINIMAL_HEADER,
    STANDARD_HEADER,
    b"<stream:stream to='x' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    b'<?xml version="1.0"?><stream:stream to="x" xmlns="jabber:client" '
    b'xmlns:stream="http://etherx.jabber.org/streams" version="1.0">',
    b"<stream:stream>",
])
def test_accepted_header_forms_get_header_and_pre_tls_features(header):
    """C5, C6, C10, C11, C14: each header form gets the exact agent header, then the features."""
    out = writes(new_session().data_received(header))
    assert len(out) == 2
    assert HEADER_RE.fullmatch(out[0])
    assert out[1] == PRE_TLS_FEATURES


def test_minimal_header_accepted_again_after_tls():
    """C5, C25: the minimal client's header is accepted inside TLS; local features follow."""
    out = writes(to_tls(new_session(local=ROOT)))
    assert HEADER_RE.fullmatch(out[0])
    assert out[1] == b"<stream:features>" + MECHANISMS + BIND_FEATURE + b"</stream:features>"


@pytest.mark.parametrize("header, condition", [
    (b"<foo/>", "bad-format"),
    (b"<iq type='get'>", "bad-format"),
    (b"<stream:stream xmlns='jabber:server'>", "invalid-namespace"),
    (b"<stream:stream xmlns:stream='urn:other'>", "invalid-namespace"),
    (b"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>", "unsupported-encoding"),
    (b"<stream:stream version='2.0'>", "unsupported-version"),
    # the order of the checks: namespace before version
    (b"<stream:stream xmlns='urn:x' version='2.0'>", "invalid-namespace"),
])
def test_bad_headers_get_stream_errors_preceded_by_a_header(header, condition):
    """C7, C8, C9, C10, C67: header checks in order; the error write starts with our header."""
    actions = new_session().data_received(header)
    assert kinds(actions) == ["Write", "Close"]
    data = writes(actions)[0]
    match = HEADER_RE.match(data)
    assert match and data[match.end():] == stream_error(condition)


def test_three_headers_carry_three_ids():
    """C12: the pre-TLS, post-TLS and post-SASL headers have different ids."""
    session = new_session()
    ids = [HEADER_RE.match(writes(session.data_received(STANDARD_HEADER))[0]).group(1)]
    session.data_received(STARTTLS)
    ids.append(HEADER_RE.match(writes(session.data_received(STANDARD_HEADER))[0]).group(1))
    session.data_received(AUTH_ADMIN)
    session.password_checked(ADMIN)
    ids.append(HEADER_RE.match(writes(session.data_received(STANDARD_HEADER))[0]).group(1))
    assert len(set(ids)) == 3


def test_other_stream_prefix_still_gets_literal_stream_prefix():
    """C13: a client using prefix 'x' for the stream namespace gets 'stream:' everywhere."""
    header = b"<x:stream xmlns='jabber:client' xmlns:x='http://etherx.jabber.org/streams'>"
    session = new_session()
    out = writes(session.data_received(header))
    assert out[0].startswith(b"<?xml version='1.0'?><stream:stream ")
    assert out[1].startswith(b"<stream:features>")
    assert writes(session.data_received(b"</x:stream>")) == [b"</stream:stream>"]


# -- STARTTLS (§1.5) ---------------------------------------------------------------------------

def test_starttls_answered_by_proceed_then_tls():
    """C15: <starttls/> gets exactly the proceed element, then the switch to TLS."""
    session = new_session()
    session.data_received(MINIMAL_HEADER)
    actions = session.data_received(STARTTLS)
    assert actions == [s.Write(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
                       s.StartTls()]


@pytest.mark.parametrize("pipelined", [AUTH_ADMIN, REGISTRATION, b" "])
def test_plaintext_pipelined_after_starttls_aborts(pipelined):
    """C16: bytes after <starttls/> in the same segment abort without reply or execution."""
    session = new_session(local=ROOT)
    session.data_received(MINIMAL_HEADER)
    actions = session.data_received(STARTTLS + pipelined)
    assert actions == [s.Abort()]
    assert session.data_received(MINIMAL_HEADER + REGISTRATION) == []


@pytest.mark.parametrize("element", [REGISTRATION, AUTH_ADMIN, b"<iq type='get' id='1'/>",
                                     b"<presence/>"])
def test_anything_but_starttls_before_tls_is_policy_violation(element):
    """C17, C33: LDM_interface, auth, iq before TLS get policy-violation."""
    session = new_session(local=ROOT)
    session.data_received(MINIMAL_HEADER)
    actions = session.data_received(element)
    assert writes(actions) == [stream_error("policy-violation")]
    assert kinds(actions)[-1] == "Close"


def test_second_starttls_is_policy_violation():
    """C18: <starttls/> after TLS is established."""
    session = new_session()
    to_tls(session)
    assert writes(session.data_received(STARTTLS)) == [stream_error("policy-violation")]


def test_no_certificate_means_internal_server_error_and_no_failure_element():
    """C19, C71: without TLS material, starttls gets internal-server-error, no <failure>."""
    session = new_session(tls=False)
    session.data_received(MINIMAL_HEADER)
    out = writes(session.data_received(STARTTLS))
    assert out == [stream_error("internal-server-error")]
    assert b"failure" not in out[0]


# -- features and SASL (§1.7, §1.8) -------------------------------------------------------------

def test_remote_post_tls_features_are_mechanisms_only():
    """C24, C25: no bind, no starttls for a remote peer after TLS."""
    out = writes(to_tls(new_session(), STANDARD_HEADER))
    assert out[1] == b"<stream:features>" + MECHANISMS + b"</stream:features>"


def test_sasl_plain_success_then_bind_features():
    """C26: success, then after restart a new header and bind-only features."""
    out = writes(to_ready(new_session()))
    assert HEADER_RE.fullmatch(out[0])
    assert out[1] == b"<stream:features>" + BIND_FEATURE + b"</stream:features>"


def test_authzid_equal_to_user_accepted_other_refused():
    """C27: authzid = authcid is fine; another authzid gets invalid-authzid."""
    session = new_session()
    to_tls(session)
    assert s.CheckPassword("admin", "s3cret!") in session.data_received(
        plain(b"admin\0admin\0s3cret!"))
    session = new_session()
    to_tls(session)
    assert writes(fail_once(session, plain(b"root\0admin\0s3cret!"))) == [
        sasl_failure("invalid-authzid")]


def test_wrong_password_gets_not_authorized_after_delay():
    """C28: a wrong password gets exactly the not-authorized failure, after the delay."""
    session = new_session()
    to_tls(session)
    assert writes(fail_once(session, plain(b"\0admin\0wrong"))) == [
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"]


@pytest.mark.parametrize("auth, condition", [
    (b"<auth mechanism='PLAIN'>!!!notbase64</auth>", "incorrect-encoding"),
    (plain(b"admin\0s3cret!"), "malformed-request"),
    (plain(b"\0a\0b\0c"), "malformed-request"),
    (plain(b"\0adm\xffin\0pw"), "malformed-request"),
    (b"<auth mechanism='DIGEST-MD5'>AGFkbWluAHMzY3JldCE=</auth>", "invalid-mechanism"),
    (plain(b"\0\0pw"), "not-authorized"),
    (plain(b"\0admin\0"), "not-authorized"),
])
def test_sasl_failure_conditions(auth, condition):
    """C29: each malformed auth gets its failure condition (held back by the delay)."""
    session = new_session()
    to_tls(session)
    assert writes(fail_once(session, auth)) == [sasl_failure(condition)]


def test_abort_gets_aborted():
    """C29: <abort/> during a challenge gets aborted."""
    session = new_session()
    to_tls(session)
    assert writes(session.data_received(b"<auth mechanism='PLAIN'/>")) == [
        b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"]
    assert writes(fail_once(session, b"<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")) == [
        sasl_failure("aborted")]


def test_challenge_response_success():
    """C30: empty auth gets a challenge; a valid response succeeds."""
    session = new_session()
    to_tls(session)
    session.data_received(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'></auth>")
    actions = session.data_received(b"<response>AGFkbWluAHMzY3JldCE=</response>")
    assert actions == [s.CheckPassword("admin", "s3cret!")]
    assert writes(session.password_checked(ADMIN)) == [
        b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"]


def test_third_failure_ends_stream_with_not_authorized():
    """C31: two failures are answered, the third ends the stream."""
    session = new_session()
    to_tls(session)
    for _ in range(2):
        assert writes(fail_once(session, plain(b"\0admin\0bad"))) == [sasl_failure("not-authorized")]
    actions = fail_once(session, plain(b"\0admin\0bad"))
    assert writes(actions) == [stream_error("not-authorized")]
    assert kinds(actions)[-1] == "Close"


def test_backend_error_is_temporary_auth_failure_and_not_counted():
    """§1.8: an unavailable back end gets temporary-auth-failure."""
    session = new_session()
    to_tls(session)
    session.data_received(AUTH_ADMIN)
    assert session.password_check_failed() == [s.Wait(1.0)]
    assert writes(session.wake()) == [sasl_failure("temporary-auth-failure")]


def test_bytes_pipelined_after_auth_abort_on_success():
    """C32: bytes after </auth> before the restart are never executed; the connection aborts."""
    session = new_session()
    to_tls(session, STANDARD_HEADER)
    actions = session.data_received(AUTH_ADMIN + STANDARD_HEADER + REGISTRATION)
    assert kinds(actions) == ["CheckPassword"]
    assert session.password_checked(ADMIN) == [s.Abort()]


def test_password_is_not_in_the_action_repr():
    """§1.8: the password never appears in a printable action."""
    assert "s3cret" not in repr(s.CheckPassword("admin", "s3cret!"))


def test_auth_after_authentication_is_policy_violation():
    """C33, C39: auth/response/abort/starttls after SASL get policy-violation."""
    for element in (AUTH_ADMIN, b"<response/>", b"<abort/>", STARTTLS):
        session = new_session()
        to_ready(session)
        assert writes(session.data_received(element)) == [stream_error("policy-violation")]


# -- after authentication (§1.9) -----------------------------------------------------------------

def test_ldm_document_executed_without_bind():
    """C34: after SASL and restart, an LDM_interface is dispatched at once with the SASL identity."""
    session = new_session()
    to_ready(session)
    actions = session.data_received(REGISTRATION)
    assert actions == [s.OpenLdm(ADMIN), s.Dispatch(REGISTRATION)]


def test_bind_with_and_without_resource_and_second_bind():
    """C35: requested resource, generated resource, second bind not-allowed."""
    session = new_session()
    to_ready(session)
    out = writes(session.data_received(
        b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<resource>console</resource></bind></iq>"))
    assert out == [b"<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                   b"<jid>admin@ctl1.example.com/console</jid></bind></iq>"]
    out = writes(session.data_received(b"<iq type='set' id='b2'><bind/></iq>"))
    assert out == [b"<iq type='error' id='b2'><error type='cancel'><not-allowed "
                   b"xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"]
    session = new_session()
    to_ready(session)
    out = writes(session.data_received(b"<iq type='set' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"))
    assert out[0].startswith(b"<iq type='result' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>admin@ctl1.example.com/")
    resource = out[0].split(b"/", 1)[1].split(b"<")[0]
    assert resource


def test_session_and_ping_get_empty_results():
    """C36: session and ping iqs get empty results with the same id."""
    session = new_session()
    to_ready(session)
    assert writes(session.data_received(b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")) == [b"<iq type='result' id='s1'/>"]
    assert writes(session.data_received(b"<iq type='get' id='p&amp;1'><ping xmlns='urn:xmpp:ping'/></iq>")) == [b"<iq type='result' id='p&amp;1'/>"]


def test_other_iqs_get_service_unavailable_results_are_ignored():
    """C37: unknown get/set iqs get service-unavailable; result/error iqs get nothing."""
    session = new_session()
    to_ready(session)
    assert writes(session.data_received(b"<iq type='get' id='v'><query xmlns='jabber:iq:version'/></iq>")) == [
        b"<iq type='error' id='v'><error type='cancel'><service-unavailable "
        b"xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"]
    assert session.data_received(b"<iq type='result' id='r'/><iq type='error' id='e'/>") == []


def test_presence_and_message_are_ignored():
    """C38: presence and message produce no output."""
    session = new_session()
    to_ready(session)
    assert session.data_received(b"<presence/><message to='x'><body>hi</body></message>") == []


def test_remote_ldm_document_before_sasl_is_not_authorized():
    """C40, C43: a remote peer's LDM_interface after TLS, before SASL: not-authorized, not executed."""
    session = new_session()
    to_tls(session)
    actions = session.data_received(REGISTRATION)
    assert writes(actions) == [stream_error("not-authorized")]
    assert not any(isinstance(a, (s.Dispatch, s.OpenLdm)) for a in actions)


@pytest.mark.parametrize("element", [b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
                                     b"<presence/>", b"<message/>"])
def test_remote_stanzas_before_sasl_are_not_authorized(element):
    """§1.9: iq, presence and message before authentication are not-authorized."""
    session = new_session()
    to_tls(session)
    assert writes(session.data_received(element)) == [stream_error("not-authorized")]


# -- local peers (§1.10) -------------------------------------------------------------------------

def test_local_peer_sends_documents_right_after_features():
    """C42, R8: a local peer's LDM document right after post-TLS features runs as its identity."""
    session = new_session(local=ROOT)
    actions = to_tls(session)
    assert s.NegotiationDone() in actions
    assert session.data_received(REGISTRATION) == [s.OpenLdm(ROOT), s.Dispatch(REGISTRATION)]


def test_local_peer_sasl_success_takes_user_identity():
    """C47: a local peer completing SASL acts as the SASL user."""
    viewer = Identity("viewer", READ)
    session = new_session(local=ROOT)
    to_tls(session)
    session.data_received(plain(b"\0viewer\0look"))
    session.password_checked(viewer)
    session.data_received(MINIMAL_HEADER)
    assert session.data_received(REGISTRATION)[0] == s.OpenLdm(viewer)


def test_local_peer_keeps_identity_after_failed_sasl():
    """C47: after a failed SASL attempt a local peer keeps its local identity."""
    session = new_session(local=ROOT)
    to_tls(session)
    fail_once(session, plain(b"\0admin\0bad"))
    assert session.data_received(REGISTRATION) == [s.OpenLdm(ROOT), s.Dispatch(REGISTRATION)]


def test_local_bind_uses_uid_name():
    """§1.9: an unauthenticated local peer binds as the name of its uid."""
    session = new_session(local=ROOT)
    to_tls(session)
    out = writes(session.data_received(b"<iq type='set' id='b'><bind><resource>r</resource></bind></iq>"))
    assert b"<jid>root@ctl1.example.com/r</jid>" in out[0]


# -- framing, ordering and limits (§1.12, §1.13) -------------------------------------------------

def test_requests_dispatched_one_at_a_time_in_order():
    """C55: the second request is handed over only after the first was answered."""
    session = new_session(local=ROOT)
    to_tls(session)
    second = REGISTRATION.replace(b"1.1", b"1.2", 1)
    actions = session.data_received(REGISTRATION + second)
    assert [a for a in actions if isinstance(a, s.Dispatch)] == [s.Dispatch(REGISTRATION)]
    actions = session.response_ready(b"<LDM_interface>one</LDM_interface>")
    assert actions == [s.Write(b"<LDM_interface>one</LDM_interface>"), s.Dispatch(second)]


def test_ping_answered_while_request_runs():
    """C57: an iq ping is answered while an LDM request of the same session is still running."""
    session = new_session(local=ROOT)
    to_tls(session)
    session.data_received(REGISTRATION)
    out = writes(session.data_received(b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"))
    assert out == [b"<iq type='result' id='p'/>"]


def test_reading_pauses_when_too_many_requests_wait():
    """§1.12: a flood of requests stops reading instead of queuing without bound."""
    session = new_session(local=ROOT, max_queued_requests=2)
    to_tls(session)
    actions = session.data_received(REGISTRATION * 5)
    assert "PauseReading" in kinds(actions)
    assert sum(isinstance(a, s.Dispatch) for a in actions) == 1
    actions = session.response_ready(b"<LDM_interface/>")
    assert "ResumeReading" in kinds(actions)


def test_declaration_comments_and_whitespace_between_documents():
    """C61, C62: a skipped XML declaration, comments and whitespace produce no output."""
    session = new_session(local=ROOT)
    to_tls(session)
    actions = session.data_received(b"  \n<!-- hi --><?xml version='1.0'?>" + REGISTRATION + b"\n ")
    assert actions == [s.OpenLdm(ROOT), s.Dispatch(REGISTRATION)]


@pytest.mark.parametrize("data, condition", [
    (b"<!DOCTYPE x [<!ENTITY a 'b'>]>", "restricted-xml"),
    (b"<LDM_interface><!ENTITY a 'b'></LDM_interface>", "restricted-xml"),
    (b"<?php echo 1 ?>", "restricted-xml"),
    (b"<LDM_interface>&lol;</LDM_interface>", "xml-not-well-formed"),
    (b"<LDM_interface><data/></data></LDM_interface>", "xml-not-well-formed"),
    (b"<LDM_interface><Envelope <References/></Envelope></LDM_interface>", "xml-not-well-formed"),
    (b"<LDM_interface>\xc3\x28</LDM_interface>", "xml-not-well-formed"),
    (b"<a>" * 33, "policy-violation"),
])
def test_stream_level_faults(data, condition):
    """C63, C64, C65, C117, §3.8: DOCTYPE/entity/PI, undefined entity, broken tags, bad UTF-8,
    depth: the exact stream error, and nothing of the broken element is dispatched."""
    session = new_session(local=ROOT)
    to_tls(session)
    actions = session.data_received(data)
    assert writes(actions) == [stream_error(condition)]
    assert not any(isinstance(a, s.Dispatch) for a in actions)


def test_depth_32_is_allowed():
    """C65: exactly 32 levels of nesting pass."""
    session = new_session(local=ROOT)
    to_tls(session)
    document = b"<LDM_interface>" + b"<a>" * 31 + b"</a>" * 31 + b"</LDM_interface>"
    assert s.Dispatch(document) in session.data_received(document)


def test_pre_auth_element_over_16k_is_policy_violation():
    """C65: a remote peer's 17 KiB element before authentication."""
    session = new_session()
    to_tls(session)
    actions = session.data_received(b"<auth mechanism='PLAIN'>" + b"A" * 17000)
    assert writes(actions) == [stream_error("policy-violation")]


def test_document_over_limit_is_policy_violation_before_it_ends():
    """C65: an LDM document over the (configured) limit is cut off while still arriving."""
    session = new_session(local=ROOT, document_limit=4096)
    to_tls(session)
    assert session.data_received(b"<LDM_interface>" + b"x" * 4000) == []
    assert writes(session.data_received(b"y" * 200)) == [stream_error("policy-violation")]


def test_client_close_answered_and_running_response_discarded():
    """C68, §1.14: </stream:stream> is answered; a later response is dropped."""
    session = new_session(local=ROOT)
    to_tls(session)
    session.data_received(REGISTRATION)
    assert session.data_received(b"</stream:stream>") == [s.Write(b"</stream:stream>"), s.Close()]
    assert session.response_ready(b"<LDM_interface/>") == []


def test_timeout_only_while_negotiating():
    """C66: connection-timeout before READY; an authenticated idle session is not closed."""
    session = new_session()
    session.data_received(MINIMAL_HEADER)
    assert writes(session.timed_out()) == [stream_error("connection-timeout")]
    session = new_session()
    to_ready(session)
    assert session.timed_out() == []


def test_shutdown_sends_system_shutdown_with_header_when_needed():
    """C70, C67: system-shutdown; preceded by a header when none was sent on this stream."""
    session = new_session()
    out = writes(session.shutdown())
    assert HEADER_RE.match(out[0]) and out[0].endswith(stream_error("system-shutdown"))
    session = new_session()
    to_ready(session)
    assert writes(session.shutdown()) == [stream_error("system-shutdown")]


def test_split_input_byte_by_byte():
    """§1.13: boundaries are found whatever the segmentation."""
    session = new_session(local=ROOT)
    session.data_received(MINIMAL_HEADER)
    session.data_received(STARTTLS)
    actions = []
    for byte in MINIMAL_HEADER + REGISTRATION:
        actions += session.data_received(bytes([byte]))
    assert actions[-1] == s.Dispatch(REGISTRATION)
