"""The TOML config file: every ldmx-agent option has a key, the file and the flag agree, the
command line wins, and the shipped sample loads."""

from pathlib import Path

import pytest

from agent import config
from agent.cli.agent import build_parser, load_config

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

# A value for each option that differs from its default, as (command-line text, file value).
VALUES = {
    "--state-dir": "/srv/ldmx-state",
    "--host-name": "ctl9.example.com",
    "--listen": "127.0.0.5:7000",
    "--socket": "/run/ldmx/agent.sock",
    "--migration-listen": "127.0.0.5:7001",
    "--platform": "/etc/ldmx/platform.toml",
    "--guest-workload": "web",
    "--log-format": "json",
    "--log-file": "/var/log/ldmx/agent.log",
    "--log-level": "debug",
}


def agent_options() -> list[str]:
    """Every long option of ldmx-agent except --help and --config."""
    return [opt for action in build_parser()._actions for opt in action.option_strings
            if opt.startswith("--") and opt not in ("--help", "--config")]


def test_every_agent_option_has_a_config_file_key():
    assert sorted(agent_options()) == sorted(config.FLAG_KEYS)


@pytest.mark.parametrize("flag", sorted(config.FLAG_KEYS))
def test_config_file_key_sets_the_same_value_as_its_option(tmp_path, flag):
    field, section, key = config.FLAG_KEYS[flag]
    value = VALUES[flag]
    path = tmp_path / "ldmx.toml"
    path.write_text(f'[{section}]\n{key} = "{value}"\n')
    from_file = load_config(build_parser().parse_args(["--config", str(path)]))
    from_flag = load_config(build_parser().parse_args([flag, value]))
    default = load_config(build_parser().parse_args([]))
    assert getattr(from_file, field) == getattr(from_flag, field)
    assert getattr(from_file, field) != getattr(default, field)


def test_command_line_wins_over_the_file(tmp_path):
    path = tmp_path / "ldmx.toml"
    path.write_text('[agent]\nlisten = "127.0.0.5:7000"\n[logging]\nformat = "json"\n')
    cfg = load_config(build_parser().parse_args(
        ["--config", str(path), "--listen", "127.0.0.6:7002", "--log-format", "text"]))
    assert cfg.listen == ("127.0.0.6", 7002) and cfg.log_format == "text"


@pytest.mark.parametrize("text, message", [
    ('[guests]\nworkload = "bursty"\n', "guests.workload: expected one of idle"),
    ('[logging]\nformat = "xml"\n', "logging.format: expected one of text, json"),
    ('[logging]\nlevel = "loud"\n', "logging.level: expected one of debug"),
])
def test_bad_values_are_refused_with_the_key_named(tmp_path, text, message):
    path = tmp_path / "ldmx.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        config.load(path)


def test_log_file_dash_means_standard_error(tmp_path):
    path = tmp_path / "ldmx.toml"
    path.write_text('[logging]\nfile = "-"\n')
    assert config.load(path).log_file is None


def test_shipped_sample_config_loads_with_its_documented_values():
    cfg = config.load(SAMPLES / "ldmx.toml")
    assert cfg.state_dir == Path("/var/lib/ldmx")
    assert cfg.listen == ("0.0.0.0", 6482) and cfg.migration_listen == ("0.0.0.0", 8101)
    assert cfg.socket == Path("/var/lib/ldmx/ldmx.sock")
    assert (cfg.guest_workload, cfg.log_format, cfg.log_file, cfg.log_level) == (
        "idle", "text", None, "info")


def test_migration_section_defaults_follow_appendix_b(tmp_path):
    """migration.md Appendix B: both directions enabled, one migration at a time, keepalive
    every 5 s and 3 silent intervals, when the file has no [migration] section."""
    path = tmp_path / "ldmx.toml"
    path.write_text("")
    cfg = config.load(path)
    assert (cfg.incoming_migration_enabled, cfg.outgoing_migration_enabled,
            cfg.migration_max_concurrent) == (True, True, 1)
    assert (cfg.migration_keepalive_interval, cfg.migration_keepalive_count) == (5.0, 3)


def test_migration_section_sets_its_values(tmp_path):
    path = tmp_path / "ldmx.toml"
    path.write_text("[migration]\nincoming_migration_enabled = false\n"
                    "outgoing_migration_enabled = false\nmigration_max_concurrent = 4\n"
                    "migration_keepalive_interval = 0.5\nmigration_keepalive_count = 2\n")
    cfg = config.load(path)
    assert (cfg.incoming_migration_enabled, cfg.outgoing_migration_enabled,
            cfg.migration_max_concurrent) == (False, False, 4)
    assert (cfg.migration_keepalive_interval, cfg.migration_keepalive_count) == (0.5, 2)


@pytest.mark.parametrize("text, message", [
    ("migration_max_concurrent = 5", "migration.migration_max_concurrent: expected an integer "
                                     "from 1 to 4"),
    ("migration_max_concurrent = 0", "migration.migration_max_concurrent"),
    ('incoming_migration_enabled = "no"', "migration.incoming_migration_enabled: expected true"),
    ("migration_keepalive_interval = 0", "migration.migration_keepalive_interval: expected a "
                                         "positive"),
    ("migration_keepalive_count = 0", "migration.migration_keepalive_count"),
])
def test_bad_migration_values_are_refused_with_the_key_named(tmp_path, text, message):
    """Appendix B ranges: 1 to 4 concurrent migrations; booleans are TOML booleans."""
    path = tmp_path / "ldmx.toml"
    path.write_text(f"[migration]\n{text}\n")
    with pytest.raises(config.ConfigError, match=message):
        config.load(path)


def test_data_plane_keys_default_and_set(tmp_path):
    """Appendix B, §10.1, §10.4, §10.5: one stream, no cap; compression off by default in
    ldmx (the spec says zlib; see docs/benchmarks.md); each key settable."""
    path = tmp_path / "ldmx.toml"
    path.write_text("")
    cfg = config.load(path)
    assert (cfg.migration_parallel_streams, cfg.migration_compression,
            cfg.migration_max_bandwidth) == (1, "none", 0)
    path.write_text('[migration]\nmigration_parallel_streams = 8\nmigration_compression = "zlib"\n'
                    "migration_max_bandwidth = 1048576\n")
    cfg = config.load(path)
    assert (cfg.migration_parallel_streams, cfg.migration_compression,
            cfg.migration_max_bandwidth) == (8, "zlib", 1048576)


@pytest.mark.parametrize("text, message", [
    ("migration_parallel_streams = 9", "migration.migration_parallel_streams: expected an "
                                       "integer from 1 to 8"),
    ("migration_parallel_streams = 0", "migration.migration_parallel_streams"),
    ('migration_compression = "zstd"', "migration.migration_compression: expected none or zlib"),
    ("migration_max_bandwidth = -1", "migration.migration_max_bandwidth"),
])
def test_bad_data_plane_values_are_refused_with_the_key_named(tmp_path, text, message):
    path = tmp_path / "ldmx.toml"
    path.write_text(f"[migration]\n{text}\n")
    with pytest.raises(config.ConfigError, match=message):
        config.load(path)
