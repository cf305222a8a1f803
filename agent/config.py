"""Agent configuration: defaults, the TOML config file and command-line overrides.

Precedence: command line, then the config file, then the defaults below. The config file is
TOML; every key is optional::

    [agent]
    state_dir = "/var/lib/ldmx"
    host_name = "ctl1.example.com"        # the XMPP server name (default: the host's name)
    listen = "127.0.0.1:6482"
    socket = "/var/lib/ldmx/ldmx.sock"    # default: <state_dir>/ldmx.sock
    migration_listen = "127.0.0.1:8101"
    platform = "/etc/ldmx/platform.toml"  # default: the embedded platform

    [tls]
    cert = "/etc/ldmx/cert.pem"            # default: generated in the state dir
    key = "/etc/ldmx/key.pem"

    [auth]
    unknown_local_uid = "refuse"           # or "read"
    [auth.local_users]                     # uid or user name -> "read" or "write"
    operator = "write"
    1001 = "read"

    [limits]
    max_document_bytes = 1048576
    negotiation_timeout = 60

    [guests]
    workload = "idle"                      # idle, web, db, stream or diabolical
    os_capabilities = ["suspend", "migration-v2", "cpu-dr", "crypto-dr", "mem-dr"]

    [migration]                            # spec/migration.md Appendix B
    incoming_migration_enabled = true      # accept incoming migrations (mig-hello)
    outgoing_migration_enabled = true      # accept migrate-domain requests
    migration_max_concurrent = 1           # migrations per machine, 1 to 4
    migration_keepalive_interval = 5.0     # seconds between control-channel keepalives
    migration_keepalive_count = 3          # silent intervals before the peer is lost
    migration_peer_verify = "tofu"         # none, tofu or strict: the target's certificate
    migration_tls_host_match = false       # the target certificate must name the target host
    migration_verify = true                # on: compare memory digests before resume (§10.7)
    scrub_rate = "1.2G"                    # bytes per second the simulated scrub zero-fills
    migration_record_retention = "7d"      # finished outcome records are kept this long
    migration_parallel_streams = 1         # data streams per live migration, 1 to 8
    migration_compression = "none"        # none or zlib (compression= overrides it)
    migration_max_bandwidth = 0            # bytes/s, 0 = unlimited (max-bandwidth= overrides)

    [logging]
    format = "text"                        # or "json" (one JSON object per line)
    file = "-"                             # "-" is standard error
    level = "info"                         # debug, info, warn, error or critical

Every ``ldmx-agent`` option (except ``--config`` itself) has its key in the file:
:data:`FLAG_KEYS` lists them.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent.hypervisor.base import OS_CAPABILITIES, WORKLOADS

DEFAULT_LISTEN = ("127.0.0.1", 6482)
DEFAULT_MIGRATION_LISTEN = ("127.0.0.1", 8101)
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")
PEER_VERIFY_MODES = ("none", "tofu", "strict")  # migration_peer_verify (migration.md §4.4)

# Each ldmx-agent option: the load() override it feeds, and its [section] key in the file.
FLAG_KEYS = {
    "--state-dir": ("state_dir", "agent", "state_dir"),
    "--host-name": ("host_name", "agent", "host_name"),
    "--listen": ("listen", "agent", "listen"),
    "--socket": ("socket_path", "agent", "socket"),
    "--migration-listen": ("migration_listen", "agent", "migration_listen"),
    "--platform": ("platform", "agent", "platform"),
    "--guest-workload": ("guest_workload", "guests", "workload"),
    "--log-format": ("log_format", "logging", "format"),
    "--log-file": ("log_file", "logging", "file"),
    "--log-level": ("log_level", "logging", "level"),
}


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class AgentConfig:
    """Everything the daemon needs to start."""

    state_dir: Path
    host_name: str
    listen: tuple[str, int] = DEFAULT_LISTEN
    socket_path: Path | None = None
    migration_listen: tuple[str, int] = DEFAULT_MIGRATION_LISTEN
    platform: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    unknown_local_uid: str = "refuse"
    local_users: dict[str, str] = field(default_factory=dict)
    max_document_bytes: int = 1 << 20
    negotiation_timeout: float = 60.0
    guest_workload: str = "idle"
    guest_os_capabilities: tuple[str, ...] = OS_CAPABILITIES
    log_format: str = "text"
    log_file: Path | None = None  # None: standard error
    log_level: str = "info"
    incoming_migration_enabled: bool = True
    outgoing_migration_enabled: bool = True
    migration_max_concurrent: int = 1
    migration_keepalive_interval: float = 5.0
    migration_keepalive_count: int = 3
    migration_record_retention: float = 7 * 86400.0  # seconds (migration.md §2.14, Appendix B)
    migration_peer_verify: str = "tofu"  # none, tofu, strict (password mode, migration §4.4)
    migration_tls_host_match: bool = False
    migration_verify: bool = True  # §10.7: off computes and logs the digests, compares none
    scrub_rate: int = int(1.2 * (1 << 30))  # bytes/s (migration.md §10.11, Appendix B)
    migration_parallel_streams: int = 1
    # The spec's default is zlib; ldmx ships none: on the benchmark's guests zlib costs more
    # CPU than it saves on a loopback link (docs/benchmarks.md). compression=zlib per run.
    migration_compression: str = "none"
    migration_max_bandwidth: int = 0

    @property
    def socket(self) -> Path:
        return self.socket_path or self.state_dir / "ldmx.sock"

    @property
    def database(self) -> Path:
        return self.state_dir / "ldmx.db"


def default_state_dir() -> Path:
    """``$LDMX_STATE_DIR``, else the XDG state directory (``$XDG_STATE_HOME/ldmx``)."""
    env = os.environ.get("LDMX_STATE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(xdg) / "ldmx"


def parse_endpoint(text: str, key: str) -> tuple[str, int]:
    """Parse ``ADDR:PORT`` (``[v6]:PORT`` for IPv6); port 0 means "pick a free port"."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{key}: expected ADDR:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"{key}: port {port!r} is not a number") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"{key}: port {number} is out of range")
    return host, number


def format_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def load(config_file: Path | None = None, **overrides) -> AgentConfig:
    """Build the configuration from the file (if any) and the non-None ``overrides``.

    Overrides use the field names of :class:`AgentConfig`, endpoints as ``ADDR:PORT`` text.
    """
    data: dict = {}
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read config file {config_file}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {config_file}: {e}") from None
    agent = data.get("agent", {})
    tls = data.get("tls", {})
    auth = data.get("auth", {})
    limits = data.get("limits", {})

    def pick(name, section_value):
        value = overrides.get(name)
        return section_value if value is None else value

    state_dir = Path(pick("state_dir", agent.get("state_dir")) or default_state_dir())
    cfg = AgentConfig(
        state_dir=state_dir,
        host_name=pick("host_name", agent.get("host_name")) or socket.gethostname(),
    )
    listen = pick("listen", agent.get("listen"))
    if listen:
        cfg = replace(cfg, listen=parse_endpoint(listen, "listen"))
    mig = pick("migration_listen", agent.get("migration_listen"))
    if mig:
        cfg = replace(cfg, migration_listen=parse_endpoint(mig, "migration-listen"))
    sock = pick("socket_path", agent.get("socket"))
    if sock:
        cfg = replace(cfg, socket_path=Path(sock))
    platform = pick("platform", agent.get("platform"))
    if platform:
        cfg = replace(cfg, platform=Path(platform))
    if tls.get("cert") or tls.get("key"):
        if not (tls.get("cert") and tls.get("key")):
            raise ConfigError("tls: cert and key must be given together")
        cfg = replace(cfg, tls_cert=Path(tls["cert"]), tls_key=Path(tls["key"]))
    policy = auth.get("unknown_local_uid", cfg.unknown_local_uid)
    if policy not in ("refuse", "read"):
        raise ConfigError(f"auth.unknown_local_uid: expected refuse or read, got {policy!r}")
    local_users = {str(k): v for k, v in auth.get("local_users", {}).items()}
    for who, authz in local_users.items():
        if authz not in ("read", "write"):
            raise ConfigError(f"auth.local_users.{who}: expected read or write, got {authz!r}")
    cfg = replace(cfg, unknown_local_uid=policy, local_users=local_users)
    if "max_document_bytes" in limits:
        cfg = replace(cfg, max_document_bytes=int(limits["max_document_bytes"]))
    if "negotiation_timeout" in limits:
        cfg = replace(cfg, negotiation_timeout=float(limits["negotiation_timeout"]))
    guests = data.get("guests", {})
    logging = data.get("logging", {})
    workload = pick("guest_workload", guests.get("workload")) or cfg.guest_workload
    log_format = pick("log_format", logging.get("format")) or cfg.log_format
    log_level = pick("log_level", logging.get("level")) or cfg.log_level
    log_file = pick("log_file", logging.get("file")) or "-"
    for key, value, allowed in (("guests.workload", workload, WORKLOADS),
                                ("logging.format", log_format, LOG_FORMATS),
                                ("logging.level", log_level, LOG_LEVELS)):
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {', '.join(allowed)}, got {value!r}")
    if "os_capabilities" in guests:
        caps = guests["os_capabilities"]
        if not isinstance(caps, list) or not set(caps) <= set(OS_CAPABILITIES):
            raise ConfigError(f"guests.os_capabilities: expected a list of "
                              f"{', '.join(OS_CAPABILITIES)}, got {caps!r}")
        cfg = replace(cfg, guest_os_capabilities=tuple(caps))
    cfg = replace(cfg, guest_workload=workload, log_format=log_format, log_level=log_level,
                  log_file=None if log_file == "-" else Path(log_file))
    return replace(cfg, **_migration(data.get("migration", {})))


def _on_off(value, key: str) -> bool:
    """A switch written as the spec does (``on``/``off``) or as a TOML boolean."""
    if isinstance(value, bool):
        return value
    if value in ("on", "off"):
        return value == "on"
    raise ConfigError(f"{key}: expected on or off, got {value!r}")


def _migration(section: dict) -> dict:
    """The ``[migration]`` keys (migration.md Appendix B), checked; absent keys keep defaults."""
    values: dict = {}
    for key in ("incoming_migration_enabled", "outgoing_migration_enabled",
                "migration_tls_host_match"):
        if key in section:
            if not isinstance(section[key], bool):
                raise ConfigError(f"migration.{key}: expected true or false, got {section[key]!r}")
            values[key] = section[key]
    for key, low, high in (("migration_max_concurrent", 1, 4),
                           ("migration_keepalive_count", 1, 100),
                           ("migration_parallel_streams", 1, 8),
                           ("migration_max_bandwidth", 0, 1 << 50)):
        if key in section:
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"migration.{key}: expected an integer from {low} to {high}, "
                                  f"got {value!r}")
            values[key] = value
    if "migration_keepalive_interval" in section:
        value = section["migration_keepalive_interval"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"migration.migration_keepalive_interval: expected a positive "
                              f"number of seconds, got {value!r}")
        values["migration_keepalive_interval"] = float(value)
    if "migration_peer_verify" in section:
        value = section["migration_peer_verify"]
        if value not in PEER_VERIFY_MODES:
            raise ConfigError(f"migration.migration_peer_verify: expected one of "
                              f"{', '.join(PEER_VERIFY_MODES)}, got {value!r}")
        values["migration_peer_verify"] = value
    if "migration_verify" in section:
        values["migration_verify"] = _on_off(section["migration_verify"],
                                             "migration.migration_verify")
    if "scrub_rate" in section:
        values["scrub_rate"] = _rate(section["scrub_rate"], "migration.scrub_rate")
    if "migration_record_retention" in section:
        values["migration_record_retention"] = _duration(section["migration_record_retention"],
                                                         "migration.migration_record_retention")
    if "migration_compression" in section:
        value = section["migration_compression"]
        if value not in ("none", "zlib"):
            raise ConfigError(f"migration.migration_compression: expected none or zlib, "
                              f"got {value!r}")
        values["migration_compression"] = value
    return values


def _duration(value: object, key: str) -> float:
    """Seconds from a number or a duration with a unit (``90s``, ``30m``, ``12h``, ``7d``)."""
    units = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", str(value).strip())
    if isinstance(value, bool) or match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"{key}: expected a positive duration such as 7d, got {value!r}")
    return float(match.group(1)) * units[match.group(2)]


def _rate(value: object, key: str) -> int:
    """Bytes per second from an integer or a size with an optional decimal (``1.2G``, ``64M/s``)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)(?:/s)?", str(value).strip(), re.I)
    if isinstance(value, bool) or match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"{key}: expected a positive rate such as 1.2G, got {value!r}")
    return int(float(match.group(1)) * units[match.group(2).upper()])
