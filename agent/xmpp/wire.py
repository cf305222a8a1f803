"""The exact bytes of every stream-level element the agent writes (spec ldm-xml §1.4–§1.9, §1.14).

Each function returns one complete element, meant to be handed to the transport as one write.
"""

from __future__ import annotations

TLS_NS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL_NS = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND_NS = "urn:ietf:params:xml:ns:xmpp-bind"
STREAMS_NS = "urn:ietf:params:xml:ns:xmpp-streams"
STANZAS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"

_MECHANISMS = f"<mechanisms xmlns='{SASL_NS}'><mechanism>PLAIN</mechanism></mechanisms>"
_MECHANISMS_EXTERNAL = (f"<mechanisms xmlns='{SASL_NS}'><mechanism>PLAIN</mechanism>"
                        f"<mechanism>EXTERNAL</mechanism></mechanisms>")
_BIND = f"<bind xmlns='{BIND_NS}'/>"

FEATURES_PRE_TLS = (
    f"<stream:features><starttls xmlns='{TLS_NS}'><required/></starttls></stream:features>"
).encode()
FEATURES_REMOTE = f"<stream:features>{_MECHANISMS}</stream:features>".encode()
# A remote client whose certificate is in the migration trust store (migration.md §4.1).
FEATURES_REMOTE_EXTERNAL = f"<stream:features>{_MECHANISMS_EXTERNAL}</stream:features>".encode()
FEATURES_LOCAL_EXTERNAL = (
    f"<stream:features>{_MECHANISMS_EXTERNAL}{_BIND}</stream:features>".encode())
FEATURES_LOCAL = f"<stream:features>{_MECHANISMS}{_BIND}</stream:features>".encode()
FEATURES_BOUND = f"<stream:features>{_BIND}</stream:features>".encode()

PROCEED = f"<proceed xmlns='{TLS_NS}'/>".encode()
SUCCESS = f"<success xmlns='{SASL_NS}'/>".encode()
CHALLENGE = f"<challenge xmlns='{SASL_NS}'/>".encode()
STREAM_CLOSE = b"</stream:stream>"


def escape_attr(value: str) -> str:
    """Escape a value for a single- or double-quoted attribute."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


def escape_text(value: str) -> str:
    """Escape character data."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def stream_header(stream_id: str, server_name: str) -> bytes:
    """The agent's stream header (§1.4)."""
    return (
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' "
        f"id='{stream_id}' from='{escape_attr(server_name)}' version='1.0'>"
    ).encode()


def stream_error(condition: str) -> bytes:
    """A stream error followed by the closing tag (§1.14)."""
    return (
        f"<stream:error><{condition} xmlns='{STREAMS_NS}'/></stream:error></stream:stream>"
    ).encode()


def sasl_failure(condition: str) -> bytes:
    """A SASL failure (§1.8); the only element named ``failure`` the agent ever sends."""
    return f"<failure xmlns='{SASL_NS}'><{condition}/></failure>".encode()


def iq_result(iq_id: str) -> bytes:
    """An empty iq result (session, ping)."""
    return f"<iq type='result' id='{escape_attr(iq_id)}'/>".encode()


def iq_bind_result(iq_id: str, jid: str) -> bytes:
    """The answer to a resource binding request (§1.9)."""
    return (
        f"<iq type='result' id='{escape_attr(iq_id)}'><bind xmlns='{BIND_NS}'>"
        f"<jid>{escape_text(jid)}</jid></bind></iq>"
    ).encode()


def iq_error(iq_id: str, condition: str) -> bytes:
    """A stanza error of type cancel (``service-unavailable``, ``not-allowed``)."""
    return (
        f"<iq type='error' id='{escape_attr(iq_id)}'><error type='cancel'>"
        f"<{condition} xmlns='{STANZAS_NS}'/></error></iq>"
    ).encode()
