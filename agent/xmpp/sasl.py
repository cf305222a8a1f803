"""SASL PLAIN message decoding (RFC 4616, spec ldm-xml §1.8). Pure; never logs its input."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class PlainCredentials:
    """A decoded PLAIN message whose authzid is acceptable. The password is kept out of repr."""

    user: str
    password: str = field(repr=False)


class PlainError(Exception):
    """The PLAIN message is unacceptable; ``condition`` is the SASL failure condition."""

    def __init__(self, condition: str) -> None:
        super().__init__(condition)
        self.condition = condition


def decode_plain(text: str) -> PlainCredentials:
    """Decode the base64 text of ``<auth>`` or ``<response>``.

    Raises :class:`PlainError` with ``incorrect-encoding`` (not base64), ``malformed-request``
    (not exactly two NULs, or not UTF-8), ``invalid-authzid`` (authzid set and different from
    the user) or ``not-authorized`` (empty user or password).
    """
    compact = _WHITESPACE.sub("", text)
    if compact == "=":  # RFC 6120: '=' stands for an empty response
        compact = ""
    try:
        octets = base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise PlainError("incorrect-encoding") from None
    parts = octets.split(b"\0")
    if len(parts) != 3:
        raise PlainError("malformed-request")
    try:
        authzid, user, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError:
        raise PlainError("malformed-request") from None
    if authzid and authzid != user:
        raise PlainError("invalid-authzid")
    if not user or not password:
        raise PlainError("not-authorized")
    return PlainCredentials(user, password)
