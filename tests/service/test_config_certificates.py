"""The certificate keys of ``[migration]`` (migration.md §4.4, Appendix B)."""

import pytest

from agent import config


def load(tmp_path, text: str) -> config.AgentConfig:
    path = tmp_path / "ldmx.toml"
    path.write_text(text)
    return config.load(path)


def test_defaults_follow_appendix_b(tmp_path):
    """Appendix B: migration_peer_verify = tofu, migration_tls_host_match = false."""
    cfg = load(tmp_path, "")
    assert (cfg.migration_peer_verify, cfg.migration_tls_host_match) == ("tofu", False)


@pytest.mark.parametrize("mode", ["none", "tofu", "strict"])
def test_each_verify_mode_is_accepted(tmp_path, mode):
    cfg = load(tmp_path, f'[migration]\nmigration_peer_verify = "{mode}"\n'
                         "migration_tls_host_match = true\n")
    assert (cfg.migration_peer_verify, cfg.migration_tls_host_match) == (mode, True)


@pytest.mark.parametrize("text, message", [
    ('migration_peer_verify = "pinned"', "migration.migration_peer_verify: expected one of "
                                         "none, tofu, strict"),
    ('migration_tls_host_match = "yes"', "migration.migration_tls_host_match: expected true"),
])
def test_bad_values_are_refused_with_the_key_named(tmp_path, text, message):
    with pytest.raises(config.ConfigError, match=message):
        load(tmp_path, f"[migration]\n{text}\n")
