"""The contract between the XMPP front door and the rest of the agent.

The front door (this room) owns sockets, TLS, stream negotiation, SASL and framing. It knows
nothing about what an LDM document means: it hands every top-level element that is not a
stream-level stanza to an :class:`ILdmSession` and writes back the bytes it returns.
"""

from __future__ import annotations

from zope.interface import Interface


class IAuthenticator(Interface):
    """Decides identities (spec ldm-xml §1.8, §1.10)."""

    def check_password(user, password):
        """Return an L{agent.auth.identity.Identity} or None for a wrong user or password.

        May block for a while (memory-hard KDF): callers run it off the reactor thread.
        Never logs the password.
        """

    def certificate_identity(der):
        """Return the migration-peer Identity of a client certificate (DER bytes) that is in
        the migration trust store, or None (migration.md §4.1)."""

    def local_identity(uid):
        """Return the Identity of a local peer with this uid, or None when the uid must be
        treated as remote (unknown-local-uid policy ``refuse``)."""


class IDocumentSink(Interface):
    """Where a session's unsolicited documents (events) go; implemented by the front door."""

    def write_document(data):
        """Write one complete LDM document (bytes) in exactly one transport write.

        Never blocks; a session whose backlog exceeds its bound is disconnected with a log
        line instead.
        """


class ILdmSession(Interface):
    """One authenticated peer's view of the agent."""

    def handle_element(raw):
        """Answer one top-level element (its raw bytes as framed by the stream reader).

        Returns the bytes of exactly one response document, or a Deferred firing with them
        when the answer comes later (the front door then writes it when it fires). The front
        door calls this for one element at a time per session (the next call only after the
        previous answer), and writes any events that the sink received meanwhile before the
        response.
        """

    def close():
        """The session ended (any reason): drop its event registrations; by default cancel a
        migration it is driving that has not passed its point of no return."""


class ILdmService(Interface):
    """Opens sessions for authenticated peers."""

    def open_session(identity, sink):
        """Return an L{ILdmSession} for this identity writing events to ``sink``."""
