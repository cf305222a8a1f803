"""``migration_verify`` (migration.md §10.7, Appendix B): on by default, ``on``/``off`` as the
spec writes it or a TOML boolean, anything else refused with the key named; the shipped
sample sets it on."""

from pathlib import Path

import pytest

from agent import config

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "ldmx.toml"


def load(tmp_path, text: str) -> config.AgentConfig:
    path = tmp_path / "ldmx.toml"
    path.write_text(text)
    return config.load(path)


def test_verify_is_on_by_default_and_in_the_sample(tmp_path):
    assert load(tmp_path, "").migration_verify is True
    assert config.load(SAMPLE).migration_verify is True


@pytest.mark.parametrize("value, expected", [('"on"', True), ('"off"', False),
                                             ("true", True), ("false", False)])
def test_verify_takes_on_off_or_a_boolean(tmp_path, value, expected):
    assert load(tmp_path, f"[migration]\nmigration_verify = {value}\n").migration_verify \
        is expected


def test_a_bad_verify_value_is_refused_with_the_key_named(tmp_path):
    with pytest.raises(config.ConfigError, match="migration.migration_verify: expected on or off"):
        load(tmp_path, '[migration]\nmigration_verify = "sometimes"\n')
