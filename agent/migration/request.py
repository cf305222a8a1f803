"""The XML ``migrate-domain`` request (ldm-xml §7.1, migration.md §5.6) as a typed value.

The command level (flags other than ``-n -f -c``, unknown or repeated ``arguments``: C169,
C170) is already answered by ``agent.actions.dispatch``; this module handles what remains, the
object level: the two-``Content`` layout (C165), base64 credentials (C166), the default user
(C167), ``-c`` against credentials (C168), and the values of the map and tuning operands (the
§5.4 texts ``Invalid value for <name>: <value>`` and the duplicate core/address lines), which
are object-level errors here because no usage line exists in XML.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from agent.migration import messages
from agent.xmlapi import model, resources, values

ACTION = "migrate-domain"
DEFAULT_PORT = 6482
TUNING = ("max-downtime", "max-bandwidth", "max-rounds", "timeout", "on-timeout",
          "auto-converge", "compression")

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$")
_DOMAIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
_HEX = re.compile(r"^(0x)?[0-9a-fA-F]+$", re.IGNORECASE)
_BANDWIDTH = re.compile(r"^(\d+)([KMG]?)$")
_SECRET = ("username", "password")
_CHOICES = {"on-timeout": ("abort", "force"), "auto-converge": ("on", "off"),
            "compression": ("none", "zlib")}


@dataclass(frozen=True)
class MigrationRequest:
    """One migrate-domain request, checked; ``password`` never appears in ``repr``."""

    source: str
    target_host: str  # as given, without port and without IPv6 brackets
    target_port: int | None
    target_name: str
    user: str | None
    password: str | None = field(repr=False)
    dry_run: bool = False
    force: bool = False
    cert_mode: bool = False
    cidmap: tuple[tuple[int, int], ...] = ()  # (source core, target core)
    mblockmap: tuple[tuple[int, int], ...] = ()  # (source PA, target PA)
    tuning: dict[str, str] = field(default_factory=dict)  # validated; max-bandwidth in bytes

    def view(self) -> dict:
        """What ``mig-check`` carries about the request (§2.4 item 2), JSON-ready, no secrets."""
        return {
            "target-name": self.target_name,
            "host": self.target_host,
            "dry-run": self.dry_run,
            "force": self.force,
            "cidmap": [list(p) for p in self.cidmap],
            "mblockmap": [list(p) for p in self.mblockmap],
        }


def parse_migrate_data(data: model.Data, options: set[str], arguments: dict[str, str],
                       session_user: str) -> MigrationRequest:
    """Build the request from one ``data``; raises ValueError(message) for object-level errors."""
    contents = data.envelope.contents if data.envelope else []
    if len(contents) != 2 or (data.envelope and data.envelope.sections):
        raise ValueError(messages.TWO_CONTENTS)
    source, target = contents
    if source.sections:
        raise ValueError(messages.SOURCE_HAS_SECTION)
    items = target.items()
    if len(items) != 1 or items[0].rtype != "ldom_info":
        raise ValueError(messages.NO_TARGET_INFO)
    item = items[0]
    # The credentials are decoded below, so that no message ever echoes them (§4.6).
    public = model.Item(item.rtype, [(k, v) for k, v in item.props if k not in _SECRET])
    errors = resources.check_item(ACTION, public, setting=False)
    for key in _SECRET:
        if item.keys().count(key) > 1:
            errors.append(messages.duplicate_credential(key))
    if errors:
        raise ValueError(errors[0])
    props = resources.usable_props(ACTION, item, setting=False)
    spec = props.get("target")
    if spec is None:
        raise ValueError(messages.NO_TARGET)
    host, port = parse_target(spec)
    if not _DOMAIN_NAME.match(target.name):
        raise ValueError(messages.invalid_target(f"{spec}:{target.name}"))
    cert = "-c" in options
    user, password = _credentials(props, cert, session_user)
    cidmap, mblockmap, tuning = parse_operands(arguments)
    return MigrationRequest(
        source=source.name, target_host=host, target_port=port, target_name=target.name,
        user=user, password=password, dry_run="-n" in options, force="-f" in options,
        cert_mode=cert, cidmap=cidmap, mblockmap=mblockmap, tuning=tuning,
    )


def _credentials(props: dict[str, str], cert: bool,
                 session_user: str) -> tuple[str | None, str | None]:
    if cert:
        if "username" in props or "password" in props:
            raise ValueError(messages.CERT_WITH_CREDENTIALS)
        return None, None
    if "password" not in props:
        raise ValueError(messages.PASSWORD_REQUIRED)
    user = session_user
    if "username" in props:
        user = _decode(props["username"], "username")
        if not 1 <= len(user) <= 32 or any(c in user for c in "@:/"):
            raise ValueError(messages.invalid_target(f"{user}@"))
    return user, _decode(props["password"], "password")


def _decode(text: str, key: str) -> str:
    try:
        return resources.parse_value("ldom_info", key, text).decode("utf-8")
    except (values.InvalidValue, UnicodeDecodeError):
        raise ValueError(messages.bad_credential(key)) from None


def parse_target(spec: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``v4:port``, ``v6`` or ``[v6]:port`` -> (host, port or None)."""
    text = spec.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(messages.invalid_target(spec))
        port_text = rest[1:] if rest else None
        if not _is_ip(host, 6):
            raise ValueError(messages.invalid_target(spec))
    elif text.count(":") > 1:
        host = text  # a bare IPv6 literal carries no port
        if not _is_ip(host, 6):
            raise ValueError(messages.invalid_target(spec))
    else:
        host, sep, port_text = text.partition(":")
        port_text = port_text if sep else None
        if not (_is_ip(host, 4) or _HOSTNAME.match(host)):
            raise ValueError(messages.invalid_target(spec))
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(messages.invalid_target(spec))
    return host, int(port_text)


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


# -- operands (§5.3, §5.4) ---------------------------------------------------------------------

def parse_operands(arguments: dict[str, str]) -> tuple[
        tuple[tuple[int, int], ...], tuple[tuple[int, int], ...], dict[str, str]]:
    """(cidmap, mblockmap, tuning) from the named operands, each value checked."""
    cidmap: tuple[tuple[int, int], ...] = ()
    mblockmap: tuple[tuple[int, int], ...] = ()
    tuning: dict[str, str] = {}
    for name, value in arguments.items():
        if name == "cidmap":
            cidmap = _pairs(name, value, _decimal, messages.core_twice)
        elif name == "mblockmap":
            mblockmap = _pairs(name, value, _hex, messages.address_twice)
        elif name in TUNING:
            tuning[name] = _tuning(name, value)
        else:  # dispatch refuses these at command level; stay safe if called directly
            raise ValueError(f"Unknown operand {name}")
    return cidmap, mblockmap, tuning


def _pairs(name, value, number, twice) -> tuple[tuple[int, int], ...]:
    pairs = []
    for part in value.split(","):
        left, sep, right = part.partition(":")
        a, b = number(left), number(right)
        if not sep or a is None or b is None:
            raise ValueError(messages.invalid_operand_value(name, value))
        pairs.append((a, b))
    for side in (0, 1):
        seen: set[int] = set()
        for pair in pairs:
            if pair[side] in seen:
                raise ValueError(twice(pair[side]))
            seen.add(pair[side])
    return tuple(pairs)


def _decimal(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _hex(text: str) -> int | None:
    return int(text, 16) if _HEX.match(text) else None


def _tuning(name: str, value: str) -> str:
    bad = ValueError(messages.invalid_operand_value(name, value))
    if name in _CHOICES:
        if value.lower() not in _CHOICES[name]:
            raise bad
        return value.lower()
    if name == "max-bandwidth":
        match = _BANDWIDTH.match(value.upper())
        if not match:
            raise bad
        unit = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2)]
        return str(int(match.group(1)) * unit)
    # max-downtime (ms), max-rounds, timeout (s): positive integers.
    if not value.isdigit() or int(value) < 1:
        raise bad
    return str(int(value))
